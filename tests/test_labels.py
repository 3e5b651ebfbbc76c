"""Label lists: the converted repository lists and the parser's behaviour and errors."""
import filecmp
import importlib.util
import os

import numpy as np
import pytest

from tests.conftest import REPO
from utils.data.labels import (LabelEntry, LabelListError, OutOfImageBoxes, boxes_outside_image,
                               read_class_names, read_label_list, write_label_list)

LABELS = os.path.join(REPO, "labels")


def load_converter():
    """labels/convert_released_lists.py as a module (labels/ is not a package)."""
    spec = importlib.util.spec_from_file_location("convert_released_lists",
                                                  os.path.join(LABELS, "convert_released_lists.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(tmp_path, text, name="list.txt"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("relative, count", [("CUB/train.txt", 5994), ("CUB/val.txt", 5794),
                                             ("ILSVRC/val.txt", 50000)])
def test_repository_lists_have_expected_sizes(relative, count):
    entries = read_label_list(os.path.join(LABELS, relative), num_classes=1000)
    assert len(entries) == count
    assert all(e.boxes.shape == (1, 4) and e.boxes.dtype == np.float32 for e in entries)


def test_cub_train_boxes_converted_from_xywh(shared_dir):
    released = open(os.path.join(shared_dir, "labels/CUB/train.txt")).read().splitlines()
    converted = open(os.path.join(LABELS, "CUB/train.txt")).read().splitlines()
    assert released[0] == ("001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg"
                           "\t0\t139.0\t30.0\t153.0\t264.0")
    assert converted[0] == ("001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg"
                            "\t0\t139.0\t30.0\t292.0\t294.0")
    for line_number in (1, 2500, 5993):
        path, label, x, y, w, h = released[line_number].split("\t")
        expected = [path, label, x, y, f"{float(x) + float(w):.1f}", f"{float(y) + float(h):.1f}"]
        assert converted[line_number].split("\t") == expected
    as_xywh = read_label_list(os.path.join(shared_dir, "labels/CUB/train.txt"), box_format="xywh")
    ours = read_label_list(os.path.join(LABELS, "CUB/train.txt"))
    assert [e.path for e in as_xywh] == [e.path for e in ours]
    np.testing.assert_array_equal(np.concatenate([e.boxes for e in as_xywh]),
                                  np.concatenate([e.boxes for e in ours]))


def test_val_lists_keep_boxes_and_ilsvrc_paths_gain_val_prefix(shared_dir):
    assert filecmp.cmp(os.path.join(shared_dir, "labels/CUB/val.txt"),
                       os.path.join(LABELS, "CUB/val.txt"), shallow=False)
    released = read_label_list(os.path.join(shared_dir, "labels/ILSVRC/val.txt"))
    ours = read_label_list(os.path.join(LABELS, "ILSVRC/val.txt"))
    assert ours[0].path == "val/ILSVRC2012_val_00000001.JPEG" and ours[0].label == 65
    assert [f"val/{e.path}" for e in released] == [e.path for e in ours]
    np.testing.assert_array_equal(released[49999].boxes, ours[49999].boxes)


def test_conversion_script_reproduces_the_repository_lists(shared_dir, tmp_path):
    """Converting again gives byte-identical files: the script is idempotent."""
    load_converter().convert_all(os.path.join(shared_dir, "labels"), str(tmp_path))
    for relative in ("CUB/train.txt", "CUB/val.txt", "CUB/words.txt", "ILSVRC/val.txt",
                     "ILSVRC/wnids.txt", "ILSVRC/words.txt"):
        assert filecmp.cmp(tmp_path / relative, os.path.join(LABELS, relative), shallow=False)


def test_class_names():
    cub = read_class_names(os.path.join(LABELS, "CUB/words.txt"))
    assert len(cub) == 200 and cub[0] == "001.Black_footed_Albatross" and cub[-1] == "200.Common_Yellowthroat"
    words = read_class_names(os.path.join(LABELS, "ILSVRC/words.txt"))
    assert len(words) == 1000 and words[0] == "tench, Tinca tinca"
    wnids = read_class_names(os.path.join(LABELS, "ILSVRC/wnids.txt"))
    assert wnids[:2] == ["n01440764", "n01443537"]


