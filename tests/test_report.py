"""Report files and example pictures."""
import csv

import cv2
import numpy as np

from utils.evaluation.metrics import WSOLEvaluator
from utils.evaluation.report import read_metrics, write_report
from utils.evaluation.visualization import GT_COLOR, PANEL_PRED_COLORS, PRED_COLOR, draw_boxes, example_panel, heatmap_overlay, save_examples

CLASS_NAMES = [f"class_{i}" for i in range(10)]


def evaluated_run(num_images=12, seed=0):
    """Metrics and records (with image names) of Gaussian-blob CAMs near their GT box."""
    rng = np.random.default_rng(seed)
    evaluator = WSOLEvaluator(cam_threshold=0.3)
    grid_y, grid_x = np.mgrid[0:40, 0:40]
    records = []
    for i in range(num_images):
        x, y = rng.integers(0, 20, size=2)
        sigma = rng.uniform(3, 12)
        cam = np.exp(-((grid_x - x - 10) ** 2 + (grid_y - y - 10) ** 2) / (2 * sigma ** 2))
        label = int(rng.integers(10))
        top5 = [int(c) for c in rng.permutation(10)[:5]]
        record = evaluator.add(cam, [[x, y, x + 19, y + 19]], label, top5)
        records.append({"image": f"img_{i}.jpg", **record})
    return evaluator.compute(), records


def test_report_files_agree(tmp_path):
    metrics, records = evaluated_run()
    config = {"method": "E2Net", "dataset": "CUB", "arch": "vgg_gap", "cam_threshold": 0.3}
    paths = write_report(tmp_path / "result", metrics, config, records, class_names=CLASS_NAMES)
    assert sorted(paths) == ["metrics.json", "metrics.md", "predictions.tsv", "threshold_curve.png"]

    stored = read_metrics(tmp_path / "result")
    assert stored["config"] == config
    assert stored["metrics"] == metrics

    with open(paths["predictions.tsv"]) as table:
        rows = list(csv.DictReader(table, delimiter="\t"))
    assert [row["image"] for row in rows] == [record["image"] for record in records]
    assert 0 < metrics["gt_known_loc"] < 100 and 0 < metrics["top5_loc"] < 100
    columns = {"gt_known": "gt_known_loc", "top1_loc": "top1_loc", "top5_loc": "top5_loc",
               "top1_cls": "top1_cls", "top5_cls": "top5_cls"}
    for column, metric in columns.items():
        recounted = 100.0 * sum(int(row[column]) for row in rows) / len(rows)
        assert recounted == metrics[metric], column
    first = rows[0]
    assert first["label_name"] == CLASS_NAMES[records[0]["label"]]
    assert first["top5"] == ",".join(map(str, records[0]["top5"]))
    assert [int(first[k]) for k in ("x1", "y1", "x2", "y2")] == records[0]["box"]

    markdown = open(paths["metrics.md"]).read()
    for text in ("GT-known Loc", "Top-1 Loc", "best τ = ", "MaxBoxAccV2", "| method"):
        assert text in markdown
    picture = cv2.imread(paths["threshold_curve.png"])
    assert picture is not None and picture.shape[0] > 100


def test_predictions_without_classes_leave_flags_empty(tmp_path):
    evaluator = WSOLEvaluator()
    record = evaluator.add(np.eye(8), [[0, 0, 7, 7]])
    paths = write_report(tmp_path, evaluator.compute(), {}, [{"image": "x.png", **record}])
    with open(paths["predictions.tsv"]) as table:
        row = next(csv.DictReader(table, delimiter="\t"))
    assert row["label"] == "" and row["top5"] == "" and row["top1_loc"] == ""
    assert row["gt_known"] in ("0", "1")


def test_example_panel_and_boxes(tmp_path):
    image = np.full((32, 48, 3), 128, np.uint8)
    boxed = draw_boxes(image, [[2, 2, 20, 20]], [10, 5, 40, 30])
    assert tuple(boxed[2, 10]) == GT_COLOR                  # top edge of the GT box
    assert tuple(boxed[30, 25]) == PRED_COLOR               # bottom edge of the predicted box
    assert (image == 128).all()                             # the input is not drawn on

    cam = np.zeros((4, 6))
    cam[0, 0] = 1.0
    overlay = heatmap_overlay(image, cam, alpha=1.0)
    assert overlay.shape == image.shape
    assert overlay[0, 0, 2] > 100 and overlay[-1, -1, 0] > 100   # JET: hot = red, cold = blue

    panel = example_panel(image, {"3x3": cam, "fused": cam}, [[2, 2, 20, 20]],
                          {"CAM": [10, 5, 40, 30], "E2Net": [4, 8, 30, 28]})
    assert panel.shape[1] == 4 * 48 and panel.shape[0] > 32
    boxes_tile = panel[panel.shape[0] - 32:, 3 * 48:]
    assert tuple(boxes_tile[30, 25]) == PANEL_PRED_COLORS[0]      # CAM's bottom edge: red
    assert tuple(boxes_tile[28, 8]) == PANEL_PRED_COLORS[1]       # E2Net's bottom edge: the second colour
    paths = save_examples(tmp_path / "examples", {"bird/001.jpg": panel})
    assert len(paths) == 1 and "/" not in paths[0].split("examples/")[1]
    assert cv2.imread(paths[0]).shape == panel.shape


