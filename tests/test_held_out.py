"""Held-out τ (utils.evaluation.held_out) on a hand-made case, and PxAP inside WSOLEvaluator."""
import numpy as np
import pytest

from utils.evaluation.held_out import ThresholdMismatchError, held_out_selection
from utils.evaluation.metrics import WSOLEvaluator

# One CAM for every image: a 16x16 halo at 0.5 (rows/cols 2..17) around a 4x4 core at 1.0 (8..11).
# Low τ keep the halo (box [2,2,18,18]), high τ the core only (box [8,8,12,12]).
CAM = np.zeros((20, 20))
CAM[2:18, 2:18] = 0.5
CAM[8:12, 8:12] = 1.0
CORE_BOX, HALO_BOX = [8, 8, 12, 12], [2, 2, 18, 18]
CORE_MASK, HALO_MASK = CAM == 1.0, CAM > 0


def metrics_of(gt_box, mask, images=3):
    evaluator = WSOLEvaluator(cam_threshold=0.2)
    for _ in range(images):
        evaluator.add(CAM, [gt_box], mask=mask)
    return evaluator.compute()


def test_held_out_tau_differs_from_the_test_split_best_and_is_applied():
    held_out = metrics_of(CORE_BOX, CORE_MASK)        # held-out split: the object is the core
    evaluated = metrics_of(HALO_BOX, HALO_MASK, 5)    # evaluation split: the object is the halo
    selection = held_out_selection(held_out, evaluated, "train_fullsup")
    assert selection["chosen_on"] == "train_fullsup" and selection["num_images"] == 3

    reference = selection["reference"]
    assert reference["tau"] == held_out["sweep"]["best_threshold"] != evaluated["sweep"]["best_threshold"]
    assert evaluated["sweep"]["best_threshold"] == 0.0 and evaluated["sweep"]["best"]["gt_known_loc"] == 100.0
    assert reference["held_out"] == 100.0
    assert reference["value"] == reference["gt_known_loc"] == 0.0   # the core box misses the halo GT

    # wsolevaluation levels: floor(255 * 0.5) = 127 > int(255 τ) keeps the halo up to τ = 0.49
    for iou in ("30", "50", "70"):
        assert selection["box_accuracy"][iou] == {"tau": 0.5, "held_out": 100.0, "value": 0.0}
        assert evaluated["box_accuracy"]["iou"][iou]["best_threshold"] == 0.0
    assert selection["maxboxacc_v2"] == 0.0 and evaluated["maxboxacc_v2"] == 100.0
    assert selection["maxboxacc"] == {"tau": 0.5, "held_out": 100.0, "value": 0.0}

    # pixels: scores >= 0.51 keep the core (held-out IoU 100); on the halo that is 16 / 256
    assert selection["piou"] == {"tau": 0.51, "held_out": 100.0, "value": pytest.approx(100 * 16 / 256)}
    assert evaluated["piou"] == 100.0 and evaluated["pixel"]["piou_threshold"] == 0.01


def test_pixel_metrics_in_the_evaluator():
    evaluated = metrics_of(HALO_BOX, HALO_MASK, 2)
    # scores 1 (16 px), 0.5 (240 px), 0 (144 px); all 256 object pixels score >= 0.5 -> PxAP 100
    assert evaluated["pxap"] == pytest.approx(100.0)
    assert evaluated["pixel"]["num_foreground_pixels"] == 2 * 256
    assert evaluated["pixel"]["images_without_mask"] == 0
    evaluator = WSOLEvaluator()
    evaluator.add(CAM, [HALO_BOX], mask=CORE_MASK)
    evaluator.add(CAM, [HALO_BOX])
    metrics = evaluator.compute()
    assert metrics["pixel"]["images_without_mask"] == 1 and metrics["pixel"]["num_images"] == 1
    assert metrics["pxap"] == pytest.approx(100.0)
    assert "pxap" not in metrics_without_masks()


def metrics_without_masks():
    evaluator = WSOLEvaluator()
    evaluator.add(CAM, [HALO_BOX])
    return evaluator.compute()


def test_different_sweeps_are_refused():
    held_out = metrics_of(CORE_BOX, CORE_MASK)
    evaluator = WSOLEvaluator(sweep_thresholds=[0.0, 0.5])
    evaluator.add(CAM, [HALO_BOX])
    with pytest.raises(ThresholdMismatchError):
        held_out_selection(held_out, evaluator.compute(), "x")


def test_metrics_markdown_shows_pixels_and_the_held_out_choice():
    from utils.evaluation.report import metrics_markdown
    held_out = metrics_of(CORE_BOX, CORE_MASK)
    metrics = metrics_of(HALO_BOX, HALO_MASK, 5)
    metrics["mask_dir"] = "masks"
    metrics["held_out_tau"] = {"label_file": "train_fullsup.txt",
                               **held_out_selection(held_out, metrics, "train_fullsup")}
    text = metrics_markdown(metrics, {"method": "CAM"})
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in text.splitlines() if line.startswith("| ")}
    assert rows["PxAP (pixel average precision)"] == ["100.00", ""]
    assert rows["PIoU (best pixel IoU)"] == ["100.00", "0.01"]
    assert "## τ chosen on the held-out split train_fullsup" in text
    assert rows["GT-known Loc"][-4:] == [f"{metrics['held_out_tau']['reference']['tau']:.2f}", "0.00", "0.00", "100.00"]
    assert rows["PIoU"] == ["0.51", "6.25", "0.01", "100.00"]
    assert "5 images with a mask, 0 without" in text and "train_fullsup.txt (3 images)" in text
