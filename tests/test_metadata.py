"""wsolevaluation metadata folders: reading, both conversions, and a run of train.py from one."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO
from utils.data.paths import dataset_paths
from utils.data.labels import read_label_list
from utils.data.metadata import MetadataError, main, read_entries, read_metadata

pytestmark = pytest.mark.duration(12)  # seconds, for the scheduler (conftest.py)

# A CUB-like test split: class folders in the paths, an image with two boxes, one with three.
TEST_SPLIT = {
    "image_ids.txt": ["001.Albatross/a_1.jpg", "001.Albatross/a_2.jpg", "002.Auklet/b_1.jpg"],
    "class_labels.txt": ["001.Albatross/a_1.jpg,0", "001.Albatross/a_2.jpg,0", "002.Auklet/b_1.jpg,1"],
    "image_sizes.txt": ["001.Albatross/a_1.jpg,40,30", "001.Albatross/a_2.jpg,50,20", "002.Auklet/b_1.jpg,32,32"],
    "localization.txt": ["001.Albatross/a_1.jpg,1,2,20,25", "001.Albatross/a_2.jpg,0,0,10,10",
                         "001.Albatross/a_2.jpg,30,5,49,19", "002.Auklet/b_1.jpg,3,3,8,8",
                         "002.Auklet/b_1.jpg,10,10,20,20", "002.Auklet/b_1.jpg,0,0,31,31"],
}


def write_split(folder, files):
    os.makedirs(folder, exist_ok=True)
    for name, lines in files.items():
        with open(os.path.join(folder, name), "w") as f:
            f.write("".join(line + "\n" for line in lines))


def entries_as_tuples(entries):
    return [(e.path, e.label, e.boxes.tolist()) for e in entries]


@pytest.fixture
def metadata_dir(tmp_path):
    root = tmp_path / "metadata"
    write_split(str(root / "CUB" / "test"), TEST_SPLIT)
    return root


def test_read_groups_several_boxes_per_image(metadata_dir):
    entries, sizes = read_metadata(str(metadata_dir / "CUB" / "test"))
    assert [(e.path, e.label, len(e.boxes)) for e in entries] == [
        ("001.Albatross/a_1.jpg", 0, 1), ("001.Albatross/a_2.jpg", 0, 2), ("002.Auklet/b_1.jpg", 1, 3)]
    assert entries[1].boxes.tolist() == [[0, 0, 10, 10], [30, 5, 49, 19]]
    assert sizes["001.Albatross/a_2.jpg"] == (50, 20)


def test_read_convert_read_round_trip(metadata_dir, tmp_path):
    original, sizes = read_metadata(str(metadata_dir / "CUB" / "test"))
    assert main(["to-lists", str(metadata_dir), str(tmp_path / "lists")]) == 0
    listed = read_label_list(str(tmp_path / "lists" / "CUB" / "val.txt"))    # test -> the evaluated list
    assert entries_as_tuples(listed) == entries_as_tuples(original)
    image_root = tmp_path / "images"
    for path, (width, height) in sizes.items():
        os.makedirs(os.path.dirname(image_root / path), exist_ok=True)
        cv2.imwrite(str(image_root / path), np.zeros((height, width, 3), np.uint8))
    assert main(["to-metadata", str(tmp_path / "lists"), str(tmp_path / "back"), "--dataset", "CUB",
                 "--image_root", str(image_root)]) == 0
    again, again_sizes = read_metadata(str(tmp_path / "back" / "CUB" / "test"))
    assert entries_as_tuples(again) == entries_as_tuples(original) and again_sizes == sizes
    for name, lines in TEST_SPLIT.items():
        assert (tmp_path / "back" / "CUB" / "test" / name).read_text().splitlines() == lines, name


def test_label_dir_may_be_a_metadata_folder(metadata_dir):
    label_file, image_root = dataset_paths("CUB", "data", str(metadata_dir), split="val")
    assert label_file == str(metadata_dir / "CUB" / "test")
    assert len(read_entries(label_file)) == 3
    assert dataset_paths("CUB", "data", str(metadata_dir), split="train_fullsup")[0].endswith("train_fullsup.txt")


@pytest.mark.parametrize("name, line, message", [
    ("localization.txt", "001.Albatross/a_1.jpg,m.png,ignore.png", "mask localization"),
    ("localization.txt", "003.Other/c.jpg,1,2,3,4", "is not in image_ids.txt"),
    ("localization.txt", "001.Albatross/a_1.jpg,5,2,3,4", "degenerate box"),
    ("class_labels.txt", "001.Albatross/a_1.jpg,x", "'x' is not a number"),
])
def test_bad_lines_name_file_and_line(metadata_dir, name, line, message):
    path = metadata_dir / "CUB" / "test" / name
    path.write_text(path.read_text() + line + "\n")
    number = len(TEST_SPLIT[name]) + 1
    with pytest.raises(MetadataError, match=f"{name}:{number}: .*{message}"):
        read_metadata(str(metadata_dir / "CUB" / "test"))


def test_cli_error_is_one_line(tmp_path, capsys):
    assert main(["to-lists", str(tmp_path), str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("utils.data.metadata: error: ")
    assert main(["to-lists", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    assert "metadata folder" in capsys.readouterr().err
    assert main(["to-metadata", str(tmp_path), str(tmp_path / "out"), "--dataset", "X",
                 "--image_root", str(tmp_path / "nowhere")]) == 2
    assert "image root" in capsys.readouterr().err


# --------------------------------------------------------------------------- train.py from a metadata folder

TINY = dict(num_classes=4, num_train=64, num_val=16, size=48, seed=5)


def test_train_and_evaluate_from_a_metadata_folder(tmp_path):
    from utils.data.masks import mask_file, write_mask
    from utils.data.metadata import image_size, write_metadata
    from utils.data.synthetic import ensure_synthetic

    ensure_synthetic(str(tmp_path / "SYNTH"), workers=1, **TINY)
    image_root = tmp_path / "SYNTH" / "images"
    train = read_label_list(str(tmp_path / "SYNTH" / "train.txt"))
    val = read_label_list(str(tmp_path / "SYNTH" / "val.txt"))
    splits = {"train": train[8:], "val": train[:8], "test": val}    # wsolevaluation names
    metadata = tmp_path / "metadata" / "SYNTH"
    for split, entries in splits.items():
        sizes = {e.path: image_size(str(image_root / e.path)) for e in entries}
        write_metadata(str(metadata / split), entries, sizes)
    for entry in splits["val"] + splits["test"]:          # box-shaped object masks
        width, height = image_size(str(image_root / entry.path))
        mask = np.zeros((height, width), np.uint8)
        x1, y1, x2, y2 = entry.boxes[0].astype(int)
        mask[y1:y2 + 1, x1:x2 + 1] = 255
        write_mask(mask_file(str(tmp_path / "SYNTH" / "masks"), entry.path), mask)

    log_dir = tmp_path / "run"
    command = [sys.executable, os.path.join(REPO, "train.py"), "--dataset_name", "SYNTH", "--data_dir",
               str(tmp_path), "--label_dir", str(tmp_path / "metadata"), "--number_of_class", "4",
               "--arch_name", "vgg_gap", "--method_name", "CAM", "--final_size", "32", "--width_multiplier",
               "0.125", "--batch", "8", "--epoch", "2", "--steps_per_epoch", "3", "--workers", "0",
               "--seed", "1", "--log_dir", str(log_dir), "--tau_split", "train_fullsup", "--number_of_examples", "0"]
    # train.py trains, then evaluates min-val-error-top1 with the same flags (one process)
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "PxAP" in result.stdout and "chosen on train_fullsup" in result.stdout
    with open(log_dir / "result" / "latest" / "metrics.json") as f:
        metrics = json.load(f)["metrics"]
    assert metrics["num_images"] == 16 and metrics["pixel"]["num_images"] == 16
    assert 0 < metrics["pxap"] <= 100 and metrics["pixel"]["images_without_mask"] == 0
    held = metrics["held_out_tau"]
    assert held["chosen_on"] == metrics["tau_chosen_on"] == "train_fullsup" and held["num_images"] == 8
    assert held["label_file"] == str(metadata / "val")
    index = metrics["sweep"]["thresholds"].index(held["reference"]["tau"])
    assert held["reference"]["gt_known_loc"] == metrics["sweep"]["gt_known_loc"][index]
