"""Every flag of train.py, declared once.

Each ``Flag`` names its command-line spelling and released aliases, its type, default, range,
help text and **kind**, and where it belongs (the methods and backbone it applies to, the
``ModelSpec`` field it fills, the preset that replaces a ``None`` default).  Everything else is
derived from the table ``FLAGS``, the way tensorpack's FasterRCNN ``config.py`` declares each
key once and derives the rest in ``finalize_configs``:

* the argparse parser (``build_parser``; one help group per kind),
* the run-config keys inherited from ``config.json`` (``flags_of_kind("model")``, ``"run"``),
* the coercion used to compare a typed flag with a stored one (``Flag.normalize``),
* the range checks (``check_ranges``) and the refusal of another method's flag (``check_methods``),
* the presets of ``None`` defaults (``apply_presets``) and the ``ModelSpec`` keyword arguments
  (``spec_kwargs``); ``utils.config.resolve`` is the one finalize step that calls them.

Kinds:
  ``model``       decides the graph; ``--evaluate`` and resume take it from the run's config.json,
                  and a typed value that contradicts it is a one-line ConfigError;
  ``run``         where the data is and how heads are fused: taken from config.json unless typed;
  ``training``    the training recipe, fixed at a run's first step: resume and ``--evaluate`` take it
                  from config.json, and a typed value that contradicts it is a one-line ConfigError
                  (except a larger ``--epoch`` when training, which extends the run);
  ``start``       how this process starts (checkpoint to load, first epoch);
  ``evaluation``  what the evaluation computes and writes;
  ``placement``   where and on what the process runs (devices, trainer, cluster, layout, folder).

A flag with ``methods`` belongs to those methods only: typed with another method at a value other
than ``unused`` (what the flag holds for a method that does not use it, by default ``default``) it
is a one-line ConfigError, never ignored.  A flag at that value is accepted, so that scripts which
spell out a default keep running.  ``arch`` restricts a flag to one backbone the same way.

The ``Flag`` type is ``utils/flag.py``.  Adding a flag is one ``Flag(...)`` entry: in ``FLAGS``
below, or, for a flag that belongs to a method, in that method's record (``models/methods/``),
from which ``FLAGS`` takes it with the methods it belongs to.  No TensorFlow here.
"""
import argparse
from dataclasses import fields

from utils.errors import ConfigError
from utils.flag import AT_LEAST_0, AT_LEAST_1, HELP_GROUPS, KINDS, POSITIVE, UNIT, Flag, Range
from models.methods.registry import (METHODS, canonical_method, method, method_flags, position_methods,
                                     released_names)
from models.spec import ARCH_ALIASES, ARCHS, ModelSpec

DATASET_ALIASES = {"ImageNet": "ILSVRC"}  # released name; CUB, ILSVRC, SYNTH have presets, any name works
TRAINERS = ("replicated", "parameter_server", "horovod", "distributed_replicated", "distributed_ps")
CAM_FUSIONS = ("released", "max", "mean")
PRECISIONS = ("fp32", "bf16", "fp16")      # utils.training.precision says what each one runs

# Released presets of None defaults.
STEPSCALE = {"CUB": 5.0, "ILSVRC": 0.2}
EPOCHS = {("vgg_gap", "CUB"): 250, ("resnet", "CUB"): 100}
DEFAULT_EPOCHS = 100
CAM_THRESHOLD = {("vgg_gap", "CUB"): 0.07, ("vgg_gap", "ILSVRC"): 0.09,
                 ("resnet", "CUB"): 0.09, ("resnet", "ILSVRC"): 0.10}
CAM_BASELINE_THRESHOLD = 0.2
DEFAULT_CAM_THRESHOLD = 0.2


def canonical_arch(name):
    """Backbone name in the project's vocabulary (``resnet50_se``, the released name, = ``resnet``)."""
    arch = ARCH_ALIASES.get(name, name)
    if arch not in ARCHS:
        raise argparse.ArgumentTypeError(f"unknown backbone {name!r}; expected vgg_gap or resnet50_se")
    return arch


def _method(name):
    try:
        return canonical_method(name)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _either(names):
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _epochs(args, env):
    return EPOCHS.get((args.arch_name, args.dataset_name), DEFAULT_EPOCHS)


def _stepscale(args, env):
    return STEPSCALE.get(args.dataset_name, 1.0)


