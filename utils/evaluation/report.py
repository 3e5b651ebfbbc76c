"""Report files of an evaluation run, from ``WSOLEvaluator.compute()`` and its per-image records.

``write_report`` writes into ``result_dir``:

``metrics.json``         ``{"config": ..., "metrics": ...}``; the metrics include the
                         threshold curves (``sweep``, ``box_accuracy``);
``metrics.md``           the checkpoint, then GitHub-Markdown tables: the reference-protocol
                         metrics at ``cam_threshold`` and at the sweep's best threshold,
                         wsolevaluation's MaxBoxAcc / MaxBoxAccV2; with masks PxAP and PIoU;
                         with part masks (SYNTH) the part analysis (``parts``); with a
                         held-out split (``held_out_tau``) every metric at the τ chosen there; last the configuration (compact: set values only, three a row,
                         cells of at most 60 characters);
``threshold_curve.png``  localization accuracy against the CAM threshold;
``predictions.tsv``      one row per image: ``image``, ``label`` (and ``label_name``
                         when class names are given), ``top5`` (comma-joined),
                         ``x1 y1 x2 y2`` (reference box at ``cam_threshold``),
                         ``iou``, and the 0/1 flags ``gt_known top1_cls top5_cls
                         top1_loc top5_loc`` (empty when unknown).
"""
import csv
import json
import os

import numpy as np
from tabulate import tabulate

from utils.atomic import atomic_open, make_folder, write_figure, write_json, write_text
from utils.evaluation.parts import parts_table

METRICS_FILE = "metrics.json"
MARKDOWN_FILE = "metrics.md"
CURVE_FILE = "threshold_curve.png"
PREDICTIONS_FILE = "predictions.tsv"

METRIC_TITLES = (("top1_cls", "Top-1 Cls"), ("top5_cls", "Top-5 Cls"), ("gt_known_loc", "GT-known Loc"),
                 ("top1_loc", "Top-1 Loc"), ("top5_loc", "Top-5 Loc"))
CONFIG_CELL = 60          # longest configuration cell in metrics.md
PREDICTION_FLAGS = ("gt_known", "top1_cls", "top5_cls", "top1_loc", "top5_loc")


def reference_table(metrics):
    """Reference-protocol metrics at ``cam_threshold`` and at the sweep's best threshold."""
    sweep = metrics["sweep"]
    rows = [[title, metrics[key], sweep["best"].get(key, metrics[key])]   # Cls does not depend on τ
            for key, title in METRIC_TITLES if key in metrics]
    headers = ["metric (reference protocol)", f"τ = {metrics['cam_threshold']:.2f}",
               f"best τ = {sweep['best_threshold']:.2f}"]
    return tabulate(rows, headers, tablefmt="github", floatfmt=".2f")


def box_accuracy_table(metrics):
    """wsolevaluation: MaxBoxAcc, the best BoxAcc of each IoU level, MaxBoxAccV2."""
    accuracy = metrics["box_accuracy"]
    contours = "all contours" if accuracy["multi_contour"] else "largest contour"
    largest = accuracy["largest_contour_iou50"]
    rows = [["MaxBoxAcc (IoU 50, largest contour)", largest["max"], largest["best_threshold"]]]
    rows += [[f"MaxBoxAcc IoU {iou} ({contours})", entry["max"], entry["best_threshold"]]
             for iou, entry in accuracy["iou"].items()]
    rows.append(["MaxBoxAccV2 (mean over IoU levels)", metrics["maxboxacc_v2"], None])
    return tabulate(rows, ["metric (wsolevaluation)", "accuracy", "best τ"], tablefmt="github",
                    floatfmt=".2f", missingval="")


def _config_text(value):
    """A configuration value as a short cell: lists space-joined, at most CONFIG_CELL characters."""
    if isinstance(value, (list, tuple)):
        value = " ".join(str(item) for item in value)
    text = str(value)
    return text if len(text) <= CONFIG_CELL else text[:CONFIG_CELL - 1] + "…"


def config_table(config, pairs_per_row=3):
    """The configuration as a compact table: set values only (no ``None`` / ``False`` / empty,
    no nested records such as ``model_spec``), ``pairs_per_row`` settings a row, sorted by name."""
    cells = [[key, _config_text(value)] for key, value in sorted(config.items())
             if not (value is None or value is False or value in ("", []) or isinstance(value, dict))]
    rows = [sum(cells[start:start + pairs_per_row], []) for start in range(0, len(cells), pairs_per_row)]
    return tabulate(rows, ["setting", "value"] * pairs_per_row, tablefmt="github", disable_numparse=True)


def pixel_table(metrics):
    """PxAP (wsolevaluation) and PIoU (best pixel IoU over τ) against the object masks."""
    pixel = metrics["pixel"]
    rows = [["PxAP (pixel average precision)", pixel["pxap"], None],
            ["PIoU (best pixel IoU)", pixel["piou"], pixel["piou_threshold"]]]
    table = tabulate(rows, ["metric (object masks)", "value", "best τ"], tablefmt="github",
                     floatfmt=".2f", missingval="")
    return (f"{table}\n\nMasks: {metrics.get('mask_dir', '')}; {pixel['num_images']} images with a mask, "
            f"{pixel['images_without_mask']} without (left out of PxAP).")


