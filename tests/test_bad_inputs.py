"""Bad inputs end in one clear line (exit 2, no traceback) or a counted, reported skip.

Table-driven: each case is the command line (``{data}``, ``{tmp}``, ``{file}`` are filled
in), the expected exit code and the words the one-line message must hold.  ``train.py``
cases whose error comes before any graph is built run in-process (``train.main``); the
few that need a graph, and the shell / ``python -m`` entry points, run as subprocesses.
"""
import gzip
import io
import json
import os
import subprocess
import sys
import tarfile

import cv2
import numpy as np
import pytest

import train
from tests.conftest import REPO
from utils import compat
from utils.data.dataflow import get_eval_dataflow
from utils.data.labels import LabelListError
from utils.evaluation import paper_table, scorer
from utils.training import loop

pytestmark = pytest.mark.duration(35)  # seconds, for the scheduler (conftest.py)

SIZE = 40   # tiny images: every case is about input handling, not learning
BASE = ["--dataset_name", "MYSET", "--data_dir", "{data}", "--number_of_class", "2", "--arch_name", "vgg_gap",
        "--method_name", "CAM", "--final_size", "32", "--width_multiplier", "0.125", "--batch", "4",
        "--epoch", "1", "--steps_per_epoch", "1", "--workers", "0", "--number_of_val", "4",
        "--log_dir", "{tmp}/run"]


def _image(path, seed):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = np.random.RandomState(seed).randint(0, 255, (SIZE, SIZE, 3)).astype(np.uint8)
    cv2.imwrite(path, pixels)


def _data_set(root, name, train_lines, val_lines, encoding="utf-8"):
    """``root/name/{train,val}.txt`` and an image for every path they list."""
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    for split, lines in (("train", train_lines), ("val", val_lines)):
        with open(os.path.join(folder, f"{split}.txt"), "wb") as f:
            f.write("".join(line + "\n" for line in lines).encode(encoding))
        for i, line in enumerate(lines):
            _image(os.path.join(folder, "images", line.split("\t")[0]), seed=i)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Own data sets under one ``--data_dir``: MYSET (good; folder and file names with
    spaces; one val box past its image), LATIN (a non-UTF-8 list), BROKEN (a 3-field line),
    INVERTED (most boxes x2 < x1), OUTSIDE (most val boxes past their image)."""
    root = str(tmp_path_factory.mktemp("data"))
    good = [f"class {i % 2}/image {i}.jpg\t{i % 2}\t2\t3\t30\t35" for i in range(8)]
    val = [f"class {i % 2}/val {i}.jpg\t{i % 2}\t2\t3\t30\t35" for i in range(4)]
    val[1] = val[1].replace("\t30\t35", "\t45\t35")   # past the 40 px image: reported, scored
    _data_set(root, "MYSET", good, val)
    _data_set(root, "LATIN", [line.replace("image", "imagé") for line in good], val, encoding="latin-1")
    _data_set(root, "BROKEN", good[:1] + ["a.jpg\t0\t1\t2"] + good[2:], val)
    _data_set(root, "INVERTED", [line.replace("\t2\t3\t30\t35", "\t30\t3\t2\t35") for line in good[:5]] + good[5:],
              val)
    _data_set(root, "OUTSIDE", good, [line.replace("\t30\t35", "\t60\t70") for line in val])
    _data_set(root, "ONEINVERTED", [good[0].replace("\t2\t3\t30\t35", "\t30\t3\t2\t35")] + good[1:], val)
    _data_set(root, "NOBOX", good, val[:2] + [val[2].split("\t")[0] + "\t0"] + val[3:])
    return root


def fill(argv, data, tmp, file):
    return [a.format(data=data, tmp=tmp, file=file) for a in argv]


def without(argv, flag):
    i = argv.index(flag)
    return argv[:i] + argv[i + 2:]


def with_(argv, flag, value):
    """argv with ``flag value`` (or ``flag v1 v2 ...`` for a list), replacing a one-value ``flag``."""
    values = value if isinstance(value, list) else [value]
    return (without(argv, flag) if flag in argv else argv) + [flag, *values]


def one_error_line(err, program):
    """The error line; asserts it is the last stderr line and there is no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith(f"{program}: error: "), err
    return lines[-1]


# ----------------------------------------------------------------------------- train.py in-process

def case(name, changes, code, *words):
    return pytest.param(changes, code, words, id=name)


