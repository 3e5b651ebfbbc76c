"""The seeded ablation study on SYNTH: every E2Net component (and, on request, wsolevaluation's
baselines HaS, ACoL, SPG, CutMix and FSL) against CAM, several seeds each.

``python -m utils.study`` trains and evaluates each method of ``--methods`` once per seed of
``--seeds`` with ``train.py`` (subprocesses, one after another; ``utils.training.launch``),
then writes one table of mean ± sample standard deviation over the seeds:

    <out>/study.json   every run's metrics file and values, the statistics, the comparisons
    <out>/study.md     the tables (localization, part analysis) and the comparison with CAM
    <out>/study.png    bar chart of the main columns (mean, error bar = sample std)
    <out>/runs/<method>/seed<k>/   each run's train.py folder; logs in <out>/logs/

**Resumable**: a run whose ``result/.../metrics.json`` records the expected configuration is
reused; a half-finished one is resumed by ``train.py`` from its newest checkpoint.  Rerun the
same command after an interruption.  The SYNTH sets live in ``<out>/data/<variant, version and
parameters>/SYNTH`` (generated once; a new generator version or other parameters give a new
folder, hence new runs, never old runs on new data).

Statistics: mean and **sample** standard deviation (``ddof=1``) over seeds.  A method beats
CAM *beyond seed noise* on a column when its mean exceeds CAM's by more than twice the
standard error of the difference, ``2 * sqrt(s_m^2 / n_m + s_cam^2 / n_cam)`` (needs >= 2 seeds
on both sides); below by as much is reported as worse; anything else is "within noise".
"""
import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
from tabulate import tabulate

from utils.atomic import make_folder, write_figure, write_json, write_text
from utils.flags import PRECISIONS
from utils.data import synthetic
from utils.errors import UserError, exit_on_user_error
from utils.recipes import ARCHS, REGIMES, backbone_options, recipe, recipe_defaults, regime_options
from utils.training.launch import REPO, train_and_evaluate

FIVE_HEADS = ("3x3", "1x3", "3x1", "diag", "antidiag")
BASELINE = "CAM"


@dataclass(frozen=True)
class Method:
    """One study arm: a train.py method with extra options, on the default SYNTH or a variant."""
    description: str
    method_name: str
    options: dict = field(default_factory=dict)
    control: bool = False           # trained on the control variant (--control_variant)


METHODS = {
    "CAM": Method("CAM (one GAP+FC head)", "CAM"),
    "ADL": Method("ADL (attention-based dropout)", "ADL"),
    "MAE-sum": Method("MAE, released rule (--mae_mask sum)", "MAE", {"mae_mask": "sum"}),
    "MAE-max": Method("MAE, max rule (--mae_mask max)", "MAE", {"mae_mask": "max"}),
    "OSE-3": Method("OSE, 3 heads (3x3 1x3 3x1, as released)", "OSE", {"ose_heads": ["3x3", "1x3", "3x1"]}),
    "OSE-5": Method("OSE, 5 heads (+ diag antidiag)", "OSE", {"ose_heads": list(FIVE_HEADS)}),
    "E2Net-sum": Method("E2Net, released MAE rule (--mae_mask sum)", "E2Net", {"mae_mask": "sum"}),
    "E2Net-max": Method("E2Net, max MAE rule (--mae_mask max)", "E2Net", {"mae_mask": "max"}),
    "CAM-control": Method("CAM on the whole-object control variant", "CAM", control=True),
    # wsolevaluation's baselines (docs/fidelity.md), not in the default arms: --methods HaS ACoL ...
    "HaS": Method("HaS (hide-and-seek, wsolevaluation's cells of 4 px at rate 0.5)", "HaS"),
    "ACoL": Method("ACoL (adversarial complementary branches, threshold 0.7)", "ACoL"),
    "SPG": Method("SPG (self-produced guidance)", "SPG"),
    "CutMix": Method("CutMix (beta 1, prob 1)", "CutMix"),
    "FSL": Method("FSL (few-shot fully supervised: foreground map on the train_fullsup masks)", "FSL"),
}
BASELINES = ("HaS", "ACoL", "SPG", "CutMix", "FSL")

