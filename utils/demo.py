"""The CPU demo: CAM vs E2Net on the synthetic set, trained and evaluated end to end.

``./run_demo.sh`` (or ``python -m utils.demo``) generates SYNTH (cached by its
parameters), trains CAM and E2Net with ``train.py`` in subprocesses, evaluates both,
adds the trivial-box baselines, prints one comparison table and writes
``<out>/results.json``, ``<out>/results.md`` and ``<out>/comparison.png``.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import cv2
import numpy as np
from tabulate import tabulate

from utils.boxes import box_iou
from utils.data.dataflow import dataset_paths
from utils.data.labels import read_label_list
from utils.data.synthetic import ensure_synthetic
from utils.data.transforms import eval_boxes
from utils.errors import UserError, exit_on_user_error
from utils.evaluation.results import latest_result_dir
from utils.evaluation.visualization import example_panel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("CAM", "E2Net")
# Per-backbone training recipe of the demo (from scratch: no model-zoo weights on a fresh
# machine).  Plain VGG16-GAP needs gradient clipping and a long stretch at the base lr to
# leave chance level; ResNet50-SE (BatchNorm) learns with the released recipe as is.
RECIPES = {
    "vgg_gap": {"epochs": 30, "base_lr": 0.01, "clip_gradients": 5.0, "lr_decay_epochs": [24]},
    "resnet": {"epochs": 20, "base_lr": 0.01, "clip_gradients": 0.0, "lr_decay_epochs": None},
}
COLUMNS = (("top1_cls", "Top-1 Cls"), ("gt_known_loc", "GT-known Loc"), ("top1_loc", "Top-1 Loc"),
           ("maxboxacc_v2", "MaxBoxAccV2"), ("gt_known_best", "GT-known Loc (best τ)"))
IOU_LEVELS = (0.3, 0.5, 0.7)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the per-backbone ones (None), whose help lists RECIPES."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def _recipe_defaults(key):
    return "default: " + ", ".join(f"{arch} {recipe[key]}" for arch, recipe in RECIPES.items())


def build_parser():
    p = argparse.ArgumentParser(prog="run_demo.sh", description=__doc__, formatter_class=_HelpFormatter)
    p.add_argument("--arch", default="vgg_gap", choices=tuple(RECIPES), help="backbone")
    p.add_argument("--epochs", type=int, default=None, help=f"training epochs per method ({_recipe_defaults('epochs')})")
    p.add_argument("--size", type=int, default=96, help="network input size (multiple of 16)")
    p.add_argument("--width", type=float, default=0.25, help="channel width multiplier")
    p.add_argument("--batch", type=int, default=32, help="batch size")
    p.add_argument("--base_lr", type=float, default=None, help=f"base learning rate ({_recipe_defaults('base_lr')}; released 0.01)")
    p.add_argument("--clip_gradients", type=float, default=None,
                   help=f"global gradient-norm clip, 0 = off ({_recipe_defaults('clip_gradients')})")
    p.add_argument("--lr_decay_epochs", type=int, nargs="+", default=None,
                   help=f"lr x0.1 at these epochs ({_recipe_defaults('lr_decay_epochs')}; "
                        "None = train.py's release schedule, scaled to the run)")
    p.add_argument("--num_classes", type=int, default=10)
    p.add_argument("--num_train", type=int, default=2000)
    p.add_argument("--num_val", type=int, default=500)
    p.add_argument("--image_size", type=int, default=128, help="synthetic image size")
    p.add_argument("--steps_per_epoch", type=int, default=None, help="default: one pass over the train list")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="decoding workers (default: all cores)")
    p.add_argument("--data_dir", default=os.path.join(REPO, "dataset"), help="SYNTH is generated here")
    p.add_argument("--out", default=os.path.join(REPO, "train_log", "demo"), help="results folder")
    p.add_argument("--examples", type=int, default=6, help="rows of the picture grid")
    return p


def apply_recipe(args):
    """Fill the options left unset from the backbone's entry in RECIPES (in place)."""
    for key, value in RECIPES[args.arch].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def run_train(args, method, extra=()):
    """Train (or resume) and evaluate one method with train.py; returns its metrics."""
    log_dir = os.path.join(args.out, method)
    cmd = [sys.executable, os.path.join(REPO, "train.py"), "--dataset_name", "SYNTH",
           "--data_dir", args.data_dir, "--arch_name", args.arch, "--method_name", method,
           "--final_size", str(args.size), "--width_multiplier", str(args.width),
           "--batch", str(args.batch), "--epoch", str(args.epochs), "--base_lr", str(args.base_lr),
           "--clip_gradients", str(args.clip_gradients),
           "--seed", str(args.seed), "--log_dir", log_dir, "--number_of_examples", str(args.examples)]
    if args.steps_per_epoch:
        cmd += ["--steps_per_epoch", str(args.steps_per_epoch)]
    else:
        cmd += ["--steps_per_epoch", str(max(1, args.num_train // args.batch))]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    if args.lr_decay_epochs:
        cmd += ["--lr_decay_epochs"] + [str(e) for e in args.lr_decay_epochs]
    if method == "E2Net" and args.arch == "resnet":
        cmd += ["--use_bn", "1"]
    cmd += list(extra)
    for stage in ([], ["--evaluate"]):
        print(f"[demo] {method}: {'evaluating' if stage else 'training'} ({log_dir})", flush=True)
        with open(os.path.join(args.out, f"{method}.{'eval' if stage else 'train'}.log"), "w") as log:
            code = subprocess.call(cmd + stage, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        if code != 0:
            raise SystemExit(f"[demo] {method} failed (exit {code}); see {log.name}")
    with open(os.path.join(latest_result_dir(log_dir), "metrics.json")) as f:
        return json.load(f)["metrics"]


def trivial_box_rows(args):
    """GT-known Loc and MaxBoxAccV2 of boxes that ignore the image: the whole crop and a
    centred box of the mean GT size (train list), on the val list in the crop frame."""
    def crop_boxes(split):
        label_file, _ = dataset_paths("SYNTH", args.data_dir, split=split)
        size = (args.image_size, args.image_size)
        return [eval_boxes(e.boxes, size, args.size) for e in read_label_list(label_file)]

    train_boxes = np.concatenate(crop_boxes("train"))
    mean_w, mean_h = (train_boxes[:, 2:] - train_boxes[:, :2]).mean(axis=0)
    s = args.size
    candidates = {"whole image": [0, 0, s - 1, s - 1],
                  "centred mean box": [(s - mean_w) / 2, (s - mean_h) / 2, (s + mean_w) / 2, (s + mean_h) / 2]}
    val_boxes = crop_boxes("val")
    rows = {}
    for name, box in candidates.items():
        ious = np.array([box_iou([box], gt).max() for gt in val_boxes])
        gt_known = 100.0 * np.mean(ious >= 0.5)
        rows[name] = {"gt_known_loc": gt_known, "gt_known_best": gt_known,
                      "maxboxacc_v2": 100.0 * np.mean([np.mean(ious >= t) for t in IOU_LEVELS])}
    return rows


def comparison_table(results, trivial):
    rows = []
    for method, metrics in results.items():
        values = dict(metrics, gt_known_best=metrics["sweep"]["best"]["gt_known_loc"])
        rows.append([method] + [values.get(key) for key, _ in COLUMNS])
    rows += [[f"trivial: {name}"] + [values.get(key) for key, _ in COLUMNS] for name, values in trivial.items()]
    return tabulate(rows, headers=["method"] + [title for _, title in COLUMNS], tablefmt="github",
                    floatfmt=".2f", missingval="—")


def comparison_grid(args, path):
    """Rows of image | CAM heat map | E2Net heat map | boxes, from the runs' example arrays."""
    arrays = {m: np.load(os.path.join(latest_result_dir(os.path.join(args.out, m)), "examples", "cams.npz"))
              for m in METHODS}
    count = min(len(arrays[m]["names"]) for m in METHODS)
    rows = []
    for i in range(count):
        image = arrays["CAM"]["images"][i]
        rows.append(example_panel(image, {m: arrays[m]["cams"][i] for m in METHODS},
                                  arrays["CAM"]["gt_boxes"][i][None],
                                  {m: arrays[m]["pred_boxes"][i] for m in METHODS}))
    if rows:
        cv2.imwrite(path, np.vstack(rows))


class DemoError(UserError, RuntimeError):
    """A demo folder that cannot be written."""


def main(argv=None):
    args = apply_recipe(build_parser().parse_args(argv))
    start = time.time()
    synth_dir = os.path.join(args.data_dir, "SYNTH")
    params = dict(num_classes=args.num_classes, num_train=args.num_train, num_val=args.num_val,
                  size=args.image_size, seed=args.seed)
    try:
        os.makedirs(args.out, exist_ok=True)
        generated = ensure_synthetic(synth_dir, workers=args.workers, **params)
    except OSError as error:
        raise DemoError(f"cannot write {error.filename or args.out}: {error.strerror or error}") from None
    print(f"[demo] synthetic set {'generated' if generated else 'cached'} in {synth_dir}", flush=True)
    results = {method: run_train(args, method) for method in METHODS}
    trivial = trivial_box_rows(args)
    table = comparison_table(results, trivial)
    grid = os.path.join(args.out, "comparison.png")
    comparison_grid(args, grid)
    elapsed = time.time() - start
    summary = {"config": vars(args), "results": results, "trivial_boxes": trivial,
               "wall_time_seconds": elapsed}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(summary, f, indent=2, default=str)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(f"# Demo: CAM vs E2Net on SYNTH ({args.arch}, {args.size}px, width {args.width}, "
                f"{args.epochs} epochs)\n\n{table}\n")
    print(f"\n{table}\n")
    print(f"[demo] results: {args.out}/results.md, results.json, comparison.png")
    print(f"[demo] wall time {elapsed / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(exit_on_user_error("run_demo.sh", main))
