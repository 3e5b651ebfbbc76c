"""Reading and writing label lists and class-name files (numpy only, no TensorFlow).

Label list format (``labels/<DATASET>/<split>.txt``, and the synthetic set's lists)
---------------------------------------------------------------------------------
One line per (image, box)::

    relative/path.jpg<TAB><class index><TAB>x1<TAB>y1<TAB>x2<TAB>y2

* fields are separated by whitespace; the project writes TABs, the reader accepts any
  whitespace, so paths must not contain whitespace;
* the path is relative to the image root of the data set (see ``utils.data.dataflow.dataset_paths``);
* the class index is 0-based;
* the box is in pixels of the original image, ``x1 y1 x2 y2`` with ``x1 <= x2`` and
  ``y1 <= y2`` (inclusive corners, the ``plus_one`` convention of ``utils.boxes``);
  boxes are not clipped to the image (a few released CUB boxes extend past it);
* a line may have no box (``path class``, as in the ILSVRC train list);
* several lines with the same path are several ground-truth boxes of one image; they
  are merged into one ``LabelEntry`` in order of appearance (and must agree on the class);
* blank lines are ignored.

Class-name files (``words.txt``, ``wnids.txt``): one class a line, in class-index order,
either ``<key><whitespace><name>`` (CUB: ``1 001.Black_footed_Albatross``; ILSVRC:
``n01440764<TAB>tench, Tinca tinca``) or a single token (``wnids.txt``).
"""
from dataclasses import dataclass, field

import numpy as np

from utils.errors import UserError

BOX_FORMATS = ("xyxy", "xywh")


class LabelListError(UserError, ValueError):
    """A label list that cannot be used; the message starts with ``<file>:<line>:``."""


@dataclass
class LabelEntry:
    """One image of a label list: its relative path, class index and all its GT boxes."""
    path: str
    label: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))


def _parse_line(fields, box_format, where):
    """``(path, label, box or None)`` of one split line; raises ``LabelListError``."""
    if len(fields) not in (2, 6):
        raise LabelListError(f"{where}: expected 'path class' or 'path class x1 y1 x2 y2' "
                             f"(2 or 6 fields), got {len(fields)} fields")
    path, label_text = fields[0], fields[1]
    try:
        label = int(label_text)
    except ValueError:
        raise LabelListError(f"{where}: class index {label_text!r} is not an integer") from None
    if len(fields) == 2:
        return path, label, None
    try:
        box = np.array([float(v) for v in fields[2:]], dtype=np.float64)
    except ValueError:
        raise LabelListError(f"{where}: box {' '.join(fields[2:])!r} is not numeric") from None
    if not np.all(np.isfinite(box)):
        raise LabelListError(f"{where}: box {' '.join(fields[2:])!r} is not finite")
    if box_format == "xywh":
        box[2:] += box[:2]
    if box[2] < box[0] or box[3] < box[1]:
        raise LabelListError(f"{where}: degenerate box x1={box[0]:g} y1={box[1]:g} "
                             f"x2={box[2]:g} y2={box[3]:g} (needs x1<=x2 and y1<=y2)")
    return path, label, box


def read_label_list(path, num_classes=None, box_format="xyxy"):
    """Parse a label list into ``LabelEntry`` objects, one per distinct image path.

    Args:
        path: the list file.
        num_classes: if given, every class index must lie in ``[0, num_classes)``.
        box_format: ``'xyxy'`` (the project format) or ``'xywh'`` (x y width height, as in
            the released CUB train list); boxes are returned as x1 y1 x2 y2 either way.
    Returns:
        ``list[LabelEntry]`` in order of first appearance; ``boxes`` is float32 ``[n, 4]``
        (``[0, 4]`` for box-less lines).
    Raises:
        LabelListError: for a malformed line, a class out of range, a degenerate box or an
            image listed with two different classes; the message starts with ``file:line:``.
        OSError: if the file cannot be read.
    """
    if box_format not in BOX_FORMATS:
        raise ValueError(f"box_format must be one of {BOX_FORMATS}, got {box_format!r}")
    entries = {}
    boxes_by_path = {}
    with open(path) as f:
        for line_number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}:{line_number}"
            image_path, label, box = _parse_line(fields, box_format, where)
            if num_classes is not None and not 0 <= label < num_classes:
                raise LabelListError(f"{where}: class index {label} outside [0, {num_classes})")
            entry = entries.get(image_path)
            if entry is None:
                entry = entries[image_path] = LabelEntry(image_path, label)
                boxes_by_path[image_path] = []
            elif entry.label != label:
                raise LabelListError(f"{where}: {image_path} was listed with class {entry.label} "
                                     f"before, now with class {label}")
            if box is not None:
                boxes_by_path[image_path].append(box)
    for image_path, entry in entries.items():
        boxes = boxes_by_path[image_path]
        if boxes:
            entry.boxes = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    return list(entries.values())


def format_number(value):
    """Shortest text of a float32 coordinate that reads back exactly (``292.0``, ``60.3``)."""
    return np.format_float_positional(np.float32(value), trim="0")


def format_label_lines(entry):
    """The list lines (without newline) of one entry: one per box, or ``path class``."""
    if len(entry.boxes) == 0:
        return [f"{entry.path}\t{entry.label}"]
    return ["\t".join([entry.path, str(entry.label)] + [format_number(v) for v in box])
            for box in entry.boxes]


def write_label_list(path, entries):
    """Write entries in the project format (TAB-separated, x1 y1 x2 y2, ``\\n`` line ends)."""
    with open(path, "w", newline="\n") as f:
        for entry in entries:
            for line in format_label_lines(entry):
                f.write(line + "\n")


def read_class_names(path):
    """Class names in class-index order: the text after the first field of each line
    (the whole line when it has a single field); blank lines are ignored."""
    names = []
    with open(path) as f:
        for line in f:
            parts = line.strip().split(None, 1)
            if parts:
                names.append(parts[-1])
    return names
