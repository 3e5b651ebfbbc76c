"""The CPU demo: CAM, ADL and E2Net on the synthetic set, trained and evaluated end to end.

``./run_demo.sh`` (or ``python -m utils.demo``) generates SYNTH (cached by its
parameters; the calibrated variant by default), trains CAM, ADL and E2Net with ``train.py`` in
subprocesses -- in the published regime by default: fine-tuned from the project's own pretrained
backbone (``models/synthetic_zoo``, the released recipe; ``utils/recipes.py``), or from scratch
with ``--from_scratch`` -- evaluates them, adds reference rows that need no network (trivial boxes and
the head-only oracle: the tight box of the discriminative part's mask), prints one
comparison table and writes ``<out>/results.json``, ``<out>/results.md`` and
``<out>/comparison.png`` (of this invocation).  The runs and their logs live in
``<out>/<arch>-<epochs>ep-seed<seed>-<hash>/<method>/`` (``runs_dir``): one folder per set
of settings that change the data or the training, so a rerun with other settings trains anew
and never reuses, overwrites or relabels another setting's run.
"""
import argparse
import hashlib
import json
import os
import sys
import time

import cv2
import numpy as np
from tabulate import tabulate

from utils.atomic import write_image, write_json, write_text
from utils.boxes import box_iou
from utils.data.labels import read_class_names, read_label_list
from utils.data.paths import dataset_class_names_file, dataset_paths
from utils.data.synthetic import DEFAULT_VARIANT, PART_HEAD, VARIANTS, ensure_synthetic, mask_box, mask_path
from utils.data.transforms import eval_boxes
from utils.errors import UserError, exit_on_user_error
from utils.evaluation.results import latest_result_dir
from utils.evaluation.visualization import comparison_grid, comparison_row
from utils.recipes import ARCHS, backbone_options, recipe, recipe_defaults, regime_options
from utils.training.launch import REPO, run_logged, train_command

METHODS = ("CAM", "ADL", "E2Net")                          # the default rows
CHOICES = METHODS + ("HaS", "ACoL", "SPG", "CutMix", "FSL")    # any may be asked for with --methods
IOU_LEVELS = (30, 50, 70)
COLUMNS = (("top1_cls", "Top-1 Cls"), ("gt_known_loc", "GT-known Loc (τ 0.2)"),
           ("gt_known_best", "GT-known Loc (best τ)"), ("maxboxacc_v2", "MaxBoxAccV2"),
           *((f"iou{iou}", f"IoU {iou}") for iou in IOU_LEVELS))


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the per-backbone ones (None), whose help lists the recipes."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def _recipe_defaults(key):
    return "default: " + recipe_defaults(key)


