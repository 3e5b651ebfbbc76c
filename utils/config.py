"""Command line and presets: turns the flags of the released scripts (and the new
ones) into a validated run configuration and a ``ModelSpec``.

No TensorFlow here: configurations can be parsed, compared and printed without a graph.
"""
import argparse
import json
import os
from dataclasses import asdict

from utils.errors import UserError
from models.spec import (ARCH_ALIASES, ARCHS, DEFAULT_POSITIONS, MAE_MASKS, OSE_HEADS, RELEASED_OSE_HEADS,
                         ModelSpec, canonical_method)

DATASET_ALIASES = {"ImageNet": "ILSVRC"}  # released name; CUB, ILSVRC, SYNTH have presets, any name works
TRAINERS = ("replicated", "parameter_server", "horovod", "distributed_replicated", "distributed_ps")
CAM_FUSIONS = ("released", "max", "mean")
PRECISIONS = ("fp32", "bf16", "fp16")      # utils.training.precision says what each one runs

# Released presets.
WEIGHT_DECAY = {"vgg_gap": 5e-4, "resnet": 1e-4}
STEPSCALE = {"CUB": 5.0, "ILSVRC": 0.2}
EPOCHS = {("vgg_gap", "CUB"): 250, ("resnet", "CUB"): 100}
DEFAULT_EPOCHS = 100
LR_DECAY_EPOCHS = (30, 60, 90, 100, 110)     # lr x0.1 at each, as released
SHORTEST_RELEASED_SCHEDULE = 100             # shorter runs get the milestones scaled
CAM_THRESHOLD = {("vgg_gap", "CUB"): 0.07, ("vgg_gap", "ILSVRC"): 0.09,
                 ("resnet", "CUB"): 0.09, ("resnet", "ILSVRC"): 0.10}
CAM_BASELINE_THRESHOLD = 0.2
DEFAULT_CAM_THRESHOLD = 0.2


# Flags that decide the graph: evaluation and resume take them from the run's config.json.
MODEL_FLAGS = ("arch_name", "method_name", "gating_position", "ose_heads", "number_of_class", "final_size",
               "width_multiplier", "aae_threshold", "mae_mask", "adl_threshold", "adl_keep_prob", "use_bn")
# Where the data is, and how the run fuses its heads: taken from config.json unless given.
RUN_DEFAULT_FLAGS = ("dataset_name", "data_dir", "label_dir", "cam_fusion")
RUN_CONFIG = "config.json"


class ConfigError(UserError, ValueError):
    """An invalid flag combination (one line, printed by train.py)."""


def canonical_arch(name):
    """Backbone name in the project's vocabulary (``resnet50_se``, the released name, = ``resnet``)."""
    arch = ARCH_ALIASES.get(name, name)
    if arch not in ARCHS:
        raise argparse.ArgumentTypeError(f"unknown backbone {name!r}; expected vgg_gap or resnet50_se")
    return arch


