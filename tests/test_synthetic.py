"""The synthetic data set: layout, determinism, tight boxes, trivial-box baselines, caching."""
import filecmp
import json
import os

import cv2
import numpy as np
import pytest

from utils.data.labels import read_class_names, read_label_list
from utils.data.synthetic import (PART_BODY, PART_HEAD, VARIANTS, class_dir_name, class_hue, ensure_synthetic,
                                  generate_synthetic, main, mask_path, render_sample, resolve_params, sample_rng,
                                  trivial_box_localization)

TINY = {"num_classes": 3, "num_train": 9, "num_val": 4, "num_fullsup_per_class": 2, "size": 64, "seed": 5}


def _files(root):
    """Relative paths of every file under root except the timing-bearing stats.json."""
    return sorted(os.path.relpath(os.path.join(d, n), root)
                  for d, _, names in os.walk(root) for n in names if n != "stats.json")


def _assert_identical_trees(a, b):
    assert _files(a) == _files(b)
    for relative in _files(a):
        assert filecmp.cmp(os.path.join(a, relative), os.path.join(b, relative), shallow=False), relative


def test_layout_lists_and_class_names(tmp_path):
    out = str(tmp_path / "SYNTH")
    generate_synthetic(out, **TINY)
    train = read_label_list(os.path.join(out, "train.txt"), num_classes=3)
    val = read_label_list(os.path.join(out, "val.txt"), num_classes=3)
    assert len(train) == 9 and len(val) == 4
    assert read_class_names(os.path.join(out, "words.txt")) == [class_dir_name(k, 3) for k in range(3)]
    for entry in train + val:
        assert entry.path.split("/")[0] == class_dir_name(entry.label, 3)
        image = cv2.imread(os.path.join(out, "images", entry.path))
        assert image.shape == (64, 64, 3)
        x1, y1, x2, y2 = entry.boxes[0]
        assert 0 <= x1 <= x2 <= 63 and 0 <= y1 <= y2 <= 63
    assert sorted({e.label for e in train}) == [0, 1, 2]
    with open(os.path.join(out, "params.json")) as f:
        recorded = json.load(f)
    assert recorded == dict(TINY, variant="calibrated", generator_version=2, **VARIANTS["calibrated"])


def test_same_seed_gives_byte_identical_files(tmp_path):
    generate_synthetic(str(tmp_path / "a"), **TINY)
    generate_synthetic(str(tmp_path / "b"), **TINY)
    _assert_identical_trees(str(tmp_path / "a"), str(tmp_path / "b"))
    generate_synthetic(str(tmp_path / "c"), **dict(TINY, seed=6))
    assert open(tmp_path / "a/train.txt").read() != open(tmp_path / "c/train.txt").read()


def test_worker_processes_give_the_same_files(tmp_path):
    params = {"num_classes": 4, "num_train": 150, "num_val": 60, "size": 40, "seed": 1}
    generate_synthetic(str(tmp_path / "one"), workers=1, **params)
    generate_synthetic(str(tmp_path / "two"), workers=2, **params)
    _assert_identical_trees(str(tmp_path / "one"), str(tmp_path / "two"))


@pytest.mark.parametrize("index", range(40))
def test_box_is_tight_around_the_object_mask(index):
    label = index % 10
    sample = render_sample(sample_rng(7, "val", index), label, 10, 128)
    mask = sample.object_mask
    x1, y1, x2, y2 = sample.box.astype(int)
    assert mask.sum() > 0.02 * mask.size
    outside = mask.copy()
    outside[y1:y2 + 1, x1:x2 + 1] = False
    assert not outside.any()  # every object pixel inside the box
    assert mask[y1:y2 + 1, x1].any() and mask[y1:y2 + 1, x2].any()  # each side touches it
    assert mask[y1, x1:x2 + 1].any() and mask[y2, x1:x2 + 1].any()
    assert sample.image.shape == (128, 128, 3) and sample.image.dtype == np.uint8


def test_head_colour_is_the_class_colour():
    """The saturated head colour of class k differs from every other class's."""
    hues = []
    for label in range(10):
        sample = render_sample(sample_rng(0, "train", label), label, 10, 128)
        hsv = cv2.cvtColor(sample.image, cv2.COLOR_BGR2HSV)
        vivid = sample.object_mask & (hsv[..., 1] > 200) & (hsv[..., 2] > 200)
        assert vivid.sum() > 30  # the head is visible
        hues.append(np.median(hsv[..., 0][vivid]))
    assert np.all(np.diff(hues) > 10)


