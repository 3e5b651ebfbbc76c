"""Where evaluation results go: one new folder per evaluation, never overwriting an earlier one.

``<log_dir>/result/<NNN>-<checkpoint name>/`` (``001-min-val-error-top1``,
``002-model-640``, ...): the number grows with each evaluation of the run; the folder is
created with ``os.mkdir`` (exclusive), so two evaluations running at once get different
folders.  ``<log_dir>/result/latest`` is a symlink to the newest *finished* one (replaced
atomically when an evaluation has written everything).  Tools read results through
``latest_result_dir``; a run evaluated before this layout (``result/metrics.json`` directly)
still reads.  TensorFlow-free.
"""
import argparse
import contextlib
import json
import os
import re
import shutil

from utils.atomic import OutputError, make_folder, temp_folder_beside
from utils.evaluation.report import METRICS_FILE
from utils.flags import flag

RESULT_ROOT = "result"
LATEST = "latest"
_NUMBERED = re.compile(r"^(\d{3,})-")


def _numbers(root):
    names = os.listdir(root) if os.path.isdir(root) else []
    return [int(m.group(1)) for m in map(_NUMBERED.match, names) if m]


def new_result_dir(log_dir, checkpoint):
    """Create and return a fresh ``result/<NNN>-<checkpoint name>`` folder."""
    root = os.path.join(log_dir, RESULT_ROOT)
    make_folder(root)
    name = os.path.basename(os.path.normpath(checkpoint)) or "checkpoint"
    number = max(_numbers(root), default=0) + 1
    while True:
        path = os.path.join(root, f"{number:03d}-{name}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            number += 1
        except OSError as error:
            raise OutputError(f"cannot create the result folder {path}: {error.strerror}") from None


@contextlib.contextmanager
def building(result_dir):
    """Yield a temporary folder beside the (empty, reserved) ``result_dir`` to write the result
    in; when the block completes it is renamed to ``result_dir``.  A failure removes both, so a
    result folder is always complete or absent."""
    temp = temp_folder_beside(result_dir)
    try:
        yield temp
        os.rename(temp, result_dir)          # over the empty reserved folder
    except BaseException as error:
        shutil.rmtree(temp, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(result_dir)
        if isinstance(error, OutputError):   # name the result folder, not its temporary name
            raise OutputError(str(error).replace(temp, result_dir)) from None
        if isinstance(error, OSError):
            raise OutputError(f"cannot write the result folder {result_dir}: {error.strerror or error}") from None
        raise


def mark_latest(result_dir):
    """Point ``result/latest`` at ``result_dir`` (atomic replace of the symlink)."""
    root = os.path.dirname(os.path.abspath(result_dir))
    temp = os.path.join(root, f".{LATEST}.{os.getpid()}")
    if os.path.lexists(temp):
        os.remove(temp)
    os.symlink(os.path.basename(result_dir), temp)
    os.replace(temp, os.path.join(root, LATEST))


# Flags whose value changes what an evaluation measures (besides --number_of_val: partial_note).
EVALUATION_IDENTITY = ("val_split", "cam_threshold", "number_of_cam_curve_interval", "mask_dir", "tau_split",
                       "cam_fusion")


def nondefault_settings(record):
    """``[(flag, value)]`` of a record's evaluation settings that differ from a default evaluation
    of its run (a flag's default, or its preset for the run, e.g. the released τ)."""
    config = record.get("config") or {}
    run = argparse.Namespace(**config)
    found = []
    for name in EVALUATION_IDENTITY:
        if name not in config:
            continue
        declared = flag(name)
        try:
            expected = declared.preset(run, {}) if declared.preset else declared.default
        except AttributeError:   # a record without the fields the preset reads
            continue
        if declared.normalize(config[name]) != declared.normalize(expected):
            found.append((name, config[name]))
    return found


def identity_note(record):
    """``None`` for a complete evaluation at the default settings, else what differs (one line)."""
    notes = [note for note in [partial_note(record)] if note]
    notes += [f"--{name} {value}" for name, value in nondefault_settings(record)]
    return "; ".join(notes) or None


def partial_note(record):
    """Why a ``{"config", "metrics"}`` record is not a complete evaluation of its list, or ``None``
    when it is: ``--number_of_val N`` evaluates the first N images only.  The evaluation settings
    (images, τ and its source, fusion, masks, protocol) are part of a result's identity: a tool
    that picks "the" result of a run takes a complete one, or says which one it took."""
    number = (record.get("config") or {}).get("number_of_val")
    if number is None:
        return None
    images = (record.get("metrics") or {}).get("num_images", number)
    return f"partial evaluation: the first {images} images (--number_of_val {number})"


def evaluation_settings(record):
    """The evaluation settings of a record, as one line: images, τ and where it came from,
    CAM fusion and masks (the protocol tables are all in every metrics.json)."""
    config, metrics = record.get("config") or {}, record.get("metrics") or {}
    tau_source = metrics.get("tau_chosen_on") or "fixed"
    masks = metrics.get("mask_dir") or "none"
    return (f"{metrics.get('num_images')} images, τ {metrics.get('cam_threshold')} (best τ searched on "
            f"{tau_source}), fusion {config.get('cam_fusion')}, masks {masks}")


def complete_results(log_dir):
    """``[(metrics.json path, record)]`` of a run's readable evaluations, newest first: complete
    ones at the default settings, then complete ones at other settings, then partial ones."""
    root = os.path.join(log_dir, RESULT_ROOT)
    found = []
    for path in [os.path.join(root, METRICS_FILE)] + [os.path.join(root, name, METRICS_FILE) for name in
                                                       (os.listdir(root) if os.path.isdir(root) else [])
                                                       if name != LATEST]:
        try:
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and "metrics" in record:
            found.append((path, record))
    found.sort(key=lambda item: os.path.getmtime(item[0]), reverse=True)
    return sorted(found, key=lambda item: (partial_note(item[1]) is not None, bool(nondefault_settings(item[1]))))


def latest_result_dir(log_dir):
    """The newest finished result folder of a run: ``result/latest``, else the highest-numbered
    folder holding a metrics.json, else ``result/`` itself (the layout before numbering)."""
    root = os.path.join(log_dir, RESULT_ROOT)
    latest = os.path.join(root, LATEST)
    if os.path.isfile(os.path.join(latest, "metrics.json")):
        return os.path.realpath(latest)
    for number in sorted(_numbers(root), reverse=True):
        for name in os.listdir(root):
            path = os.path.join(root, name)
            if name.startswith(f"{number:03d}-") and os.path.isfile(os.path.join(path, "metrics.json")):
                return path
    return root