def build_parser():
    p = argparse.ArgumentParser(
        prog="train.py",
        description="Train or evaluate E2Net (MAE + OSE) and the CAM / ADL baselines with tensorpack. "
                    "The released E2Net flags keep their meaning; names in brackets are released aliases.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--dataset_name", default="CUB", metavar="NAME",
                   help="CUB, ILSVRC (released alias: ImageNet), SYNTH, or any other name: "
                        "lists <data_dir>/NAME/{train,val}.txt (or under --label_dir), images <data_dir>/NAME/images")
    g.add_argument("--data_dir", default="dataset", help="folder holding CUB/, ILSVRC/, SYNTH/")
    g.add_argument("--label_dir", default=None,
                   help="folder holding <DATASET>/{train,val}.txt (default: labels/ for CUB and ILSVRC, "
                        "the data set's own folder otherwise), or a wsolevaluation metadata folder holding "
                        "<DATASET>/{train,test,val}/image_ids.txt ... (test is evaluated, val = train-fullsup)")
    g.add_argument("--final_size", type=int, default=224, help="crop size fed to the network (multiple of 16)")
    g.add_argument("--workers", type=int, default=None, help="decoding worker processes (default: all cores)")
    g.add_argument("--on_bad_image", default="skip", choices=("skip", "error"),
                   help="a missing or corrupt training image is skipped with a warning, or stops training")
    g.add_argument("--number_of_val", type=int, default=None,
                   help="validate / evaluate on the first N images of the val list only")

    g = p.add_argument_group("model")
    g.add_argument("--arch_name", default="vgg_gap", type=canonical_arch, metavar="{vgg_gap,resnet50_se}",
                   help="backbone (resnet = resnet50_se, the released name)")
    g.add_argument("--depth", type=int, default=50, choices=(50,), help="ResNet depth")
    g.add_argument("--mode", default="se", choices=("se",), help="ResNet variant (SE-ResNet)")
    g.add_argument("--method_name", default="E2Net",
                   help="CAM, ADL, MAE, OSE or E2Net (released: AAE = MAE, SAE = OSE, AAE_SAE = E2Net)")
    g.add_argument("--gating_position", nargs="*", default=None,
                   help="MAE / ADL positions: VGG '3 4 53' (after pool3, pool4, conv5_3); "
                        "ResNet '31 41 5' (10(g+1)+k+1 after group g block k, 5 = end of group3)")
    g.add_argument("--number_of_class", type=int, default=None,
                   help="classes (default: 200 for VGG on CUB, 1000 for ResNet on CUB as released, "
                        "1000 on ILSVRC, the class list size on SYNTH)")
    g.add_argument("--aae_threshold", type=float, default=0.5, help="MAE threshold theta")
    g.add_argument("--mae_mask", default="sum", choices=MAE_MASKS,
                   help="MAE mask: 'sum' = released (A/sum A < theta), 'max' = paper reading (A < theta max A)")
    g.add_argument("--adl_threshold", type=float, default=0.5, help="ADL drop threshold gamma (released default)")
    g.add_argument("--adl_keep_prob", type=float, default=0.25,
                   help="ADL: probability of using the importance map instead of the drop mask")
    g.add_argument("--ose_heads", nargs="+", default=None, choices=OSE_HEADS,
                   help="OSE heads (default for OSE/E2Net: 3x3 1x3 3x1 as released)")
    g.add_argument("--use_bn", type=int, default=0, choices=(0, 1), help="BN in the ResNet OSE convolutions")
    g.add_argument("--width_multiplier", type=float, default=1.0,
                   help="channel scaling for small CPU runs (1.0 = the published networks)")
    g.add_argument("--is_data_format_nhwc", action="store_true",
                   help="force NHWC (default: NCHW when a GPU is used, NHWC on CPU)")
    g.add_argument("--data_format", default=None, choices=("NHWC", "NCHW"), help="force a data format")

    g = p.add_argument_group("training")
    g.add_argument("--gpu", default=None,
                   help="comma-separated GPU ids; one tower each (none: CPU); each must be a GPU TensorFlow sees")
    g.add_argument("--cpu_towers", type=int, default=1,
                   help="towers on the CPU when no --gpu is given (runs the multi-GPU path on a machine "
                        "without GPUs; the batch is split across them)")
    g.add_argument("--trainer", default="replicated", choices=TRAINERS,
                   help="multi-GPU / multi-machine trainer")
    g.add_argument("--cluster", default=None,
                   help="distributed: JSON {'ps': [...], 'worker': [...]} or a TF_CONFIG-style file")
    g.add_argument("--job", default=None, choices=("ps", "worker"), help="distributed: this process's job")
    g.add_argument("--task", type=int, default=None,
                   help="distributed: this process's task index (default: from a TF_CONFIG-style --cluster file, else 0)")
    g.add_argument("--log_dir", default=None,
                   help="run folder (a bare name goes under train_log/); rerunning resumes from it")
    g.add_argument("--epoch", type=int, default=None, help="epochs (default as released per data set / backbone)")
    g.add_argument("--starting_epoch", type=int, default=1, help="first epoch number (resume sets it itself)")
    g.add_argument("--batch_size", "--batch", dest="batch_size", type=int, default=32,
                   help="total batch size, split across towers")
    g.add_argument("--base_lr", type=float, default=0.01, help="base learning rate")
    g.add_argument("--lr_decay_epochs", type=int, nargs="+", default=None, metavar="EPOCH",
                   help="epochs at which the lr is multiplied by 0.1 (default as released: 30 60 90 100 110, "
                        "scaled by epochs/100 for runs shorter than 100 epochs)")
    g.add_argument("--clip_gradients", type=float, default=0.0, metavar="NORM",
                   help="clip the gradients to this global norm before each update (0 = off, as released); "
                        "plain VGG16-GAP trained from scratch needs it (see the demo)")
    g.add_argument("--stepscale", type=float, default=None,
                   help="epoch = 25*(256/batch)*stepscale steps (default: CUB 5.0, ILSVRC 0.2, SYNTH 1.0)")
    g.add_argument("--steps_per_epoch", type=int, default=None, help="override the steps of an epoch")
    g.add_argument("--use_pretrained_model", action="store_true",
                   help="initialise the backbone from the model-zoo npz in models/pretrained/")
    g.add_argument("--pretrained", default=None, help="npz to initialise from (implies --use_pretrained_model)")
    g.add_argument("--load", default=None, help="checkpoint to start from (training) or to evaluate")
    g.add_argument("--allow_partial_load", action="store_true",
                   help="--load: let graph variables missing from the checkpoint start from random initialisation "
                        "(fine-tuning from another method); they are listed. Without it such a checkpoint is refused")
    g.add_argument("--seed", type=int, default=None, help="random seed for graph and data")
    g.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="arithmetic of training and evaluation (variables and checkpoints stay fp32; not taken from "
                        "a run's config.json): fp32 as released; bf16 = TensorFlow's oneDNN bf16 rewrite on CPUs "
                        "with native bf16; fp16 = its GPU fp16 rewrite with dynamic loss scaling")
    g.add_argument("--allow_slow_precision", action="store_true",
                   help="run --precision bf16 on a CPU without native bf16 (emulated: slower than fp32)")

    g = p.add_argument_group("evaluation")
    g.add_argument("--evaluate", action="store_true",
                   help="evaluate only (as released); without it train.py trains, then evaluates min-val-error-top1. "
                        "The model flags come from the run's config.json")
    g.add_argument("--cam_threshold", type=float, default=None,
                   help="box threshold tau (default as released: VGG-CUB 0.07, VGG-ILSVRC 0.09, "
                        "ResNet-CUB 0.09, ResNet-ILSVRC 0.10, CAM baseline 0.2)")
    g.add_argument("--number_of_cam_curve_interval", type=int, default=100,
                   help="threshold sweep: tau in 0, 1/N, ..., (N-1)/N")
    g.add_argument("--cam_fusion", default="released", choices=CAM_FUSIONS,
                   help="head fusion: released (VGG: mean of the heads' weights x max of their maps; ResNet: "
                        "per-pixel max of the heads' CAMs, the 3x3 head with the mean of all heads' weights), "
                        "max (per-pixel max of the heads' CAMs, the paper's figure), mean")
    g.add_argument("--number_of_examples", type=int, default=16, help="overlay pictures written")
    g.add_argument("--mask_dir", default=None,
                   help="object masks <mask_dir>/<image path>.png for PxAP / PIoU (default: "
                        "<data_dir>/<DATASET>/masks when that folder exists)")
    g.add_argument("--tau_split", default=None, metavar="LIST",
                   help="choose tau on this held-out fully-annotated list (a label list or metadata folder "
                        "path, or a split name such as train_fullsup) and apply it to the val list")
    g.add_argument("--save_cams", default=None, metavar="DIR",
                   help="also write every evaluated CAM as DIR/<image>.npy with DIR/labels.txt "
                        "(the input of python -m utils.evaluation.scorer)")
    return p