def test_trivial_boxes_localize_below_15_percent(tmp_path):
    out = str(tmp_path / "SYNTH")
    stats = generate_synthetic(out, num_classes=10, num_train=0, num_val=400, size=128, seed=0)
    boxes = np.concatenate([e.boxes for e in read_label_list(os.path.join(out, "val.txt"))])
    recomputed = trivial_box_localization(boxes, 128)
    assert stats["trivial_box_gt_known_loc_val"] == recomputed
    with open(os.path.join(out, "stats.json")) as f:
        assert json.load(f)["trivial_box_gt_known_loc_val"] == recomputed
    assert recomputed["whole_image"] < 0.15
    assert recomputed["centred_mean_box"] < 0.15


def test_trivial_box_localization_counts_hits():
    boxes = np.array([[0, 0, 99, 99], [10, 10, 19, 19], [0, 0, 79, 79]])
    result = trivial_box_localization(boxes, 100)
    assert result["whole_image"] == pytest.approx(2 / 3)  # IoU 1.0, 0.01, 0.64


def test_ensure_synthetic_regenerates_only_when_parameters_change(tmp_path):
    out = str(tmp_path / "SYNTH")
    assert ensure_synthetic(out, **TINY) is True
    listed = os.path.join(out, "train.txt")
    stamp = os.stat(listed).st_mtime_ns
    assert ensure_synthetic(out, **TINY) is False
    assert os.stat(listed).st_mtime_ns == stamp
    assert ensure_synthetic(out, **dict(TINY, num_train=6)) is True
    assert len(read_label_list(listed)) == 6
    class_0_files = sorted(os.listdir(os.path.join(out, "images", class_dir_name(0, 3))))
    assert class_0_files == ["train_00000.jpg", "train_00003.jpg", "train_fullsup_00000.jpg",
                             "train_fullsup_00003.jpg", "val_00000.jpg", "val_00003.jpg"]
    os.remove(os.path.join(out, "val.txt"))  # an incomplete set is regenerated too
    assert ensure_synthetic(out, **dict(TINY, num_train=6)) is True
    assert len(read_label_list(os.path.join(out, "val.txt"))) == 4
    with pytest.raises(TypeError):
        ensure_synthetic(out, colour="red")


def test_command_line_prints_trivial_box_numbers(tmp_path, capsys):
    out = str(tmp_path / "SYNTH")
    main(["--out", out, "--num_classes", "2", "--num_train", "4", "--num_val", "4", "--size", "48"])
    printed = capsys.readouterr().out
    assert "whole_image" in printed and "centred_mean_box" in printed
    main(["--out", out, "--num_classes", "2", "--num_train", "4", "--num_val", "4", "--size", "48"])
    assert "up to date" in capsys.readouterr().out
    main(["--out", out, "--num_classes", "2", "--num_train", "4", "--num_val", "4", "--size", "48",
          "--variant", "control"])
    printed = capsys.readouterr().out
    assert "up to date" not in printed and "variant control" in printed and "vividness 1.0" in printed


def _hue_distance(a, b):
    """Circular distance between OpenCV hues (0-179)."""
    d = np.abs(np.asarray(a, np.float64) - b) % 180
    return np.minimum(d, 180 - d)


def _body_and_head_pixels(variant, count=30):
    """Per image: (class hue, median body hue, median body saturation, head hue) measured
    on the rendered pixels of the part masks."""
    knobs = VARIANTS[variant]
    rows = []
    for index in range(count):
        label = index % 10
        sample = render_sample(sample_rng(3, "val", index), label, 10, 128, **knobs)
        hsv = cv2.cvtColor(sample.image, cv2.COLOR_BGR2HSV).astype(np.float64)
        body, head = sample.part_mask == PART_BODY, sample.part_mask == PART_HEAD
        rows.append((class_hue(label, 10), np.median(hsv[..., 0][body]), np.median(hsv[..., 1][body]),
                     np.median(hsv[..., 0][head])))
    return np.array(rows)


def test_variants_differ_in_how_much_class_colour_the_body_carries():
    head_only, calibrated, control = (_body_and_head_pixels(v) for v in ("head", "calibrated", "control"))
    for rows in (head_only, calibrated, control):  # the head always has the class hue
        assert np.all(_hue_distance(rows[:, 3], rows[:, 0]) <= 3)
    # calibrated and control: the body is always near the class hue; head: only sometimes
    assert np.mean(_hue_distance(calibrated[:, 1], calibrated[:, 0]) <= 25) == 1.0
    assert np.mean(_hue_distance(control[:, 1], control[:, 0]) <= 25) == 1.0
    assert np.mean(_hue_distance(head_only[:, 1], head_only[:, 0]) <= 25) < 0.7
    # vividness: control's body as saturated as the head (235), calibrated's in between
    assert np.median(control[:, 2]) > 215
    assert np.median(head_only[:, 2]) + 15 < np.median(calibrated[:, 2]) < np.median(control[:, 2]) - 40