def test_lines_of_one_image_merge_and_boxless_lines(tmp_path):
    path = _write(tmp_path, "a.jpg 1 0 0 10 10\nb.jpg 2\n\na.jpg 1 5 6 7 8\nc.jpg 0 1 2 3 4\n")
    entries = read_label_list(path, num_classes=3)
    assert [(e.path, e.label) for e in entries] == [("a.jpg", 1), ("b.jpg", 2), ("c.jpg", 0)]
    np.testing.assert_array_equal(entries[0].boxes, [[0, 0, 10, 10], [5, 6, 7, 8]])
    assert entries[1].boxes.shape == (0, 4) and entries[1].boxes.dtype == np.float32


def test_xywh_format_converts_to_corners(tmp_path):
    path = _write(tmp_path, "a.jpg\t3\t10.0\t20.0\t30.0\t40.0\n")
    np.testing.assert_array_equal(read_label_list(path, box_format="xywh")[0].boxes, [[10, 20, 40, 60]])


def test_write_then_read_round_trip(tmp_path):
    entries = [LabelEntry("x/a.jpg", 4, np.array([[1.5, 2, 3, 4], [0, 0, 60.3, 7]], np.float32)),
               LabelEntry("x/b.jpg", 0)]
    path = str(tmp_path / "out.txt")
    write_label_list(path, entries)
    assert open(path).read() == ("x/a.jpg\t4\t1.5\t2.0\t3.0\t4.0\n"
                                 "x/a.jpg\t4\t0.0\t0.0\t60.3\t7.0\n"
                                 "x/b.jpg\t0\n")
    back = read_label_list(path)
    assert [(e.path, e.label) for e in back] == [("x/a.jpg", 4), ("x/b.jpg", 0)]
    np.testing.assert_array_equal(back[0].boxes, entries[0].boxes)


@pytest.mark.parametrize("bad_line, message", [
    ("c.jpg 1 2 3\n", "(2 or 6 fields), got 4 fields"),
    ("c.jpg 1 2 3 4 5 6\n", "got 7 fields"),
    ("c.jpg one 1 2 3 4\n", "class index 'one' is not an integer"),
    ("c.jpg 1 1 2 x 4\n", "is not numeric"),
    ("c.jpg 1 1 2 nan 4\n", "is not finite"),
    ("c.jpg 5 1 2 3 4\n", "class index 5 outside [0, 5)"),
    ("c.jpg -1\n", "class index -1 outside [0, 5)"),
    ("c.jpg 1 1 2 3 4 5\n", "a path with spaces needs TAB-separated fields"),
    ("a.jpg 2 1 2 3 4\n", "listed with class 1 before, now with class 2"),
])
def test_errors_name_file_and_line(tmp_path, bad_line, message):
    path = _write(tmp_path, "a.jpg 1 0 0 10 10\n\n" + bad_line)
    with pytest.raises(LabelListError) as caught:
        read_label_list(path, num_classes=5)
    assert str(caught.value).startswith(f"{path}:3:")
    assert message in str(caught.value)


def test_zero_size_box_is_read_and_reported(tmp_path, caplog):
    path = _write(tmp_path, "a.jpg 0 5 5 5 5\nb.jpg 0 1 1 9 9\nc.jpg 0 2 2 8 8\n")
    entries = read_label_list(path)
    np.testing.assert_array_equal(entries[0].boxes, [[5, 5, 5, 5]])
    assert entries.suspicious == [(1, "x2<=x1 or y2<=y1")]
    assert f"{path}: 1 of 3 boxes are suspicious (1 with x2<=x1 or y2<=y1; line 1)" in caplog.text


def test_suspicious_boxes_are_counted_with_their_lines(tmp_path, caplog):
    good = "".join(f"g{i}.jpg 0 1 1 9 9\n" for i in range(7))
    path = _write(tmp_path, good + "a.jpg 1 10 2 9 4\nb.jpg 1 1 20 9 4\nc.jpg 1 -3 2 9 4\n\nd.jpg 0 1 2 3 4\n")
    with pytest.raises(LabelListError, match=r"2 of 11 boxes are inverted .*lines 8, 9\), which an x1 y1 x2 y2 list "
                                             r"never has: no other usual convention"):
        read_label_list(path)
    entries = read_label_list(path, allow_inverted=True)
    assert entries.num_boxes == 11 and len(entries) == 11
    assert entries.suspicious == [(8, "x2<=x1 or y2<=y1"), (9, "x2<=x1 or y2<=y1"), (10, "negative coordinate")]
    assert entries[7].lines == (8,)
    assert ("3 of 11 boxes are suspicious (2 with x2<=x1 or y2<=y1, 1 with negative coordinate; "
            "lines 8, 9, 10)") in caplog.text


