"""Extract the CUB-200-2011 and ILSVRC 2012 archives into the project layout.

Run through ``dataset/prepare_cub.sh`` and ``dataset/prepare_imagenet.sh`` (or
``python -m utils.data.prepare cub|imagenet ...``).  Relative paths are relative to the current
directory; the defaults are inside the repository.

CUB (``CUB_200_2011.tgz``)
    images -> ``<dataset_dir>/CUB/images/<class dir>/<file>.jpg``; the metadata files
    (``images.txt``, ``image_class_labels.txt``, ``train_test_split.txt``,
    ``bounding_boxes.txt``, ``classes.txt``) -> ``<dataset_dir>/CUB/metadata/``.
    ``--regenerate-labels OUT`` rebuilds ``OUT/CUB/{train,val,words}.txt`` from the
    metadata (official split: 1 = train, 0 = test = our val; 1-based class ids become
    0-based; boxes ``x y w h`` become ``x y x+w y+h``) and counts the images whose line
    differs from ``<labels_dir>/CUB``.
    ``--segmentations segmentations.tgz`` (the official archive, default
    ``dataset/segmentations.tgz`` when present) -> object masks
    ``<dataset_dir>/CUB/masks/<class dir>/<file>.png`` (``extract_cub_masks``: 255 where the
    soft segmentation's gray value is > 0.5, wsolevaluation's rule), and a count of the
    val list's images that have one.

ILSVRC (``ILSVRC2012_img_train.tar`` holding one ``<wnid>.tar`` per class, and the flat
``ILSVRC2012_img_val.tar``)
    -> ``<dataset_dir>/ILSVRC/train/<wnid>/*.JPEG`` and ``<dataset_dir>/ILSVRC/val/*.JPEG``;
    then ``<labels_dir>/ILSVRC/train.txt`` lists ``train/<wnid>/<file>.JPEG<TAB><class>``
    with classes numbered in ``<labels_dir>/ILSVRC/wnids.txt`` order.

Both are idempotent: a finished directory carries a ``.complete`` marker and is skipped,
and files are written under a temporary name and renamed, so an interrupted run resumes.
"""
import argparse
import contextlib
import os
import shutil
import sys
import tarfile
import zlib

import cv2
import numpy as np

from utils.atomic import atomic_open, write_bytes, write_text
from utils.errors import UserError, exit_on_user_error
from utils.data.labels import LabelEntry, read_label_list, write_label_list
from utils.data.paths import CLASS_NAMES_FILE
from utils.data.masks import MASKS_FOLDER, mask_file, object_pixels, write_mask

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DATASET_DIR = os.path.join(REPO_ROOT, "dataset")
DEFAULT_LABELS_DIR = os.path.join(REPO_ROOT, "labels")
CUB_LIST_METADATA = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt")
CUB_METADATA_FILES = CUB_LIST_METADATA + ("classes.txt",)
SEGMENTATIONS_ARCHIVE = "segmentations.tgz"
COMPLETE_MARKER = ".complete"
IMAGENET_IMAGE_SUFFIX = ".JPEG"
PROGRESS_EVERY = 1000  # files between progress lines


class PrepareError(UserError, RuntimeError):
    """A preparation step that cannot run (missing archive or metadata)."""


def _say(message):
    print(message, flush=True)


def _is_complete(directory):
    return os.path.isfile(os.path.join(directory, COMPLETE_MARKER))


def _mark_complete(directory):
    write_text(os.path.join(directory, COMPLETE_MARKER), "done\n")


def _write_member(tar, member, target):
    """Copy a tar member to ``target`` via a temporary file (atomic on one file system)."""
    with tar.extractfile(member) as source, atomic_open(target, "wb", sync=False) as destination:
        shutil.copyfileobj(source, destination)


def _require_archive(path, what, how_to_pass):
    if not os.path.isfile(path):
        raise PrepareError(f"{what} not found at {path}: download it and pass its path {how_to_pass}")


