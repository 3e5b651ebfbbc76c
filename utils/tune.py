"""wsolevaluation's fair protocol as one resumable command: every method tuned with the same
budget on ``train_fullsup``, τ chosen there, the test (val) list read once at the end.

``python -m utils.tune --trials N --methods CAM ADL E2Net ...`` (the study's options: backbone,
recipe, SYNTH sizes, seeds, ``--tiny``; see ``python -m utils.study --help``):

1. **Trials.** For each method, N random draws from ``SEARCH_SPACE`` (the learning rate and the
   method's own hyperparameters), made by ``numpy.random.default_rng((search_seed, crc32(method)))``
   so that the draws are reproducible from ``--search_seed`` and a larger N keeps the first ones.
   Each trial trains with the first seed of ``--seeds`` and the same recipe as every other trial,
   **validates on train_fullsup** (``train.py --val_split train_fullsup``: the min-val-error
   checkpoint is chosen there) and is evaluated on train_fullsup, with τ searched there.  Its
   score is MaxBoxAccV2 on train_fullsup (PxAP is recorded beside it where masks exist).  The val
   list is never read in this phase.
2. **Choice.** Each method's setting is its trial with the highest score (ties: the earlier
   trial); a failed trial is counted and reported, never chosen.
3. **Final runs.** The chosen setting trains once per seed (validating on train_fullsup again) and
   is evaluated once on val with ``--tau_split train_fullsup``: every threshold-dependent number
   of the table uses τ chosen on train_fullsup.  Reference rows: the few-shot fully supervised
   baseline (``FSL``, trained on the train_fullsup masks with its default setting, not tuned) when
   the checkout has that method, and the centred box of the mean GT size (no network).
4. **Report.** ``<out>/tune.json`` (search space, search seed, every trial's values, score and
   state, the choices, every final run, the statistics and the comparison with CAM by the study's
   2 x SE rule), ``tune.md`` and ``tune.png``, written whole.

Resumable: a finished trial or final run is reused (its metrics.json records the same options);
an interrupted invocation, rerun with the same command, draws the same trials.  TensorFlow-free.
"""
import math
import os
import sys
import time
import zlib
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from utils import study
from utils.atomic import write_json, write_text
from utils.errors import UserError, exit_on_user_error
from utils.flags import FLAGS
from utils.training.launch import RunError, train_and_evaluate
from models.methods.registry import canonical_method

TRIAL_SPLIT = "train_fullsup"
TEST_SPLIT = "val"
FSL_METHOD = "FSL"
SCORE = ("maxboxacc_v2", "MaxBoxAccV2 on train_fullsup (τ searched there)")
DEFAULT_METHODS = ("CAM", "ADL", "MAE", "OSE", "E2Net", "HaS", "ACoL", "SPG", "CutMix")
TINY_METHODS = ("CAM", "ADL")


class TuneError(UserError, ValueError):
    """A tuning option the project cannot honour."""


# --------------------------------------------------------------------------- search space

@dataclass(frozen=True)
class Uniform:
    lo: float
    hi: float

    def draw(self, rng):
        return round(float(rng.uniform(self.lo, self.hi)), 4)

    def __str__(self):
        return f"Uniform[{self.lo}, {self.hi}]"


@dataclass(frozen=True)
class LogUniform:
    lo: float
    hi: float

    def draw(self, rng):
        return float(f"{math.exp(rng.uniform(math.log(self.lo), math.log(self.hi))):.3g}")

    def __str__(self):
        return f"LogUniform[{self.lo:g}, {self.hi:g}]"


@dataclass(frozen=True)
class Choice:
    values: tuple

    def draw(self, rng):
        value = self.values[int(rng.integers(len(self.values)))]
        return list(value) if isinstance(value, tuple) else value

    def __str__(self):
        return "Choice{" + ", ".join(" ".join(map(str, v)) if isinstance(v, tuple) else str(v)
                                     for v in self.values) + "}"


@dataclass(frozen=True)
class ThresholdPairs:
    """``count`` (high, low) pairs, each drawn as two Uniform[0, 1] values sorted high first
    (SPG's three pairs: a pixel is foreground above high, background below low)."""
    count: int

    def draw(self, rng):
        pairs = [sorted((round(float(v), 4) for v in rng.uniform(0.0, 1.0, 2)), reverse=True)
                 for _ in range(self.count)]
        return [value for pair in pairs for value in pair]

    def __str__(self):
        return f"{self.count} x (high, low), each sorted from two Uniform[0, 1]"


