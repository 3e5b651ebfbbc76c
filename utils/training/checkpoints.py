"""Checkpoint files that are what they look like: verify before use, publish only after a check.

A TensorFlow checkpoint ``<prefix>`` is ``<prefix>.index`` plus ``<prefix>.data-*-of-*``
(and a ``checkpoint`` index file in the folder naming the newest one).  A full disk or a
killed copy can leave a valid-looking index next to a truncated data file.  Here:

* ``verify_checkpoint(path)`` opens a checkpoint and reads every tensor (TensorFlow checks
  each tensor's size and CRC32C on read); a missing, truncated or corrupt file raises
  ``CheckpointError`` naming the checkpoint and the reason, in one line.
* ``VerifiedModelSaver`` (tensorpack ``ModelSaver``) writes ``model-<step>``, verifies it,
  and only then records it in the ``checkpoint`` index file and deletes the oldest one.
* ``VerifiedMinSaver`` (tensorpack ``MinSaver``, its best value read back from
  ``stats.json`` on resume) copies the checkpoint to hidden temporary files, verifies the
  copy, then renames it over ``min-val-error-top1.*`` (data first, index last).
* A save that fails (full disk, read-only folder, failed check) removes its partial files
  and stops the run with ``CheckpointSaveError``: one line naming the folder, the reason and
  the previous checkpoint, which is left intact.
* Which checkpoint, one function each: ``newest_restorable_checkpoint(log_dir)`` is where
  training resumes (the newest ``model-<step>`` that verifies, logging each one it skips and
  why); ``last_saved_checkpoint(log_dir)`` the last one ``VerifiedModelSaver`` published (named
  by the ``checkpoint`` index file; not re-read); ``checkpoint_to_evaluate(args)`` what
  ``--evaluate`` / predict / export use (``--load``, else ``min-val-error-top1``, else the last
  saved one; ``CheckpointError`` without any).

Numpy- and TensorFlow-using (reads checkpoints); no graph is built here.
"""
from utils import compat  # noqa: F401  (first: TensorFlow set-up)
import glob
import json
import os
import re
import shutil
from datetime import datetime

from tensorpack.callbacks import MinSaver, ModelSaver
from tensorpack.utils import logger
from tensorflow.python.training import checkpoint_management

from utils.atomic import OutputError, write_bytes
from utils.compat import tf
from utils.errors import UserError