def _cam_threshold(args, env):
    if args.method_name == "CAM":
        return CAM_BASELINE_THRESHOLD
    return CAM_THRESHOLD.get((args.arch_name, args.dataset_name), DEFAULT_CAM_THRESHOLD)


def _positions(args, env):
    defaults = method(args.method_name).positions or {}
    if args.arch_name not in defaults:
        raise ConfigError(f"--gating_position is needed: {args.method_name} has no default positions on "
                          f"{args.arch_name}")
    return list(defaults[args.arch_name])


def _data_format(args, env):
    return "NHWC" if args.is_data_format_nhwc or not env.get("gpu_present") else "NCHW"


def _number_of_class(args, env):
    """Released class counts, else the size of the data set's class list."""
    if args.dataset_name == "ILSVRC":
        return 1000
    if args.dataset_name == "CUB":
        return 200 if args.arch_name == "vgg_gap" else 1000
    size = env.get("class_list_size")
    if callable(size):
        size = size(args)
    if size is None:
        raise ConfigError(f"--number_of_class is needed for {args.dataset_name}")
    return size


# The flags every method shares; FLAGS adds the methods' own (models/methods/).
COMMON_FLAGS = (
    # data and run defaults
    Flag("dataset_name", "run", default="CUB", metavar="NAME",
         canonical=lambda v: DATASET_ALIASES.get(v, v),
         help="CUB, ILSVRC (released alias: ImageNet), SYNTH, or any other name: "
              "lists <data_dir>/NAME/{train,val}.txt (or under --label_dir), images <data_dir>/NAME/images"),
    Flag("data_dir", "run", default="dataset", help="folder holding CUB/, ILSVRC/, SYNTH/"),
    Flag("label_dir", "run",
         help="folder holding <DATASET>/{train,val}.txt (default: labels/ for CUB and ILSVRC, "
              "the data set's own folder otherwise), or a wsolevaluation metadata folder holding "
              "<DATASET>/{train,test,val}/image_ids.txt ... (test is evaluated, val = train-fullsup)"),
    Flag("val_split", "run", default="val", metavar="SPLIT",
         help="the list validated during training (min-val-error-top1) and evaluated by --evaluate: a split "
              "name of the data set (val, train_fullsup, ...); the fair protocol (python -m utils.tune) "
              "trains and scores its trials on train_fullsup so that the val list is read only at the end"),
    Flag("cam_fusion", "run", default="released", choices=CAM_FUSIONS,
         help="head fusion: released (VGG: mean of the heads' weights x max of their maps; ResNet: "
              "per-pixel max of the heads' CAMs, the 3x3 head with the mean of all heads' weights), "
              "max (per-pixel max of the heads' CAMs, the paper's figure), mean"),
    # model
    Flag("arch_name", "model", type=canonical_arch, default="vgg_gap", metavar="{vgg_gap,resnet50_se}",
         canonical=canonical_arch, spec="arch", help="backbone (resnet = resnet50_se, the released name)"),
    Flag("depth", "model", type=int, default=50, choices=(50,), help="ResNet depth"),
    Flag("mode", "model", default="se", choices=("se",), help="ResNet variant (SE-ResNet)"),
    Flag("method_name", "model", default="E2Net", canonical=_method, spec="method",
         help=f"{_either(METHODS)} (released: {released_names()})"),
    Flag("gating_position", "model", nargs="*", methods=position_methods(), unused=[], preset=_positions,
         spec="positions",
         help=f"positions of the {_either(position_methods())} op: VGG '3 4 53' (after pool3, pool4, conv5_3); "
              "ResNet '31 41 5' (10(g+1)+k+1 after group g block k, 5 = end of group3)"),
    Flag("number_of_class", "model", type=int, range=AT_LEAST_1, preset=_number_of_class, spec="num_classes",
         help="classes (default: 200 for VGG on CUB, 1000 for ResNet on CUB as released, "
              "1000 on ILSVRC, the class list size on SYNTH)"),
    Flag("final_size", "model", type=int, default=224, range=Range(32), spec="image_size",
         help="crop size fed to the network (multiple of 16)"),
    Flag("width_multiplier", "model", type=float, default=1.0, spec="width_multiplier",
         help="channel scaling for small CPU runs (1.0 = the published networks)"),
    # training recipe
    Flag("epoch", "training", type=int, range=AT_LEAST_1, preset=_epochs,
         help="epochs (default as released per data set / backbone)"),
    Flag("batch_size", "training", type=int, default=32, aliases=("--batch",), range=AT_LEAST_1,
         help="total batch size, split across towers"),
    Flag("base_lr", "training", type=float, default=0.01, range=POSITIVE, spec="base_lr", help="base learning rate"),
    Flag("lr_decay_epochs", "training", type=int, nargs="+", metavar="EPOCH",
         help="epochs at which the lr is multiplied by 0.1 (default as released: 30 60 90 100 110, "
              "scaled by epochs/100 for runs shorter than 100 epochs)"),
    Flag("clip_gradients", "training", type=float, default=0.0, metavar="NORM",
         range=Range(0, hi_open=True, note="0 = off"), spec="gradient_clip_norm",
         help="clip the gradients to this global norm before each update (0 = off, as released); "
              "plain VGG16-GAP trained from scratch needs it (see the demo)"),
    Flag("stepscale", "training", type=float, range=POSITIVE, preset=_stepscale,
         help="epoch = 25*(256/batch)*stepscale steps (default: CUB 5.0, ILSVRC 0.2, SYNTH 1.0)"),
    Flag("steps_per_epoch", "training", type=int, range=AT_LEAST_1, help="override the steps of an epoch"),
    Flag("use_pretrained_model", "training", type=None, default=False,
         help="initialise the backbone from the model-zoo npz in models/pretrained/"),
    Flag("pretrained", "training", help="npz to initialise from (implies --use_pretrained_model)"),
    Flag("seed", "training", type=int, help="random seed for graph and data"),
    Flag("on_bad_image", "training", default="skip", choices=("skip", "error"),
         help="a missing or corrupt training image is skipped with a warning, or stops training"),
    # start of this process
    Flag("load", "start", help="checkpoint to start from (training) or to evaluate"),
    Flag("allow_partial_load", "start", type=None, default=False,
         help="--load: let graph variables missing from the checkpoint start from random initialisation "
              "(fine-tuning from another method); they are listed. Without it such a checkpoint is refused"),
    Flag("starting_epoch", "start", type=int, default=1, range=AT_LEAST_1,
         help="first epoch number (resume sets it itself)"),
    # evaluation
    Flag("evaluate", "evaluation", type=None, default=False,
         help="evaluate only (as released); without it train.py trains, then evaluates min-val-error-top1. "
              "The model flags come from the run's config.json"),
    Flag("cam_threshold", "evaluation", type=float, range=UNIT, preset=_cam_threshold,
         help="box threshold tau (default as released: VGG-CUB 0.07, VGG-ILSVRC 0.09, "
              "ResNet-CUB 0.09, ResNet-ILSVRC 0.10, CAM baseline 0.2)"),
    Flag("number_of_cam_curve_interval", "evaluation", type=int, default=100, range=AT_LEAST_1,
         help="threshold sweep: tau in 0, 1/N, ..., (N-1)/N"),
    Flag("number_of_val", "evaluation", type=int, range=AT_LEAST_1,
         help="validate / evaluate on the first N images of the val list only"),
    Flag("number_of_examples", "evaluation", type=int, default=16, range=AT_LEAST_0, help="overlay pictures written"),
    Flag("mask_dir", "evaluation",
         help="object masks <mask_dir>/<image path>.png for PxAP / PIoU (default: "
              "<data_dir>/<DATASET>/masks when that folder exists)"),
    Flag("tau_split", "evaluation", metavar="LIST",
         help="choose tau on this held-out fully-annotated list (a label list or metadata folder "
              "path, or a split name such as train_fullsup) and apply it to the val list"),
    Flag("save_cams", "evaluation", metavar="DIR",
         help="also write every evaluated CAM as DIR/<image>.npy with DIR/labels.txt "
              "(the input of python -m utils.evaluation.scorer)"),
    # placement
    Flag("gpu", "placement",
         help="comma-separated GPU ids; one tower each (none: CPU); each must be a GPU TensorFlow sees"),
    Flag("cpu_towers", "placement", type=int, default=1, range=AT_LEAST_1,
         help="towers on the CPU when no --gpu is given (runs the multi-GPU path on a machine "
              "without GPUs; the batch is split across them)"),
    Flag("trainer", "placement", default="replicated", choices=TRAINERS, help="multi-GPU / multi-machine trainer"),
    Flag("cluster", "placement",
         help="distributed: JSON {'ps': [...], 'worker': [...]} or a TF_CONFIG-style file"),
    Flag("job", "placement", choices=("ps", "worker"), help="distributed: this process's job"),
    Flag("task", "placement", type=int, range=AT_LEAST_0,
         help="distributed: this process's task index (default: from a TF_CONFIG-style --cluster file, else 0)"),
    Flag("workers", "placement", type=int, range=AT_LEAST_0, help="decoding worker processes (default: all cores)"),
    Flag("is_data_format_nhwc", "placement", type=None, default=False,
         help="force NHWC (default: NCHW when a GPU is used, NHWC on CPU)"),
    Flag("data_format", "placement", choices=("NHWC", "NCHW"), preset=_data_format, spec="data_format",
         help="force a data format"),
    Flag("log_dir", "placement",
         help="run folder (a bare name goes under train_log/); rerunning resumes from it"),
    # placement: the arithmetic of this process (recorded per run and per evaluation, never inherited:
    # variables and checkpoints are fp32 whatever the precision)
    Flag("precision", "placement", default="fp32", choices=PRECISIONS,
         help="arithmetic of training and evaluation (variables and checkpoints stay fp32; not taken from a "
              "run's config.json): fp32 as released; bf16 = TensorFlow's oneDNN bf16 rewrite on CPUs with "
              "native bf16; fp16 = its GPU fp16 rewrite with dynamic loss scaling (utils/training/precision.py)"),
    Flag("allow_slow_precision", "placement", type=None, default=False,
         help="run --precision bf16 on a CPU without native bf16 (emulated: slower than fp32)"),
)
FLAGS = COMMON_FLAGS + method_flags()


