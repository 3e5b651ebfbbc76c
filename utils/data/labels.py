"""Reading and writing label lists and class-name files (numpy only, no TensorFlow).

Label list format (``labels/<DATASET>/<split>.txt``, and the synthetic set's lists)
---------------------------------------------------------------------------------
One line per (image, box)::

    relative/path.jpg<TAB><class index><TAB>x1<TAB>y1<TAB>x2<TAB>y2

* fields are separated by TABs (the project writes TABs); a line with a TAB is split on
  TABs only, so paths may contain spaces; a line without any TAB (legacy lists) is split
  on whitespace;
* the path is relative to the image root of the data set (see ``utils.data.paths.dataset_paths``);
* the class index is 0-based;
* the box is in pixels of the original image, ``x1 y1 x2 y2`` (inclusive corners, the
  ``plus_one`` convention of ``utils.boxes``); boxes are not clipped to the image (36
  released CUB val boxes extend past it);
* the file is UTF-8;
* a line may have no box (``path class``, as in the ILSVRC train list);
* several lines with the same path are several ground-truth boxes of one image; they
  are merged into one ``LabelEntry`` in order of appearance (and must agree on the class);
* blank lines are ignored.

Suspicious boxes (the typical symptom of an ``x y w h`` / ``x1 y1 x2 y2`` mix-up) are
counted and reported, never scored silently:

* when the list is read: boxes with ``x2 <= x1`` or ``y2 <= y1`` (empty or inverted) or a
  negative coordinate.  ``read_label_list`` logs one warning per file with the count and
  the first line numbers (``LabelList.suspicious``) and refuses the list
  (``LabelListError``) when more than half of its boxes are suspicious;
* when the images are decoded (``OutOfImageBoxes``): boxes extending past their image
  (``x1 < 0``, ``y1 < 0``, ``x2 > width`` or ``y2 > height``; a box may end on the
  border).  Evaluation reports the count per file; a list where more than half of the
  checked boxes (at least ``MIN_BOXES_TO_REFUSE``, or all) lie outside is refused.
  The training list's boxes are not checked this way: training does not use them.

Class-name files (``words.txt``, ``wnids.txt``): one class a line, in class-index order,
either ``<key><whitespace><name>`` (CUB: ``1 001.Black_footed_Albatross``; ILSVRC:
``n01440764<TAB>tench, Tinca tinca``) or a single token (``wnids.txt``).
"""
import logging
from dataclasses import dataclass, field

import numpy as np

from utils.atomic import write_text
from utils.errors import UserError

BOX_FORMATS = ("xyxy", "xywh")
LINES_SHOWN = 5           # line numbers quoted in a report
MIN_BOXES_TO_REFUSE = 32  # out-of-image boxes refuse a list only after this many checks

logger = logging.getLogger(__name__)


class LabelListError(UserError, ValueError):
    """A label list that cannot be used; the message starts with ``<file>:<line>:``."""


@dataclass
class LabelEntry:
    """One image of a label list: its relative path, class index and all its GT boxes."""
    path: str
    label: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    lines: tuple = field(default=(), compare=False)   # list line number of each box


class LabelList(list):
    """The ``LabelEntry`` list of a file, with what the reader found suspicious.

    ``path``: the file; ``num_boxes``: boxes read; ``suspicious``: ``[(line, reason)]`` of
    the boxes with ``x2 <= x1``, ``y2 <= y1`` or a negative coordinate, in file order."""

    def __init__(self, entries, path, num_boxes, suspicious):
        super().__init__(entries)
        self.path = path
        self.num_boxes = num_boxes
        self.suspicious = suspicious


def line_numbers_text(lines):
    """``'lines 3, 8, 12, ...'`` (the first ``LINES_SHOWN``)."""
    shown = ", ".join(str(n) for n in lines[:LINES_SHOWN])
    return f"line{'s' if len(lines) > 1 else ''} {shown}{', ...' if len(lines) > LINES_SHOWN else ''}"


def box_problems(boxes):
    """Per box ``x1 y1 x2 y2`` of ``[n, 4]``: why it is suspicious without its image
    (``'x2<=x1 or y2<=y1'``, ``'negative coordinate'``) or None."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    negative = np.any(boxes < 0, axis=1)
    return ["x2<=x1 or y2<=y1" if e else "negative coordinate" if n else None
            for e, n in zip(empty.tolist(), negative.tolist())]


def inverted_boxes(boxes):
    """Bool ``[n]``: boxes ``x1 y1 x2 y2`` with ``x2 < x1`` or ``y2 < y1`` (which a list in that
    convention never has; ``x2 == x1`` is a one-pixel box in the inclusive convention)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])


