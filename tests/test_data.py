"""Dataflows: box maths, image/box agreement, ordering, workers, bad input, path conventions."""
import logging
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests.conftest import REPO
from utils.data.dataflow import DataError, get_eval_dataflow, get_train_dataflow
from utils.data.paths import dataset_paths
from utils.data.labels import LabelEntry, write_label_list
from utils.data.transforms import centre_crop_offset, eval_boxes, flip_boxes, transform_boxes_resize_crop

FINAL = 64  # small crops keep the tests fast; resize is FINAL + 32 = 96
# (height, width, box x1 y1 x2 y2) of the test images; every box covers the image centre,
# so part of it is visible in any crop
IMAGES = [(100, 200, (60, 30, 140, 70)), (150, 120, (30, 50, 90, 110)), (80, 80, (20, 20, 60, 60)),
          (120, 90, (25, 30, 65, 90)), (90, 160, (50, 25, 110, 65)), (110, 110, (30, 30, 80, 80)),
          (70, 140, (40, 20, 100, 50))]


def make_image_set(root, images=IMAGES):
    """PNG images (dark background, white GT rectangle) and their label list; returns
    ``(label_file, image_root)``."""
    image_root = root / "images"
    entries = []
    for index, (height, width, box) in enumerate(images):
        image = np.full((height, width, 3), 30, np.uint8)
        x1, y1, x2, y2 = box
        image[y1:y2 + 1, x1:x2 + 1] = 255
        relative = f"class{index % 3}/img{index}.png"
        (image_root / f"class{index % 3}").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(image_root / relative), image)
        entries.append(LabelEntry(relative, index % 3, np.array([box], np.float32)))
    label_file = root / "list.txt"
    write_label_list(str(label_file), entries)
    return str(label_file), str(image_root)


def assert_box_matches_white_region(image, box, tolerance=2):
    """The datapoint box, clipped to the crop, bounds the visible white rectangle."""
    ys, xs = np.nonzero(image[..., 0] > 140)
    visible = np.array([xs.min(), ys.min(), xs.max(), ys.max()])
    clipped = np.clip(box.reshape(4), 0, image.shape[1] - 1)
    assert np.all(np.abs(visible - clipped) <= tolerance), (visible, box.reshape(4))


def all_datapoints(dataflow):
    """Unbatched datapoints of one pass (the dataflow must already be reset)."""
    return [[component[i] for component in batch] for batch in dataflow for i in range(len(batch[0]))]


# ----------------------------------------------------------------------------- box maths

def test_resize_and_crop_hand_computed():
    # image 100 high, 200 wide -> 256 x 256: x * 1.28, y * 2.56; crop offset (16, 16)
    boxes = transform_boxes_resize_crop([[20, 10, 180, 90]], (100, 200), 256, (16, 16))
    np.testing.assert_array_equal(boxes, [[9, 9, 214, 214]])  # 9.6, 9.6, 214.4, 214.4 truncated
    assert boxes.dtype == np.float32
    # no crop: plain scaling, exact values stay exact
    np.testing.assert_array_equal(transform_boxes_resize_crop([[50, 25, 100, 50]], (100, 200), 256, (0, 0)),
                                  [[64, 64, 128, 128]])


def test_boxes_partly_outside_the_crop_are_not_clipped():
    # x: 10 * 1.28 - 32 = -19.2 -> -19 (towards zero); 200 * 1.28 - 32 = 224; y: 0 and 256
    boxes = transform_boxes_resize_crop([[10, 0, 200, 100], [190, 95, 199, 99]], (100, 200), 256, (32, 0))
    np.testing.assert_array_equal(boxes, [[-19, 0, 224, 256], [211, 243, 222, 253]])


def test_flip_mirrors_x_and_keeps_order():
    np.testing.assert_array_equal(flip_boxes([[10, 5, 50, 60], [-19, 0, 224, 256]], 224),
                                  [[174, 5, 214, 60], [0, 0, 243, 256]])


