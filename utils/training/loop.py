"""The training run: data, callbacks, session initialisation, resume and the trainer.

``train(args)`` runs one resolved configuration (``utils.config``) while holding the log
folder's lock (``utils.training.run_lock``).  Rerunning the same command after an
interruption resumes from the newest checkpoint in the log folder that restores (broken ones
are skipped with the reason, ``utils.training.checkpoints``) with the right epoch, global
step, learning rate and MinSaver state.  Saves are verified before they are published.
"""
from utils import compat  # noqa: F401  (first: TensorFlow set-up)
import os

import numpy as np
from tensorpack import (ClassificationError, EstimatedTimeLeft, InferenceRunner, QueueInput,
                        ScheduledHyperParamSetter, TrainConfig, launch_train_with_config)
from tensorpack.callbacks import Callback
from tensorpack.dataflow import MapData
from tensorpack.utils import logger
from tensorpack.utils.utils import fix_rng_seed

from models.wsol_model import WSOLModel
from utils.atomic import write_bytes, write_json
from utils.training import trainers
from utils.config import RUN_CONFIG, config_dict, lr_schedule, model_spec, num_towers, steps_per_epoch
from utils.errors import UserError
from utils.data.dataflow import get_eval_dataflow, get_train_dataflow
from utils.data.masks import default_mask_dir
from utils.data.paths import dataset_class_names_file, kept_class_names_file, split_paths
from utils.training import precision
from utils.training.pretrained import MODEL_ZOO_FILES, CheckpointInit, NpzInit, model_zoo_url
from utils.training.checkpoints import (MONITOR_STAT, VerifiedMinSaver, VerifiedModelSaver, last_saved_checkpoint,
                                       newest_restorable_checkpoint)
from utils.training.run_lock import RunLock
from utils.training.shutdown import StopInputThread

PRETRAINED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                              "models", "pretrained")
FULLSUP_SPLIT = "train_fullsup"


class NonFiniteLossError(UserError, RuntimeError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(Callback):
    """Checks the total cost after every step; stops with a clear error on NaN / inf.
    Checkpoints are written only at epoch ends, so the last one saved stays good."""

    def _setup_graph(self):
        self._cost = self.get_tensors_maybe_in_tower(["cost:0"])[0]

    def _before_run(self, _):
        return [self._cost]

    def _after_run(self, _, run_values):
        cost = run_values.results[0]
        if not np.isfinite(cost):
            raise NonFiniteLossError(
                f"training loss became {cost} at global step {self.global_step}; stopped. "
                f"{last_checkpoint_note(logger.get_logger_dir())} (lower --base_lr or check the data)")


def last_checkpoint_note(log_dir):
    """Where the run's last published (verified) checkpoint is, or that none was saved yet."""
    path = last_saved_checkpoint(log_dir)
    if path is None:
        return f"No checkpoint was saved yet in {log_dir}."
    return f"The last good checkpoint is {path}."


def pretrained_path(args):
    if args.pretrained:
        return args.pretrained
    path = os.path.join(PRETRAINED_DIR, MODEL_ZOO_FILES[args.arch_name])
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"pretrained weights not found: {path}; download {model_zoo_url(args.arch_name)} "
            f"into {PRETRAINED_DIR}/ or pass --pretrained PATH")
    return path


def session_init(args, resume):
    """Resume checkpoint > --load > pretrained npz > fresh initialisation."""
    if resume is not None:
        logger.info(f"Resuming from {resume[0]} (global step {resume[1]})")
        return CheckpointInit(resume[0])
    if args.load:
        return CheckpointInit(args.load, allow_partial=args.allow_partial_load)
    if args.use_pretrained_model:
        return NpzInit(pretrained_path(args), args.arch_name)
    return None


def val_dataflow(args, per_tower_batch):
    label_file, image_root = split_paths(args, args.val_split)
    ds = get_eval_dataflow(label_file, image_root, args.final_size, per_tower_batch,
                           workers=args.workers, number_of_val=args.number_of_val,
                           num_classes=args.number_of_class, cache_images="auto")
    return MapData(ds, lambda dp: dp[:3])  # the model's inputs: image, label, bbox


