"""dataset/prepare_cub.sh and dataset/prepare_imagenet.sh on small archives built here."""
import io
import os
import subprocess
import tarfile

import cv2
import numpy as np
import pytest

from tests.conftest import REPO

CUB_IMAGES = [  # (image id, relative path, class id 1-based, is_train, x y w h)
    (1, "001.Alpha/Alpha_0001.jpg", 1, 0, "10.0 20.0 30.0 40.0"),
    (2, "001.Alpha/Alpha_0002.jpg", 1, 1, "1.0 2.0 3.0 4.0"),
    (3, "002.Beta/Beta_0001.jpg", 2, 1, "5.5 6.0 7.0 8.0"),
    (4, "002.Beta/Beta_0002.jpg", 2, 0, "0.0 0.0 47.0 31.0"),
]


def jpeg_bytes(value):
    return cv2.imencode(".jpg", np.full((32, 48, 3), value, np.uint8))[1].tobytes()


def add_file(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def run_script(script, *args):
    return subprocess.run([os.path.join(REPO, "dataset", script), *map(str, args)],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def cub_archive(tmp_path):
    path = tmp_path / "CUB_200_2011.tgz"
    metadata = {
        "images.txt": "".join(f"{i} {p}\n" for i, p, _, _, _ in CUB_IMAGES),
        "image_class_labels.txt": "".join(f"{i} {c}\n" for i, _, c, _, _ in CUB_IMAGES),
        "train_test_split.txt": "".join(f"{i} {t}\n" for i, _, _, t, _ in CUB_IMAGES),
        "bounding_boxes.txt": "".join(f"{i} {b}\n" for i, _, _, _, b in CUB_IMAGES),
        "classes.txt": "1 001.Alpha\n2 002.Beta\n",
    }
    with tarfile.open(path, "w:gz") as tar:
        add_file(tar, "attributes.txt", b"1 has_bill_shape::dagger\n")
        for name, text in metadata.items():
            add_file(tar, f"CUB_200_2011/{name}", text.encode())
        for image_id, relative, _, _, _ in CUB_IMAGES:
            add_file(tar, f"CUB_200_2011/images/{relative}", jpeg_bytes(image_id * 40))
    return path


def test_prepare_cub_extracts_regenerates_and_is_idempotent(tmp_path, cub_archive):
    dataset_dir, out_dir, labels_dir = tmp_path / "dataset", tmp_path / "regenerated", tmp_path / "labels"
    (labels_dir / "CUB").mkdir(parents=True)
    # reference lists: train identical to the metadata, val with one different box
    (labels_dir / "CUB" / "train.txt").write_text(
        "002.Beta/Beta_0001.jpg\t1\t5.5\t6.0\t12.5\t14.0\n001.Alpha/Alpha_0002.jpg\t0\t1.0\t2.0\t4.0\t6.0\n")
    (labels_dir / "CUB" / "val.txt").write_text(
        "001.Alpha/Alpha_0001.jpg\t0\t10.0\t20.0\t40.0\t60.0\n"
        "002.Beta/Beta_0002.jpg\t1\t0.0\t0.0\t47.0\t30.0\n")
    args = [cub_archive, "--dataset-dir", dataset_dir, "--labels-dir", labels_dir,
            "--regenerate-labels", out_dir]
    first = run_script("prepare_cub.sh", *args)
    assert first.returncode == 0, first.stderr
    for image_id, relative, _, _, _ in CUB_IMAGES:
        assert (dataset_dir / "CUB" / "images" / relative).read_bytes() == jpeg_bytes(image_id * 40)
    assert sorted(os.listdir(dataset_dir / "CUB" / "images")) == [".complete", "001.Alpha", "002.Beta"]
    assert (out_dir / "CUB" / "train.txt").read_text() == (
        "001.Alpha/Alpha_0002.jpg\t0\t1.0\t2.0\t4.0\t6.0\n002.Beta/Beta_0001.jpg\t1\t5.5\t6.0\t12.5\t14.0\n")
    assert (out_dir / "CUB" / "val.txt").read_text() == (
        "001.Alpha/Alpha_0001.jpg\t0\t10.0\t20.0\t40.0\t60.0\n"
        "002.Beta/Beta_0002.jpg\t1\t0.0\t0.0\t47.0\t31.0\n")
    assert (out_dir / "CUB" / "words.txt").read_text() == "1 001.Alpha\n2 002.Beta\n"
    assert "train.txt: 2 images, 0 differ" in first.stdout
    assert "val.txt: 2 images, 1 differ" in first.stdout

    second = run_script("prepare_cub.sh", *args)
    assert second.returncode == 0, second.stderr
    assert "already extracted (4 images), skipping" in second.stdout
    assert "val.txt: 2 images, 1 differ" in second.stdout


def test_prepare_cub_resumes_an_interrupted_extraction(tmp_path, cub_archive):
    dataset_dir = tmp_path / "dataset"
    partial = dataset_dir / "CUB" / "images" / "001.Alpha"
    partial.mkdir(parents=True)
    done_file = partial / "Alpha_0001.jpg"
    done_file.write_bytes(jpeg_bytes(40))  # extracted before the interruption (no .complete marker)
    os.utime(done_file, (1_000_000, 1_000_000))
    result = run_script("prepare_cub.sh", cub_archive, "--dataset-dir", dataset_dir)
    assert result.returncode == 0, result.stderr
    assert "(8 files written, 1 already there)" in result.stdout  # 3 images + 5 metadata files
    assert done_file.stat().st_mtime == 1_000_000
    assert (dataset_dir / "CUB" / "images" / "002.Beta" / "Beta_0002.jpg").is_file()


def test_prepare_scripts_report_a_missing_archive(tmp_path):
    cub = run_script("prepare_cub.sh", tmp_path / "none.tgz", "--dataset-dir", tmp_path)
    assert cub.returncode != 0
    assert f"CUB_200_2011.tgz not found at {tmp_path / 'none.tgz'}" in cub.stderr
    imagenet = run_script("prepare_imagenet.sh", "--train-tar", tmp_path / "t.tar", "--dataset-dir", tmp_path)
    assert imagenet.returncode != 0
    assert f"ILSVRC2012_img_train.tar not found at {tmp_path / 't.tar'}" in imagenet.stderr


def test_prepare_imagenet_extracts_lists_and_is_idempotent(tmp_path):
    train_tar, val_tar = tmp_path / "train.tar", tmp_path / "val.tar"
    with tarfile.open(train_tar, "w") as outer:
        for wnid, names in (("n001", ["n001_1.JPEG", "n001_2.JPEG"]),
                            ("n002", ["n002_7.JPEG", "n002_3.JPEG"])):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as inner_tar:
                for k, name in enumerate(names):
                    add_file(inner_tar, name, jpeg_bytes(k * 50))
            add_file(outer, f"{wnid}.tar", inner.getvalue())
    with tarfile.open(val_tar, "w") as tar:
        for k in range(1, 4):
            add_file(tar, f"ILSVRC2012_val_{k:08d}.JPEG", jpeg_bytes(k))
    dataset_dir, labels_dir = tmp_path / "dataset", tmp_path / "labels"
    (labels_dir / "ILSVRC").mkdir(parents=True)
    (labels_dir / "ILSVRC" / "wnids.txt").write_text("n002\nn001\n")
    args = ["--train-tar", train_tar, "--val-tar", val_tar, "--dataset-dir", dataset_dir,
            "--labels-dir", labels_dir]

    first = run_script("prepare_imagenet.sh", *args)
    assert first.returncode == 0, first.stderr
    root = dataset_dir / "ILSVRC"
    assert sorted(os.listdir(root / "train" / "n002")) == [".complete", "n002_3.JPEG", "n002_7.JPEG"]
    assert (root / "train" / "n001" / "n001_2.JPEG").read_bytes() == jpeg_bytes(50)
    val_names = [f"ILSVRC2012_val_{k:08d}.JPEG" for k in (1, 2, 3)]
    assert sorted(os.listdir(root / "val")) == [".complete"] + val_names
    expected_list = ("train/n002/n002_3.JPEG\t0\ntrain/n002/n002_7.JPEG\t0\n"
                     "train/n001/n001_1.JPEG\t1\ntrain/n001/n001_2.JPEG\t1\n")
    assert (labels_dir / "ILSVRC" / "train.txt").read_text() == expected_list
    assert "4 images of 2 classes" in first.stdout

    second = run_script("prepare_imagenet.sh", *args)
    assert second.returncode == 0, second.stderr
    assert "already extracted, skipping" in second.stdout
    assert (labels_dir / "ILSVRC" / "train.txt").read_text() == expected_list


def test_prepare_cub_binarises_the_segmentations(tmp_path, cub_archive):
    soft = np.zeros((32, 48), np.uint8)
    soft[4:10, 4:10] = 51        # one annotator of five: object under wsolevaluation's rule (> 0.5)
    soft[12:20, 20:40] = 255
    segmentations = tmp_path / "segmentations.tgz"
    with tarfile.open(segmentations, "w:gz") as tar:
        for _, relative, _, is_train, _ in CUB_IMAGES:
            if not is_train:       # masks for the two test (= val) images only
                add_file(tar, "segmentations/" + relative[:-4] + ".png", cv2.imencode(".png", soft)[1].tobytes())
    dataset_dir, labels_dir = tmp_path / "dataset", tmp_path / "labels"
    (labels_dir / "CUB").mkdir(parents=True)
    (labels_dir / "CUB" / "val.txt").write_text(
        "001.Alpha/Alpha_0001.jpg\t0\t10\t20\t40\t60\n002.Beta/Beta_0002.jpg\t1\t0\t0\t47\t30\n"
        "002.Beta/Beta_0009.jpg\t1\t0\t0\t47\t30\n")
    args = [cub_archive, "--dataset-dir", dataset_dir, "--labels-dir", labels_dir,
            "--segmentations", segmentations]
    first = run_script("prepare_cub.sh", *args)
    assert first.returncode == 0, first.stderr
    mask = cv2.imread(str(dataset_dir / "CUB" / "masks" / "002.Beta" / "Beta_0002.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (32, 48) and np.array_equal(mask, np.where(soft > 0, 255, 0))
    assert "2 of the 3 images of" in first.stdout and "(2 written, 0 already there)" in first.stdout
    second = run_script("prepare_cub.sh", *args)
    assert second.returncode == 0 and "already made (2 masks), skipping" in second.stdout
    missing = run_script("prepare_cub.sh", cub_archive, "--dataset-dir", tmp_path / "d2",
                         "--segmentations", tmp_path / "none.tgz")
    assert missing.returncode != 0 and "segmentations.tgz not found" in missing.stderr