def test_resolve_params_fills_the_variant_and_keeps_overrides():
    assert resolve_params()["body_vividness"] == VARIANTS["calibrated"]["body_vividness"]
    control = resolve_params(variant="control", body_vividness=0.5)
    assert control["body_class_hue_probability"] == 1.0 and control["body_vividness"] == 0.5
    with pytest.raises(ValueError):
        resolve_params(variant="rainbow")


def _read_png(path):
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def test_masks_are_consistent_with_parts_image_and_box(tmp_path):
    out = str(tmp_path / "SYNTH")
    params = dict(TINY, size=96)
    generate_synthetic(out, **params)
    knobs = resolve_params(**params)
    for split in ("train", "val", "train_fullsup"):
        for index, entry in enumerate(read_label_list(os.path.join(out, f"{split}.txt"))):
            obj = _read_png(mask_path(out, "masks", entry.path))
            parts = _read_png(mask_path(out, "parts", entry.path))
            assert obj.shape == parts.shape == (96, 96) and obj.dtype == parts.dtype == np.uint8
            assert set(np.unique(obj)) == {0, 255} and set(np.unique(parts)) == {0, PART_HEAD, PART_BODY}
            assert np.array_equal(obj > 0, parts > 0)  # object = head | body
            ys, xs = np.nonzero(obj)
            assert np.abs(np.array([xs.min(), ys.min(), xs.max(), ys.max()]) - entry.boxes[0]).max() <= 1
            # the masks are those of the rendered image: same pixels as a fresh render
            sample = render_sample(sample_rng(TINY["seed"], split, index), entry.label, 3, 96,
                                   knobs["body_class_hue_probability"], knobs["body_vividness"])
            assert np.array_equal(sample.part_mask, parts)
            image = cv2.imread(os.path.join(out, "images", entry.path))
            assert np.abs(image.astype(int) - sample.image).mean() < 12  # JPEG of that render (noisy clutter)
            hsv = cv2.cvtColor(sample.image, cv2.COLOR_BGR2HSV)
            head = parts == PART_HEAD
            assert np.mean(_hue_distance(hsv[..., 0][head], class_hue(entry.label, 3)) <= 4) > 0.9
            assert np.mean(hsv[..., 1][head] > 200) > 0.9
            body = parts == PART_BODY
            assert np.mean(_hue_distance(hsv[..., 0][body], sample.body_hsv[0]) <= 6) > 0.9


def test_held_out_fullsup_split_is_disjoint(tmp_path):
    out = str(tmp_path / "SYNTH")
    generate_synthetic(out, **TINY)
    lists = {split: read_label_list(os.path.join(out, f"{split}.txt")) for split in ("train", "val", "train_fullsup")}
    fullsup = lists["train_fullsup"]
    assert len(fullsup) == 2 * 3 and sorted(e.label for e in fullsup) == [0, 0, 1, 1, 2, 2]
    others = lists["train"] + lists["val"]
    assert not {e.path for e in fullsup} & {e.path for e in others}
    def content(entry):
        with open(os.path.join(out, "images", entry.path), "rb") as f:
            return f.read()
    assert not {content(e) for e in fullsup} & {content(e) for e in others}


def test_ensure_synthetic_regenerates_when_the_variant_changes(tmp_path):
    out = str(tmp_path / "SYNTH")
    assert ensure_synthetic(out, **TINY) is True
    assert ensure_synthetic(out, **TINY, variant="calibrated") is False  # the default, resolved
    assert ensure_synthetic(out, **TINY, variant="control") is True
    with open(os.path.join(out, "params.json")) as f:
        assert json.load(f)["body_vividness"] == VARIANTS["control"]["body_vividness"]
    assert ensure_synthetic(out, **TINY, variant="control", body_vividness=0.5) is True
    with open(os.path.join(out, "params.json")) as f:
        params = json.load(f)
    params["generator_version"] = 1
    with open(os.path.join(out, "params.json"), "w") as f:
        json.dump(params, f)
    assert ensure_synthetic(out, **TINY, variant="control", body_vividness=0.5) is True