LEARNING_RATE = LogUniform(1e-4, 1e-1)
UNIT = Uniform(0.0, 1.0)
OSE_HEAD_SETS = (("3x3", "1x3", "3x1"), ("3x3", "1x3", "3x1", "diag", "antidiag"))
MAE_SPACE = {"aae_threshold": UNIT, "mae_mask": Choice(("sum", "max"))}
# The project's search space (one home): the recipe's learning rate over two decades around the
# demo's 0.01, each method's own hyperparameters over their whole range.  Every method gets the
# same number of draws and the same training length.
SEARCH_SPACE = {
    "CAM": {},
    "ADL": {"adl_threshold": UNIT, "adl_keep_prob": UNIT},
    "MAE": dict(MAE_SPACE),
    "OSE": {"ose_heads": Choice(OSE_HEAD_SETS)},
    "E2Net": dict(MAE_SPACE, ose_heads=Choice(OSE_HEAD_SETS)),
    "HaS": {"has_grid_size": Choice((2, 4, 8)), "has_drop_rate": UNIT},
    "ACoL": {"acol_threshold": UNIT},
    "SPG": {"spg_thresholds": ThresholdPairs(3)},
    "CutMix": {"cutmix_beta": Uniform(0.1, 2.0), "cutmix_prob": UNIT},
}


def search_space(method):
    """``{flag: distribution}`` searched for a method (the learning rate first)."""
    return dict({"base_lr": LEARNING_RATE}, **SEARCH_SPACE[method])


def draw_trials(method, count, search_seed):
    """The first ``count`` trials of a method: ``[{flag: value}]``, reproducible from
    ``search_seed`` (a larger ``count`` extends the same sequence)."""
    rng = np.random.default_rng((search_seed, zlib.crc32(method.encode())))
    space = search_space(method)
    return [{name: space[name].draw(rng) for name in space} for _ in range(count)]


def choose_best(trials):
    """Index of the trial with the highest score (ties: the earlier trial); trials without a
    score (failed) are never chosen.  None when no trial has a score."""
    scored = [(i, trial["score"]) for i, trial in enumerate(trials) if trial.get("score") is not None]
    if not scored:
        return None
    best = max(score for _, score in scored)
    return next(i for i, score in scored if score == best)


# --------------------------------------------------------------------------- options

def build_parser():
    p = study.build_parser()
    p.prog = "python -m utils.tune"
    p.description = __doc__
    p.add_argument("--trials", type=int, help="random-search trials per method (default 8; --tiny: 3)")
    p.add_argument("--search_seed", type=int, default=0, help="seed of the search draws (default 0)")
    p.add_argument("--no_fsl", action="store_true", help="leave out the few-shot fully supervised reference row")
    return p


def resolve(args):
    """The study's resolution (recipe, sizes, seeds), then the protocol's own checks."""
    methods_given = args.methods is not None
    if args.out is None:
        args.out = os.path.join(study.REPO, "train_log", "tune")
    if args.trials is None:
        args.trials = 3 if args.tiny else 8
    if args.trials < 1:
        raise TuneError(f"--trials must be >= 1, got {args.trials}")
    if methods_given:
        requested = args.methods
    else:
        requested = TINY_METHODS if args.tiny else [m for m in DEFAULT_METHODS if m in known_methods()]
    args.methods = [study.BASELINE]          # study.resolve checks its own arm names; ours follow
    args = study.resolve(args)
    names = []
    for name in requested:
        try:
            method = canonical_method(name)
        except ValueError as error:
            raise TuneError(str(error)) from None
        if method not in SEARCH_SPACE:
            raise TuneError(f"{method} has no search space in utils/tune.py SEARCH_SPACE; add one to tune it")
        names.append(method)
    if study.BASELINE not in names:
        names.insert(0, study.BASELINE)      # every comparison is against CAM
    args.methods = list(dict.fromkeys(names))
    declared = {flag.name for flag in FLAGS}
    for method in args.methods:
        missing = [name for name in search_space(method) if name not in declared]
        if missing:
            raise TuneError(f"the search space of {method} names --{missing[0]}, which train.py does not declare "
                            f"(utils/flags.py)")
    if len(args.seeds) < 2:
        raise TuneError(f"the final runs need >= 2 seeds for the noise rule, got {args.seeds}")
    return args


def known_methods():
    """Method names train.py accepts (those of DEFAULT_METHODS and FSL that it knows)."""
    known = []
    for name in DEFAULT_METHODS + (FSL_METHOD,):
        try:
            known.append(canonical_method(name))
        except ValueError:
            continue
    return known


def _arm(method):
    return study.Method(f"{method} (tuned)", method)


def trial_options(args, method, params, data_root):
    """train.py options of one trial: the study's recipe, the drawn values, validation on train_fullsup."""
    options = study.run_options(args, _arm(method), args.seeds[0], data_root)
    options.update(params, val_split=TRIAL_SPLIT)
    return options