OTHER_CONVENTIONS = {   # name -> whether every box [n, 4] of the four numbers is valid read that way
    "x y w h (as the released CUB train.txt)": lambda b: bool(np.all(b >= 0)),
    "x1 x2 y1 y2": lambda b: bool(np.all((b[:, 1] >= b[:, 0]) & (b[:, 3] >= b[:, 2]))),
}


def conventions_that_fit(boxes):
    """The other box conventions under which every one of ``boxes`` (four numbers each) is valid."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return [name for name, fits in OTHER_CONVENTIONS.items() if fits(boxes)]


def boxes_outside_image(boxes, image_hw):
    """Bool ``[n]``: the boxes ``[n, 4]`` that extend past an image of size ``(H, W)``."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    height, width = image_hw
    return ((boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 2] > width) | (boxes[:, 3] > height))


class OutOfImageBoxes:
    """Counts the boxes of a list that extend past their image, as its images are decoded;
    with ``refuse`` (boxes in original-image pixels), refuses the list (``LabelListError``)
    once more than half of at least ``min(MIN_BOXES_TO_REFUSE, total_boxes)`` checked boxes
    lie outside.  Boxes in a crop's frame (the scorer's CAM frame) legitimately extend past
    the crop -- the released protocol does not clip them -- so they are only counted."""

    def __init__(self, label_file, total_boxes, refuse=True):
        self.label_file = label_file
        self.refuse = refuse
        self.refuse_after = max(1, min(MIN_BOXES_TO_REFUSE, total_boxes))
        self.reset()

    def reset(self):
        """Start a new pass over the list."""
        self.checked = 0
        self.lines = []

    def add(self, entry, image_hw):
        outside = boxes_outside_image(entry.boxes, image_hw)
        self.checked += len(outside)
        self.lines.extend(entry.lines[i] if i < len(entry.lines) else 0 for i in np.flatnonzero(outside))
        if self.refuse and self.checked >= self.refuse_after and 2 * len(self.lines) > self.checked:
            raise LabelListError(
                f"{self.label_file}: {len(self.lines)} of the {self.checked} boxes checked so far extend past "
                f"their image ({line_numbers_text(self.lines)}); are the boxes x y w h instead of x1 y1 x2 y2?")

    def summary(self):
        """JSON-able record: file, boxes checked, boxes outside and their first line numbers."""
        return {"label_file": self.label_file, "checked": self.checked, "outside": len(self.lines),
                "lines": self.lines[:LINES_SHOWN]}

    def message(self):
        """One line for the log, or None when every checked box lies inside its image."""
        if not self.lines:
            return None
        return (f"{self.label_file}: {len(self.lines)} of {self.checked} boxes extend past their image "
                f"({line_numbers_text(self.lines)}); they are scored as given")


def _parse_line(fields, box_format, where):
    """``(path, label, box or None)`` of one split line; raises ``LabelListError``."""
    if len(fields) not in (2, 6):
        hint = "; a path with spaces needs TAB-separated fields" if len(fields) > 6 else ""
        raise LabelListError(f"{where}: expected 'path class' or 'path class x1 y1 x2 y2' "
                             f"(2 or 6 fields), got {len(fields)} fields{hint}")
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
    return path, label, box


def split_line(line):
    """Fields of a list line: split on TABs when it has one (paths may hold spaces),
    else on whitespace; surrounding whitespace and empty fields are dropped."""
    if "\t" not in line:
        return line.split()
    return [f for f in (f.strip() for f in line.split("\t")) if f]