# The training recipes are the demo's (utils/recipes.py), as are the data and input sizes.
OUT = {"pretrained": os.path.join(REPO, "train_log", "study_pretrained"), "scratch": os.path.join(REPO, "train_log", "study")}
DEFAULTS = {"regime": "pretrained", "methods": [m for m in METHODS if m not in BASELINES], "seeds": [0, 1, 2],
            "arch": "resnet", "size": 96, "width": 0.25, "batch": 32, "steps_per_epoch": None,
            "num_classes": 10, "num_train": 2000, "num_val": 500, "image_size": 128, "data_seed": 0,
            "control_variant": "control", "examples": 4, "workers": None, "precision": "fp32"}
TINY = {"regime": "scratch", "methods": ["CAM", "ADL"], "seeds": [0, 1], "epochs": 1, "steps_per_epoch": 2, "size": 32,
        "width": 0.125, "batch": 16, "num_classes": 4, "num_train": 64, "num_val": 16, "image_size": 64,
        "examples": 0}

# Table columns: (key, title, path in a run's metrics).
COLUMNS = (("top1_cls", "Top-1 Cls", ("top1_cls",)),
           ("gt_known_best", "GT-known Loc (best τ)", ("sweep", "best", "gt_known_loc")),
           ("maxboxacc_v2", "MaxBoxAccV2", ("maxboxacc_v2",)),
           ("iou30", "IoU 30", ("box_accuracy", "iou", "30", "max")),
           ("iou50", "IoU 50", ("box_accuracy", "iou", "50", "max")),
           ("iou70", "IoU 70", ("box_accuracy", "iou", "70", "max")),
           ("pxap", "PxAP", ("pixel", "pxap")))
PART_FIELDS = (("part_fraction", "on part"), ("body_fraction", "on body"),
               ("background_fraction", "on background"), ("object_coverage", "object covered"),
               ("body_coverage", "body covered"))
PART_THRESHOLDS = (("cam_threshold", "τ = cam_threshold"), ("best", "best τ"))
PART_COLUMNS = tuple((f"parts_{at}_{name}", f"{title} ({at_title}) %", ("parts", "at", at, name))
                     for at, at_title in PART_THRESHOLDS for name, title in PART_FIELDS)
ALL_COLUMNS = COLUMNS + PART_COLUMNS
COMPARED = ("top1_cls", "gt_known_best", "maxboxacc_v2", "pxap", "parts_cam_threshold_body_coverage",
            "parts_cam_threshold_background_fraction")
CHART = ("gt_known_best", "maxboxacc_v2", "pxap", "parts_cam_threshold_body_coverage",
         "parts_cam_threshold_background_fraction")
STD_RULE = "mean ± sample standard deviation over seeds (ddof = 1)"
NOISE_RULE = ("beyond seed noise: |mean difference| > 2 × sqrt(s_method²/n_method + s_CAM²/n_CAM) "
              "(s = sample std, n = seeds; needs n ≥ 2 on both sides)")


class StudyError(UserError, ValueError):
    """A study option the project cannot honour (unknown method or SYNTH variant)."""


# --------------------------------------------------------------------------- options