def build_parser():
    p = argparse.ArgumentParser(prog="run_demo.sh", description=__doc__, formatter_class=_HelpFormatter)
    p.add_argument("--arch", default="resnet", choices=ARCHS,
                   help="backbone (its pretrained file: models/synthetic_zoo/<backbone>_w<width>.npz)")
    p.add_argument("--from_scratch", action="store_true",
                   help="train from random initialisation (the earlier demo) instead of fine-tuning the "
                        "project's pretrained backbone with the released recipe")
    p.add_argument("--epochs", type=int, default=None, help=f"training epochs per method ({_recipe_defaults('epochs')})")
    p.add_argument("--size", type=int, default=96, help="network input size (multiple of 16)")
    p.add_argument("--width", type=float, default=0.25, help="channel width multiplier")
    p.add_argument("--batch", type=int, default=32, help="batch size")
    p.add_argument("--base_lr", type=float, default=None, help=f"base learning rate ({_recipe_defaults('base_lr')}; released 0.01)")
    p.add_argument("--clip_gradients", type=float, default=None,
                   help=f"global gradient-norm clip, 0 = off ({_recipe_defaults('clip_gradients')})")
    p.add_argument("--lr_decay_epochs", type=int, nargs="+", default=None,
                   help=f"lr x0.1 at these epochs ({_recipe_defaults('lr_decay_epochs')})")
    p.add_argument("--num_classes", type=int, default=10)
    p.add_argument("--num_train", type=int, default=2000)
    p.add_argument("--num_val", type=int, default=500)
    p.add_argument("--image_size", type=int, default=128, help="synthetic image size")
    p.add_argument("--variant", default=DEFAULT_VARIANT, choices=tuple(VARIANTS),
                   help="SYNTH variant (utils/data/synthetic.py): how much class colour the body carries")
    p.add_argument("--steps_per_epoch", type=int, default=None, help="default: one pass over the train list")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="decoding workers (default: all cores)")
    p.add_argument("--data_dir", default=os.path.join(REPO, "dataset"), help="SYNTH is generated here")
    p.add_argument("--out", default=os.path.join(REPO, "train_log", "demo"), help="results folder")
    p.add_argument("--examples", type=int, default=6, help="rows of the picture grid")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=CHOICES,
                   help="methods to train (e.g. CAM alone to calibrate SYNTH, or wsolevaluation's baselines "
                        "HaS ACoL SPG CutMix and the fully supervised FSL beside E2Net)")
    return p


def regime(args):
    return "scratch" if args.from_scratch else "pretrained"