def default_num_classes(args, class_list_size=None):
    if args.dataset_name == "ILSVRC":
        return 1000
    if args.dataset_name == "CUB":
        return 200 if args.arch_name == "vgg_gap" else 1000
    if class_list_size is None:
        raise ConfigError(f"--number_of_class is needed for {args.dataset_name}")
    return class_list_size


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
    """Fill presets into ``args`` (in place) and check combinations; returns args.

    ``class_list_size``: number of class names of the data set (for SYNTH / own sets), or a
    function of the (inherited) args that returns it.  ``explicit``: the flags typed on the
    command line (``parse_command_line``); when given, a run that already has a config.json
    (``--evaluate``, resume) takes its model flags from it.
    """
    args.dataset_name = DATASET_ALIASES.get(args.dataset_name, args.dataset_name)
    if args.dataset_name in ("", ".", "..") or "/" in args.dataset_name or os.sep in args.dataset_name:
        raise ConfigError(f"--dataset_name must be a folder name (e.g. MYSET), got {args.dataset_name!r}")
    check_ranges(args)
    try:
        args.method_name = canonical_method(args.method_name)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if args.log_dir is None:
        args.log_dir = f"{args.dataset_name}_{args.arch_name}_{args.method_name}"
    if os.sep not in args.log_dir and not args.log_dir.startswith("."):
        args.log_dir = os.path.join("train_log", args.log_dir)
    if explicit is not None:
        config_file = run_config_file(args)
        if config_file is not None:
            inherit_run_config(args, explicit, config_file)
    method = args.method_name
    if args.number_of_class is None:
        if callable(class_list_size):
            class_list_size = class_list_size(args)
        args.number_of_class = default_num_classes(args, class_list_size)
    if args.gating_position is None or args.gating_position == []:
        args.gating_position = list(DEFAULT_POSITIONS[args.arch_name]) if method in ("MAE", "ADL", "E2Net") else []
    elif method not in ("MAE", "ADL", "E2Net"):
        raise ConfigError(f"--gating_position has no effect with --method_name {method}")
    if args.ose_heads is None:
        args.ose_heads = list(RELEASED_OSE_HEADS) if method in ("OSE", "E2Net") else ["3x3"]
    elif method in ("CAM", "ADL", "MAE") and args.ose_heads != ["3x3"]:
        raise ConfigError(f"--ose_heads needs --method_name OSE or E2Net (got {method})")
    if args.use_bn and args.arch_name != "resnet":
        raise ConfigError("--use_bn 1 applies to ResNet50-SE (--arch_name resnet) only")
    if args.use_pretrained_model and not args.pretrained and args.width_multiplier != 1.0:
        raise ConfigError(f"--use_pretrained_model loads the model-zoo weights, which fit --width_multiplier 1.0 "
                          f"only (got {args.width_multiplier}); drop one of them")
    if args.pretrained:
        args.use_pretrained_model = True
    if args.stepscale is None:
        args.stepscale = STEPSCALE.get(args.dataset_name, 1.0)
    if args.epoch is None:
        args.epoch = EPOCHS.get((args.arch_name, args.dataset_name), DEFAULT_EPOCHS)
    if args.cam_threshold is None:
        args.cam_threshold = (CAM_BASELINE_THRESHOLD if method == "CAM" else
                              CAM_THRESHOLD.get((args.arch_name, args.dataset_name), DEFAULT_CAM_THRESHOLD))
    if args.data_format is None:
        args.data_format = "NHWC" if args.is_data_format_nhwc or not gpu_present else "NCHW"
    check_log_dir(args.log_dir)
    if args.load and not (os.path.exists(args.load) or os.path.isfile(args.load + ".index")):
        raise ConfigError(f"--load {args.load}: no such checkpoint (give a model-<step> prefix, its .index file "
                          f"or a folder holding a 'checkpoint' file)")
    if args.final_size % 16:
        raise ConfigError(f"--final_size must be a multiple of 16, got {args.final_size}")
    if args.lr_decay_epochs and min(args.lr_decay_epochs) < 1:
        raise ConfigError(f"--lr_decay_epochs must be positive epochs, got {args.lr_decay_epochs}")
    if args.trainer.startswith("distributed"):
        from utils.training.distributed import resolve_cluster
        resolve_cluster(args)  # --cluster SPEC; --job / --task may come from a TF_CONFIG-style file
    if args.gpu is not None and args.cpu_towers != 1:
        raise ConfigError("--cpu_towers is for runs without --gpu (one tower per GPU otherwise)")
    towers = num_towers(args)
    if args.batch_size % towers:
        raise ConfigError(f"--batch_size {args.batch_size} does not split over {towers} towers")
    model_spec(args).validate()
    return args


