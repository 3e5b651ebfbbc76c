"""``train.py`` in a subprocess: one run's command line, a logged call, and whether it is finished.

A run is described by a dict of ``train.py`` options keyed by their names (``{"method_name":
"CAM", "epoch": 10, ...}`` -> ``--method_name CAM --epoch 10``; a list is several values,
``None`` leaves the option out).  Those options identify the run; ``execution`` options
(decoding workers, example pictures) are passed but do not identify it.

A run is **finished** when a ``metrics.json`` under ``<log_dir>/result/`` records every
identifying option with the same value (its ``config``); ``train_and_evaluate`` then reuses
it.  Otherwise it runs ``train.py`` with the same options -- which resumes from the newest
checkpoint of a half-finished run -- and, unless that already wrote a matching
``metrics.json``, ``train.py --evaluate``.  A log folder whose ``config.json`` records other
values is refused (it belongs to another experiment), never silently mixed.

No TensorFlow here: the process that drives many runs stays light.
"""
import glob
import json
import os
import subprocess
import sys

from utils.atomic import OutputError, make_folder
from utils.evaluation.results import nondefault_settings, partial_note
from utils.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_PY = os.path.join(REPO, "train.py")


class RunError(UserError, RuntimeError):
    """A train.py run failed, wrote no result, or its folder holds another configuration."""


def train_command(log_dir, options):
    """``[python, train.py, --log_dir, log_dir, --name value ...]`` for an options dict."""
    cmd = [sys.executable, TRAIN_PY, "--log_dir", str(log_dir)]
    for name, value in options.items():
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        cmd += [f"--{name}"] + [str(v) for v in values]
    return cmd


def _normalised(value):
    return list(value) if isinstance(value, tuple) else value


# Values of options that records written before the option existed leave out.
RECORDED_BEFORE = {"precision": "fp32"}


def config_differences(config, options):
    """``[(name, recorded, wanted)]`` for the options (not None) a run configuration records otherwise."""
    return [(name, config.get(name, RECORDED_BEFORE.get(name)), _normalised(value)) for name, value in options.items()
            if value is not None and config.get(name, RECORDED_BEFORE.get(name)) != _normalised(value)]


def finished_metrics(log_dir, options):
    """``(path, metrics)`` of the newest ``metrics.json`` under ``<log_dir>/result`` made with
    ``options``, else None (unreadable or half-written files do not count as results, nor does a
    partial evaluation (``--number_of_val``) or one at other evaluation settings (``--cam_fusion``,
    ``--tau_split``, ...) unless ``options`` ask for them)."""
    paths = glob.glob(os.path.join(str(log_dir), "result", "**", "metrics.json"), recursive=True)
    for path in sorted(paths, key=os.path.getmtime, reverse=True):
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or "metrics" not in record:
            continue
        if partial_note(record) and options.get("number_of_val") is None:
            continue
        if any(name not in options for name, _ in nondefault_settings(record)):
            continue   # evaluated at other settings than the run's default evaluation
        if not config_differences(record.get("config", {}), options):
            return path, record["metrics"]
    return None


def check_same_experiment(log_dir, options):
    """Refuse a log folder whose ``config.json`` records other identifying option values."""
    path = os.path.join(str(log_dir), "config.json")
    if not os.path.isfile(path):
        return
    try:
        with open(path) as f:
            config = json.load(f)
    except ValueError as e:
        raise RunError(f"{path}: not valid JSON ({e}); delete {log_dir} to rerun it") from None
    differences = config_differences(config, options)
    if differences:
        name, recorded, wanted = differences[0]
        raise RunError(f"{path}: --{name} was {recorded!r}, this run needs {wanted!r} "
                       f"(another experiment's run; use another output folder or delete {log_dir})")


def _last_line(path):
    with open(path, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1] if lines else "(empty log)"


def run_logged(cmd, log_path, what):
    """Run ``cmd`` in the repository with its output in ``log_path``; a failure is a RunError."""
    make_folder(os.path.dirname(os.path.abspath(log_path)))
    try:
        log = open(log_path, "w")   # a live log (read while the run goes on), not a result
    except OSError as error:
        raise OutputError(f"cannot write {log_path}: {error.strerror}") from None
    with log:
        code = subprocess.call(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    if code != 0:
        raise RunError(f"{what} failed (exit {code}): {_last_line(log_path)} (log: {log_path})")


def train_and_evaluate(log_dir, options, execution=None, log_stem=None, what="run", on_stage=None, evaluation=None):
    """Reuse, resume or start one run; returns ``(metrics_path, metrics, reused)``.

    ``log_stem``: path prefix of the logs (``<stem>.train.log``, ``<stem>.eval.log``;
    default ``<log_dir>`` + those suffixes); ``on_stage(stage)`` is called before
    ``"training"`` and ``"evaluating"`` (progress output).  ``evaluation``: options of the
    ``--evaluate`` call only (e.g. ``{"val_split": "val", "tau_split": "train_fullsup"}`` after a
    run validated on train_fullsup); they identify the result, not the training run.
    """
    wanted = dict(options, **(evaluation or {}))
    found = finished_metrics(log_dir, wanted)
    if found:
        return found + (True,)
    check_same_experiment(log_dir, options)
    log_stem = log_stem or str(log_dir)
    commands = {"training": train_command(log_dir, dict(options, **(execution or {}))),
                "evaluating": train_command(log_dir, dict(wanted, **(execution or {}))) + ["--evaluate"]}
    for stage, suffix in (("training", "train"), ("evaluating", "eval")):
        if stage == "evaluating":
            found = finished_metrics(log_dir, wanted)   # train.py may evaluate after training itself
            if found:
                return found + (False,)
        if on_stage:
            on_stage(stage)
        run_logged(commands[stage], f"{log_stem}.{suffix}.log", f"{what} ({stage})")
    found = finished_metrics(log_dir, wanted)
    if not found:
        raise RunError(f"{what}: train.py --evaluate wrote no metrics.json for this configuration under "
                       f"{log_dir}/result (log: {log_stem}.eval.log)")
    return found + (False,)
