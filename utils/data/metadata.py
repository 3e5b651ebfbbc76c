"""wsolevaluation's metadata folders as input, and conversion to and from label lists.

numpy + OpenCV only (no TensorFlow).

Format (clovaai/wsolevaluation, ``metadata/<DATASET>/<split>/``)
----------------------------------------------------------------
``image_ids.txt``     one image path a line (relative to the image root, class folders
                      included, e.g. ``001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg``
                      or ``val/ILSVRC2012_val_00000001.JPEG``);
``class_labels.txt``  ``path,label`` (0-based class index);
``image_sizes.txt``   ``path,width,height`` (optional here);
``localization.txt``  ``path,x0,y0,x1,y1`` in original-image pixels, one line per box, so an
                      image with several boxes has several lines (optional for training splits).
                      OpenImages' mask lines ``path,mask,ignore`` are refused with a message.

Fields are separated by commas; paths are used exactly as written.  Every file is
checked line by line; a fault raises ``MetadataError`` naming ``file:line``.

Splits
------
wsolevaluation's splits are ``train``, ``val`` (its held-out fully-annotated split,
"train-fullsup") and ``test``.  This project evaluates the list it calls ``val``, so a
metadata folder given as ``--label_dir`` maps project splits to metadata splits as
``SPLIT_OF``: train -> train, val (the evaluated list) -> test, train_fullsup -> val.

CLI
---
::

    python -m utils.data.metadata to-lists METADATA_DIR OUT_DIR [--dataset NAME ...]
    python -m utils.data.metadata to-metadata LABEL_DIR OUT_DIR --dataset NAME --image_root DIR

``to-lists`` writes ``OUT_DIR/<NAME>/{train,val,train_fullsup}.txt`` from the metadata
splits present; ``to-metadata`` writes ``OUT_DIR/<NAME>/{train,test,val}/`` from the
lists present (image sizes are read from the images under ``--image_root``; box
coordinates that are not integers are truncated, as wsolevaluation's readers need
integers, and counted in the output).
"""
import argparse
import os
import sys

import cv2
import numpy as np

from utils.atomic import atomic_folder, write_text
from utils.data.labels import LabelEntry, LabelListError, numbered_lines, read_label_list, write_label_list
from utils.errors import UserError, exit_on_user_error

IMAGE_IDS, CLASS_LABELS, IMAGE_SIZES, LOCALIZATION = (
    "image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")
SPLIT_OF = {"train": "train", "val": "test", "train_fullsup": "val"}   # project split -> metadata split


class MetadataError(UserError, ValueError):
    """A metadata folder or file that cannot be used (the message names file and line)."""


def is_metadata_split(path):
    """True when ``path`` is a metadata split folder (holds ``image_ids.txt``)."""
    return os.path.isfile(os.path.join(path, IMAGE_IDS))


def metadata_split_dir(label_dir, dataset_name, split):
    """``<label_dir>/<NAME>/<metadata split of split>`` when it is a metadata split folder, else None."""
    folder = os.path.join(label_dir, dataset_name, SPLIT_OF.get(split, split))
    return folder if is_metadata_split(folder) else None


def _rows(path, num_fields, what):
    """``(where, fields)`` of each non-blank line of a comma-separated UTF-8 file."""
    try:
        for line_number, line in numbered_lines(path):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            where = f"{path}:{line_number}"
            fields = line.split(",")
            if len(fields) not in num_fields:
                if what == "box" and len(fields) == 3:
                    raise MetadataError(f"{where}: mask localization (path,mask,ignore as in OpenImages) is "
                                        "not supported; give boxes path,x0,y0,x1,y1 and masks with --mask_dir")
                raise MetadataError(f"{where}: expected {' or '.join(map(str, num_fields))} comma-separated "
                                    f"fields ({what}), got {len(fields)}")
            yield where, fields
    except LabelListError as error:   # not UTF-8: names the file and line
        raise MetadataError(str(error)) from None


def _known(where, path, labels):
    if path not in labels:
        raise MetadataError(f"{where}: {path!r} is not in {IMAGE_IDS}")


def _number(where, text, kind):
    try:
        value = kind(text)
    except ValueError:
        raise MetadataError(f"{where}: {text!r} is not a number") from None
    if not np.isfinite(value):
        raise MetadataError(f"{where}: {text!r} is not finite")
    return value