def flag(name):
    """The declaration of ``--name``."""
    for f in FLAGS:
        if f.name == name:
            return f
    raise KeyError(name)


def flags_of_kind(kind):
    """Names of the flags of one kind, in declaration order."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return tuple(f.name for f in FLAGS if f.kind == kind)


def build_parser():
    p = argparse.ArgumentParser(
        prog="train.py",
        description="Train or evaluate E2Net (MAE + OSE) and its baselines (CAM, ADL, HaS, ACoL, SPG, CutMix, FSL) "
                    "with tensorpack. "
                    "The released E2Net flags keep their meaning; names in brackets are released aliases.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    groups = {kind: p.add_argument_group(HELP_GROUPS[kind]) for kind in KINDS}
    for f in FLAGS:
        f.add_to(groups[f.kind])
    return p


def out_of_range(name, value):
    """``"--<name> must be <range>, got <value>"`` when ``value`` is outside the declared range of
    flag ``name`` (NaN included), else None: the one wording of a range error, also used by the
    entry points that declare a flag of the same meaning (the scorer's and predict's
    ``--cam_threshold``)."""
    f = flag(name)
    if f.range is not None and value is not None and value not in f.range:
        return f"--{f.name} must be {f.range.words}, got {value}"
    return None


def check_ranges(args):
    """One ConfigError line for the first numeric flag outside its range (NaN included);
    None values are left to the presets."""
    for f in FLAGS:
        problem = out_of_range(f.name, getattr(args, f.name, None))
        if problem:
            raise ConfigError(problem)


def canonicalize(args):
    """Flag values in the project's vocabulary (released aliases of names resolved)."""
    for f in FLAGS:
        if f.canonical is not None and getattr(args, f.name, None) is not None:
            setattr(args, f.name, f.canonical(getattr(args, f.name)))


