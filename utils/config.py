"""The run configuration: ``resolve`` turns the flags declared in ``utils/flags.py`` (the
released ones and the new ones) into a validated configuration and a ``ModelSpec``, inheriting
a run's ``config.json`` for ``--evaluate`` and resume.

No TensorFlow here: configurations can be parsed, compared and printed without a graph.
"""
import argparse
import glob
import json
import os
from dataclasses import asdict

from utils.errors import ConfigError
from utils.training.cluster import resolve_cluster
from utils.flags import (apply_presets, build_parser, canonicalize, check_methods, check_ranges, inherit,
                         spec_kwargs)
from models.spec import ModelSpec

__all__ = ["ConfigError", "config_dict", "lr_schedule", "model_spec", "num_towers", "parse_args",
           "parse_command_line", "resolve", "run_config", "steps_per_epoch"]

# Released presets that are not flags.
WEIGHT_DECAY = {"vgg_gap": 5e-4, "resnet": 1e-4}
LR_DECAY_EPOCHS = (30, 60, 90, 100, 110)     # lr x0.1 at each, as released
SHORTEST_RELEASED_SCHEDULE = 100             # shorter runs get the milestones scaled
RUN_CONFIG = "config.json"


def lr_schedule(base_lr, epochs, decay_epochs=None):
    """[(epoch, lr)]: x0.1 at each of ``decay_epochs`` before ``epochs``; by default as
    released at 30, 60, 90, 100, 110, with the milestones scaled by epochs/100 for runs
    shorter than 100 epochs (e.g. 10 epochs -> 3, 6, 9)."""
    if decay_epochs is None:
        scale = min(1.0, epochs / SHORTEST_RELEASED_SCHEDULE)
        decay_epochs = {max(1, int(round(e * scale))) for e in LR_DECAY_EPOCHS}
    milestones = sorted(e for e in set(decay_epochs) if e < epochs)
    return [(e, base_lr * 0.1 ** (i + 1)) for i, e in enumerate(milestones)]


def steps_per_epoch(args):
    if args.steps_per_epoch:
        return args.steps_per_epoch
    return max(1, int(25 * (256 / args.batch_size) * args.stepscale))


def resolve(args, class_list_size=None, gpu_present=False, explicit=None):
    """The finalize step: fill presets into ``args`` (in place) and check combinations; returns args.

    ``class_list_size``: number of class names of the data set (for SYNTH / own sets), or a
    function of the (inherited) args that returns it.  ``explicit``: the flags typed on the
    command line (``parse_command_line``); when given, a run that already has a config.json
    (``--evaluate``, resume) takes its model flags from it.
    """
    canonicalize(args)
    if args.dataset_name in ("", ".", "..") or "/" in args.dataset_name or os.sep in args.dataset_name:
        raise ConfigError(f"--dataset_name must be a folder name (e.g. MYSET), got {args.dataset_name!r}")
    check_ranges(args)
    if args.log_dir is None:
        args.log_dir = f"{args.dataset_name}_{args.arch_name}_{args.method_name}"
    args.log_dir = resolve_log_dir(args.log_dir)
    if explicit is not None:
        config_file = run_config_file(args)
        if config_file is not None:
            inherit_run_config(args, explicit, config_file)
    check_methods(args, explicit)
    apply_presets(args, class_list_size=class_list_size, gpu_present=gpu_present)
    args.steps_per_epoch = steps_per_epoch(args)   # recorded as used, never None
    if args.use_pretrained_model and not args.pretrained and args.width_multiplier != 1.0:
        raise ConfigError(f"--use_pretrained_model loads the model-zoo weights, which fit --width_multiplier 1.0 "
                          f"only (got {args.width_multiplier}); drop one of them")
    if args.pretrained:
        args.use_pretrained_model = True
    check_log_dir(args.log_dir)
    if args.load and not (os.path.exists(args.load) or os.path.isfile(args.load + ".index")):
        raise ConfigError(f"--load {args.load}: no such checkpoint (give a model-<step> prefix, its .index file "
                          f"or a folder holding a 'checkpoint' file)")
    if args.final_size % 16:
        raise ConfigError(f"--final_size must be a multiple of 16, got {args.final_size}")
    if args.lr_decay_epochs and min(args.lr_decay_epochs) < 1:
        raise ConfigError(f"--lr_decay_epochs must be positive epochs, got {args.lr_decay_epochs}")
    if args.trainer.startswith("distributed"):
        resolve_cluster(args)  # --cluster SPEC; --job / --task may come from a TF_CONFIG-style file
    if args.gpu is not None and args.cpu_towers != 1:
        raise ConfigError("--cpu_towers is for runs without --gpu (one tower per GPU otherwise)")
    towers = num_towers(args)
    if args.batch_size % towers:
        raise ConfigError(f"--batch_size {args.batch_size} does not split over {towers} towers")
    model_spec(args).validate()
    return args