MODEL_PREFIX = "model"
MONITOR_STAT = "val-error-top1"           # MinSaver's statistic
BEST_CHECKPOINT = f"min-{MONITOR_STAT}"   # the checkpoint MinSaver keeps (tensorpack's name)
TEMP_MARK = ".tmp-"
_DATA_SUFFIX = re.compile(r"\.data-(\d+)-of-(\d+)$")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be restored (missing, truncated or corrupt file)."""


class CheckpointSaveError(UserError, RuntimeError):
    """Saving a checkpoint failed; the previous one is intact."""


def checkpoint_prefix(path):
    """The checkpoint prefix of ``path`` (a prefix, or one of its ``.index`` / ``.data-*`` /
    ``.meta`` files)."""
    for suffix in (".index", ".meta"):
        if path.endswith(suffix):
            return path[:-len(suffix)]
    return _DATA_SUFFIX.sub("", path)


def checkpoint_files(prefix):
    """The files of a checkpoint: its index and data shards that exist."""
    return sorted(glob.glob(glob.escape(prefix) + ".data-*-of-*")) + \
        [p for p in [prefix + ".index"] if os.path.isfile(p)]


def verify_checkpoint(path):
    """Check that checkpoint ``path`` restores: its index and every data shard exist and every
    tensor reads back (size and CRC32C).  Returns the prefix; raises ``CheckpointError``."""
    prefix = checkpoint_prefix(path)
    if not os.path.isfile(prefix + ".index"):
        raise CheckpointError(f"checkpoint {prefix} is unusable: its index file {prefix}.index is missing")
    shards = glob.glob(glob.escape(prefix) + ".data-*-of-*")
    if not shards:
        raise CheckpointError(f"checkpoint {prefix} is unusable: no data file {prefix}.data-*")
    expected = int(_DATA_SUFFIX.search(shards[0]).group(2))
    if len(shards) != expected:
        raise CheckpointError(f"checkpoint {prefix} is unusable: {len(shards)} of {expected} data files present")
    try:
        reader = tf.train.NewCheckpointReader(prefix)
        for name in sorted(reader.get_variable_to_shape_map()):
            reader.get_tensor(name)
    except Exception as e:  # TensorFlow's reader raises OpErrors, IndexError, ValueError, ...
        raise CheckpointError(f"checkpoint {prefix} is unusable: {_reason(e)}") from None
    return prefix


def _remove(paths):
    for path in paths:
        try:
            os.remove(path)
        except OSError:
            pass


def _reason(error):
    text = str(getattr(error, "message", None) or error).strip()
    return (text.splitlines() or [type(error).__name__])[0]


def _step_of(prefix):
    match = re.search(rf"{MODEL_PREFIX}-(\d+)$", prefix)
    return int(match.group(1)) if match else None


def _model_checkpoints(log_dir):
    """``[(prefix, step)]`` of the ``model-<step>`` checkpoints in log_dir (any of whose files
    exists), newest first; not verified."""
    steps = set()
    for path in glob.glob(os.path.join(glob.escape(log_dir), f"{MODEL_PREFIX}-*")):
        step = _step_of(checkpoint_prefix(path))
        if step is not None:
            steps.add(step)
    return [(os.path.join(log_dir, f"{MODEL_PREFIX}-{s}"), s) for s in sorted(steps, reverse=True)]


def newest_restorable_checkpoint(log_dir):
    """(prefix, step) of the newest ``model-<step>`` checkpoint that verifies, or None;
    each newer one that does not is logged with the reason."""
    if not os.path.isdir(log_dir):
        return None
    candidates = _model_checkpoints(log_dir)
    for prefix, step in candidates:
        try:
            verify_checkpoint(prefix)
        except CheckpointError as e:
            logger.warn(f"skipping {os.path.basename(prefix)} for resume: {e}")
            continue
        return prefix, step
    if candidates:
        logger.warn(f"no checkpoint in {log_dir} restores; training starts from the beginning")
    return None


def last_saved_checkpoint(log_dir):
    """The checkpoint the ``checkpoint`` index file of log_dir names (the last one saved and
    verified by ``VerifiedModelSaver``), or None."""
    return tf.train.latest_checkpoint(log_dir) if log_dir and os.path.isdir(log_dir) else None


def checkpoint_to_evaluate(args):
    """--load, else ``min-val-error-top1`` in the log folder, else its last saved checkpoint;
    ``CheckpointError`` when there is none."""
    if args.load:
        return args.load
    best = os.path.join(args.log_dir, BEST_CHECKPOINT)
    if os.path.isfile(best + ".index"):
        return best
    latest = last_saved_checkpoint(args.log_dir)
    if latest is None:
        raise CheckpointError(f"no checkpoint to evaluate in {args.log_dir} (train first or pass --load)")
    return latest


class VerifiedModelSaver(ModelSaver):
    """``ModelSaver``: save, verify, then record in the ``checkpoint`` index file and prune.
    The graph file ``graph-<time>.meta`` of the run's start is written whole or not at all."""

    def _before_train(self):
        path = os.path.join(self.checkpoint_dir, f"graph-{datetime.now().strftime('%m%d-%H%M%S')}.meta")
        meta_graph = self.saver.export_meta_graph(collection_list=self.graph.get_all_collection_keys())
        try:
            write_bytes(path, meta_graph.SerializeToString())
        except OutputError as error:
            raise CheckpointSaveError(f"{error}; no checkpoint was written yet. Free space or fix the folder, "
                                      f"then rerun the same command") from None

    def _trigger(self):
        previous = last_saved_checkpoint(self.checkpoint_dir)
        step = tf.train.global_step(tf.get_default_session(), tf.train.get_global_step())
        target = f"{self.path}-{step}"
        try:
            saved = self.saver.save(tf.get_default_session(), self.path, global_step=step,
                                    write_meta_graph=False, write_state=False)
            verify_checkpoint(saved)
            self.saver._RecordLastCheckpoint(saved)
            checkpoint_management.update_checkpoint_state_internal(
                save_dir=self.checkpoint_dir, model_checkpoint_path=saved,
                all_model_checkpoint_paths=self.saver.last_checkpoints, save_relative_paths=True)
        except (OSError, tf.errors.OpError, CheckpointError) as e:
            _remove(checkpoint_files(target))
            for temp_dir in glob.glob(glob.escape(target) + "_temp*"):  # TensorFlow's own partial files
                shutil.rmtree(temp_dir, ignore_errors=True)
            kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
            raise CheckpointSaveError(f"could not save checkpoint {target} ({_reason(e)}); {kept}. "
                                      f"Free space or fix the folder, then rerun the same command to resume"
                                      ) from None
        self.saver._MaybeDeleteOldCheckpoints()
        logger.info(f"Model saved to {saved}.")