def final_options(args, method, params, seed, data_root):
    """(training options, evaluation options) of a final run: validated on train_fullsup, evaluated
    once on the test list with τ from train_fullsup."""
    options = study.run_options(args, _arm(method), seed, data_root)
    options.update(params, val_split=TRIAL_SPLIT)
    return options, {"val_split": TEST_SPLIT, "tau_split": TRIAL_SPLIT}


# --------------------------------------------------------------------------- the protocol

def run_trials(args, data_root, log=print):
    """Train and score every trial of every method on train_fullsup; returns
    ``{method: [trial record]}`` (values, score, state, metrics file or error)."""
    execution = {"number_of_examples": 0, "workers": args.workers}
    results = {}
    for method in args.methods:
        trials, best = [], None
        for i, params in enumerate(draw_trials(method, args.trials, args.search_seed)):
            log_dir = os.path.join(args.out, "trials", method, f"trial{i:02d}")
            what = f"{method} trial {i + 1}/{args.trials}"
            record = {"trial": i, "values": params, "log_dir": log_dir}
            try:
                path, metrics, reused = train_and_evaluate(
                    log_dir, trial_options(args, method, params, data_root), execution,
                    log_stem=os.path.join(args.out, "logs", f"{method}-trial{i:02d}"), what=what)
            except RunError as error:
                record.update(state="failed", error=str(error), score=None)
            else:
                pxap = (metrics.get("pixel") or {}).get("pxap")
                record.update(state="reused" if reused else "trained", metrics_file=path,
                              score=metrics.get(SCORE[0]), pxap=pxap, top1_cls=metrics.get("top1_cls"))
            trials.append(record)
            best = choose_best(trials)
            running = (f"running best: trial {best + 1} ({trials[best]['score']:.2f})" if best is not None
                       else "no trial scored yet")
            outcome = (f"failed ({record['error']})" if record["state"] == "failed" else
                       f"{record['state']}, score {record['score']:.2f}")
            log(f"[tune] {what}: {_values_text(params)} -> {outcome}; {running}", flush=True)
        results[method] = trials
    return results


def _values_text(params):
    return " ".join(f"{name}={' '.join(map(str, v)) if isinstance(v, list) else v}" for name, v in params.items())


def run_final(args, data_root, chosen, log=print):
    """Every chosen setting (and FSL's defaults) once per seed, evaluated on val with τ from
    train_fullsup; returns ``{method: [run record]}``."""
    execution = {"number_of_examples": args.examples, "workers": args.workers}
    runs = {}
    for method, params in chosen.items():
        runs[method] = []
        for seed in args.seeds:
            log_dir = os.path.join(args.out, "final", method, f"seed{seed}")
            options, evaluation = final_options(args, method, params, seed, data_root)
            path, metrics, reused = train_and_evaluate(
                log_dir, options, execution, log_stem=os.path.join(args.out, "logs", f"{method}-final-seed{seed}"),
                what=f"{method} final seed {seed}", evaluation=evaluation)
            log(f"[tune] {method} final seed {seed}: {'reused' if reused else 'done'} ({path})", flush=True)
            runs[method].append({"seed": seed, "log_dir": log_dir, "metrics_file": path, "reused": reused,
                                 "values": study.run_values(metrics, FINAL_COLUMNS)})
    return runs


# Final table columns: every threshold-dependent value at τ chosen on train_fullsup.
FINAL_COLUMNS = (
    ("top1_cls", "Top-1 Cls", ("top1_cls",)),
    ("gt_known_held_out", "GT-known Loc (τ from train_fullsup)", ("held_out_tau", "reference", "gt_known_loc")),
    ("maxboxacc_v2", "MaxBoxAccV2 (τ from train_fullsup)", ("held_out_tau", "maxboxacc_v2")),
    ("iou30", "IoU 30", ("held_out_tau", "box_accuracy", "30", "value")),
    ("iou50", "IoU 50", ("held_out_tau", "box_accuracy", "50", "value")),
    ("iou70", "IoU 70", ("held_out_tau", "box_accuracy", "70", "value")),
    ("pxap", "PxAP", ("pixel", "pxap")),
) + tuple(column for column in study.PART_COLUMNS if column[0].startswith("parts_cam_threshold_"))
COMPARED = ("top1_cls", "gt_known_held_out", "maxboxacc_v2", "pxap")
LOCALIZATION = ("gt_known_held_out", "maxboxacc_v2", "pxap")
CHART = ("gt_known_held_out", "maxboxacc_v2", "pxap")
CENTRED_BOX = "trivial: centred mean box"