def read_label_list(path, num_classes=None, box_format="xyxy", allow_inverted=False):
    """Parse a label list into ``LabelEntry`` objects, one per distinct image path.

    Args:
        path: the list file.
        num_classes: if given, every class index must lie in ``[0, num_classes)``.
        box_format: ``'xyxy'`` (the project format) or ``'xywh'`` (x y width height, as in
            the released CUB train list); boxes are returned as x1 y1 x2 y2 either way.
        allow_inverted: keep boxes with ``x2 < x1`` or ``y2 < y1`` of an ``xyxy`` list (as
            suspicious boxes); by default such a list is refused, naming the convention it
            looks like (an ``x y w h`` list read as ``x1 y1 x2 y2`` has them).
    Returns:
        a ``LabelList`` of ``LabelEntry`` in order of first appearance; ``boxes`` is float32
        ``[n, 4]`` (``[0, 4]`` for box-less lines).  Suspicious boxes (module docstring) are
        logged as one warning and listed in ``LabelList.suspicious``.
    Raises:
        LabelListError: for a malformed line, a class out of range, an image listed with two
            different classes, a file that is not UTF-8 text (the message starts with
            ``file:line:``), an ``xyxy`` list with an inverted box (unless ``allow_inverted``),
            or a list where most boxes are suspicious.
        OSError: if the file cannot be read.
    """
    if box_format not in BOX_FORMATS:
        raise ValueError(f"box_format must be one of {BOX_FORMATS}, got {box_format!r}")
    entries = {}
    boxes_by_path = {}
    lines_by_path = {}
    for line_number, line in numbered_lines(path):
        fields = split_line(line)
        if not fields:
            continue
        where = f"{path}:{line_number}"
        image_path, label, box = _parse_line(fields, box_format, where)
        if num_classes is not None and not 0 <= label < num_classes:
            raise LabelListError(f"{where}: class index {label} outside [0, {num_classes}) "
                                 f"(--number_of_class {num_classes})")
        entry = entries.get(image_path)
        if entry is None:
            entry = entries[image_path] = LabelEntry(image_path, label)
            boxes_by_path[image_path], lines_by_path[image_path] = [], []
        elif entry.label != label:
            raise LabelListError(f"{where}: {image_path} was listed with class {entry.label} "
                                 f"before, now with class {label}")
        if box is not None:
            boxes_by_path[image_path].append(box)
            lines_by_path[image_path].append(line_number)
    for image_path, entry in entries.items():
        boxes = boxes_by_path[image_path]
        if boxes:
            entry.boxes = np.array(boxes, dtype=np.float32).reshape(-1, 4)
            entry.lines = tuple(lines_by_path[image_path])
    boxes = [box for path_boxes in boxes_by_path.values() for box in path_boxes]
    lines = [line for path_lines in lines_by_path.values() for line in path_lines]
    if box_format == "xyxy" and not allow_inverted and boxes:
        _refuse_inverted(path, np.array(boxes), lines)
    suspicious = sorted((line, problem) for line, problem in zip(lines, box_problems(boxes)) if problem)
    result = LabelList(entries.values(), path, len(boxes), suspicious)
    _report_suspicious(result)
    return result


def _refuse_inverted(path, boxes, lines):
    inverted = np.flatnonzero(inverted_boxes(boxes))
    if not len(inverted):
        return
    fits = conventions_that_fit(boxes)
    looks = (f"it looks like an {' or an '.join(fits)} list" if fits else
             "no other usual convention (x y w h, x1 x2 y1 y2) fits every box either")
    raise LabelListError(f"{path}: {len(inverted)} of {len(boxes)} boxes are inverted (x2 < x1 or y2 < y1; "
                         f"{line_numbers_text([lines[i] for i in inverted])}), which an x1 y1 x2 y2 list never has: "
                         f"{looks}; convert it to x1 y1 x2 y2 (labels/convert_released_lists.py does so for the "
                         f"released lists)")


def numbered_lines(path):
    """``(line number, text)`` of a UTF-8 file; a decoding error names the file and line."""
    with open(path, "rb") as f:
        for line_number, raw in enumerate(f, start=1):
            try:
                yield line_number, raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise LabelListError(f"{path}:{line_number}: not UTF-8 text (byte {raw[error.start]:#04x} "
                                     f"at column {error.start + 1}); save the list as UTF-8") from None


def _report_suspicious(labels):
    """Warn about the suspicious boxes of a list; refuse it when they are the majority."""
    if not labels.suspicious:
        return
    lines = [line for line, _ in labels.suspicious]
    counts = {}
    for _, reason in labels.suspicious:
        counts[reason] = counts.get(reason, 0) + 1
    kinds = ", ".join(f"{count} with {reason}" for reason, count in counts.items())
    text = (f"{labels.path}: {len(lines)} of {labels.num_boxes} boxes are suspicious ({kinds}; "
            f"{line_numbers_text(lines)})")
    if 2 * len(lines) > labels.num_boxes:
        raise LabelListError(f"{text}: most boxes are wrong; are they x y w h instead of x1 y1 x2 y2?")
    logger.warning("%s; they are used as given", text)


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
    write_text(path, "".join(line + "\n" for entry in entries for line in format_label_lines(entry)), newline="\n")


def read_class_names(path):
    """Class names in class-index order: the text after the first field of each line
    (the whole line when it has a single field); blank lines are ignored.  A file that is
    not UTF-8 raises ``LabelListError`` naming the file and line."""
    names = []
    for _, line in numbered_lines(path):
        parts = line.strip().split(None, 1)
        if parts:
            names.append(parts[-1])
    return names