def test_centre_crop_and_eval_boxes():
    assert centre_crop_offset(256, 224) == 16 and centre_crop_offset(96, 64) == 16
    gt = [[20, 10, 180, 90], [0, 0, 5, 5]]
    expected = transform_boxes_resize_crop(gt, (100, 200), 256, (16, 16))
    np.testing.assert_array_equal(eval_boxes(gt, (100, 200), 224), expected)
    np.testing.assert_array_equal(expected[1], [-16, -16, -9, -3])  # 6.4-16, 12.8-16 truncated


# ----------------------------------------------------------------------------- paths

def test_dataset_path_conventions(tmp_path):
    from utils.data.paths import DEFAULT_LABEL_DIR
    data = str(tmp_path)
    assert dataset_paths("CUB", data, split="train") == (
        os.path.join(DEFAULT_LABEL_DIR, "CUB", "train.txt"), os.path.join(data, "CUB", "images"))
    assert dataset_paths("ILSVRC", data, split="val") == (
        os.path.join(DEFAULT_LABEL_DIR, "ILSVRC", "val.txt"), os.path.join(data, "ILSVRC"))
    assert dataset_paths("SYNTH", data, split="val") == (
        os.path.join(data, "SYNTH", "val.txt"), os.path.join(data, "SYNTH", "images"))
    assert dataset_paths("MINE", data, "/lists", split="train") == (
        "/lists/MINE/train.txt", os.path.join(data, "MINE", "images"))


def test_class_names_file_of_a_run_is_its_own_copy_else_the_data_sets(tmp_path):
    from types import SimpleNamespace
    from utils.data.paths import dataset_class_names_file, kept_class_names_file, run_class_names_file
    data, log_dir = tmp_path / "data", tmp_path / "run"
    (data / "MINE").mkdir(parents=True)
    log_dir.mkdir()
    args = SimpleNamespace(dataset_name="MINE", data_dir=str(data), label_dir=None, log_dir=str(log_dir))
    assert dataset_class_names_file("MINE", str(data)) is None and run_class_names_file(args) is None
    (data / "MINE" / "words.txt").write_text("0 a\n")
    assert dataset_class_names_file("MINE", str(data)) == str(data / "MINE" / "words.txt")
    assert run_class_names_file(args) == str(data / "MINE" / "words.txt")
    (log_dir / "words.txt").write_text("0 b\n")
    assert kept_class_names_file(str(log_dir)) == str(log_dir / "words.txt") == run_class_names_file(args)


@pytest.mark.parametrize("dataset, split, hint", [
    ("CUB", "train", "dataset/prepare_cub.sh"),
    ("ILSVRC", "val", "dataset/prepare_imagenet.sh"),
    ("SYNTH", "train", "python -m utils.data.synthetic --out {data}/SYNTH"),
])
def test_missing_data_directory_names_path_and_prepare_command(tmp_path, dataset, split, hint):
    data = str(tmp_path / "data")
    label_file, image_root = dataset_paths(dataset, data, split=split)
    for make in (get_train_dataflow, get_eval_dataflow):
        with pytest.raises(DataError) as caught:
            make(label_file, image_root)
        message = str(caught.value)
        assert "\n" not in message and hint.format(data=data) in message
        assert image_root in message or label_file in message


def test_missing_or_empty_parts_are_named(tmp_path):
    label_file, image_root = make_image_set(tmp_path)
    with pytest.raises(DataError, match="label list .*nowhere.txt is missing"):
        get_train_dataflow(str(tmp_path / "CUB" / "nowhere.txt"), image_root)
    empty = tmp_path / "ILSVRC"
    empty.mkdir()
    expected = f"image directory {empty} is missing or empty; run dataset/prepare_imagenet.sh"
    with pytest.raises(DataError, match=expected):
        get_eval_dataflow(label_file, str(empty))
    with pytest.raises(DataError, match=r"run dataset/prepare_imagenet.sh"):
        get_train_dataflow(*dataset_paths("ILSVRC", str(tmp_path), str(tmp_path), split="train"))
    (empty / "train").mkdir()  # train extracted, val not
    val_list = tmp_path / "val.txt"
    val_list.write_text("val/x.JPEG\t0\t1\t1\t5\t5\n")
    expected = f"image directory {empty / 'val'} .* is missing; run dataset/prepare_imagenet.sh"
    with pytest.raises(DataError, match=expected):
        get_eval_dataflow(str(val_list), str(empty))