def apply_presets(args, **env):
    """Replace the None values: a flag of another method takes its unused value, others their
    preset (``env``: facts that are not flags, e.g. ``gpu_present``, ``class_list_size``)."""
    for f in FLAGS:
        if getattr(args, f.name) not in (None, []):
            continue
        if f.methods is not None and args.method_name not in f.methods:
            setattr(args, f.name, f.unused_value)
        elif f.preset is not None:
            setattr(args, f.name, f.preset(args, env))


def shown(value):
    """A flag value as typed (lists space-separated)."""
    return " ".join(str(v) for v in value) if isinstance(value, list) else value


EXTENDS_A_RUN = "epoch"   # the one training flag a rerun may raise: more epochs extend a run


def inherit(args, record, explicit, path):
    """Take the ``model`` and ``training`` flags (and, unless typed, the ``run`` flags) from a run's
    config.json ``record`` (read from ``path``).  A typed model flag that contradicts it is a
    ConfigError; so is a typed training flag (a run's recipe is fixed at its first step), except a
    larger ``--epoch`` when training (not ``--evaluate``), which extends the run."""
    for f in FLAGS:
        if f.kind == "training" and f.name in record:
            stored = f.normalize(record[f.name])
            typed = f.normalize(getattr(args, f.name))
            extends = (f.name == EXTENDS_A_RUN and not args.evaluate and stored is not None and typed is not None
                       and typed > stored)
            if f.name in explicit and typed != stored and not extends:
                more = "" if args.evaluate else f" (a larger --{EXTENDS_A_RUN} than {record.get(EXTENDS_A_RUN)} extends it)"
                raise ConfigError(f"--{f.name} {shown(typed)} contradicts the run's {path} ({f.name} = "
                                  f"{shown(stored)}): a run's training flags are fixed at its first step; drop the "
                                  f"flag, or use another --log_dir{more}")
            if not extends:
                setattr(args, f.name, stored)
        elif f.kind == "model":
            if f.name not in record and _belongs_to_another_method(f, record):
                record = dict(record, **{f.name: f.unused_value})   # written before the flag existed
            if f.name not in record:
                raise ConfigError(f"{path}: has no {f.name!r}; not a config.json written by train.py")
            stored = f.normalize(record[f.name])
            typed = f.normalize(getattr(args, f.name))
            if f.name in explicit and typed != stored:
                raise ConfigError(f"--{f.name} {shown(typed)} contradicts the run's {path} "
                                  f"({f.name} = {shown(stored)}); drop the flag, or use another --log_dir")
            setattr(args, f.name, stored)
        elif f.kind == "run" and f.name not in explicit and f.name in record:
            setattr(args, f.name, record[f.name])