def test_metrics_markdown_starts_with_metrics_and_checkpoint(tmp_path):
    metrics, records = evaluated_run()
    metrics["checkpoint"] = "train_log/run/min-val-error-top1"
    config = {"method": "E2Net", "arch": "vgg_gap", "gating_position": ["3", "4", "53"], "load": None,
              "label_dir": "d" * 400, "model_spec": {"arch": "vgg_gap"}, "use_bn": 0, "evaluate": False}
    paths = write_report(tmp_path, metrics, config, records)
    text = open(paths["metrics.md"]).read()
    lines = text.splitlines()
    assert lines[0] == "# Evaluation: 12 images, τ = 0.30"
    assert "train_log/run/min-val-error-top1" in lines[2]
    assert text.index("GT-known Loc") < text.index("MaxBoxAccV2") < text.index("## Configuration")
    config_rows = text[text.index("## Configuration"):].splitlines()[4:]
    cells = [cell.strip() for row in config_rows for cell in row.split("|")[1:-1]]
    assert max(len(cell) for cell in cells) == 60 and "3 4 53" in cells and "0" in cells
    assert "load" not in cells and "model_spec" not in cells and "evaluate" not in cells


def test_readable_example_and_prediction_overlay():
    from utils.evaluation.visualization import prediction_overlay, readable_example
    image = np.full((32, 32, 3), 128, np.uint8)
    cam = np.zeros((4, 4))
    cam[1:3, 1:3] = 1
    panel = readable_example(image, cam, [[2, 2, 20, 20]], [4, 4, 24, 24], "0 bird", "1 cat", 0.42, 0.2)
    assert panel.shape[1] == 3 * 32 * 7 and panel.shape[0] > 32 * 7 + 4 * 20      # 7x: cells of 224 px
    boxes_cell = panel[20:20 + 224, 2 * 224:]
    assert tuple(boxes_cell[100, 2 * 7]) == GT_COLOR and tuple(boxes_cell[100, 4 * 7]) == PRED_COLOR
    assert panel[20 + 224:].any()                                                 # the caption is written
    overlay = prediction_overlay(np.zeros((30, 20, 3), np.uint8), cam, (0, 0, 20, 30), [3, 4, 15, 25], ["top-1: a"])
    assert overlay.shape[0] > 30 and overlay.shape[1] > 20                         # strip below, padded right
    assert tuple(overlay[10, 3]) == PRED_COLOR and tuple(overlay[4, 9]) == PRED_COLOR
    assert not overlay[:30, 20:].any()                                             # padding stays black


def test_metrics_markdown_has_the_part_analysis_when_part_masks_were_scored():
    from utils.evaluation.parts import PartAnalyzer
    from utils.evaluation.report import metrics_markdown
    evaluator = WSOLEvaluator(0.2)
    cam = np.zeros((10, 10))
    cam[2:5, 2:5] = 1.0                     # the region above tau: 9 pixels, 3 on the part, 6 on the body
    parts = np.zeros((10, 10), np.uint8)
    parts[2:5, 2:3] = 1
    parts[2:8, 3:8] = 2
    evaluator.add(cam, [[2, 2, 7, 7]], 0, [0, 1, 2, 3, 4])
    metrics = evaluator.compute()
    analyzer = PartAnalyzer()
    analyzer.add(cam, parts)
    metrics["parts"] = analyzer.compute({"cam_threshold": 0.2})
    text = metrics_markdown(metrics, {"method_name": "CAM"})
    assert "## Part analysis" in text
    row = [line for line in text.splitlines() if line.startswith("| cam_threshold (τ = 0.20)")][0]
    cells = [c.strip() for c in row.split("|")[2:-1]]
    # region 9% of the crop; 33.3% on the part, 66.7% on the body, 0 on background;
    # object 3 + 30 = 33 pixels, 9 covered: 27.3%; body 30 pixels, 6 covered: 20.0%; part 3/3: 100%
    assert cells == ["9.0", "33.3", "66.7", "0.0", "27.3", "20.0", "100.0"]