def test_a_list_where_most_boxes_are_inverted_is_refused(tmp_path):
    path = _write(tmp_path, "a.jpg 0 139 30 100 264\nb.jpg 0 60 27 325 304\nc.jpg 0 10 40 5 20\n")
    with pytest.raises(LabelListError, match=r"2 of 3 boxes are suspicious .* lines 1, 3\).*x y w h"):
        read_label_list(path, allow_inverted=True)


@pytest.mark.parametrize("lines, looks", [
    ("a.jpg 0 139 30 100 264\n" + "b.jpg 0 60 27 325 304\n" * 9, "it looks like an x y w h (as the released CUB"),
    ("a.jpg 0 10 30 20 40\n" + "b.jpg 0 5 6 1 9\n", "it looks like an x y w h (as the released CUB train.txt) "
                                                  "or an x1 x2 y1 y2 list"),
    ("a.jpg 0 10 -3 5 40\n", "no other usual convention"),
], ids=["xywh", "xywh-or-x1x2y1y2", "none"])
def test_one_inverted_box_refuses_an_x1y1x2y2_list_and_names_the_convention_it_looks_like(tmp_path, lines, looks):
    path = _write(tmp_path, lines)
    with pytest.raises(LabelListError, match="boxes are inverted") as error:
        read_label_list(path)
    assert looks in str(error.value) and "\n" not in str(error.value)
    if "x y w h" in looks:
        read_label_list(path, box_format="xywh")   # told the convention: read


def test_tab_separated_paths_may_hold_spaces(tmp_path):
    path = _write(tmp_path, "my birds/a b.jpg\t2\t1\t2\t30\t40\nlegacy.jpg 1 0 0 5 5\n")
    entries = read_label_list(path)
    assert [(e.path, e.label) for e in entries] == [("my birds/a b.jpg", 2), ("legacy.jpg", 1)]
    np.testing.assert_array_equal(entries[0].boxes, [[1, 2, 30, 40]])
    back = str(tmp_path / "back.txt")
    write_label_list(back, entries)
    assert [e.path for e in read_label_list(back)] == ["my birds/a b.jpg", "legacy.jpg"]


def test_a_file_that_is_not_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("a.jpg 0 1 1 5 5\nb\xe9b\xe9.jpg 0 1 1 5 5\n".encode("latin-1"))
    with pytest.raises(LabelListError, match=rf"^{path}:2: not UTF-8 text \(byte 0xe9 at column 2\)"):
        read_label_list(str(path))


def test_boxes_outside_their_image_are_counted_then_refused_when_most(tmp_path):
    lines = "".join(f"i{i}.jpg 0 1 1 {9 + 10 * (i % 3 == 0)} 9\n" for i in range(6))  # i0, i3 too wide
    entries = read_label_list(_write(tmp_path, lines))
    tally = OutOfImageBoxes("list.txt", total_boxes=6)
    for entry in entries:
        tally.add(entry, (10, 10))
    assert tally.summary() == {"label_file": "list.txt", "checked": 6, "outside": 2, "lines": [1, 4]}
    assert tally.message() == "list.txt: 2 of 6 boxes extend past their image (lines 1, 4); they are scored as given"
    np.testing.assert_array_equal(boxes_outside_image([[0, 0, 10, 10], [-1, 0, 5, 5], [0, 0, 5, 11]], (10, 10)),
                                  [False, True, True])
    tally = OutOfImageBoxes("list.txt", total_boxes=2)   # refuses after min(32, total) boxes
    tally.add(entries[0], (10, 10))
    with pytest.raises(LabelListError, match="2 of the 2 boxes checked so far extend past their image"):
        tally.add(entries[3], (10, 10))
