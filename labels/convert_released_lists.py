"""Convert the released label lists (``../shared/labels``) into the project format.

Usage: ``python labels/convert_released_lists.py [--src DIR] [--dst DIR]``

The project format is described in ``utils/data/labels.py`` (TAB-separated
``path class x1 y1 x2 y2``).  What changes:

* ``CUB/train.txt``: the released boxes are ``x y w h`` and become ``x1 y1 x+w y+h``.
  Evidence: read as x1 y1 x2 y2, 795 of its 5,994 boxes would have x2 < x1, while read
  as x y w h only 2 end past x = 500 (CUB images are at most 500 px wide or high).
* ``CUB/val.txt``: already ``x1 y1 x2 y2`` (no inverted box; read as x y w h, 2,203
  boxes would end past x = 500); copied unchanged.
* ``ILSVRC/val.txt``: boxes unchanged; paths gain the ``val/`` prefix because ILSVRC
  list paths are relative to ``<data_dir>/ILSVRC`` (which holds ``train/`` and ``val/``).
* class-name files (``words.txt``, ``wnids.txt``) are copied byte for byte.

The output depends only on the input, so running the script again is harmless.
"""
import argparse
import os
import shutil
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)  # run as a plain script: make ``utils`` importable

from utils.data.labels import LabelEntry, read_label_list, write_label_list  # noqa: E402

# (data set, list file, box format of the released file, path prefix to add)
RELEASED_LISTS = [
    ("CUB", "train.txt", "xywh", ""),
    ("CUB", "val.txt", "xyxy", ""),
    ("ILSVRC", "val.txt", "xyxy", "val/"),
]
CLASS_NAME_FILES = [("CUB", "words.txt"), ("ILSVRC", "wnids.txt"), ("ILSVRC", "words.txt")]


def convert_list(src_file, dst_file, box_format, path_prefix):
    """Rewrite one released list in the project format; returns its number of images."""
    entries = [LabelEntry(path_prefix + e.path, e.label, e.boxes)
               for e in read_label_list(src_file, box_format=box_format)]
    write_label_list(dst_file, entries)
    return len(entries)


def convert_all(src_dir, dst_dir):
    """Convert every released list and copy the class-name files; prints one line each."""
    for dataset, name, box_format, prefix in RELEASED_LISTS:
        os.makedirs(os.path.join(dst_dir, dataset), exist_ok=True)
        count = convert_list(os.path.join(src_dir, dataset, name),
                             os.path.join(dst_dir, dataset, name), box_format, prefix)
        print(f"{dataset}/{name}: {count} images ({box_format} -> xyxy)")
    for dataset, name in CLASS_NAME_FILES:
        os.makedirs(os.path.join(dst_dir, dataset), exist_ok=True)
        shutil.copyfile(os.path.join(src_dir, dataset, name), os.path.join(dst_dir, dataset, name))
        print(f"{dataset}/{name}: copied")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", default=os.path.join(REPO_ROOT, "..", "shared", "labels"),
                        help="directory with the released CUB/ and ILSVRC/ lists")
    parser.add_argument("--dst", default=os.path.join(REPO_ROOT, "labels"),
                        help="output directory (gets CUB/ and ILSVRC/)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.src):
        sys.exit(f"released label directory not found: {args.src}")
    convert_all(args.src, args.dst)


if __name__ == "__main__":
    main()