TRAIN_CASES = [
    case("gpu-not-an-integer", {"--gpu": "abc"}, 2, "--gpu abc", "comma-separated integers", "'abc'"),
    case("gpu-listed-twice", {"--gpu": "0,0"}, 2, "--gpu 0,0", "listed twice"),
    case("gpu-not-visible", {"--gpu": "99"}, 2, "--gpu 99", "TensorFlow sees"),
    case("cam-threshold-above-1", {"--cam_threshold": "1.5"}, 2, "--cam_threshold must be in [0, 1], got 1.5"),
    case("cam-threshold-negative", {"--cam_threshold": "-0.1"}, 2, "--cam_threshold must be in [0, 1]"),
    case("cam-threshold-nan", {"--cam_threshold": "nan"}, 2, "--cam_threshold must be in [0, 1], got nan"),
    case("aae-threshold", {"--aae_threshold": "1.2"}, 2, "--aae_threshold must be in [0, 1]"),
    case("adl-threshold", {"--adl_threshold": "2"}, 2, "--adl_threshold must be in [0, 1]"),
    case("adl-keep-prob", {"--adl_keep_prob": "-1"}, 2, "--adl_keep_prob must be in [0, 1]"),
    case("base-lr-zero", {"--base_lr": "0"}, 2, "--base_lr must be > 0, got 0.0"),
    case("epoch-zero", {"--epoch": "0"}, 2, "--epoch must be >= 1, got 0"),
    case("curve-intervals-zero", {"--number_of_cam_curve_interval": "0"}, 2,
         "--number_of_cam_curve_interval must be >= 1"),
    case("batch-zero", {"--batch": "0"}, 2, "--batch_size must be >= 1"),
    case("final-size-zero", {"--final_size": "0"}, 2, "--final_size must be >= 32"),
    case("workers-negative", {"--workers": "-1"}, 2, "--workers must be >= 0"),
    case("clip-gradients-nan", {"--clip_gradients": "nan"}, 2, "--clip_gradients must be >= 0 (0 = off), got nan"),
    case("width-zero", {"--width_multiplier": "0"}, 2, "width_multiplier must be in (0, 4], got 0.0"),
    case("stepscale-zero", {"--stepscale": "0"}, 2, "--stepscale must be > 0"),
    case("unknown-gating-position", {"--method_name": "MAE", "--gating_position": "7"}, 2,
         "vgg_gap has no insertion position ['7']; valid: 11 12 1"),
    case("load-missing-checkpoint", {"--load": "{tmp}/model-5"}, 2, "--load {tmp}/model-5: no such checkpoint"),
    case("evaluate-missing-checkpoint", {"--load": "{tmp}/model-5", "--evaluate": True}, 2, "no such checkpoint"),
    case("log-dir-under-a-file", {"--log_dir": "{file}/run"}, 2, "--log_dir", "lies under", "which is a file"),
    case("log-dir-is-a-file", {"--log_dir": "{file}"}, 2, "is a file, not a folder"),
    case("dataset-name-with-a-path", {"--dataset_name": "../MYSET"}, 2, "--dataset_name must be a folder name"),
    case("own-set-without-class-count", {"--number_of_class": None}, 2, "--number_of_class is needed for MYSET"),
    case("model-zoo-at-another-width", {"--use_pretrained_model": True}, 2,
         "model-zoo weights", "--width_multiplier 1.0 only"),
    case("missing-vgg16-npz", {"--use_pretrained_model": True, "--width_multiplier": "1.0"}, 2,
         "pretrained weights not found", "http://models.tensorpack.com/Caffe-Converted/vgg16.npz"),
    case("missing-resnet-npz", {"--use_pretrained_model": True, "--width_multiplier": "1.0", "--arch_name": "resnet"},
         2, "ImageNet-ResNet50-SE.npz", "http://models.tensorpack.com/ResNet/ImageNet-ResNet50-SE.npz"),
    case("missing-npz-path", {"--pretrained": "{tmp}/none.npz"}, 2, "none.npz", "not found"),
    case("class-index-out-of-range", {"--number_of_class": "1"}, 2,
         "MYSET/train.txt:2: class index 1 outside [0, 1) (--number_of_class 1)"),
    case("fewer-images-than-the-batch", {"--batch": "16"}, 2, "MYSET/train.txt has 8 images, fewer than one batch of 16"),
    case("label-list-not-utf8", {"--dataset_name": "LATIN"}, 2, "LATIN/train.txt:1: not UTF-8 text"),
    case("malformed-label-line", {"--dataset_name": "BROKEN"}, 2, "BROKEN/train.txt:2:", "got 4 fields"),
    case("most-boxes-inverted", {"--dataset_name": "INVERTED"}, 2,
         "INVERTED/train.txt: 5 of 8 boxes are inverted", "it looks like an x y w h"),
    case("one-box-inverted", {"--dataset_name": "ONEINVERTED"}, 2,
         "ONEINVERTED/train.txt: 1 of 8 boxes are inverted (x2 < x1 or y2 < y1; line 1)",
         "which an x1 y1 x2 y2 list never has", "it looks like an x y w h"),
    case("val-image-without-a-box", {"--dataset_name": "NOBOX"}, 2,
         "NOBOX/val.txt: 1 of the 4 evaluated images have no box (first: class 0/val 2.jpg)"),
    case("log-dir-too-long", {"--log_dir": "{tmp}/" + "a" * 4000}, 2, "cannot use --log_dir", "File name too long"),
    case("missing-data-set", {"--dataset_name": "NOSUCH"}, 2, "NOSUCH/train.txt is missing"),
    case("missing-cub-names-its-script", {"--dataset_name": "CUB", "--number_of_class": "200"}, 2, "prepare_cub.sh"),
    case("several-heads-for-cam", {"--method_name": "CAM", "--ose_heads": ["3x3", "1x3"]}, 2, "--ose_heads needs"),
]