@contextlib.contextmanager
def _reading_archive(path):
    """A corrupt, truncated or non-tar archive becomes one PrepareError line naming it."""
    try:
        yield
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise PrepareError(f"{path}: not a readable tar archive ({error or type(error).__name__}); "
                           f"download it again (files extracted so far are kept)") from None


def _count_files(directory, suffix):
    return sum(name.endswith(suffix) for _, _, names in os.walk(directory) for name in names)


# ----------------------------------------------------------------------------- CUB

def _cub_target(member_name, images_dir, metadata_dir):
    """Where a CUB archive member goes (None = not needed): ``.../images/<class>/<file>``
    and the metadata text files next to ``images/``."""
    parts = [p for p in member_name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    if len(parts) >= 3 and parts[-3] == "images":
        return os.path.join(images_dir, parts[-2], parts[-1])
    if len(parts) == 2 and parts[0] == "CUB_200_2011" and parts[1] in CUB_METADATA_FILES:
        return os.path.join(metadata_dir, parts[1])
    return None


def extract_cub(archive, dataset_dir):
    """Extract images and metadata of ``CUB_200_2011.tgz``; returns the number of images."""
    images_dir = os.path.join(dataset_dir, "CUB", "images")
    metadata_dir = os.path.join(dataset_dir, "CUB", "metadata")
    if _is_complete(images_dir) and _is_complete(metadata_dir):
        count = _count_files(images_dir, ".jpg")
        _say(f"CUB: {images_dir} already extracted ({count} images), skipping")
        return count
    _require_archive(archive, "CUB_200_2011.tgz", "as the first argument")
    _say(f"CUB: extracting {archive} -> {images_dir}")
    written = skipped = 0
    with _reading_archive(archive), tarfile.open(archive, "r|*") as tar:
        for member in tar:
            target = _cub_target(member.name, images_dir, metadata_dir) if member.isfile() else None
            if target is None:
                continue
            if os.path.isfile(target) and os.path.getsize(target) == member.size:
                skipped += 1
            else:
                _write_member(tar, member, target)
                written += 1
            if (written + skipped) % PROGRESS_EVERY == 0:
                _say(f"CUB: {written + skipped} files ({skipped} already there)")
    for directory in (images_dir, metadata_dir):
        os.makedirs(directory, exist_ok=True)
        _mark_complete(directory)
    count = _count_files(images_dir, ".jpg")
    _say(f"CUB: done, {count} images ({written} files written, {skipped} already there)")
    return count


def _read_id_table(path):
    """``{id: [fields...]}`` of a CUB metadata file (``<id> <fields...>`` per line)."""
    table = {}
    with open(path) as f:
        for line in f:
            fields = line.split()
            if fields:
                table[int(fields[0])] = fields[1:]
    return table


def cub_lists_from_metadata(metadata_dir):
    """``{'train': [LabelEntry], 'val': [LabelEntry]}`` built from the official metadata,
    in ``images.txt`` order."""
    tables = {}
    for name in CUB_LIST_METADATA:
        path = os.path.join(metadata_dir, name)
        if not os.path.isfile(path):
            raise PrepareError(f"CUB metadata file {path} not found: run dataset/prepare_cub.sh first")
        tables[name] = _read_id_table(path)
    lists = {"train": [], "val": []}
    for image_id, (relative_path,) in tables["images.txt"].items():
        label = int(tables["image_class_labels.txt"][image_id][0]) - 1
        x, y, w, h = (float(v) for v in tables["bounding_boxes.txt"][image_id])
        box = np.array([[x, y, x + w, y + h]], np.float32)
        split = "train" if tables["train_test_split.txt"][image_id][0] == "1" else "val"
        lists[split].append(LabelEntry(relative_path, label, box))
    return lists


def count_differences(entries, reference_entries):
    """Images that are in only one of the two lists, or differ in class or boxes."""
    reference = {e.path: e for e in reference_entries}
    differences = 0
    for entry in entries:
        other = reference.pop(entry.path, None)
        if (other is None or other.label != entry.label or other.boxes.shape != entry.boxes.shape
                or not np.array_equal(other.boxes, entry.boxes)):
            differences += 1
    return differences + len(reference)


def regenerate_cub_labels(dataset_dir, output_dir, labels_dir):
    """Write ``output_dir/CUB/{train,val}.txt`` (and ``words.txt``) from the metadata and
    compare with ``labels_dir/CUB``; returns ``{split: number of differing images}``."""
    metadata_dir = os.path.join(dataset_dir, "CUB", "metadata")
    out_dir = os.path.join(output_dir, "CUB")
    os.makedirs(out_dir, exist_ok=True)
    differences = {}
    for split, entries in cub_lists_from_metadata(metadata_dir).items():
        out_file = os.path.join(out_dir, f"{split}.txt")
        write_label_list(out_file, entries)
        reference_file = os.path.join(labels_dir, "CUB", f"{split}.txt")
        if os.path.isfile(reference_file):
            differences[split] = count_differences(entries, read_label_list(reference_file))
            _say(f"CUB: {out_file}: {len(entries)} images, {differences[split]} differ from {reference_file}")
        else:
            _say(f"CUB: {out_file}: {len(entries)} images (no {reference_file} to compare with)")
    classes_file = os.path.join(metadata_dir, "classes.txt")
    if os.path.isfile(classes_file):
        with open(classes_file, "rb") as f:
            write_bytes(os.path.join(out_dir, CLASS_NAMES_FILE), f.read())
    return differences


def _cub_segmentation_target(member_name, masks_dir):
    """``<masks_dir>/<class dir>/<name>.png`` for ``segmentations/<class dir>/<name>.png`` (else None)."""
    parts = [p for p in member_name.split("/") if p not in ("", ".")]
    if ".." in parts or len(parts) < 3 or parts[-3] != "segmentations" or not parts[-1].endswith(".png"):
        return None
    return os.path.join(masks_dir, parts[-2], parts[-1])


def extract_cub_masks(archive, dataset_dir):
    """Binarise the official segmentations (``segmentations/<class dir>/<name>.png``, soft
    values 0..255 = the share of annotators marking the pixel) into object masks
    ``<dataset_dir>/CUB/masks/<class dir>/<name>.png``: 255 where the gray value is > 0.5
    (wsolevaluation's ``get_mask`` rule, so any pixel some annotator marked), else 0.
    Returns the number of masks."""
    masks_dir = os.path.join(dataset_dir, "CUB", MASKS_FOLDER)
    if _is_complete(masks_dir):
        count = _count_files(masks_dir, ".png")
        _say(f"CUB: {masks_dir} already made ({count} masks), skipping")
        return count
    _require_archive(archive, "segmentations.tgz", "with --segmentations")
    _say(f"CUB: binarising {archive} -> {masks_dir} (object = gray value > 0.5, as wsolevaluation)")
    written = skipped = 0
    with tarfile.open(archive, "r|*") as tar:
        for member in tar:
            target = _cub_segmentation_target(member.name, masks_dir) if member.isfile() else None
            if target is None:
                continue
            if os.path.isfile(target):
                skipped += 1
            else:
                with tar.extractfile(member) as source:
                    data = np.frombuffer(source.read(), np.uint8)
                soft = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
                if soft is None:
                    raise PrepareError(f"{archive}: {member.name} is not a readable PNG")
                write_mask(target, np.where(object_pixels(soft), 255, 0).astype(np.uint8))
                written += 1
            if (written + skipped) % PROGRESS_EVERY == 0:
                _say(f"CUB masks: {written + skipped} files ({skipped} already there)")
    os.makedirs(masks_dir, exist_ok=True)
    _mark_complete(masks_dir)
    _say(f"CUB: done, {written + skipped} masks ({written} written, {skipped} already there)")
    return written + skipped


def count_cub_masks(dataset_dir, labels_dir, split="val"):
    """``(images of <labels_dir>/CUB/<split>.txt with a mask, images)``, printed."""
    list_file = os.path.join(labels_dir, "CUB", f"{split}.txt")
    if not os.path.isfile(list_file):
        _say(f"CUB: no {list_file} to check the masks against")
        return None
    masks_dir = os.path.join(dataset_dir, "CUB", MASKS_FOLDER)
    entries = read_label_list(list_file)
    found = sum(os.path.isfile(mask_file(masks_dir, entry.path)) for entry in entries)
    _say(f"CUB: {found} of the {len(entries)} images of {list_file} have a mask in {masks_dir}")
    return found, len(entries)


# ----------------------------------------------------------------------------- ILSVRC

def _flat_name(member_name):
    """Base name of a member that is a plain file in no sub-directory (None otherwise)."""
    parts = [p for p in member_name.split("/") if p not in ("", ".")]
    return parts[0] if len(parts) == 1 else None


def _extract_flat_tar(tar, directory, progress_label=None):
    """Extract the plain files of a tar (stream) into ``directory``; returns their number.
    With ``progress_label``, prints a line every ``PROGRESS_EVERY`` files."""
    count = 0
    for member in tar:
        name = _flat_name(member.name) if member.isfile() else None
        if name is None:
            continue
        target = os.path.join(directory, name)
        if not (os.path.isfile(target) and os.path.getsize(target) == member.size):
            _write_member(tar, member, target)
        count += 1
        if progress_label and count % PROGRESS_EVERY == 0:
            _say(f"{progress_label}: {count} files")
    os.makedirs(directory, exist_ok=True)
    _mark_complete(directory)
    return count


def _imagenet_extraction_needed(archive, folder, archive_name, flag):
    """False (said) when ``folder`` is already extracted; else checks that ``archive`` exists
    (passed with ``flag``) and announces the extraction."""
    if _is_complete(folder):
        _say(f"ILSVRC: {folder} already extracted, skipping")
        return False
    _require_archive(archive, archive_name, f"with {flag}")
    _say(f"ILSVRC: extracting {archive} -> {folder}")
    return True


def extract_imagenet_train(train_tar, dataset_dir):
    """Extract every ``<wnid>.tar`` of the train archive to ``ILSVRC/train/<wnid>/``."""
    train_dir = os.path.join(dataset_dir, "ILSVRC", "train")
    if not _imagenet_extraction_needed(train_tar, train_dir, "ILSVRC2012_img_train.tar", "--train-tar"):
        return
    done = 0
    with _reading_archive(train_tar), tarfile.open(train_tar, "r|*") as outer:
        for member in outer:
            name = _flat_name(member.name) if member.isfile() else None
            if name is None or not name.endswith(".tar"):
                continue
            class_dir = os.path.join(train_dir, name[:-len(".tar")])
            done += 1
            if _is_complete(class_dir):
                _say(f"ILSVRC train [{done}] {name}: already extracted")
                continue
            with outer.extractfile(member) as inner_file:
                with tarfile.open(fileobj=inner_file, mode="r|*") as inner:
                    count = _extract_flat_tar(inner, class_dir)
            _say(f"ILSVRC train [{done}] {name}: {count} images")
    _mark_complete(train_dir)


def extract_imagenet_val(val_tar, dataset_dir):
    """Extract the flat validation archive to ``ILSVRC/val/``."""
    val_dir = os.path.join(dataset_dir, "ILSVRC", "val")
    if not _imagenet_extraction_needed(val_tar, val_dir, "ILSVRC2012_img_val.tar", "--val-tar"):
        return
    with _reading_archive(val_tar), tarfile.open(val_tar, "r|*") as tar:
        count = _extract_flat_tar(tar, val_dir, progress_label="ILSVRC val")
    _say(f"ILSVRC val: {count} images")


def write_imagenet_train_list(dataset_dir, labels_dir):
    """Write ``labels_dir/ILSVRC/train.txt`` from the extracted train folders; returns
    the number of images."""
    wnids_file = os.path.join(labels_dir, "ILSVRC", "wnids.txt")
    if not os.path.isfile(wnids_file):
        raise PrepareError(f"class list {wnids_file} not found (it ships in labels/ILSVRC)")
    with open(wnids_file) as f:
        wnids = [line.strip() for line in f if line.strip()]
    train_dir = os.path.join(dataset_dir, "ILSVRC", "train")
    entries = []
    for label, wnid in enumerate(wnids):
        class_dir = os.path.join(train_dir, wnid)
        if not os.path.isdir(class_dir):
            _say(f"ILSVRC: warning: no folder {class_dir} for class {label}")
            continue
        names = sorted(n for n in os.listdir(class_dir) if n.endswith(IMAGENET_IMAGE_SUFFIX))
        entries.extend(LabelEntry(f"train/{wnid}/{name}", label) for name in names)
    list_file = os.path.join(labels_dir, "ILSVRC", "train.txt")
    write_label_list(list_file, entries)
    _say(f"ILSVRC: {list_file}: {len(entries)} images of {len(wnids)} classes")
    return len(entries)


# ----------------------------------------------------------------------------- CLI

def _run_cub(args):
    extract_cub(args.archive, args.dataset_dir)
    segmentations = args.segmentations or os.path.join(DEFAULT_DATASET_DIR, SEGMENTATIONS_ARCHIVE)
    if args.segmentations or os.path.isfile(segmentations):
        extract_cub_masks(segmentations, args.dataset_dir)
        count_cub_masks(args.dataset_dir, args.labels_dir)
    else:
        _say(f"CUB: no {segmentations}: object masks not made (PxAP needs them; pass --segmentations)")
    if args.regenerate_labels:
        regenerate_cub_labels(args.dataset_dir, args.regenerate_labels, args.labels_dir)


def _run_imagenet(args):
    extract_imagenet_train(args.train_tar, args.dataset_dir)
    extract_imagenet_val(args.val_tar, args.dataset_dir)
    write_imagenet_train_list(args.dataset_dir, args.labels_dir)


def main(argv=None):
    """The command line; a missing or unreadable archive or file: one error line, exit 2."""
    return exit_on_user_error("prepare", _main, argv)


def _main(argv=None):
    parser = argparse.ArgumentParser(description="Prepare the CUB or ILSVRC images and lists.")
    commands = parser.add_subparsers(dest="command", required=True)
    cub = commands.add_parser("cub", help="extract CUB_200_2011.tgz")
    cub.add_argument("archive", nargs="?", default=os.path.join(DEFAULT_DATASET_DIR, "CUB_200_2011.tgz"))
    cub.add_argument("--segmentations", metavar="TGZ", default=None,
                     help=f"the official {SEGMENTATIONS_ARCHIVE}: binarised into <dataset-dir>/CUB/masks "
                          f"(default: dataset/{SEGMENTATIONS_ARCHIVE} when it exists)")
    cub.add_argument("--regenerate-labels", metavar="OUT_DIR",
                     help="rebuild OUT_DIR/CUB/{train,val}.txt from the metadata and compare")
    imagenet = commands.add_parser("imagenet", help="extract the ILSVRC 2012 train and val tars")
    for name in ("train", "val"):
        imagenet.add_argument(f"--{name}-tar",
                              default=os.path.join(DEFAULT_DATASET_DIR, f"ILSVRC2012_img_{name}.tar"))
    for sub in (cub, imagenet):
        sub.add_argument("--dataset-dir", default=DEFAULT_DATASET_DIR, help="where CUB/ or ILSVRC/ go")
        sub.add_argument("--labels-dir", default=DEFAULT_LABELS_DIR, help="the project's labels/ directory")
    args = parser.parse_args(argv)
    if args.command == "cub":
        _run_cub(args)
    else:
        _run_imagenet(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