# ----------------------------------------------------------------------------- dataflows

def test_train_datapoints_follow_the_augmentation(tmp_path):
    label_file, image_root = make_image_set(tmp_path)
    dataflow = get_train_dataflow(label_file, image_root, FINAL, batch_size=3, workers=0, seed=3)
    dataflow.reset_state()
    assert len(dataflow) == 2  # 7 images, remainder dropped
    seen_boxes = set()
    for _ in range(4):
        batches = list(dataflow)
        assert len(batches) == 2
        for images, labels, boxes in batches:
            assert images.shape == (3, FINAL, FINAL, 3) and images.dtype == np.uint8
            assert labels.dtype == np.int32 and boxes.shape == (3, 2, 2) and boxes.dtype == np.float32
            for image, box in zip(images, boxes):
                assert_box_matches_white_region(image, box)
                seen_boxes.add(tuple(box.reshape(4)))
    assert len(seen_boxes) > 18  # of 24: random crops and flips change the boxes


def test_train_seed_reproduces_order_and_augmentation(tmp_path):
    label_file, image_root = make_image_set(tmp_path)
    runs = []
    for _ in range(2):
        dataflow = get_train_dataflow(label_file, image_root, FINAL, batch_size=2, workers=0, seed=11)
        dataflow.reset_state()
        runs.append(all_datapoints(dataflow))
    for a, b in zip(*runs):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_worker_processes_give_the_in_process_batches(tmp_path):
    label_file, image_root = make_image_set(tmp_path)
    epochs = {}
    for workers in (0, 2):
        dataflow = get_train_dataflow(label_file, image_root, FINAL, batch_size=2, workers=workers, seed=4)
        dataflow.reset_state()
        epochs[workers] = [all_datapoints(dataflow) for _ in range(3)]
    for epoch_in_process, epoch_in_workers in zip(epochs[0], epochs[2]):
        assert len(epoch_in_workers) == 6  # one pass, remainder dropped
        for a, b in zip(epoch_in_process, epoch_in_workers):
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y)