def read_metadata(folder):
    """``(entries, sizes)`` of a metadata split folder: ``LabelEntry`` objects in
    ``image_ids.txt`` order (all boxes of an image, in file order) and ``{path: (width,
    height)}`` (empty without ``image_sizes.txt``)."""
    ids_file = os.path.join(folder, IMAGE_IDS)
    if not os.path.isfile(ids_file):
        raise MetadataError(f"{ids_file} not found (not a wsolevaluation metadata split folder)")
    labels = {}
    for where, (path,) in _rows(ids_file, (1,), "path"):
        if path in labels:
            raise MetadataError(f"{where}: {path!r} is listed twice")
        labels[path] = None
    labels_file = os.path.join(folder, CLASS_LABELS)
    if not os.path.isfile(labels_file):
        raise MetadataError(f"{labels_file} not found")
    for where, (path, label) in _rows(labels_file, (2,), "path,label"):
        _known(where, path, labels)
        labels[path] = _number(where, label, int)
    unlabelled = [path for path, label in labels.items() if label is None]
    if unlabelled:
        raise MetadataError(f"{labels_file}: no class for {unlabelled[0]!r} ({len(unlabelled)} images without one)")
    sizes = {}
    sizes_file = os.path.join(folder, IMAGE_SIZES)
    if os.path.isfile(sizes_file):
        for where, (path, width, height) in _rows(sizes_file, (3,), "path,width,height"):
            _known(where, path, labels)
            sizes[path] = (_number(where, width, int), _number(where, height, int))
    boxes = {path: [] for path in labels}
    boxes_file = os.path.join(folder, LOCALIZATION)
    if os.path.isfile(boxes_file):
        for where, (path, *coordinates) in _rows(boxes_file, (5,), "box"):
            _known(where, path, labels)
            box = [_number(where, value, float) for value in coordinates]
            if box[2] < box[0] or box[3] < box[1]:
                raise MetadataError(f"{where}: degenerate box {','.join(coordinates)} (needs x0<=x1 and y0<=y1)")
            boxes[path].append(box)
    entries = [LabelEntry(path, label, np.array(boxes[path], np.float32).reshape(-1, 4))
               for path, label in labels.items()]
    return entries, sizes


def read_entries(source, num_classes=None):
    """The entries of a label list file or of a metadata split folder; given ``num_classes``,
    a class index outside ``[0, num_classes)`` is a ``LabelListError``."""
    if not os.path.isdir(source):
        return read_label_list(source, num_classes=num_classes)
    entries = read_metadata(source)[0]
    for entry in entries:
        if num_classes is not None and not 0 <= entry.label < num_classes:
            raise LabelListError(f"{os.path.join(source, CLASS_LABELS)}: {entry.path}: class index {entry.label} "
                                 f"outside [0, {num_classes})")
    return entries


def _coordinate(value):
    """wsolevaluation's readers parse integers: ``(text, truncated?)``."""
    integer = int(value)
    return str(integer), integer != value


def write_metadata(folder, entries, sizes):
    """Write a metadata split folder; returns the number of box coordinates truncated to integers.
    ``sizes``: ``{path: (width, height)}`` for every entry."""
    truncated = 0
    ids, labels, image_sizes, boxes = [], [], [], []
    for entry in entries:
        if "," in entry.path:
            raise MetadataError(f"{entry.path!r}: a comma in a path cannot be written to metadata files")
        ids.append(f"{entry.path}\n")
        labels.append(f"{entry.path},{entry.label}\n")
        width, height = sizes[entry.path]
        image_sizes.append(f"{entry.path},{width},{height}\n")
        for box in entry.boxes:
            texts = []
            for value in box.tolist():
                text, cut = _coordinate(value)
                texts.append(text)
                truncated += cut
            boxes.append(",".join([entry.path, *texts]) + "\n")
    with atomic_folder(folder, replace=True) as building:   # the four files together, or none
        for name, lines in ((IMAGE_IDS, ids), (CLASS_LABELS, labels), (IMAGE_SIZES, image_sizes),
                            (LOCALIZATION, boxes)):
            write_text(os.path.join(building, name), "".join(lines), newline="\n")
    return truncated


