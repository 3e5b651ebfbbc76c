"""The evaluation pass's per-image consumers (numpy only): scores, part analysis, CAM writer,
example panels, fed with hand-made CAMs whose boxes and fractions are known."""
import os
import subprocess
import sys

import numpy as np

from tests.conftest import REPO
from utils.data.labels import read_label_list
from utils.evaluation.consumers import (CamWriter, ExamplePanels, ImageCam, PartAnalysis, Scores, run_consumers,
                                        sweep_thresholds)
from utils.evaluation.scorer import evaluate_cam_dir

SIZE = 32


class FakeMaskFolder:
    """``MaskFolder`` stand-in: the masks of ``{path: mask}`` (already in the crop frame)."""

    def __init__(self, masks, mask_dir="masks"):
        self.masks, self.mask_dir = masks, mask_dir

    def eval_mask(self, image_path, orig_hw, final_size):
        assert orig_hw == (40, 50) and final_size == SIZE
        return self.masks.get(image_path)


def image_cam(path, box, label, top1):
    """A crop whose CAM is 1 exactly on ``box`` (x1 y1 x2 y2, exclusive ends) and 0 elsewhere."""
    cam = np.zeros((SIZE, SIZE), np.float32)
    x1, y1, x2, y2 = box
    cam[y1:y2, x1:x2] = 1.0
    return ImageCam(path, np.full((SIZE, SIZE, 3), 7, np.uint8), cam, np.array([box], np.float64), label,
                    np.array([top1, 4, 5, 6, 7]), (40, 50))


def images():
    return [image_cam("a/one.jpg", (4, 4, 20, 20), 1, 1),     # box found, class right
            image_cam("b/two.jpg", (8, 0, 32, 16), 2, 3)]     # box found, class wrong


def test_consumers_import_no_tensorflow():
    code = ("import sys, utils.evaluation.consumers; "
            "sys.exit('tensorflow' in sys.modules or 'tensorpack' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_sweep_thresholds():
    np.testing.assert_allclose(sweep_thresholds(4), [0.0, 0.25, 0.5, 0.75])


def test_scores_records_and_metrics_of_exact_cams():
    masks = FakeMaskFolder({"a/one.jpg": np.pad(np.ones((16, 16)), ((4, 12), (4, 12)))})
    scores = Scores(0.5, sweep_thresholds(10), masks, SIZE, "list.txt")
    metrics = run_consumers(images(), scores)
    assert [r["image"] for r in scores.records] == ["a/one.jpg", "b/two.jpg"]
    assert [r["box"] for r in scores.records] == [[4, 4, 20, 20], [8, 0, 32, 16]]   # each CAM finds its GT box
    assert [r["iou"] for r in scores.records] == [1.0, 1.0]
    assert [r["top1_cls"] for r in scores.records] == [True, False]
    assert metrics["num_images"] == 2 and metrics["mask_dir"] == "masks"
    assert metrics["pixel"]["num_images"] == 1    # the second image has no mask


def test_cam_writer_round_trips_through_the_standalone_scorer(tmp_path):
    cam_dir = str(tmp_path / "cams")
    writer = CamWriter(cam_dir, SIZE)
    scores = Scores(0.5, sweep_thresholds(100), None, SIZE, "list.txt")
    metrics = run_consumers(images(), scores, [writer])
    assert os.path.isfile(os.path.join(cam_dir, "a", "one.npy")) and os.path.isfile(os.path.join(cam_dir, "b", "two.npy"))
    entries = read_label_list(writer.labels_file)
    assert [(e.path, e.label, e.boxes.tolist()) for e in entries] == [
        ("a/one.jpg", 1, [[4, 4, 20, 20]]), ("b/two.jpg", 2, [[8, 0, 32, 16]])]
    rescored = evaluate_cam_dir(cam_dir, writer.labels_file, cam_threshold=0.5)
    assert rescored["gt_known_loc"] == metrics["gt_known_loc"]
    assert rescored["box_accuracy"] == metrics["box_accuracy"]


def test_part_analysis_adds_parts_only_with_part_masks():
    head_and_body = np.zeros((SIZE, SIZE), np.uint8)
    head_and_body[4:12, 4:20] = 1     # head: the upper half of the first CAM's box
    head_and_body[12:20, 4:20] = 2    # body: its lower half
    analysis = PartAnalysis(FakeMaskFolder({"a/one.jpg": head_and_body}), SIZE, 0.5)
    metrics = run_consumers(images(), Scores(0.5, sweep_thresholds(10), None, SIZE, "list.txt"), [analysis])
    assert analysis.analyzer.num_images == 1
    at_tau = metrics["parts"]["at"]["cam_threshold"]      # percent of the region above τ
    assert at_tau["tau"] == 0.5 and metrics["parts"]["num_images"] == 1
    assert (at_tau["part_fraction"], at_tau["body_fraction"], at_tau["background_fraction"]) == (50.0, 50.0, 0.0)
    assert metrics["parts"]["at"]["best"]["tau"] == metrics["sweep"]["best_threshold"]
    nothing = run_consumers(images(), Scores(0.5, sweep_thresholds(10), None, SIZE, "list.txt"),
                            [PartAnalysis(FakeMaskFolder({}), SIZE, 0.5)])
    assert "parts" not in nothing


def test_example_panels_keep_the_first_ones_and_save_them(tmp_path):
    panels = ExamplePanels(1, ["zero", "one", "two", "three"], 0.5)
    run_consumers(images(), Scores(0.5, sweep_thresholds(10), None, SIZE, "list.txt"), [panels])
    assert list(panels.panels) == ["000_one"]
    panels.save(str(tmp_path))
    assert os.path.isfile(tmp_path / "000_one.png")
    with np.load(tmp_path / "cams.npz") as arrays:
        assert arrays["names"].tolist() == ["000_one"]
        assert arrays["cams"].shape == (1, SIZE, SIZE) and arrays["gt_boxes"].tolist() == [[4, 4, 20, 20]]
        assert arrays["pred_boxes"].tolist() == [[4, 4, 20, 20]]
