"""Label lists: the converted repository lists and the parser's behaviour and errors."""
import filecmp
import importlib.util
import os

import numpy as np
import pytest

from tests.conftest import REPO
from utils.data.labels import (LabelEntry, LabelListError, read_class_names, read_label_list,
                          write_label_list)

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
    ("c.jpg 1 10 2 9 4\n", "degenerate box"),
    ("c.jpg 1 1 20 9 4\n", "degenerate box"),
    ("a.jpg 2 1 2 3 4\n", "listed with class 1 before, now with class 2"),
])
def test_errors_name_file_and_line(tmp_path, bad_line, message):
    path = _write(tmp_path, "a.jpg 1 0 0 10 10\n\n" + bad_line)
    with pytest.raises(LabelListError) as caught:
        read_label_list(path, num_classes=5)
    assert str(caught.value).startswith(f"{path}:3:")
    assert message in str(caught.value)


def test_zero_size_box_is_allowed(tmp_path):
    path = _write(tmp_path, "a.jpg 0 5 5 5 5\n")
    np.testing.assert_array_equal(read_label_list(path)[0].boxes, [[5, 5, 5, 5]])