def _belongs_to_another_method(f, record):
    """A flag of methods other than the recorded run's: a config.json written before the flag was
    declared lacks it, and the flag held its unused value for that run."""
    try:
        recorded = canonical_method(str(record.get("method_name")))
    except ValueError:
        return False
    return f.methods is not None and recorded not in f.methods


def check_methods(args, given=None):
    """Refuse a flag of another method or backbone, typed at a value other than its unused one,
    and set the CAM fusion a method fixes.  ``given``: names typed on the command line (None: every flag)."""
    for f in FLAGS:
        if given is not None and f.name not in given:
            continue
        value = f.normalize(getattr(args, f.name))
        if value in (None, f.unused_value, []):
            continue
        if f.methods is not None and args.method_name not in f.methods:
            raise ConfigError(f"--{f.name} needs --method_name {_either(f.methods)} "
                              f"(got {args.method_name}); drop --{f.name} {shown(value)}")
        if f.arch is not None and args.arch_name != f.arch:
            raise ConfigError(f"--{f.name} {shown(value)} applies to --arch_name {f.arch} only "
                              f"(got {args.arch_name})")
    fixed = method(args.method_name).cam_fusion
    if fixed is not None and args.cam_fusion != fixed:
        if given is not None and "cam_fusion" in given:
            raise ConfigError(f"--cam_fusion {args.cam_fusion}: {args.method_name} fuses its CAMs with "
                              f"--cam_fusion {fixed}; drop the flag")
        args.cam_fusion = fixed


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def spec_kwargs(args):
    """ModelSpec keyword arguments of the flags that fill a field, converted to its type, and
    ``options``: the method's own flags without a field."""
    types = {field.name: field.type for field in fields(ModelSpec)}
    kwargs = {"options": tuple((f.name, _hashable(getattr(args, f.name))) for f in FLAGS
                               if f.spec is None and f.methods is not None and args.method_name in f.methods)}
    for f in FLAGS:
        if f.spec is None:
            continue
        value = getattr(args, f.name)
        kind = types[f.spec]
        if getattr(kind, "__origin__", None) is tuple:
            value = tuple(value)
        elif kind is bool:
            value = bool(value)
        kwargs[f.spec] = value
    return kwargs