def image_size(path):
    """``(width, height)`` of an image file, or ``MetadataError`` naming it."""
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED) if os.path.isfile(path) else None
    if image is None:
        raise MetadataError(f"{path}: image missing or unreadable (its size is needed for image_sizes.txt)")
    return image.shape[1], image.shape[0]


# ----------------------------------------------------------------------------- CLI

def to_lists(metadata_dir, out_dir, datasets=None):
    """Label lists from every metadata split of every (or the given) data set; returns the files written."""
    if not os.path.isdir(metadata_dir):
        raise MetadataError(f"metadata folder {metadata_dir} not found")
    if datasets is None:
        datasets = sorted(name for name in os.listdir(metadata_dir) if os.path.isdir(os.path.join(metadata_dir, name)))
    written = []
    for dataset in datasets:
        for split in SPLIT_OF:
            folder = metadata_split_dir(metadata_dir, dataset, split)
            if folder is None:
                continue
            entries, _ = read_metadata(folder)
            for entry in entries:   # lists are TAB-separated: spaces in a path are kept, TABs cannot be
                if "\t" in entry.path or entry.path != entry.path.strip():
                    raise MetadataError(f"{folder}: path {entry.path!r} holds a TAB or surrounding whitespace, "
                                        f"which label lists cannot")
            out_file = os.path.join(out_dir, dataset, f"{split}.txt")
            write_label_list(out_file, entries)
            print(f"{folder} -> {out_file}: {len(entries)} images, {sum(len(e.boxes) for e in entries)} boxes")
            written.append(out_file)
    if not written:
        raise MetadataError(f"{metadata_dir}: no metadata split folder <DATASET>/{{train,test,val}}/{IMAGE_IDS}")
    return written


def to_metadata(label_dir, out_dir, dataset, image_root):
    """Metadata split folders from the label lists of a data set; returns the folders written."""
    if not os.path.isdir(image_root):
        raise MetadataError(f"image root {image_root} not found")
    written = []
    for split, metadata_split in SPLIT_OF.items():
        list_file = os.path.join(label_dir, dataset, f"{split}.txt")
        if not os.path.isfile(list_file):
            continue
        try:
            entries = read_label_list(list_file)
        except LabelListError as error:
            raise MetadataError(str(error)) from None
        sizes = {entry.path: image_size(os.path.join(image_root, entry.path)) for entry in entries}
        folder = os.path.join(out_dir, dataset, metadata_split)
        truncated = write_metadata(folder, entries, sizes)
        note = f", {truncated} box coordinates truncated to integers" if truncated else ""
        print(f"{list_file} -> {folder}: {len(entries)} images{note}")
        written.append(folder)
    if not written:
        raise MetadataError(f"{os.path.join(label_dir, dataset)}: no train.txt, val.txt or train_fullsup.txt")
    return written


def main(argv=None):
    """The command line; a wrong input: one ``utils.data.metadata: error: ...`` line on stderr, exit 2."""
    return exit_on_user_error("utils.data.metadata", _main, argv)


def _main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m utils.data.metadata",
                                     description="Convert wsolevaluation metadata folders to label lists and back.")
    commands = parser.add_subparsers(dest="command", required=True)
    lists = commands.add_parser("to-lists", help="metadata/<NAME>/<split>/ -> OUT/<NAME>/<split>.txt")
    lists.add_argument("metadata_dir")
    lists.add_argument("out_dir")
    lists.add_argument("--dataset", nargs="+", default=None, help="data sets to convert (default: all)")
    metadata = commands.add_parser("to-metadata", help="LABEL_DIR/<NAME>/<split>.txt -> OUT/<NAME>/<split>/")
    metadata.add_argument("label_dir")
    metadata.add_argument("out_dir")
    metadata.add_argument("--dataset", required=True)
    metadata.add_argument("--image_root", required=True, help="folder the list paths start from (for image sizes)")
    args = parser.parse_args(argv)
    if args.command == "to-lists":
        to_lists(args.metadata_dir, args.out_dir, args.dataset)
    else:
        to_metadata(args.label_dir, args.out_dir, args.dataset, args.image_root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