def apply_recipe(args):
    """Fill the options left unset from the recipe of the backbone in the regime (in place)."""
    for key, value in recipe(args.arch, regime(args)).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def train_options(args, method):
    """The train.py options of one method's run."""
    return dict({"dataset_name": "SYNTH", "data_dir": args.data_dir, "arch_name": args.arch, "method_name": method,
                 "final_size": args.size, "width_multiplier": args.width, "batch_size": args.batch,
                 "epoch": args.epochs, "steps_per_epoch": args.steps_per_epoch or max(1, args.num_train // args.batch),
                 "base_lr": args.base_lr, "clip_gradients": args.clip_gradients,
                 "lr_decay_epochs": args.lr_decay_epochs or None, "seed": args.seed,
                 "number_of_examples": args.examples, "workers": args.workers},
                **backbone_options(args.arch, method), **regime_options(args.arch, regime(args), args.width))


# Options that change neither the data nor the training (every other option keys the runs' folder).
NOT_IN_RUN_KEY = ("workers", "data_dir", "out", "examples", "methods")


def runs_dir(args):
    """``<out>/<arch>-<epochs>ep-seed<seed>-<hash>``: the folder of the runs (and logs) of one
    set of demo settings, the hash over every option that changes the data or the training
    (all but ``NOT_IN_RUN_KEY``), so that a demo never reuses a run made under other settings
    and demos with other settings never share a folder."""
    settings = {key: value for key, value in sorted(vars(args).items()) if key not in NOT_IN_RUN_KEY}
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return os.path.join(args.out, f"{args.arch}-{args.epochs}ep-seed{args.seed}-{digest}")


# What each run's own record says about how it ran (copied into results.json and results.md).
RUN_SETTINGS = ("precision", "pretrained", "epoch", "steps_per_epoch", "seed", "base_lr", "lr_decay_epochs")


def run_train(args, method, timing):
    """Train (or resume) and evaluate one method with train.py; returns its metrics.json record
    (``metrics`` and ``config``) and records the seconds of each stage in ``timing``."""
    log_dir = os.path.join(runs_dir(args), method)
    # train.py trains, then evaluates min-val-error-top1 (as released): one process, one start-up
    print(f"[demo] {method}: training, then evaluating ({log_dir})", flush=True)
    start = time.time()
    try:
        run_logged(train_command(log_dir, train_options(args, method)), log_dir + ".log", f"[demo] {method}")
    finally:
        timing[f"{method} train + evaluate"] = round(time.time() - start, 1)
    with open(os.path.join(latest_result_dir(log_dir), "metrics.json")) as f:
        return json.load(f)


def _crop_boxes(args, split):
    """Each list entry's GT boxes in the evaluation crop frame."""
    label_file, _ = dataset_paths("SYNTH", args.data_dir, split=split)
    size = (args.image_size, args.image_size)
    return [eval_boxes(e.boxes, size, args.size) for e in read_label_list(label_file)]


def head_boxes(args):
    """The tight box of each val image's head (discriminative part) mask, in the crop frame."""
    synth_dir = os.path.join(args.data_dir, "SYNTH")
    label_file, _ = dataset_paths("SYNTH", args.data_dir, split="val")
    boxes = []
    for entry in read_label_list(label_file):
        parts = cv2.imread(mask_path(synth_dir, "parts", entry.path), cv2.IMREAD_UNCHANGED)
        boxes.append(eval_boxes(mask_box(parts == PART_HEAD)[None], parts.shape[:2], args.size)[0])
    return boxes


def box_guess_row(guesses, gt_boxes):
    """Table values of one fixed box per val image (``guesses[i]`` for GT boxes ``gt_boxes[i]``):
    GT-known Loc (IoU >= 0.5; the same at any τ) and the box accuracy at each IoU level."""
    ious = np.array([box_iou([guess], gt).max() for guess, gt in zip(guesses, gt_boxes)])
    row = {f"iou{iou}": 100.0 * np.mean(ious >= iou / 100.0) for iou in IOU_LEVELS}
    row["gt_known_loc"] = row["gt_known_best"] = row["iou50"]
    row["maxboxacc_v2"] = float(np.mean([row[f"iou{iou}"] for iou in IOU_LEVELS]))
    return row


def reference_rows(args):
    """Rows that need no network, on the val list in the crop frame: the whole crop, a centred
    box of the mean GT size (train list), and the head-only oracle (box of the head mask)."""
    train_boxes = np.concatenate(_crop_boxes(args, "train"))
    mean_w, mean_h = (train_boxes[:, 2:] - train_boxes[:, :2]).mean(axis=0)
    s = args.size
    val_boxes = _crop_boxes(args, "val")
    fixed = {"trivial: whole image": [0, 0, s - 1, s - 1],
             "trivial: centred mean box": [(s - mean_w) / 2, (s - mean_h) / 2, (s + mean_w) / 2, (s + mean_h) / 2]}
    rows = {name: box_guess_row([box] * len(val_boxes), val_boxes) for name, box in fixed.items()}
    rows["oracle: head-only box"] = box_guess_row(head_boxes(args), val_boxes)
    return rows


def method_row(metrics):
    """Table values of an evaluated method (metrics.json's ``metrics``)."""
    row = {key: metrics.get(key) for key, _ in COLUMNS}
    row["gt_known_best"] = metrics["sweep"]["best"]["gt_known_loc"]
    for iou in IOU_LEVELS:
        row[f"iou{iou}"] = metrics["box_accuracy"]["iou"][str(iou)]["max"]
    return row


def comparison_table(rows):
    """``rows``: name -> table values (missing ones print as —)."""
    table = [[name] + [values.get(key) for key, _ in COLUMNS] for name, values in rows.items()]
    return tabulate(table, headers=["method"] + [title for _, title in COLUMNS], tablefmt="github",
                    floatfmt=".2f", missingval="—")


def write_comparison_grid(args, path):
    """The picture grid (``utils.evaluation.visualization.comparison_grid``) of the first
    examples: image with GT box and class name, then each method's heat map, box and IoU."""
    arrays = {m: np.load(os.path.join(latest_result_dir(os.path.join(runs_dir(args), m)), "examples", "cams.npz"),
                         allow_pickle=False)
              for m in args.methods}
    label_file, _ = dataset_paths("SYNTH", args.data_dir, split="val")
    labels = {os.path.splitext(os.path.basename(e.path))[0]: e.label for e in read_label_list(label_file)}
    names_file = dataset_class_names_file("SYNTH", args.data_dir)
    class_names = read_class_names(names_file) if names_file else None
    first = arrays[args.methods[0]]
    rows = []
    for i, name in enumerate(first["names"][:min(len(arrays[m]["names"]) for m in args.methods)]):
        gt = first["gt_boxes"][i]
        methods = {m: (arrays[m]["cams"][i], arrays[m]["pred_boxes"][i],
                       float(box_iou([arrays[m]["pred_boxes"][i]], [gt])[0, 0])) for m in args.methods}
        label = labels[str(name).split("_", 1)[1]]
        caption = f"class {label}: {class_names[label]}" if class_names else f"class {label}"
        rows.append(comparison_row(first["images"][i], gt, methods, caption))
    if rows:
        write_image(path, comparison_grid(rows, args.methods))


class DemoError(UserError, RuntimeError):
    """A demo folder that cannot be written."""


def main(argv=None):
    """The command line; a wrong input: one ``run_demo.sh: error: ...`` line on stderr, exit 2."""
    return exit_on_user_error("run_demo.sh", _main, argv)


def _main(argv=None):
    args = apply_recipe(build_parser().parse_args(argv))
    regime_options(args.arch, regime(args), args.width)   # a missing pretrained file: one line, before any work
    start = time.time()
    synth_dir = os.path.join(args.data_dir, "SYNTH")
    params = dict(num_classes=args.num_classes, num_train=args.num_train, num_val=args.num_val,
                  size=args.image_size, seed=args.seed, variant=args.variant)
    try:
        os.makedirs(args.out, exist_ok=True)
        generated = ensure_synthetic(synth_dir, workers=args.workers, **params)
    except OSError as error:
        raise DemoError(f"cannot write {error.filename or args.out}: {error.strerror or error}") from None
    timing = {"synthetic set": round(time.time() - start, 1)}
    print(f"[demo] synthetic set ({args.variant}) {'generated' if generated else 'cached'} in {synth_dir}",
          flush=True)
    records = {method: run_train(args, method, timing) for method in args.methods}
    results = {method: record["metrics"] for method, record in records.items()}
    settings = {method: {key: record["config"].get(key) for key in RUN_SETTINGS} for method, record in records.items()}
    rows = dict({method: method_row(metrics) for method, metrics in results.items()}, **reference_rows(args))
    table = comparison_table(rows)
    grid = os.path.join(args.out, "comparison.png")
    write_comparison_grid(args, grid)
    elapsed = time.time() - start
    timing["total"] = round(elapsed, 1)
    summary = {"config": vars(args), "runs": runs_dir(args), "run_settings": settings, "results": results, "table": rows,
               "timing_seconds": timing, "wall_time_seconds": elapsed}
    write_json(os.path.join(args.out, "results.json"), summary, indent=2, default=str)
    write_text(os.path.join(args.out, "results.md"),
               f"# Demo: {' vs '.join(args.methods)} on SYNTH ({args.variant}; {args.arch} {regime(args)}, {args.size}px, "
               f"width {args.width}, {args.epochs} epochs)\n\n{table}\n\n"
               f"Runs and logs: `{runs_dir(args)}`\n\n"
               f"Each run's settings (its own metrics.json): " +
               "; ".join(f"{m}: " + ", ".join(f"{k} {v}" for k, v in s.items()) for m, s in settings.items()) + "\n\n"
               f"Seconds per stage: {', '.join(f'{k} {v}' for k, v in timing.items())}\n")
    print(f"\n{table}\n")
    print(f"[demo] seconds per stage: {', '.join(f'{k} {v}' for k, v in timing.items())}")
    print(f"[demo] results: {args.out}/results.md, results.json, comparison.png (runs and logs: {runs_dir(args)})")
    print(f"[demo] wall time {elapsed / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