def check_log_dir(log_dir):
    """A log folder must be creatable: refuse a path that is, or lies under, a regular file."""
    path = os.path.abspath(log_dir)
    while True:
        if os.path.exists(path) and not os.path.isdir(path):
            where = "is" if path == os.path.abspath(log_dir) else f"lies under {path}, which is"
            raise ConfigError(f"--log_dir {log_dir} {where} a file, not a folder")
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def gpu_list(args):
    """The ``--gpu`` ids as strings; ConfigError for an id that is not a non-negative
    integer or that is listed twice."""
    ids = [g.strip() for g in (args.gpu or "").split(",") if g.strip() != ""]
    bad = [g for g in ids if not g.isdigit()]
    if bad:
        raise ConfigError(f"--gpu {args.gpu}: GPU ids are comma-separated integers such as 0,1 (got {bad[0]!r})")
    if len(set(int(g) for g in ids)) != len(ids):
        raise ConfigError(f"--gpu {args.gpu}: a GPU id is listed twice")
    return ids


def num_towers(args):
    """Towers of a run: one per ``--gpu`` id, else ``--cpu_towers`` (default 1)."""
    return len(gpu_list(args)) or args.cpu_towers


def model_spec(args):
    """The ModelSpec a resolved configuration describes."""
    pretrained = args.use_pretrained_model or bool(args.pretrained)
    try:
        return ModelSpec(weight_decay=WEIGHT_DECAY[args.arch_name], pretrained_grad_scale=0.1 if pretrained else 1.0,
                         **spec_kwargs(args)).validate()
    except ValueError as e:
        raise ConfigError(str(e)) from None


def parse_command_line(argv=None):
    """(args, names of the flags given on the command line) -- unresolved."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for action in parser._actions:   # a second pass without defaults tells which flags were typed
        action.default = argparse.SUPPRESS
    return args, set(vars(parser.parse_args(argv)))


def parse_args(argv=None, class_list_size=None, gpu_present=False):
    args, explicit = parse_command_line(argv)
    return resolve(args, class_list_size, gpu_present, explicit)


def run_config_file(args):
    """The config.json that describes the model to build, or None for a new run.

    ``--evaluate --load CKPT``: the config.json beside the checkpoint when there is one, else the
    log folder's; evaluation and training in an existing log folder: the log folder's."""
    if args.evaluate and args.load:
        beside = os.path.join(os.path.dirname(os.path.abspath(args.load)), RUN_CONFIG)
        if os.path.isfile(beside):
            return beside
    path = os.path.join(args.log_dir, RUN_CONFIG)
    return path if os.path.isfile(path) else None


def inherit_run_config(args, explicit, path):
    """Take the ``model`` and ``training`` flags (and, unless given, the ``run`` flags) from a run's
    config.json (``utils.flags.inherit``): a contradicting model or training flag is a ConfigError
    naming both values.  A run extended by a larger ``--epoch`` keeps the learning-rate milestones
    it was trained with (by default they scale with the epoch count), then goes on at its last rate."""
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read the run's configuration ({e})") from None
    inherit(args, record, explicit, path)
    recorded = record.get("epoch")
    if isinstance(recorded, int) and args.epoch is not None and args.epoch > recorded and not args.lr_decay_epochs:
        args.lr_decay_epochs = [epoch for epoch, _ in lr_schedule(args.base_lr, recorded)]


def config_dict(args):
    """JSON-able record of a run's configuration (flags and the model spec)."""
    record = dict(vars(args))
    record.update(method=args.method_name, dataset=args.dataset_name, arch=args.arch_name)
    record["model_spec"] = asdict(model_spec(args))
    return record


LOG_ROOT = "train_log"


def resolve_log_dir(log_dir):
    """Where ``--log_dir`` is: a bare name (no path separator, not starting with ``.``) goes
    under ``train_log/``; any other path is taken as given."""
    if os.sep not in log_dir and not log_dir.startswith("."):
        return os.path.join(LOG_ROOT, log_dir)
    return log_dir


def run_config(log_dir_or_ckpt, gpu_present=False, flags=()):
    """The resolved configuration of a trained run, read from its ``config.json``, as
    ``--evaluate`` resolves it (``inherit_run_config``).

    ``log_dir_or_ckpt`` is a run folder or a checkpoint path inside one (then it becomes
    ``load``).  Placement (GPUs, trainer, cluster, data format, precision) is this machine's;
    ``flags``: more train.py flags of this use of the run (e.g. ``["--precision", "bf16"]``).
    """
    path = os.path.normpath(log_dir_or_ckpt)
    if not os.path.isdir(path) and not glob.glob(glob.escape(path) + ".*"):
        raise ConfigError(f"{log_dir_or_ckpt}: no such run folder or checkpoint")
    run_dir = path if os.path.isdir(path) else os.path.dirname(path)
    config_file = os.path.join(run_dir, RUN_CONFIG)
    if not os.path.isfile(config_file):
        raise ConfigError(f"{config_file}: no such file ({log_dir_or_ckpt} is not a run folder written by train.py)")
    load = [] if path == run_dir else ["--load", path]
    return parse_args(["--evaluate", "--log_dir", run_dir] + load + list(flags), gpu_present=gpu_present)