class VerifiedMinSaver(MinSaver):
    """``MinSaver`` whose copy is verified before it replaces the previous best, and whose
    best value survives a restart (read back from ``stats.json`` up to the resumed step)."""

    def __init__(self, monitor_stat, checkpoint_dir, resume_step=None):
        super().__init__(monitor_stat, checkpoint_dir=checkpoint_dir)
        self.resume_step = resume_step

    def _setup_graph(self):
        stats_file = os.path.join(self.checkpoint_dir, "stats.json")
        if self.resume_step is None or not os.path.isfile(stats_file):
            return
        with open(stats_file) as f:
            history = [(s["global_step"], s[self.monitor_stat]) for s in json.load(f)
                       if self.monitor_stat in s and s["global_step"] <= self.resume_step]
        if history:
            self.best = min(history, key=lambda item: item[1])
            logger.info(f"[MinSaver] resuming with best {self.monitor_stat}={self.best[1]:.5g} "
                        f"at global_step={self.best[0]}")

    @property
    def best_prefix(self):
        return os.path.join(self.checkpoint_dir, self.filename or f"min-{self.monitor_stat}")

    def _save(self):
        source = os.path.join(self.checkpoint_dir, f"{MODEL_PREFIX}-{self.best[0]}")
        final = self.best_prefix
        temp_mark = os.path.join(self.checkpoint_dir, f".{os.path.basename(final)}{TEMP_MARK}")
        _remove(glob.glob(glob.escape(temp_mark) + "*"))  # left by a killed run (the folder is locked)
        temp = f"{temp_mark}{os.getpid()}"
        copies = [(path, temp + path[len(source):]) for path in checkpoint_files(source)]
        try:
            if not any(path.endswith(".index") for path, _ in copies):
                raise CheckpointError(f"checkpoint {source} is missing")
            for path, copy in copies:
                tf.io.gfile.copy(path, copy, overwrite=True)
            verify_checkpoint(temp)
            stale = set(checkpoint_files(final))
            for _, copy in sorted(copies, key=lambda item: item[1].endswith(".index")):  # index last
                os.replace(copy, final + copy[len(temp):])
                stale.discard(final + copy[len(temp):])
            _remove(stale)
        except (OSError, tf.errors.OpError, CheckpointError) as e:
            _remove([copy for _, copy in copies])
            kept = (f"the previous best {final} is intact" if os.path.isfile(final + ".index")
                    else "no earlier best checkpoint exists")
            raise CheckpointSaveError(f"could not save the best checkpoint {final} from {source} "
                                      f"({_reason(e)}); {kept}. Free space or fix the folder, then rerun "
                                      f"the same command to resume") from None
        logger.info(f"Model at global_step={self.best[0]} with minimum {self.monitor_stat}="
                    f"{self.best[1]:.5g} saved.")