def build_parser():
    p = argparse.ArgumentParser(prog="python -m utils.study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="study folder (default " + ", ".join(f"{r}: {path}" for r, path in OUT.items()) + ")")
    p.add_argument("--regime", choices=REGIMES,
                   help="pretrained (default: fine-tuned from models/synthetic_zoo with the released recipe) "
                        "or scratch (random initialisation)")
    p.add_argument("--methods", nargs="+", help="study arms (default: all but the wsolevaluation baselines "
                   f"{' '.join(BASELINES)}): " + ", ".join(
        f"{name} = {method.description}" for name, method in METHODS.items()))
    p.add_argument("--seeds", type=int, nargs="+", help="training seeds (default 0 1 2)")
    p.add_argument("--arch", choices=ARCHS, help="backbone (default resnet = ResNet50-SE)")
    p.add_argument("--epochs", type=int, help=f"epochs per run (default: {recipe_defaults('epochs')})")
    p.add_argument("--base_lr", type=float, help=f"base learning rate (default: {recipe_defaults('base_lr')})")
    p.add_argument("--clip_gradients", type=float, help=f"global gradient-norm clip, 0 = off (default: {recipe_defaults('clip_gradients')})")
    p.add_argument("--lr_decay_epochs", type=int, nargs="+",
                   help=f"lr x0.1 at these epochs (default: {recipe_defaults('lr_decay_epochs')})")
    p.add_argument("--size", type=int, help="network input size (default 96)")
    p.add_argument("--width", type=float, help="channel width multiplier (default 0.25)")
    p.add_argument("--batch", type=int, help="batch size (default 32)")
    p.add_argument("--steps_per_epoch", type=int, help="default: one pass over the train list")
    p.add_argument("--num_classes", type=int, help="SYNTH classes (default 10)")
    p.add_argument("--num_train", type=int, help="SYNTH train images (default 2000)")
    p.add_argument("--num_val", type=int, help="SYNTH val images (default 500)")
    p.add_argument("--image_size", type=int, help="SYNTH image size (default 128)")
    p.add_argument("--data_seed", type=int, help="SYNTH generator seed, the same for every run (default 0)")
    p.add_argument("--control_variant", help="SYNTH variant of CAM-control (default 'control')")
    p.add_argument("--examples", type=int, help="example pictures per run (default 4)")
    p.add_argument("--workers", type=int, help="decoding workers per run (default: all cores)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="train.py --precision of every run (default fp32; a run records it, so fp32 and bf16 "
                        "studies need different --out folders)")
    p.add_argument("--tiny", action="store_true",
                   help="smoke-test sizes: " + " ".join(f"{k}={v}" for k, v in TINY.items()) + " (flags still override)")
    return p


def resolve(args):
    """Fill unset options: explicit flag > --tiny > the backbone's recipe in the regime > DEFAULTS (in place)."""
    arch = args.arch or DEFAULTS["arch"]
    regime = args.regime or (TINY if args.tiny else DEFAULTS)["regime"]
    layers = ([TINY] if args.tiny else []) + [recipe(arch, regime), DEFAULTS]
    for name in set(DEFAULTS) | set(TINY) | set(recipe(arch, regime)):
        if getattr(args, name, None) is None:
            setattr(args, name, next((layer[name] for layer in layers if name in layer), None))
    args.out = os.path.abspath(args.out or OUT[args.regime])
    unknown = [name for name in args.methods if name not in METHODS]
    if unknown:
        raise StudyError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    if len(args.seeds) != len(set(args.seeds)):
        raise StudyError(f"--seeds repeats a seed: {args.seeds}")
    if args.steps_per_epoch is None:
        args.steps_per_epoch = max(1, args.num_train // args.batch)
    return args


# --------------------------------------------------------------------------- data and runs

def check_variant(name):
    """A SYNTH variant name the generator knows, else a StudyError (before any training)."""
    known = tuple(getattr(synthetic, "VARIANTS", ()))     # SYNTH v1 has no variants
    if name not in known:
        raise StudyError(f"the SYNTH generator (version {synthetic.GENERATOR_VERSION}) does not know the variant "
                         f"{name!r} (known: {', '.join(known) or 'none'}); pass --control_variant NAME or leave "
                         f"CAM-control out of --methods")
    return name


def data_dir(args, variant):
    """``<out>/data/<variant>-v<generator version>-<parameters>``: one folder per distinct SYNTH."""
    name = (f"{variant or 'default'}-v{synthetic.GENERATOR_VERSION}-{args.num_classes}c-{args.num_train}tr-"
            f"{args.num_val}va-{args.image_size}px-seed{args.data_seed}")
    return os.path.join(args.out, "data", name)


def ensure_data(args, variant):
    """Generate (or keep) the SYNTH set of a variant (None = the generator's default); returns its data_dir."""
    root = data_dir(args, variant)
    params = dict(num_classes=args.num_classes, num_train=args.num_train, num_val=args.num_val,
                  size=args.image_size, seed=args.data_seed)
    if variant is not None:
        params["variant"] = variant
    generated = synthetic.ensure_synthetic(os.path.join(root, "SYNTH"), workers=args.workers, **params)
    print(f"[study] SYNTH ({variant or 'default'}) {'generated' if generated else 'cached'} in {root}/SYNTH", flush=True)
    return root


def run_options(args, method, seed, data_root):
    """train.py options that identify one run (compared with its metrics.json's config); ``method``
    is an arm's name in METHODS or a ``Method``."""
    spec = method if isinstance(method, Method) else METHODS[method]
    options = {"dataset_name": "SYNTH", "data_dir": data_root, "arch_name": args.arch,
               "method_name": spec.method_name, "final_size": args.size, "width_multiplier": args.width,
               "batch_size": args.batch, "epoch": args.epochs, "steps_per_epoch": args.steps_per_epoch,
               "base_lr": args.base_lr, "clip_gradients": args.clip_gradients,
               "lr_decay_epochs": args.lr_decay_epochs, "seed": seed, "precision": args.precision}
    options.update(backbone_options(args.arch, spec.method_name))
    options.update(regime_options(args.arch, args.regime, args.width))
    options.update(spec.options)
    return options


def run_all(args):
    """Train/evaluate (or reuse) every method x seed; returns ``{method: [run record]}``."""
    regime_options(args.arch, args.regime, args.width)   # a missing pretrained file: one line, before any work
    variant_of = {m: check_variant(args.control_variant) if METHODS[m].control else None for m in args.methods}
    roots = {variant: ensure_data(args, variant) for variant in sorted(set(variant_of.values()), key=str)}
    execution = {"number_of_examples": args.examples, "workers": args.workers}
    jobs = [(method, seed) for seed in args.seeds for method in args.methods]   # seed-major: every method has a seed early
    runs = {method: [] for method in args.methods}
    start = time.time()
    trained = 0
    for i, (method, seed) in enumerate(jobs, 1):
        log_dir = os.path.join(args.out, "runs", method, f"seed{seed}")
        what = f"{method} seed {seed}"

        def stage(name, what=what, i=i):
            print(f"[study] {i}/{len(jobs)} {what}: {name} ({log_dir}); {_elapsed(start)} elapsed", flush=True)

        path, metrics, reused = train_and_evaluate(
            log_dir, run_options(args, method, seed, roots[variant_of[method]]), execution,
            log_stem=os.path.join(args.out, "logs", f"{method}-seed{seed}"), what=what, on_stage=stage)
        trained += not reused
        if reused:
            print(f"[study] {i}/{len(jobs)} {what}: finished run reused ({path})", flush=True)
        runs[method].append({"seed": seed, "log_dir": log_dir, "metrics_file": path, "reused": reused,
                             "values": run_values(metrics)})
    print(f"[study] {trained} run(s) trained, {len(jobs) - trained} reused", flush=True)
    return runs


def _elapsed(start):
    return f"{(time.time() - start) / 60:.1f} min"


# --------------------------------------------------------------------------- statistics

def _lookup(metrics, path):
    value = metrics
    for key in path:
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return float(value)


def run_values(metrics, columns=None):
    """``{column: value}`` of one run's metrics (columns absent from the metrics are left out);
    ``columns`` as ALL_COLUMNS (the default)."""
    values = {key: _lookup(metrics, path) for key, _, path in columns or ALL_COLUMNS}
    return {key: value for key, value in values.items() if value is not None}


def summarise(values):
    """Mean, sample std (ddof=1; None for one value) and n of a list of numbers."""
    values = [float(v) for v in values]
    n = len(values)
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if n > 1 else None,
            "n": n, "values": values}


def aggregate(values_by_method, columns=None):
    """``{method: {column: summary}}`` from ``{method: [run values]}``; a column appears when
    at least one run has it (``n`` counts those runs)."""
    stats = {}
    for method, runs in values_by_method.items():
        present = [key for key, _, _ in columns or ALL_COLUMNS if any(key in run for run in runs)]
        stats[method] = {key: summarise([run[key] for run in runs if key in run]) for key in present}
    return stats


def compare(method_stats, baseline_stats):
    """Difference of means with ``2 x`` its standard error and the verdict (see NOISE_RULE)."""
    n_m, n_b = method_stats["n"], baseline_stats["n"]
    difference = method_stats["mean"] - baseline_stats["mean"]
    if n_m < 2 or n_b < 2:
        return {"difference": difference, "margin": None, "verdict": "n/a (fewer than 2 seeds)"}
    margin = 2 * math.sqrt(method_stats["std"] ** 2 / n_m + baseline_stats["std"] ** 2 / n_b)
    verdict = "above" if difference > margin else "below" if difference < -margin else "within noise"
    return {"difference": difference, "margin": margin, "verdict": verdict}


def comparisons(stats, baseline=BASELINE, keys=COMPARED):
    """``{method: {column: comparison}}`` against the baseline for the ``keys`` columns."""
    if baseline not in stats:
        return {}
    return {method: {key: compare(columns[key], stats[baseline][key])
                     for key in keys if key in columns and key in stats[baseline]}
            for method, columns in stats.items() if method != baseline}


# --------------------------------------------------------------------------- reports

def _cell(summary):
    if summary is None:
        return "—"
    return f"{summary['mean']:.1f}" + (f" ± {summary['std']:.1f}" if summary["std"] is not None else "")


def _table(stats, columns):
    present = [(key, title) for key, title, _ in columns if any(key in s for s in stats.values())]
    if not present:
        return None
    rows = [[method, max((summary["n"] for summary in s.values()), default=0)] + [_cell(s.get(key)) for key, _ in present]
            for method, s in stats.items()]
    return tabulate(rows, ["method", "seeds"] + [title for _, title in present], tablefmt="github",
                    disable_numparse=True)


def study_tables(stats):
    """(main table, part-analysis table or None) as GitHub Markdown."""
    return _table(stats, COLUMNS), _table(stats, PART_COLUMNS)


LOCALIZATION = ("gt_known_best", "maxboxacc_v2", "pxap")


def comparison_lines(compared, columns=None, localization=LOCALIZATION):
    """One line per method: the compared columns with their verdicts, then the methods that beat
    the baseline beyond seed noise on a ``localization`` column."""
    titles = {key: title for key, title, _ in columns or ALL_COLUMNS}
    lines = []
    for method, columns in compared.items():
        cells = []
        for key, c in columns.items():
            margin = f" (2·SE {c['margin']:.1f})" if c["margin"] is not None else ""
            cells.append(f"{titles[key]} {c['difference']:+.1f}{margin} {c['verdict']}")
        lines.append(f"- {method} vs {BASELINE}: " + "; ".join(cells))
    beyond = sorted({m for m, columns in compared.items() for key, c in columns.items()
                     if key in localization and c["verdict"] == "above"})
    named = ", ".join(titles[key] for key in localization)
    lines.append(f"- beat {BASELINE} beyond seed noise on a localization column ({named}): "
                 f"{', '.join(beyond) if beyond else 'none'}")
    return lines


def study_markdown(args, stats, compared, wall_time):
    main_table, part_table = study_tables(stats)
    descriptions = "\n".join(f"- **{m}**: {METHODS[m].description}" for m in stats)
    parts = [f"# Ablation study on SYNTH ({args.arch} {args.regime}, {args.size} px, width {args.width}, {args.epochs} epoch(s) "
             f"of {args.steps_per_epoch} steps, seeds {' '.join(map(str, args.seeds))})",
             f"Values: {STD_RULE}; percentages.", descriptions, "## Localization and classification", main_table]
    if part_table:
        parts += ["## Part analysis (where the CAM's region above τ lies; expansion = more body covered "
                  "without more background)", part_table]
    if compared:
        parts += [f"## Against {BASELINE}", f"Rule: {NOISE_RULE}.", "\n".join(comparison_lines(compared))]
    parts.append(f"Wall time of this invocation: {wall_time / 60:.1f} min.")
    return "\n\n".join(parts) + "\n"


def plot_study(path, stats, columns=None, chart=CHART, title=f"SYNTH ablation: {STD_RULE}"):
    """Bar chart of the ``chart`` columns present: one panel each, mean with sample-std error bars."""
    from matplotlib.figure import Figure   # Agg canvas, no pyplot state

    titles = {key: title for key, title, _ in columns or ALL_COLUMNS}
    keys = [key for key in chart if any(key in s for s in stats.values())]
    methods = list(stats)
    figure = Figure(figsize=(3.2 * len(keys) + 1.5, 0.35 * len(methods) + 1.6), dpi=100)
    for i, key in enumerate(keys):
        axes = figure.add_subplot(1, len(keys), i + 1)
        means = [stats[m][key]["mean"] if key in stats[m] else np.nan for m in methods]
        errors = [(stats[m][key]["std"] or 0.0) if key in stats[m] else 0.0 for m in methods]
        colours = ["tab:gray" if m == BASELINE else "tab:blue" for m in methods]
        axes.barh(range(len(methods)), means, xerr=errors, color=colours, capsize=3)
        for row, method in enumerate(methods):
            if key in stats[method]:
                axes.text(min(means[row] + errors[row] + 2, 70), row, _cell(stats[method][key]), va="center", fontsize=7)
        axes.set_yticks(range(len(methods)))
        axes.set_yticklabels(methods if i == 0 else [""] * len(methods), fontsize=8)
        axes.invert_yaxis()
        axes.set_xlim(0, 100)
        axes.set_title(titles[key], fontsize=9)
        axes.grid(axis="x", alpha=0.3)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    write_figure(path, figure)


def main(argv=None):
    """The command line; a wrong input: one ``utils.study: error: ...`` line on stderr, exit 2."""
    return exit_on_user_error("utils.study", _main, argv)


def _main(argv=None):
    args = resolve(build_parser().parse_args(argv))
    start = time.time()
    make_folder(args.out)
    try:
        runs = run_all(args)
    except KeyboardInterrupt:
        print("[study] interrupted; rerun the same command to resume (finished runs are reused)", file=sys.stderr)
        return 130
    stats = aggregate({method: [run["values"] for run in method_runs] for method, method_runs in runs.items()})
    compared = comparisons(stats)
    wall_time = time.time() - start
    markdown = study_markdown(args, stats, compared, wall_time)
    summary = {"config": vars(args), "statistics": STD_RULE, "noise_rule": NOISE_RULE,
               "methods": {m: {"description": METHODS[m].description, "runs": runs[m], "stats": stats[m]}
                           for m in runs},
               "against_baseline": compared, "wall_time_seconds": wall_time}
    write_json(os.path.join(args.out, "study.json"), summary, indent=2)
    write_text(os.path.join(args.out, "study.md"), markdown)
    plot_study(os.path.join(args.out, "study.png"), stats)
    print("\n" + markdown)
    print(f"[study] results: {args.out}/study.md, study.json, study.png")
    print(f"[study] wall time {wall_time / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