def centred_box_row(args, data_root):
    """The centred box of the mean GT size on the val list (no network, no τ), as table values."""
    from utils.demo import reference_rows      # the demo owns the reference rows
    view = SimpleNamespace(data_dir=data_root, image_size=args.image_size, size=args.size)   # what it reads
    row = reference_rows(view)[CENTRED_BOX]
    values = {"gt_known_held_out": row["gt_known_loc"], "maxboxacc_v2": row["maxboxacc_v2"]}
    values.update({f"iou{iou}": row[f"iou{iou}"] for iou in (30, 50, 70)})
    return values


def tune_markdown(args, trials, chosen, stats, compared, reference, wall_time):
    lines = [f"# Fair protocol on SYNTH ({args.arch}, {args.size} px, width {args.width}, {args.epochs} epoch(s) of "
             f"{args.steps_per_epoch} steps)",
             f"{args.trials} random-search trials per method (search seed {args.search_seed}), each trained with seed "
             f"{args.seeds[0]}, validated and scored on {TRIAL_SPLIT} ({SCORE[1]}); the chosen setting retrained with "
             f"seeds {' '.join(map(str, args.seeds))} and evaluated once on {TEST_SPLIT} with τ from {TRIAL_SPLIT}.",
             "## Search space", ""]
    for method in args.methods:
        space = ", ".join(f"`--{name}` {dist}" for name, dist in search_space(method).items())
        lines.append(f"- **{method}**: {space}")
    lines += ["", "## Trials (score: " + SCORE[1] + ")", ""]
    for method, records in trials.items():
        failed = sum(r["state"] == "failed" for r in records)
        best = choose_best(records)
        scores = " ".join("✗" if r["score"] is None else f"{r['score']:.1f}" for r in records)
        chosen_text = f"chosen trial {best + 1}: {_values_text(chosen[method])}" if method in chosen else "none chosen"
        lines.append(f"- **{method}**: scores {scores}; {failed} failed; {chosen_text}")
    main_table = study._table(stats, FINAL_COLUMNS)
    lines += ["", f"## Test ({TEST_SPLIT}) with τ from {TRIAL_SPLIT}: {study.STD_RULE}", "", main_table or "(no runs)"]
    if reference:
        lines += ["", f"Reference (no network): {CENTRED_BOX}: " +
                  ", ".join(f"{title} {reference[key]:.1f}" for key, title, _ in FINAL_COLUMNS if key in reference)]
    if compared:
        lines += ["", f"## Against {study.BASELINE}", "", f"Rule: {study.NOISE_RULE}.", "",
                  "\n".join(study.comparison_lines(compared, FINAL_COLUMNS, LOCALIZATION))]
    lines += ["", f"Wall time of this invocation: {wall_time / 60:.1f} min."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = resolve(build_parser().parse_args(argv))
    start = time.time()
    data_root = study.ensure_data(args, None)
    try:
        trials = run_trials(args, data_root)
        chosen = {}
        for method, records in trials.items():
            best = choose_best(records)
            if best is None:
                print(f"[tune] {method}: every trial failed; left out of the final runs", flush=True)
                continue
            chosen[method] = records[best]["values"]
        finals = dict(chosen)
        if not args.no_fsl and FSL_METHOD in known_methods():
            finals[FSL_METHOD] = {}
        runs = run_final(args, data_root, finals)
    except KeyboardInterrupt:
        print("[tune] interrupted; rerun the same command to resume (finished trials and runs are reused, "
              "the draws are the same)", file=sys.stderr)
        return 130
    stats = study.aggregate({m: [r["values"] for r in method_runs] for m, method_runs in runs.items()}, FINAL_COLUMNS)
    compared = study.comparisons(stats, keys=COMPARED)
    reference = centred_box_row(args, data_root)
    wall_time = time.time() - start
    markdown = tune_markdown(args, trials, chosen, stats, compared, reference, wall_time)
    summary = {"config": vars(args), "score": SCORE[1], "trial_split": TRIAL_SPLIT, "test_split": TEST_SPLIT,
               "search_seed": args.search_seed,
               "search_space": {m: {name: str(d) for name, d in search_space(m).items()} for m in args.methods},
               "trials": trials, "chosen": chosen, "final_runs": runs, "stats": stats,
               "against_baseline": compared, "reference_rows": {CENTRED_BOX: reference},
               "statistics": study.STD_RULE, "noise_rule": study.NOISE_RULE, "wall_time_seconds": wall_time}
    write_json(os.path.join(args.out, "tune.json"), summary, indent=2)
    write_text(os.path.join(args.out, "tune.md"), markdown)
    study.plot_study(os.path.join(args.out, "tune.png"), stats, FINAL_COLUMNS, CHART,
                     title=f"Fair protocol: {study.STD_RULE}")
    print("\n" + markdown)
    print(f"[tune] results: {args.out}/tune.md, tune.json, tune.png; wall time {wall_time / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(exit_on_user_error("utils.tune", main))
