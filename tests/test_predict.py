"""predict.py, the SavedModel export and --evaluate --save_cams on one tiny trained run."""
import csv
import json
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from conftest import REPO, bright_square, new_session, write_designed_checkpoint
from utils.data.synthetic import ensure_synthetic
from utils.evaluation.cam import FUSION_RULES, fuse_heads
from utils.evaluation.localization import normalize_cam, reference_box, resize_cam

pytestmark = pytest.mark.duration(35)  # seconds, for the scheduler (conftest.py)

SIZE = 48
TAU = 0.6


def train_command(data_dir, log_dir, *extra):
    return [sys.executable, os.path.join(REPO, "train.py"), "--dataset_name", "SYNTH", "--data_dir", str(data_dir),
            "--arch_name", "vgg_gap", "--method_name", "E2Net", "--final_size", str(SIZE),
            "--width_multiplier", "0.125", "--batch", "16", "--epoch", "1", "--steps_per_epoch", "2",
            "--workers", "0", "--seed", "1", "--log_dir", str(log_dir), *extra]


def run(cmd, **kwargs):
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(data dir, run folder) of a 2-step VGG16-GAP E2Net (3 OSE heads) at 48 px, width 0.125,
    whose evaluated checkpoint is then replaced by designed weights (conftest: CAMs mark the
    bright parts of an image), so that no outcome rests on what the two steps learned."""
    root = tmp_path_factory.mktemp("predict")
    ensure_synthetic(str(root / "data" / "SYNTH"), workers=1, num_classes=4, num_train=32, num_val=16,
                     size=64, seed=3)
    run(train_command(root / "data", root / "run"))
    write_designed_checkpoint(root / "run")
    return root / "data", root / "run"


@pytest.fixture(scope="module")
def predictor(trained):
    """The run's network as predict.py builds it."""
    from utils.config import run_config
    from utils.evaluation.predict import RunPredictor
    return RunPredictor(run_config(str(trained[1])))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Images of several sizes and formats (each with a bright rectangle off-centre, where the
    designed checkpoint's CAM is), a corrupt file and a missing one."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    colour = cv2.GaussianBlur(rng.integers(0, 255, (70, 120, 3), dtype=np.uint8), (9, 9), 3)
    cv2.imwrite(str(folder / "wide.jpg"), bright_square(colour, BRIGHT["wide.jpg"]))          # non-square JPEG
    cv2.imwrite(str(folder / "gray.png"), bright_square(rng.integers(0, 255, (90, 50), dtype=np.uint8),
                                                        BRIGHT["gray.png"]))                   # grayscale PNG
    cv2.imwrite(str(folder / "big.png"), bright_square(rng.integers(0, 255, (150, 200, 3), dtype=np.uint8),
                                                       BRIGHT["big.png"]))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return folder, [str(folder / n) for n in ("wide.jpg", "gray.png", "big.png", "broken.jpg", "missing.png")]


# x1 y1 x2 y2 of each image's bright rectangle: a third of its width and height, in a corner (the
# designed CAM is 3 x 3 at 48 px)
BRIGHT = {"wide.jpg": (0, 0, 40, 23), "gray.png": (33, 60, 50, 90), "big.png": (133, 0, 200, 50)}


def view_of(image, view):
    """The network input and (resize, offset) of a view, computed by hand."""
    if view == "resize":
        return cv2.resize(image, (SIZE, SIZE)), SIZE, 0
    resize = SIZE + 32
    return cv2.resize(image, (resize, resize))[16:16 + SIZE, 16:16 + SIZE], resize, 16


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_readme_predict_command_maps_boxes_to_original_pixels(trained, predictor, images, tmp_path):
    _, log_dir = trained
    folder, paths = images
    out = tmp_path / "pred"
    # README: python predict.py --log_dir RUN IMAGES... --out DIR (plus --cam_threshold and --save_cams here)
    result = run([sys.executable, "predict.py", "--log_dir", str(log_dir), *paths, "--out", str(out),
                  "--cam_threshold", str(TAU), "--save_cams", "--batch_size", "2"])
    assert "3 of 5 images predicted" in result.stdout and "2 unreadable" in result.stdout
    assert "Traceback" not in result.stderr
    with open(out / "skipped.tsv") as f:
        assert [row["path"] for row in csv.DictReader(f, delimiter="\t")] == paths[3:]
    records = read_jsonl(out / "predictions.jsonl")
    with open(out / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in records] == [r["image"] for r in rows] == paths[:3]
    class_names = open(os.path.join(log_dir, "words.txt")).read().split()[1::2]
    whole_box = 0
    for record, row in zip(records, rows):
        image = cv2.imread(record["image"], cv2.IMREAD_COLOR)
        height, width = image.shape[:2]
        assert (record["width"], record["height"]) == (width, height)
        # the network saw the whole image resized to 48 x 48
        crop, resize, offset = view_of(image, "resize")
        logits, cams = predictor([crop])
        probabilities = np.exp(logits[0] - logits[0].max())
        probabilities /= probabilities.sum()
        top = np.argsort(-probabilities)
        assert [t["class"] for t in record["top5"]] == list(top)
        assert [t["name"] for t in record["top5"]] == [class_names[c] for c in top]
        assert [t["score"] for t in record["top5"]] == pytest.approx(probabilities[top], abs=1e-5)
        assert record["cam_class"] == top[0] and record["cam_threshold"] == TAU
        cam = np.load(out / record["cam"])
        np.testing.assert_allclose(cam, resize_cam(cams[0], (SIZE, SIZE)), rtol=1e-4, atol=1e-4)
        assert record["box_in_view"] == reference_box(normalize_cam(cam), TAU).tolist()
        x1, y1, x2, y2 = record["box_in_view"]
        by_hand = [int(x1 * width / SIZE + 0.5), int(y1 * height / SIZE + 0.5), int(x2 * width / SIZE + 0.5),
                   int(y2 * height / SIZE + 0.5)]
        assert record["box"] == by_hand == [int(row[k]) for k in ("x1", "y1", "x2", "y2")]
        whole_box += record["box_in_view"] == [0, 0, SIZE, SIZE]
        # the designed CAM marks the bright corner: the box in original pixels holds its centre and
        # not the opposite corner of the image
        bx1, by1, bx2, by2 = BRIGHT[os.path.basename(record["image"])]
        centre, opposite = ((bx1 + bx2) / 2, (by1 + by2) / 2), (width - bx2 + bx1, height - by2 + by1)
        inside = [record["box"][0] <= x <= record["box"][2] and record["box"][1] <= y <= record["box"][3]
                  for x, y in (centre, opposite)]
        assert inside == [True, False], (record["box"], BRIGHT)
        overlay = cv2.imread(str(out / record["overlay"]))
        assert overlay.shape[0] > height and overlay.shape[1] >= width
        bx1, by1, bx2, by2 = record["box"]
        assert tuple(overlay[(by1 + by2) // 2, bx1]) == (0, 0, 255)        # left edge of the box: red
        assert tuple(overlay[by1, (bx1 + bx2) // 2]) == (0, 0, 255)        # top edge
    assert whole_box == 0


def test_centre_crop_view_and_class_by_name(trained, images, tmp_path):
    from utils.evaluation.predict import main
    _, log_dir = trained
    _, paths = images
    class_name = open(os.path.join(log_dir, "words.txt")).read().split()[5]      # class 2
    out = tmp_path / "crop"
    assert main(["--log_dir", str(log_dir), *paths[:3], "--out", str(out), "--view", "centre_crop",
                 "--class", class_name, "--cam_threshold", str(TAU), "--save_cams"]) == 0
    for record in read_jsonl(out / "predictions.jsonl"):
        assert record["cam_class"] == 2 and record["cam_class_name"] == class_name
        height, width = record["height"], record["width"]
        assert record["view_region"] == pytest.approx([16 * width / 80, 16 * height / 80,
                                                       64 * width / 80, 64 * height / 80])
        cam = np.load(out / record["cam"])
        assert record["box_in_view"] == reference_box(normalize_cam(cam), TAU).tolist()
        x1, y1, x2, y2 = record["box_in_view"]
        assert record["box"] == [int((x1 + 16) * width / 80 + 0.5), int((y1 + 16) * height / 80 + 0.5),
                                 int((x2 + 16) * width / 80 + 0.5), int((y2 + 16) * height / 80 + 0.5)]


def test_predict_bad_class_is_one_line(trained, images, tmp_path, capsys):
    from utils.evaluation.predict import main as predict_main
    _, log_dir = trained
    assert predict_main(["--log_dir", str(log_dir), images[1][0], "--out", str(tmp_path), "--class", "7"]) == 2
    assert capsys.readouterr().err.strip() == "predict.py: error: --class 7: outside [0, 4)"
    assert predict_main(["--log_dir", str(log_dir), *images[1][3:], "--out", str(tmp_path)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"predict.py: error: none of the 2 images could be read (first: {images[1][3]}: ")
    assert last.endswith("; nothing written") and os.listdir(tmp_path) == []


def write_metrics(path, metrics, when):
    os.makedirs(path.parent, exist_ok=True)
    path.write_text(json.dumps({"config": {}, "metrics": metrics}))
    os.utime(path, (when, when))


def test_default_threshold_is_the_newest_evaluation(tmp_path):
    from utils.evaluation.predict import evaluated_threshold
    assert evaluated_threshold(str(tmp_path)) is None
    for folder, tau, when in (("result", 0.3, 100), ("result/min-val-error-top1", 0.45, 200)):
        write_metrics(tmp_path / folder / "metrics.json", {"cam_threshold": tau}, when)
    assert evaluated_threshold(str(tmp_path)) == (0.45, str(tmp_path / "result/min-val-error-top1/metrics.json"))


def test_default_threshold_prefers_a_held_out_tau_to_a_newer_fixed_one(tmp_path):
    from utils.evaluation.predict import PredictError, evaluated_threshold
    held = tmp_path / "result" / "001-min-val-error-top1" / "metrics.json"
    write_metrics(held, {"cam_threshold": 0.2, "held_out_tau": {"chosen_on": "train_fullsup",
                                                                "reference": {"tau": 0.37}}}, 100)
    write_metrics(tmp_path / "result" / "002-min-val-error-top1" / "metrics.json", {"cam_threshold": 0.2}, 200)
    assert evaluated_threshold(str(tmp_path)) == (0.37, f"{held} (τ chosen on train_fullsup)")
    (tmp_path / "result" / "002-min-val-error-top1" / "metrics.json").write_text("{")
    with pytest.raises(PredictError, match="002-min-val-error-top1/metrics.json: cannot read the evaluated τ .*; "
                                           "give --cam_threshold"):
        evaluated_threshold(str(tmp_path))


@pytest.mark.parametrize("rule", FUSION_RULES)
@pytest.mark.parametrize("num_heads", [1, 3])
def test_tensorflow_fusion_equals_numpy(rule, num_heads):
    from utils.compat import tf
    from utils.evaluation.export import fused_cam
    rng = np.random.default_rng(num_heads)
    features = [rng.normal(size=(2, 3, 4, 6)).astype(np.float32) for _ in range(num_heads)]
    weights = [rng.normal(size=(6, 5)).astype(np.float32) for _ in range(num_heads)]
    classes = np.array([4, 1])
    with tf.Graph().as_default(), new_session() as sess:
        got = sess.run(fused_cam([tf.constant(f) for f in features], [tf.constant(w) for w in weights],
                                 tf.constant(classes), rule))
    np.testing.assert_allclose(got, fuse_heads(features, weights, classes, rule), rtol=1e-5, atol=1e-5)


LOAD_SAVED_MODEL = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    assert "tensorpack" not in sys.modules and "utils" not in sys.modules
    model = tf.saved_model.load(sys.argv[1])
    data = np.load(sys.argv[2])
    out = {k: v.numpy() for k, v in model.signatures["serving_default"](image=tf.constant(data["rgb"])).items()}
    out["top5_names"] = out["top5_names"].astype(str)
    by_class = model.signatures["cam_of_class"](image=tf.constant(data["rgb"]),
                                                class_index=tf.constant(data["classes"]))
    out["cam_of_class"] = by_class["cam"].numpy()
    np.savez(sys.argv[3], **out)
""")


def test_saved_model_in_plain_tensorflow_equals_the_predictor(trained, predictor, tmp_path):
    from utils.evaluation.export import main
    data_dir, log_dir = trained
    export_dir = tmp_path / "saved_model"
    # README: python -m utils.evaluation.export --log_dir RUN --out DIR
    assert main(["--log_dir", str(log_dir), "--out", str(export_dir)]) == 0
    names = (export_dir / "assets.extra" / "class_names.txt").read_text().split()
    assert names == open(os.path.join(log_dir, "words.txt")).read().split()[1::2]

    images = [cv2.imread(str(p)) for p in sorted((data_dir / "SYNTH" / "images").rglob("val_*.jpg"))[:6]]
    crops = np.stack([view_of(image, "resize")[0] for image in images])
    classes = np.array([3, 0, 1, 2, 3, 0], np.int32)
    np.savez(tmp_path / "in.npz", rgb=crops[..., ::-1], classes=classes)
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    run([sys.executable, "-c", LOAD_SAVED_MODEL, str(export_dir), str(tmp_path / "in.npz"),
         str(tmp_path / "out.npz")], env=env)
    served = np.load(tmp_path / "out.npz")

    logits, cams = predictor(crops)
    _, cams_of_class = predictor(crops, classes)
    np.testing.assert_allclose(served["logits"], logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(served["cam"], cams, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(served["cam_of_class"], cams_of_class, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(served["top5_classes"], np.argsort(-logits, axis=1, kind="stable"))
    assert list(served["top5_names"][0]) == [names[c] for c in served["top5_classes"][0]]
    np.testing.assert_allclose(served["probabilities"].sum(axis=1), 1, rtol=1e-5)


def test_scorer_on_saved_cams_reproduces_evaluate(trained, tmp_path):
    from utils.evaluation.report import read_metrics
    from utils.evaluation.scorer import main as scorer_main
    data_dir, log_dir = trained
    cam_dir = tmp_path / "cams"
    from train import main as train_main
    assert train_main(train_command(data_dir, log_dir, "--evaluate", "--save_cams", str(cam_dir),
                                    "--number_of_examples", "2")[2:]) == 0
    evaluated = read_metrics(os.path.join(log_dir, "result", "latest"))["metrics"]
    assert len(list(cam_dir.rglob("*.npy"))) == evaluated["num_images"] == 16
    scored_file = tmp_path / "scored.json"
    assert scorer_main(["--cam_dir", str(cam_dir), "--label_file", str(cam_dir / "labels.txt"),
                        "--cam_threshold", str(evaluated["cam_threshold"]), "--out", str(scored_file)]) == 0
    scored = read_metrics(str(scored_file))["metrics"]
    # reference protocol at tau and over the sweep, wsolevaluation's MaxBoxAcc / V2: identical
    for key in ("num_images", "cam_threshold", "gt_known_loc", "maxboxacc", "maxboxacc_v2", "box_accuracy"):
        assert scored[key] == evaluated[key], key
    for key in ("thresholds", "gt_known_loc", "best_threshold"):
        assert scored["sweep"][key] == evaluated["sweep"][key], key
    assert scored["sweep"]["best"]["gt_known_loc"] == evaluated["sweep"]["best"]["gt_known_loc"]
    # the data set's whole-image masks: mapped into the CAMs' crop frame as --evaluate does
    assert scorer_main(["--cam_dir", str(cam_dir), "--label_file", str(cam_dir / "labels.txt"), "--mask_dir",
                        str(data_dir / "SYNTH" / "masks"), "--out", str(scored_file)]) == 0
    pixel = read_metrics(str(scored_file))["metrics"]["pixel"]
    assert pixel["pxap"] == evaluated["pixel"]["pxap"] and pixel["masks_resized_to_the_cam"] == 16
    assert pixel["mask_mapping"] == "into the evaluation crop (as --evaluate)"
    panel = cv2.imread(str(next((log_dir / "result" / "latest" / "examples").glob("000_*.png"))))
    assert panel.shape[1] >= 3 * 224 and panel.shape[0] > 224         # three cells of >= 224 px, captions


def test_crop_boxes_to_original_inverts_the_crop_transform():
    from utils.data.transforms import crop_boxes_to_original, eval_boxes
    boxes = np.array([[10, 20, 150, 90], [0, 0, 199, 99]], np.float64)
    in_crop = eval_boxes(boxes, (100, 200), 48)          # resize to 80, centre crop 48 at offset 16
    np.testing.assert_array_equal(in_crop, np.trunc(boxes * np.array([80 / 200, 80 / 100] * 2) - 16))
    back = crop_boxes_to_original(in_crop, (100, 200), 80, 16)
    np.testing.assert_allclose(back, (in_crop + 16) * np.array([200 / 80, 100 / 80] * 2))
    assert np.all(np.abs(back - boxes) < np.array([2.5, 1.25] * 2))   # within one crop pixel of the box


def test_a_reused_out_folder_keeps_nothing_of_the_earlier_predictions(trained, images, tmp_path, capsys):
    from utils.evaluation.predict import main as predict_main
    _, log_dir = trained
    _, paths = images
    out = tmp_path / "pred"
    assert predict_main(["--log_dir", str(log_dir), *paths, "--out", str(out), "--cam_threshold", str(TAU)]) == 0
    assert (out / "skipped.tsv").is_file() and len(list((out / "overlays").iterdir())) == 3
    capsys.readouterr()
    assert predict_main(["--log_dir", str(log_dir), paths[1], "--out", str(out), "--cam_threshold", str(TAU)]) == 0
    assert f"replaced the earlier predictions in {out}" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == ["overlays", "predictions.csv", "predictions.jsonl"]   # no stale skipped.tsv
    assert [p.name for p in (out / "overlays").iterdir()] == ["00000_gray.png"]
    assert [r["image"] for r in read_jsonl(out / "predictions.jsonl")] == [paths[1]]
    (out / "notes.txt").write_text("mine")
    assert predict_main(["--log_dir", str(log_dir), paths[1], "--out", str(out)]) == 2
    assert "holds files that are not a predict.py output (notes.txt)" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("target", ["--out", "--save_cams"])
def test_unwritable_predict_and_evaluate_outputs_are_one_line(trained, images, tmp_path, capsys, target):
    from train import main as train_main
    from utils.evaluation.predict import main as predict_main
    data_dir, log_dir = trained
    a_file = tmp_path / "a_file"
    a_file.write_text("x\n")
    if target == "--out":
        assert predict_main(["--log_dir", str(log_dir), images[1][0], "--out", str(a_file / "pred")]) == 2
        program = "predict.py"
    else:
        assert train_main(train_command(data_dir, log_dir, "--evaluate", "--save_cams", str(a_file / "cams"),
                                        "--number_of_val", "4")[2:]) == 2
        program = "train.py"
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"{program}: error: cannot ") and str(a_file) in line and "in the way" in line
    assert os.listdir(tmp_path) == ["a_file"]


def test_a_failed_export_leaves_nothing_and_its_rerun_is_not_refused(trained, tmp_path, capsys, monkeypatch):
    from utils.compat import tf
    from utils.evaluation.export import main
    _, log_dir = trained
    real_save = tf.saved_model.builder.SavedModelBuilder.save

    def full_disk(self, *args, **kwargs):
        real_save(self, *args, **kwargs)                     # the variables are written, then the disk is full
        raise tf.errors.ResourceExhaustedError(None, None, "saved_model.pb; No space left on device")

    (tmp_path / "a_file").write_text("x\n")
    assert main(["--log_dir", str(log_dir), "--out", str(tmp_path / "a_file" / "sm")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        f"export: error: cannot create the folder {tmp_path / 'a_file'}: a file of that name is in the way"
    os.remove(tmp_path / "a_file")
    monkeypatch.setattr(tf.saved_model.builder.SavedModelBuilder, "save", full_disk)
    assert main(["--log_dir", str(log_dir), "--out", str(tmp_path / "sm")]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == f"export: error: cannot write the SavedModel {tmp_path / 'sm'}: saved_model.pb; No space left on device"
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(tf.saved_model.builder.SavedModelBuilder, "save", real_save)
    assert main(["--log_dir", str(log_dir), "--out", str(tmp_path / "sm")]) == 0
    assert sorted(os.listdir(tmp_path / "sm")) == ["assets.extra", "saved_model.pb", "variables"]