@pytest.mark.parametrize("changes, code, words", TRAIN_CASES)
def test_train_py_bad_input(data, tmp_path, capsys, monkeypatch, changes, code, words):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", ""))  # restored after
    monkeypatch.setattr(loop, "PRETRAINED_DIR", str(tmp_path / "pretrained"))
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder\n")
    argv = list(BASE)
    for flag, value in changes.items():
        argv = without(argv, flag) if value is None else argv + [flag] if value is True else with_(argv, flag, value)
    assert train.main(fill(argv, data, tmp_path, a_file)) == code
    line = one_error_line(capsys.readouterr().err, "train.py")
    for word in words:
        assert word.format(data=data, tmp=tmp_path, file=a_file) in line


@pytest.mark.skipif(compat.gpu_count() > 0, reason="a GPU is visible")
def test_released_gpu_flag_on_a_cpu_machine_says_drop_gpu(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert train.main(fill(BASE + ["--gpu", "1"], data, tmp_path, "")) == 2
    line = one_error_line(capsys.readouterr().err, "train.py")
    assert "--gpu 1: TensorFlow sees no GPU on this machine; drop --gpu to train on the CPU" in line


# ----------------------------------------------------------------------------- train.py subprocesses

def run_train(argv, timeout=240):
    return subprocess.run([sys.executable, "train.py", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def test_own_data_set_with_spaces_in_paths_trains_and_reports_the_box_past_its_image(data, tmp_path):
    result = run_train(fill(BASE, data, tmp_path, ""))
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.isfile(tmp_path / "run" / "model-1.index")
    assert f"{data}/MYSET/val.txt: 1 of 4 boxes extend past their image (line 2)" in result.stderr


def test_npz_without_a_single_graph_key_is_an_error_not_a_run_from_scratch(data, tmp_path):
    npz = tmp_path / "other.npz"
    np.savez(npz, **{"fc6/W": np.zeros((2, 2), np.float32)})
    result = run_train(fill(BASE + ["--pretrained", str(npz)], data, tmp_path, ""))
    assert result.returncode == 2
    line = one_error_line(result.stderr, "train.py")
    assert f"{npz}: none of its keys names a variable of this graph" in line
    assert "http://models.tensorpack.com/Caffe-Converted/vgg16.npz" in line
    assert not os.path.exists(tmp_path / "run" / "checkpoint")


# ----------------------------------------------------------------------------- evaluation dataflow

def test_a_val_list_with_most_boxes_past_their_images_is_refused(data):
    dataflow = get_eval_dataflow(os.path.join(data, "OUTSIDE", "val.txt"), os.path.join(data, "OUTSIDE", "images"),
                                 final_size=32, batch_size=2, workers=0)
    dataflow.reset_state()
    with pytest.raises(LabelListError, match=r"OUTSIDE/val.txt: 4 of the 4 boxes checked so far extend past"):
        list(dataflow)


def test_eval_dataflow_counts_boxes_past_their_images(data):
    dataflow = get_eval_dataflow(os.path.join(data, "MYSET", "val.txt"), os.path.join(data, "MYSET", "images"),
                                 final_size=32, batch_size=2, workers=0)
    dataflow.reset_state()
    for _ in range(2):   # counted per pass, not summed over passes
        assert sum(len(batch[1]) for batch in dataflow) == 4
    assert dataflow.boxes_outside_image.summary() == {
        "label_file": os.path.join(data, "MYSET", "val.txt"), "checked": 4, "outside": 1, "lines": [2]}


# ----------------------------------------------------------------------------- standalone scorer

@pytest.fixture
def cams(tmp_path):
    folder = tmp_path / "cams"
    folder.mkdir()
    cam = np.zeros((20, 20))
    cam[5:15, 5:15] = 1
    for name in ("a", "b", "c"):
        np.save(folder / f"{name}.npy", cam)
    labels = tmp_path / "labels.txt"
    labels.write_text("a.jpg\t0\t5\t5\t14\t14\nb.jpg\t0\t5\t5\t14\t14\nc.jpg\t0\t5\t5\t14\t14\n")
    return folder, labels


SCORER_CASES = [
    pytest.param(["--cam_threshold", "1.5"], None, "--cam_threshold must be in [0, 1], got 1.5", id="threshold"),
    pytest.param([], b"a.jpg\t0\t5\t5\t14\t14\nb\xe9.jpg\t0\t5\t5\t14\t14\n", "labels.txt:2: not UTF-8 text",
                 id="not-utf8"),
    pytest.param([], b"a.jpg\t0\t5\t5\t14\n", "labels.txt:1: expected", id="malformed"),
    pytest.param(["--label_file", "{tmp}/none.txt"], None, "none.txt: cannot read the label file", id="no-file"),
    pytest.param([], b"", "labels.txt: the label file lists no image", id="empty-label-file"),
    pytest.param(["--cam_dir", "{tmp}/nowhere"], None, "CAM folder {tmp}/nowhere not found", id="no-cam-dir"),
    pytest.param([], "zero-cam", "b.npy: an empty CAM (0x0 WxH)", id="0x0-cam"),
    pytest.param([], b"a.jpg\t0\t5\t5\t14\t14\nb.jpg\t0\t9\t5\t4\t14\n", "labels.txt: 1 of 2 boxes are inverted",
                 id="inverted-box"),
    pytest.param(["--out", "{tmp}/a_file/m.json"], None, "cannot create the folder {tmp}/a_file: a file of that name",
                 id="out-under-a-file"),
]


@pytest.mark.parametrize("extra, label_bytes, words", SCORER_CASES)
def test_scorer_bad_input(cams, tmp_path, capsys, extra, label_bytes, words):
    folder, labels = cams
    (tmp_path / "a_file").write_text("x\n")
    if label_bytes == "zero-cam":
        np.save(folder / "b.npy", np.zeros((0, 0)))
    elif label_bytes is not None:
        labels.write_bytes(label_bytes)
    argv = ["--cam_dir", str(folder), "--label_file", str(labels), "--out", str(tmp_path / "m.json")]
    assert scorer.main(argv + [a.format(tmp=tmp_path) for a in extra]) == 2
    assert words.format(tmp=tmp_path) in one_error_line(capsys.readouterr().err, "scorer")
    assert not (tmp_path / "m.json").exists() and not list(tmp_path.glob(".*"))     # nothing partial


def test_scorer_counts_and_reports_nonfinite_cams(cams, tmp_path, capsys):
    folder, labels = cams
    cam = np.load(folder / "b.npy")
    cam[0, 0] = np.nan
    np.save(folder / "b.npy", cam)
    cam[0, 0] = np.inf
    np.save(folder / "c.npy", cam)
    out = tmp_path / "m.json"
    assert scorer.main(["--cam_dir", str(folder), "--label_file", str(labels), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert ("warning: 2 of 3 CAMs hold NaN or inf values (b.npy, c.npy); scored as all-zero maps "
            "(no box: a miss), as wsolevaluation does for NaN") in printed
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["nonfinite_cams"] == 2 and metrics["nonfinite_cam_files"] == ["b.npy", "c.npy"]
    assert metrics["gt_known_loc"] == pytest.approx(100 / 3)   # only a.jpg's finite CAM hits


def test_scorer_counts_boxes_past_their_cam(cams, tmp_path, capsys):
    folder, labels = cams
    labels.write_text("a.jpg\t0\t5\t5\t14\t14\nb.jpg\t0\t5\t5\t24\t14\nc.jpg\t0\t5\t5\t14\t14\n")
    out = tmp_path / "m.json"
    assert scorer.main(["--cam_dir", str(folder), "--label_file", str(labels), "--out", str(out)]) == 0
    assert "warning: 1 of 3 boxes extend past their CAM (lines 2); scored as given" in capsys.readouterr().out
    assert json.loads(out.read_text())["metrics"]["boxes_outside_cam"]["outside"] == 1


# ----------------------------------------------------------------------------- other entry points

def test_paper_table_names_an_unreadable_run(tmp_path, capsys):
    assert paper_table.main([str(tmp_path / "nothing")]) == 2
    assert "nothing/result/metrics.json: cannot read it" in one_error_line(capsys.readouterr().err, "paper_table")


def _fake_run(folder, **config):
    from utils.evaluation.report import write_metrics_json
    write_metrics_json(str(folder / "result" / "001-model-1" / "metrics.json"), {"top1_cls": 50.0},
                       dict({"method": "CAM", "dataset": "SYNTH", "arch": "vgg_gap"}, **config))


def test_paper_table_out_that_cannot_be_written_is_one_line(tmp_path, capsys):
    _fake_run(tmp_path / "run")
    (tmp_path / "a_file").write_text("x\n")
    assert paper_table.main([str(tmp_path / "run"), "--out", str(tmp_path / "a_file" / "t.md")]) == 2
    line = one_error_line(capsys.readouterr().err, "paper_table")
    assert f"cannot create the folder {tmp_path / 'a_file'}: a file of that name is in the way" in line


def _metadata(root, ids=b"a b.jpg\n", labels=b"a b.jpg,0\n"):
    split = root / "CUB" / "test"
    split.mkdir(parents=True)
    (split / "image_ids.txt").write_bytes(ids)
    (split / "class_labels.txt").write_bytes(labels)
    (split / "localization.txt").write_bytes(b"a b.jpg,1,2,30,40\n")
    return root


@pytest.mark.parametrize("make, out, words", [
    (lambda root: _metadata(root, labels=b"a b.jpg,0\nb\xe9.jpg,1\n"), "{tmp}/lists",
     "class_labels.txt:2: not UTF-8 text"),
    (_metadata, "{tmp}/a_file/lists", "cannot create the folder {tmp}/a_file/lists/CUB"),
], ids=["not-utf8", "out-under-a-file"])
def test_metadata_to_lists_bad_input(tmp_path, capsys, make, out, words):
    from utils.data import metadata
    (tmp_path / "a_file").write_text("x\n")
    make(tmp_path / "meta")
    argv = ["to-lists", str(tmp_path / "meta"), out.format(tmp=tmp_path)]
    assert metadata.main(argv) == 2
    assert words.format(tmp=tmp_path) in one_error_line(capsys.readouterr().err, "utils.data.metadata")
    assert not (tmp_path / "lists").exists()


def test_metadata_to_lists_keeps_spaces_in_paths(tmp_path):
    from utils.data import metadata
    from utils.data.labels import read_label_list
    _metadata(tmp_path / "meta")
    assert metadata.main(["to-lists", str(tmp_path / "meta"), str(tmp_path / "lists")]) == 0
    assert [e.path for e in read_label_list(str(tmp_path / "lists" / "CUB" / "val.txt"))] == ["a b.jpg"]


@pytest.mark.parametrize("tau, refused", [("1.5", True), ("-0.1", True), ("nan", True), ("1.0", False)])
def test_predict_cam_threshold_range_is_the_flags_one(tmp_path, capsys, tau, refused):
    """Refused with train.py's wording ([0, 1], flags.out_of_range); 1.0 gets past the check
    (to the missing run folder)."""
    from utils.evaluation import predict
    assert predict.main(["--log_dir", str(tmp_path / "none"), "x.jpg", "--out", str(tmp_path / "o"),
                         "--cam_threshold", tau]) == 2
    line = one_error_line(capsys.readouterr().err, "predict.py")
    assert (f"--cam_threshold must be in [0, 1], got {float(tau)}" in line) == refused
    assert refused or line.endswith("none: no such run folder or checkpoint")


def test_predict_resolves_a_bare_log_dir_name_as_train_py_does(tmp_path, capsys, monkeypatch):
    from utils.config import resolve_log_dir
    from utils.evaluation import predict
    monkeypatch.chdir(tmp_path)
    assert resolve_log_dir("run") == os.path.join("train_log", "run")
    assert predict.main(["--log_dir", "demo_run", "x.jpg", "--out", "o"]) == 2
    assert one_error_line(capsys.readouterr().err, "predict.py").endswith(
        "train_log/demo_run: no such run folder or checkpoint")
    assert predict.main(["--log_dir", "demo/CAM", "x.jpg", "--out", "o"]) == 2
    assert one_error_line(capsys.readouterr().err, "predict.py").endswith("demo/CAM: no such run folder or checkpoint")


def run_command(*argv):
    return subprocess.run(list(argv), cwd=REPO, capture_output=True, text=True, timeout=120)


def _truncated_tgz(path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = np.random.RandomState(0).bytes(50_000)
        info = tarfile.TarInfo("CUB_200_2011/images/001.A/a.jpg")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    packed = gzip.compress(buffer.getvalue())
    path.write_bytes(packed[:len(packed) // 2])


@pytest.mark.parametrize("script, make, flag", [
    ("prepare_cub.sh", lambda p: p.write_text("this is not an archive\n"), None),
    ("prepare_cub.sh", _truncated_tgz, None),
    ("prepare_imagenet.sh", lambda p: p.write_text("this is not an archive\n"), "--train-tar"),
], ids=["cub-not-a-tar", "cub-truncated", "imagenet-not-a-tar"])
def test_prepare_scripts_name_a_bad_archive(tmp_path, script, make, flag):
    archive = tmp_path / "archive.tgz"
    make(archive)
    argv = [str(archive)] if flag is None else [flag, str(archive)]
    result = run_command("bash", os.path.join("dataset", script), *argv, "--dataset-dir", str(tmp_path / "out"))
    assert result.returncode == 2
    assert f"{archive}: not a readable tar archive" in one_error_line(result.stderr, "prepare")


@pytest.mark.parametrize("argv, words", [
    (["--num_classes", "0"], "--num_classes must be >= 1, got 0"),
    (["--out", "{file}/SYNTH", "--num_train", "2", "--num_val", "1", "--size", "32"], "cannot write the set to"),
], ids=["no-classes", "out-under-a-file"])
def test_synthetic_generator_bad_input(tmp_path, argv, words):
    a_file = tmp_path / "a_file"
    a_file.write_text("x\n")
    result = run_command(sys.executable, "-m", "utils.data.synthetic", *[a.format(file=a_file) for a in argv])
    assert result.returncode == 2
    assert words in one_error_line(result.stderr, "python -m utils.data.synthetic")


@pytest.mark.parametrize("flag", ["--out", "--data_dir"])
def test_demo_names_a_folder_it_cannot_write(tmp_path, flag):
    a_file = tmp_path / "a_file"
    a_file.write_text("x\n")
    argv = ["--out", str(tmp_path / "demo"), "--data_dir", str(tmp_path / "data"), "--num_train", "2",
            "--num_val", "1", "--image_size", "32"]
    argv[argv.index(flag) + 1] = str(a_file / "sub")
    result = run_command(sys.executable, "-m", "utils.demo", *argv)
    assert result.returncode == 2
    assert f"cannot write {a_file}" in one_error_line(result.stderr, "run_demo.sh")


def test_demo_names_a_failed_training_and_its_log(tmp_path):
    """A train.py run that fails inside the demo: one line with train.py's own error and the log."""
    result = run_command(sys.executable, "-m", "utils.demo", "--out", str(tmp_path / "demo"), "--data_dir",
                         str(tmp_path / "data"), "--num_classes", "2", "--num_train", "4", "--num_val", "2",
                         "--image_size", "32", "--size", "16", "--workers", "0")
    assert result.returncode == 2
    line = one_error_line(result.stderr, "run_demo.sh")
    assert "[demo] CAM failed (exit 2)" in line and "final_size" in line
    assert "(log: " in line and line.rstrip(")").endswith("/CAM.log") and str(tmp_path / 'demo') in line


def test_predict_image_lists_keep_spaces_in_paths(tmp_path):
    from utils.evaluation.predict import collect_images
    (tmp_path / "my photos").mkdir()
    image = tmp_path / "my photos" / "a b.jpg"
    image.write_bytes(b"not decoded here")
    listing = tmp_path / "list.txt"
    listing.write_text("my photos/a b.jpg\nmy photos/a b.jpg\t3\t10\t10\t20\t20\n\nplain.jpg 0\n")
    assert collect_images([str(listing)]) == [str(image), str(image), str(tmp_path / "plain.jpg")]