def test_transforms_need_no_tensorflow():
    code = ("import sys, utils.data.transforms, utils.data.labels, utils.data.synthetic; "
            "sys.exit('tensorflow' in sys.modules or 'tensorpack' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_eval_keeps_list_order_and_remainder(tmp_path):
    label_file, image_root = make_image_set(tmp_path)
    results = {}
    for workers in (0, 3):
        dataflow = get_eval_dataflow(label_file, image_root, FINAL, batch_size=3, workers=workers)
        dataflow.reset_state()
        batches = list(dataflow)
        assert [len(b[0]) for b in batches] == [3, 3, 1]
        results[workers] = all_datapoints(dataflow)
        assert [int(dp[3]) for dp in results[workers]] == list(range(7))
        for image, label, box, index in results[workers]:
            assert index.dtype == np.int32 and label == index % 3
            height, width, gt = IMAGES[index]
            np.testing.assert_array_equal(box.reshape(1, 4), eval_boxes([gt], (height, width), FINAL))
            np.testing.assert_array_equal(dataflow.gt_boxes_in_crop(int(index)), box.reshape(1, 4))
            assert_box_matches_white_region(image, box)
    for a, b in zip(results[0], results[3]):
        np.testing.assert_array_equal(a[0], b[0])
    limited = get_eval_dataflow(label_file, image_root, FINAL, batch_size=3, workers=0, number_of_val=4)
    limited.reset_state()
    assert [int(dp[3]) for dp in all_datapoints(limited)] == [0, 1, 2, 3]


def test_images_without_boxes_get_a_zero_box(tmp_path):
    image_root = tmp_path / "images"
    image_root.mkdir()
    cv2.imwrite(str(image_root / "a.jpg"), np.zeros((50, 40, 3), np.uint8))
    write_label_list(str(tmp_path / "list.txt"), [LabelEntry("a.jpg", 2)])
    dataflow = get_train_dataflow(str(tmp_path / "list.txt"), str(image_root), FINAL, batch_size=1, workers=0)
    dataflow.reset_state()
    (images, labels, boxes), = list(dataflow)
    assert labels.tolist() == [2] and not boxes.any()


# ----------------------------------------------------------------------------- bad images

def add_bad_images(tmp_path):
    """The test set plus a corrupt, an empty, a truncated and a missing image (at list
    positions 7-10); returns ``(label_file, image_root, bad paths in list order)``."""
    label_file, image_root = make_image_set(tmp_path)
    good = cv2.imencode(".jpg", np.full((60, 60, 3), 90, np.uint8))[1].tobytes()
    contents = {"corrupt.jpg": b"this is not a JPEG", "empty.jpg": b"",
                "truncated.jpg": good[:len(good) // 2]}
    for name, data in contents.items():
        (tmp_path / "images" / name).write_bytes(data)
    names = list(contents) + ["missing.jpg"]
    with open(label_file, "a") as f:
        for name in names:
            f.write(f"{name}\t1\t1.0\t1.0\t20.0\t20.0\n")
    return label_file, image_root, [os.path.join(image_root, name) for name in names]


@pytest.mark.parametrize("workers", [0, 2])
def test_training_skips_and_counts_bad_images(tmp_path, caplog, workers):
    label_file, image_root, bad = add_bad_images(tmp_path)
    dataflow = get_train_dataflow(label_file, image_root, FINAL, batch_size=1, workers=workers, seed=0)
    dataflow.reset_state()
    with caplog.at_level(logging.WARNING, logger="utils.data.dataflow"):
        datapoints = all_datapoints(dataflow)
    assert len(datapoints) == 7
    assert sorted(path for path, _ in dataflow.bad_images) == sorted(bad)
    reasons = dict(dataflow.bad_images)
    assert reasons[os.path.join(image_root, "empty.jpg")] == "empty file"
    assert "No such file" in reasons[os.path.join(image_root, "missing.jpg")]
    messages = [r.getMessage() for r in caplog.records if "skipping bad image" in r.getMessage()]
    assert [m.endswith(f"({k} skipped so far)") for k, m in enumerate(messages, 1)] == [True] * 4


def test_error_mode_names_the_bad_file(tmp_path):
    label_file, image_root, bad = add_bad_images(tmp_path)
    dataflow = get_train_dataflow(label_file, image_root, FINAL, batch_size=1, workers=0,
                                  on_bad_image="error", seed=0)
    dataflow.reset_state()
    with pytest.raises(DataError) as caught:
        all_datapoints(dataflow)
    assert any(str(caught.value).startswith(f"bad image {path}:") for path in bad)
    with pytest.raises(ValueError, match="on_bad_image"):
        get_train_dataflow(label_file, image_root, on_bad_image="ignore")


@pytest.mark.parametrize("workers", [0, 2])
def test_evaluation_reports_bad_images_and_goes_on(tmp_path, workers):
    label_file, image_root, bad = add_bad_images(tmp_path)
    dataflow = get_eval_dataflow(label_file, image_root, FINAL, batch_size=4, workers=workers)
    dataflow.reset_state()
    assert [int(dp[3]) for dp in all_datapoints(dataflow)] == list(range(7))
    assert [path for path, _ in dataflow.bad_images] == bad
    assert sorted(dataflow.image_sizes) == list(range(7))