def held_out_table(metrics):
    """Each threshold-dependent metric at the τ chosen on the held-out split, next to the
    evaluation split's own best τ (searched on the evaluation split, as released)."""
    held = metrics["held_out_tau"]
    sweep, boxes = metrics["sweep"], metrics["box_accuracy"]
    rows = [[title, held["reference"]["tau"], held["reference"][key],
             sweep["best_threshold"], sweep["best"][key]]
            for key, title in METRIC_TITLES if key in held["reference"]]
    rows += [[f"BoxAcc IoU {iou} (wsolevaluation)", entry["tau"], entry["value"],
              boxes["iou"][iou]["best_threshold"], boxes["iou"][iou]["max"]]
             for iou, entry in held["box_accuracy"].items()]
    rows.append(["MaxBoxAccV2 (mean of the three BoxAcc rows)", None, held["maxboxacc_v2"], None,
                 metrics["maxboxacc_v2"]])
    rows.append(["MaxBoxAcc (IoU 50, largest contour)", held["maxboxacc"]["tau"], held["maxboxacc"]["value"],
                 boxes["largest_contour_iou50"]["best_threshold"], metrics["maxboxacc"]])
    if "piou" in held:
        rows.append(["PIoU", held["piou"]["tau"], held["piou"]["value"],
                     metrics["pixel"]["piou_threshold"], metrics["piou"]])
    table = tabulate(rows, ["metric", f"τ chosen on {held['chosen_on']}", "value at the held-out τ",
                            "best τ on this split", "value at the best τ"], tablefmt="github",
                     floatfmt=".2f", missingval="")
    return f"{table}\n\nHeld-out list: {held['label_file']} ({held['num_images']} images)."


def metrics_markdown(metrics, config):
    """The ``metrics.md`` text: the metrics and the checkpoint first, the configuration last."""
    checkpoint = metrics.get("checkpoint")
    sections = [f"# Evaluation: {metrics['num_images']} images, τ = {metrics['cam_threshold']:.2f}"]
    if checkpoint:
        sections.append(f"Checkpoint: `{checkpoint}`")
    sections += [
        "## Localization (reference protocol)", reference_table(metrics),
        "## MaxBoxAcc (wsolevaluation protocol)", box_accuracy_table(metrics),
    ]
    if "pixel" in metrics:
        sections += ["## PxAP (object masks, wsolevaluation)", pixel_table(metrics)]
    if "parts" in metrics:
        sections += ["## Part analysis (where the CAM region above τ falls: discriminative part / body / "
                     "background, and how much of each it covers)", parts_table(metrics["parts"])]
    if "held_out_tau" in metrics:
        sections += [f"## τ chosen on the held-out split {metrics['held_out_tau']['chosen_on']}",
                     held_out_table(metrics)]
    return "\n\n".join(sections + ["## Configuration", config_table(config)]) + "\n"


def _json_value(value):
    """numpy scalars/arrays (e.g. in a config) as plain JSON values."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_metrics_json(path, metrics, config):
    """Write ``{"config": config, "metrics": metrics}`` to ``path``."""
    write_json(path, {"config": config, "metrics": metrics}, indent=2, default=_json_value)


def read_metrics(path):
    """The ``{"config", "metrics"}`` dict of a metrics.json file, or of ``path/metrics.json``."""
    if os.path.isdir(path):
        path = os.path.join(path, METRICS_FILE)
    with open(path) as source:
        return json.load(source)


def plot_threshold_curve(path, metrics):
    """Accuracy vs CAM threshold: wsolevaluation BoxAcc per IoU level and reference GT-known Loc."""
    from matplotlib.figure import Figure   # Agg canvas, no pyplot state

    figure = Figure(figsize=(6.4, 4.2), dpi=100)
    axes = figure.add_subplot()
    accuracy = metrics["box_accuracy"]
    for iou, entry in accuracy["iou"].items():
        axes.plot(accuracy["thresholds"], entry["curve"], label=f"BoxAcc IoU {iou} (wsolevaluation)")
    axes.plot(accuracy["thresholds"], accuracy["largest_contour_iou50"]["curve"], ":",
              label="BoxAcc IoU 50, largest contour")
    axes.plot(metrics["sweep"]["thresholds"], metrics["sweep"]["gt_known_loc"], "k-", linewidth=2,
              label="GT-known Loc (reference)")
    axes.axvline(metrics["cam_threshold"], color="gray", linestyle="--", linewidth=1,
                 label=f"cam_threshold {metrics['cam_threshold']:.2f}")
    axes.set_xlabel("CAM threshold τ")
    axes.set_ylabel("accuracy (%)")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 100)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    write_figure(path, figure)


def _flag(value):
    return "" if value is None else int(bool(value))


def write_predictions_tsv(path, records, class_names=None):
    """One row per record (records carry an ``image`` name); columns in the module docstring."""
    name_column = ["label_name"] if class_names is not None else []
    header = ["image", "label", *name_column, "top5", "x1", "y1", "x2", "y2", "iou", *PREDICTION_FLAGS]
    with atomic_open(path, "w", newline="") as out:
        writer = csv.writer(out, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        for record in records:
            label = record.get("label")
            label_name = [class_names[label] if label is not None else ""] if name_column else []
            top5 = ",".join(str(c) for c in record["top5"]) if record.get("top5") is not None else ""
            writer.writerow([record["image"], "" if label is None else label, *label_name, top5,
                             *record["box"], f"{record['iou']:.6f}",
                             *(_flag(record.get(flag)) for flag in PREDICTION_FLAGS)])


def write_report(result_dir, metrics, config, records, class_names=None):
    """Write the four report files into ``result_dir``; returns their paths by file name."""
    make_folder(result_dir)
    paths = {name: os.path.join(result_dir, name)
             for name in (METRICS_FILE, MARKDOWN_FILE, CURVE_FILE, PREDICTIONS_FILE)}
    write_metrics_json(paths[METRICS_FILE], metrics, config)
    write_text(paths[MARKDOWN_FILE], metrics_markdown(metrics, config))
    plot_threshold_curve(paths[CURVE_FILE], metrics)
    write_predictions_tsv(paths[PREDICTIONS_FILE], records, class_names)
    return paths