# (flag, test, allowed range in words) of numeric flags; None values are left to the presets.
# (--width_multiplier is checked by ModelSpec.validate.)
FLAG_RANGES = (
    ("cam_threshold", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("aae_threshold", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("adl_threshold", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("adl_keep_prob", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("base_lr", lambda v: 0 < v < float("inf"), "> 0"),
    ("epoch", lambda v: v >= 1, ">= 1"),
    ("starting_epoch", lambda v: v >= 1, ">= 1"),
    ("number_of_cam_curve_interval", lambda v: v >= 1, ">= 1"),
    ("number_of_class", lambda v: v >= 1, ">= 1"),
    ("number_of_val", lambda v: v >= 1, ">= 1"),
    ("number_of_examples", lambda v: v >= 0, ">= 0"),
    ("batch_size", lambda v: v >= 1, ">= 1"),
    ("final_size", lambda v: v >= 32, ">= 32"),
    ("workers", lambda v: v >= 0, ">= 0"),
    ("steps_per_epoch", lambda v: v >= 1, ">= 1"),
    ("stepscale", lambda v: 0 < v < float("inf"), "> 0"),
    ("clip_gradients", lambda v: 0 <= v < float("inf"), ">= 0 (0 = off)"),
    ("cpu_towers", lambda v: v >= 1, ">= 1"),
    ("task", lambda v: v >= 0, ">= 0"),
)


def check_ranges(args):
    """One ConfigError line for the first numeric flag outside its range (NaN included)."""
    for name, valid, allowed in FLAG_RANGES:
        value = getattr(args, name, None)
        if value is not None and not valid(value):
            raise ConfigError(f"--{name} must be {allowed}, got {value}")


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
        return ModelSpec(
            arch=args.arch_name, method=args.method_name, num_classes=args.number_of_class,
            image_size=args.final_size, width_multiplier=args.width_multiplier,
            data_format=args.data_format, positions=tuple(args.gating_position),
            mae_threshold=args.aae_threshold, mae_mask=args.mae_mask,
            adl_threshold=args.adl_threshold, adl_keep_prob=args.adl_keep_prob,
            ose_heads=tuple(args.ose_heads), use_bn=bool(args.use_bn),
            weight_decay=WEIGHT_DECAY[args.arch_name], base_lr=args.base_lr,
            pretrained_grad_scale=0.1 if pretrained else 1.0,
            gradient_clip_norm=args.clip_gradients).validate()
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


def _flag_value(name, value):
    """A flag's value in the form config.json stores after ``resolve`` (for comparisons)."""
    if value is None:
        return None
    if name == "method_name":
        return canonical_method(value)
    if name == "arch_name":
        return ARCH_ALIASES.get(value, value)
    if name in ("gating_position", "ose_heads"):
        return [str(v) for v in value]
    if name in ("number_of_class", "final_size", "use_bn"):
        return int(value)
    if name in ("width_multiplier", "aae_threshold", "adl_threshold", "adl_keep_prob"):
        return float(value)
    return value


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


def _shown(value):
    return " ".join(value) if isinstance(value, list) else value


def inherit_run_config(args, explicit, path):
    """Take the model flags (and, unless given, the data flags and --cam_fusion) from a run's config.json.

    A model flag typed on the command line that contradicts the run is a ConfigError naming both values."""
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read the run's configuration ({e})") from None
    for name in MODEL_FLAGS:
        if name not in record:
            raise ConfigError(f"{path}: has no {name!r}; not a config.json written by train.py")
        stored = _flag_value(name, record[name])
        if name in explicit and _flag_value(name, getattr(args, name)) != stored:
            raise ConfigError(f"--{name} {_shown(_flag_value(name, getattr(args, name)))} contradicts the run's "
                              f"{path} ({name} = {_shown(stored)}); drop the flag, or use another --log_dir")
        setattr(args, name, stored)
    for name in RUN_DEFAULT_FLAGS:
        if name not in explicit and name in record:
            setattr(args, name, record[name])


def config_dict(args):
    """JSON-able record of a run's configuration (flags and the model spec)."""
    record = dict(vars(args))
    record.update(method=args.method_name, dataset=args.dataset_name, arch=args.arch_name)
    record["model_spec"] = asdict(model_spec(args))
    return record


def run_config(log_dir_or_ckpt, gpu_present=False, flags=()):
    """The resolved configuration of a trained run, read from its ``config.json``, as
    ``--evaluate`` resolves it (``inherit_run_config``).

    ``log_dir_or_ckpt`` is a run folder or a checkpoint path inside one (then it becomes
    ``load``).  Placement (GPUs, trainer, cluster, data format) is this machine's; ``flags``:
    more train.py flags of this use of the run (e.g. ``["--precision", "bf16"]``).
    """
    path = os.path.normpath(log_dir_or_ckpt)
    run_dir = path if os.path.isdir(path) else os.path.dirname(path)
    config_file = os.path.join(run_dir, RUN_CONFIG)
    if not os.path.isfile(config_file):
        raise ConfigError(f"{config_file}: no such file ({log_dir_or_ckpt} is not a run folder written by train.py)")
    load = [] if path == run_dir else ["--load", path]
    return parse_args(["--evaluate", "--log_dir", run_dir] + load + list(flags), gpu_present=gpu_present)