def callbacks(args, per_tower_batch, resume_step=None, fully_supervised=False):
    """The run's callbacks.  A fully supervised method (FSL) has no validation pass (it would read
    the val list, and it has no classifier to select a checkpoint by): its newest checkpoint is evaluated."""
    validation = [] if fully_supervised else [
        InferenceRunner(val_dataflow(args, per_tower_batch),
                        [ClassificationError("wrong-top1", "val-error-top1"),
                         ClassificationError("wrong-top5", "val-error-top5")]),
        VerifiedMinSaver(MONITOR_STAT, args.log_dir, resume_step)]
    return [VerifiedModelSaver(max_to_keep=3, checkpoint_dir=args.log_dir)] + validation + [
        ScheduledHyperParamSetter("learning_rate", lr_schedule(args.base_lr, args.epoch, args.lr_decay_epochs)),
        StopOnNonFiniteLoss(),
        EstimatedTimeLeft(),
        WriteRunRecord(args),
    ] + precision.callbacks(args.precision)


def train_dataflow(args, per_tower_batch, fully_supervised=False):
    """Training batches: the train list; for a fully supervised method (FSL) the ``train_fullsup``
    list with its object masks (``--mask_dir``, else ``<data_dir>/<NAME>/masks``) and nothing else."""
    split = FULLSUP_SPLIT if fully_supervised else "train"
    label_file, image_root = split_paths(args, split)
    mask_dir = (args.mask_dir or default_mask_dir(args.data_dir, args.dataset_name)) if fully_supervised else None
    return get_train_dataflow(label_file, image_root, args.final_size, per_tower_batch,
                              workers=args.workers, on_bad_image=args.on_bad_image, seed=args.seed,
                              num_classes=args.number_of_class, cache_images="auto", mask_dir=mask_dir)


def copy_class_names(args):
    """Keep the data set's ``words.txt`` (beside its train list) in the run folder, so the
    run names its classes wherever it is used later (predict, export)."""
    names = dataset_class_names_file(args.dataset_name, args.data_dir, args.label_dir)
    if names:
        with open(names, "rb") as f:
            write_bytes(kept_class_names_file(args.log_dir), f.read())


class WriteRunRecord(Callback):
    """The run's record (``config.json``, ``words.txt``) is written after this process's first
    training step, not before: a run that fails before it trains records nothing (and pins no
    flag), and a rerun that trains nothing leaves the record as it was."""

    def __init__(self, args):
        self.args, self.written = args, False

    def _trigger_step(self):
        if not self.written:
            write_json(os.path.join(self.args.log_dir, RUN_CONFIG), config_dict(self.args), indent=2, default=str)
            copy_class_names(self.args)
            self.written = True


def train(args):
    """Train one resolved configuration (holding the log folder's lock); returns the log folder."""
    if args.trainer.startswith("distributed") and args.job == "ps":
        from utils.training.distributed import run_parameter_server
        return run_parameter_server(args)  # serves variables until the workers are done
    with RunLock(args.log_dir):
        return _train(args)


def _train(args):
    logger.set_logger_dir(args.log_dir, action="k")
    if args.seed is not None:
        fix_rng_seed(args.seed)
    towers = num_towers(args)
    per_tower_batch = args.batch_size // towers
    spe = steps_per_epoch(args)
    resume = newest_restorable_checkpoint(args.log_dir)
    starting_epoch = resume[1] // spe + 1 if resume else args.starting_epoch
    if starting_epoch > args.epoch:
        logger.info(f"{args.log_dir} already holds a finished run ({args.epoch} epochs); nothing to train")
        return args.log_dir
    model = precision.for_training(WSOLModel(model_spec(args)), args.precision)
    fully_supervised = model.method.fully_supervised
    queue_input = QueueInput(train_dataflow(args, per_tower_batch, fully_supervised))
    config = TrainConfig(
        model=model,
        data=queue_input,
        session_creator=precision.session_creator(args.precision, precision.running_on_gpu()),
        callbacks=callbacks(args, per_tower_batch, resume[1] if resume else None, fully_supervised) +
        [StopInputThread(queue_input)],
        session_init=session_init(args, resume),
        steps_per_epoch=spe,
        starting_epoch=starting_epoch,
        max_epoch=args.epoch,
    )
    launch_train_with_config(config, trainers.make_trainer(args, towers))
    return args.log_dir
