"""WSOLEvaluator on hand-computed cases, and the standalone scorer CLI."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from test_localization import rectangle_cam
from utils.evaluation.metrics import WSOLEvaluator
from utils.evaluation.scorer import entries_by_name, main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_iou_uses_the_plus_one_convention():
    # Ones in rows/cols 0..8 -> box [0, 0, 9, 9]: 10x10 = 100 pixels with +1.
    # GT [0, 0, 4, 9]: 5x10 = 50, inside the box -> IoU 0.5 (a hit); without +1 it would be 36/81.
    evaluator = WSOLEvaluator()
    record = evaluator.add(rectangle_cam((20, 20), (0, 8, 0, 8)), [[0, 0, 4, 9]])
    assert record["box"] == [0, 0, 9, 9]
    assert record["iou"] == pytest.approx(0.5)
    assert record["gt_known"] is True
    assert evaluator.compute()["gt_known_loc"] == 100.0


# Three binary maps (the masks, hence every box, are the same at every threshold):
#  1: one 6x6 blob, box [2,2,8,8] (49 px with +1); GT [2,2,7,7] (36 px): IoU 36/49 = 0.735
#  2: blobs [2,2,8,8] and [12,12,15,15] (16 px); GT [12,12,14,14] (9 px) matches only the
#     small one: IoU 9/16 = 0.5625; the largest box misses (IoU 0)
#  3: one blob, box [0,0,10,10] (121 px); GTs [15,15,19,19] (IoU 0) and [0,0,6,9] (70 px):
#     IoU 70/121 = 0.579 with the second GT only
THREE_IMAGES = [
    (rectangle_cam((20, 20), (2, 7, 2, 7)), [[2, 2, 7, 7]], 3, [1, 3, 5, 6, 7]),
    (rectangle_cam((20, 20), (2, 7, 2, 7), (12, 14, 12, 14)), [[12, 12, 14, 14]], 1, [1, 0, 2, 4, 5]),
    (rectangle_cam((20, 20), (0, 9, 0, 9)), [[15, 15, 19, 19], [0, 0, 6, 9]], 7, [0, 1, 2, 3, 4]),
]


def evaluate(images, with_classes=True, **options):
    evaluator = WSOLEvaluator(**options)
    records = [evaluator.add(cam, boxes, *((label, top5) if with_classes else ())) for cam, boxes, label, top5
               in images]
    return evaluator.compute(), records


def test_multi_gt_maxboxacc_v2_by_hand():
    metrics, _ = evaluate(THREE_IMAGES)
    per_iou = metrics["box_accuracy"]["iou"]
    # any box vs any GT: IoU 30 -> 3/3, IoU 50 -> 3/3, IoU 70 -> image 1 only
    assert per_iou["30"]["max"] == pytest.approx(100.0)
    assert per_iou["50"]["max"] == pytest.approx(100.0)
    assert per_iou["70"]["max"] == pytest.approx(100 / 3)
    assert metrics["maxboxacc_v2"] == pytest.approx((100 + 100 + 100 / 3) / 3)
    # MaxBoxAcc: largest contour at IoU 50 -> images 1 and 3
    assert metrics["maxboxacc"] == pytest.approx(200 / 3)
    # flat curves: the first threshold is the best
    assert per_iou["70"]["best_threshold"] == 0.0
    assert per_iou["70"]["curve"] == [pytest.approx(100 / 3)] * 100


def test_largest_contour_only_option():
    metrics, _ = evaluate(THREE_IMAGES, multi_contour=False)
    assert metrics["box_accuracy"]["iou"]["50"]["max"] == pytest.approx(200 / 3)
    assert metrics["maxboxacc_v2"] == pytest.approx((200 / 3 + 200 / 3 + 100 / 3) / 3)


def test_reference_metrics_and_classification_by_hand():
    metrics, records = evaluate(THREE_IMAGES)
    # reference: largest box vs the FIRST GT box -> only image 1 hits
    assert [r["gt_known"] for r in records] == [True, False, False]
    assert metrics["gt_known_loc"] == pytest.approx(100 / 3)
    # image 1: GT 3 is 2nd (top-5 only); image 2: GT 1 is 1st; image 3: GT 7 absent
    assert metrics["top1_cls"] == pytest.approx(100 / 3)
    assert metrics["top5_cls"] == pytest.approx(200 / 3)
    assert metrics["top1_loc"] == 0.0                       # the top-1 hit (image 2) has no box hit
    assert metrics["top5_loc"] == pytest.approx(100 / 3)     # image 1
    assert records[0] == {"label": 3, "top5": [1, 3, 5, 6, 7], "box": [2, 2, 8, 8],
                          "iou": pytest.approx(36 / 49), "gt_known": True, "top1_cls": False,
                          "top5_cls": True, "top1_loc": False, "top5_loc": True}
    assert metrics["num_images"] == 3
    json.dumps(metrics)


def test_without_classes_only_gt_known_metrics():
    metrics, records = evaluate(THREE_IMAGES, with_classes=False)
    for key in ("top1_cls", "top5_cls", "top1_loc", "top5_loc"):
        assert key not in metrics and key not in metrics["sweep"]
    assert records[0]["top1_cls"] is None
    assert metrics["gt_known_loc"] == pytest.approx(100 / 3)


def test_mixing_images_with_and_without_classes_is_refused():
    evaluator = WSOLEvaluator()
    cam, boxes, label, top5 = THREE_IMAGES[0]
    evaluator.add(cam, boxes, label, top5)
    with pytest.raises(ValueError):
        evaluator.add(cam, boxes)
    with pytest.raises(ValueError):
        evaluator.add(np.zeros((2, 3, 4)), boxes, label, top5)
    with pytest.raises(ValueError):
        WSOLEvaluator().compute()


def test_sweep_best_threshold_by_hand():
    # Outer 30x30 square at 0.5, inner 10x10 square at 1.0; GT = the inner square.
    cam = np.zeros((40, 40))
    cam[5:35, 5:35] = 0.5
    cam[15:25, 15:25] = 1.0
    metrics, _ = evaluate([(cam, [[15, 15, 24, 24]], None, None)], with_classes=False)
    # reference: t = 0.5 -> LUT index 128, kept while k(tau) <= 128, i.e. tau <= 0.50 (k(0.51) = 132):
    # the outer box [5,5,35,35] misses (IoU 100/961), the inner box [15,15,25,25] hits (100/121)
    assert metrics["sweep"]["gt_known_loc"] == [0.0] * 51 + [100.0] * 49
    assert metrics["sweep"]["best_threshold"] == 0.51
    assert metrics["sweep"]["best"] == {"gt_known_loc": 100.0}
    assert metrics["gt_known_loc"] == 0.0                  # at the default cam_threshold 0.2
    # wsolevaluation: floor(255 * 0.5) = 127 > int(255 tau) while tau <= 0.49
    entry = metrics["box_accuracy"]["iou"]["50"]
    assert entry["curve"] == [0.0] * 50 + [100.0] * 50
    assert entry["best_threshold"] == 0.5
    assert WSOLEvaluator(cam_threshold=0.51).add(cam, [[15, 15, 24, 24]])["box"] == [15, 15, 25, 25]


# --------------------------------------------------------------------------- standalone scorer

@pytest.fixture
def cam_dir(tmp_path):
    """Three CAMs (one in a sub-folder) and their label file."""
    cams = tmp_path / "cams"
    (cams / "sub").mkdir(parents=True)
    np.save(cams / "a.npy", THREE_IMAGES[0][0])
    np.save(cams / "sub" / "b.npy", THREE_IMAGES[1][0])
    np.save(cams / "c.npy", THREE_IMAGES[2][0])
    (tmp_path / "labels.txt").write_text(
        "a.jpg 3 2 2 7 7\n"
        "sub/b.png 1 12 12 14 14\n"
        "\n"
        "c 7 15 15 19 19\n"
        "c 7 0 0 6 9\n")
    return tmp_path


def test_entries_by_name_groups_boxes_by_name(cam_dir):
    entries = entries_by_name(cam_dir / "labels.txt")
    assert list(entries) == ["a.jpg", "sub/b.png", "c"]
    assert entries["c"].label == 7
    np.testing.assert_array_equal(entries["c"].boxes, [[15, 15, 19, 19], [0, 0, 6, 9]])


def test_scorer_writes_json(cam_dir, capsys):
    out = cam_dir / "metrics.json"
    code = main(["--cam_dir", str(cam_dir / "cams"), "--label_file", str(cam_dir / "labels.txt"),
                 "--out", str(out)])
    assert code == 0
    assert "GT-known Loc" in capsys.readouterr().out
    written = json.loads(out.read_text())
    assert written["config"]["protocol"] == "reference"
    metrics = written["metrics"]
    assert metrics["num_images"] == 3
    assert metrics["gt_known_loc"] == pytest.approx(100 / 3)
    assert metrics["maxboxacc_v2"] == pytest.approx((100 + 100 + 100 / 3) / 3)
    assert "top1_cls" not in metrics


def run_scorer(cam_dir, capsys):
    code = main(["--cam_dir", str(cam_dir / "cams"), "--label_file", str(cam_dir / "labels.txt"),
                 "--out", str(cam_dir / "metrics.json")])
    return code, capsys.readouterr().err.strip()


def test_scorer_missing_npy(cam_dir, capsys):
    os.remove(cam_dir / "cams" / "sub" / "b.npy")
    code, error = run_scorer(cam_dir, capsys)
    assert code == 2 and error.startswith("scorer: error: ") and os.path.join("sub", "b.npy") in error
    assert len(error.splitlines()) == 1


def test_scorer_rejects_a_3d_array(cam_dir, capsys):
    np.save(cam_dir / "cams" / "c.npy", np.zeros((2, 20, 20)))
    code, error = run_scorer(cam_dir, capsys)
    assert code == 2 and "c.npy" in error and "2-D" in error


def test_scorer_rejects_an_unknown_name(cam_dir, capsys):
    np.save(cam_dir / "cams" / "stranger.npy", np.zeros((20, 20)))
    code, error = run_scorer(cam_dir, capsys)
    assert code == 2 and "stranger.npy" in error


def test_scorer_rejects_a_malformed_line(cam_dir, capsys):
    with open(cam_dir / "labels.txt", "a") as labels:
        labels.write("d.jpg 2 1 2 3\n")
    code, error = run_scorer(cam_dir, capsys)
    assert code == 2 and "labels.txt:6" in error


def test_scorer_as_a_module(cam_dir):
    result = subprocess.run(
        [sys.executable, "-m", "utils.evaluation.scorer", "--cam_dir", str(cam_dir / "cams"),
         "--label_file", str(cam_dir / "labels.txt"), "--protocol", "wsolevaluation",
         "--out", str(cam_dir / "m.json")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "MaxBoxAccV2" in result.stdout
    assert json.loads((cam_dir / "m.json").read_text())["metrics"]["maxboxacc"] == pytest.approx(200 / 3)
