"""The project's own model zoo: a backbone pretrained as a plain classifier on the synthetic
pretraining corpus (``utils.data.pretrain_corpus``), written in the model-zoo file format.

``python -m utils.pretrain --arch resnet --width 0.25`` (see ``--help``)

1. generates (or keeps) the corpus in ``<data_dir>/SYNTH_PRETRAIN`` (parameters ``--corpus_*``);
2. trains the backbone with train.py's machinery in this process (``utils.training.loop.train``):
   ``--method_name CAM`` is a plain GAP classifier, so the run has train.py's progress bar, its
   verified checkpoints and its resume -- rerun the same command after an interruption;
3. writes ``<out>/<backbone>_w<width>.npz`` with exactly the key names of the model-zoo file of
   the backbone (VGG16-GAP ``vgg16.npz``: the 26 ``conv1_1/W`` ... ``conv5_3/b``; ResNet50-SE
   ``ImageNet-ResNet50-SE.npz``: the 329 ``conv0`` and ``group*/block*`` keys with BN statistics
   and SE ``fc1``/``fc2``, no ``linear``), shapes at the width, from the final checkpoint, and a
   JSON card beside it (``.json``: corpus parameters, recipe, pretraining val top-1, wall time of
   this invocation and the global step it resumed from, sha256 of the npz).  Both files are written whole or not at all.

No TensorFlow at import (the demo and the study read ``zoo_file``); ``main`` sets it up.

Fine-tune from it as from a real model-zoo file: ``train.py --pretrained FILE ...`` (the
released x0.1 gradient rule on the pretrained layers).
"""
import argparse
import hashlib
import json
import os
import sys
import time

from utils.atomic import write_json, write_npz
from utils.data import pretrain_corpus
from utils.errors import UserError, exit_on_user_error
from utils.training.launch import REPO

ZOO_DIR = os.path.join(REPO, "models", "synthetic_zoo")
BACKBONE_NAMES = {"resnet": "resnet50_se", "vgg_gap": "vgg16"}
# Pretraining recipe per backbone, from random initialisation (plain VGG16-GAP needs gradient
# clipping); budgets and measurements: docs/pretraining.md.
RECIPES = {
    "resnet": {"batch": 64, "epochs": 5, "base_lr": 0.05, "clip_gradients": 0.0, "lr_decay_epochs": [4]},
    "vgg_gap": {"batch": 32, "epochs": 2, "base_lr": 0.01, "clip_gradients": 5.0, "lr_decay_epochs": [2]},
}
TINY = {"epochs": 1, "steps_per_epoch": 2, "batch": 8, "size": 32, "corpus_num_train_per_class": 1,
        "corpus_num_val_per_class": 1, "corpus_size": 64}


class PretrainError(UserError, RuntimeError):
    """A pretraining run that cannot start, or a checkpoint that lacks backbone weights."""


def zoo_file(arch, width, folder=ZOO_DIR):
    """``<folder>/<backbone>_w<width>.npz``, e.g. ``models/synthetic_zoo/resnet50_se_w0.25.npz``."""
    return os.path.join(folder, f"{BACKBONE_NAMES[arch]}_w{width:g}.npz")


def card_file(npz_path):
    return os.path.splitext(npz_path)[0] + ".json"


def build_parser():
    p = argparse.ArgumentParser(prog="python -m utils.pretrain", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet", choices=tuple(RECIPES), help="backbone")
    p.add_argument("--width", type=float, default=0.25, help="channel width multiplier")
    p.add_argument("--size", type=int, default=64, help="network input size (crops of the corpus images)")
    p.add_argument("--batch", type=int, default=None, help="default: " + ", ".join(
        f"{a} {r['batch']}" for a, r in RECIPES.items()))
    p.add_argument("--epochs", type=int, default=None, help="default: " + ", ".join(
        f"{a} {r['epochs']}" for a, r in RECIPES.items()))
    p.add_argument("--base_lr", type=float, default=None)
    p.add_argument("--clip_gradients", type=float, default=None)
    p.add_argument("--lr_decay_epochs", type=int, nargs="+", default=None)
    p.add_argument("--steps_per_epoch", type=int, default=None, help="default: one pass over the train list")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="decoding workers (default: all cores)")
    p.add_argument("--data_dir", default=os.path.join(REPO, "dataset"), help="the corpus is generated here")
    p.add_argument("--log_dir", default=None, help="training folder (default train_log/pretrain/<backbone>_w<width>)")
    p.add_argument("--out", default=ZOO_DIR, help="folder of the npz and its card")
    p.add_argument("--tiny", action="store_true", help="a few steps on a tiny corpus (smoke test): " +
                   " ".join(f"{k}={v}" for k, v in TINY.items()))
    pretrain_corpus.add_arguments(p)
    return p


def resolve(args, argv):
    """Fill --tiny values (unless given) and the backbone's recipe into args."""
    if args.tiny:
        given = {a.split("=")[0].lstrip("-") for a in (argv or []) if a.startswith("--")}
        for key, value in TINY.items():
            if key not in given:
                setattr(args, key, value)
    for key, value in RECIPES[args.arch].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.log_dir is None:
        args.log_dir = os.path.join(REPO, "train_log", "pretrain", os.path.basename(zoo_file(args.arch, args.width))[:-4])
    return args


def train_flags(args, num_train):
    """train.py's command line of the pretraining run (a CAM classifier on the corpus)."""
    flags = ["--dataset_name", pretrain_corpus.DATASET_NAME, "--data_dir", args.data_dir,
             "--arch_name", args.arch, "--method_name", "CAM", "--final_size", str(args.size),
             "--width_multiplier", str(args.width), "--batch_size", str(args.batch),
             "--epoch", str(args.epochs), "--base_lr", str(args.base_lr),
             "--clip_gradients", str(args.clip_gradients), "--seed", str(args.seed),
             "--steps_per_epoch", str(args.steps_per_epoch or max(1, num_train // args.batch)),
             "--log_dir", args.log_dir]
    if args.lr_decay_epochs:
        flags += ["--lr_decay_epochs"] + [str(e) for e in args.lr_decay_epochs]
    if args.workers is not None:
        flags += ["--workers", str(args.workers)]
    return flags


def final_val_top1(log_dir):
    """(global step, val top-1 %) of the last validation in the run's stats.json."""
    with open(os.path.join(log_dir, "stats.json")) as f:
        stats = [s for s in json.load(f) if "val-error-top1" in s]
    if not stats:
        raise PretrainError(f"{log_dir}/stats.json holds no validation (val-error-top1)")
    return stats[-1]["global_step"], 100.0 * (1.0 - stats[-1]["val-error-top1"])


def backbone_arrays(spec, checkpoint):
    """{model-zoo key: array} of a checkpoint: the backbone model variables of the graph of the
    ModelSpec ``spec`` (``utils.training.pretrained.backbone_variable_names``), read from ``checkpoint``."""
    from tensorpack.tfutils.tower import TowerContext
    from utils.compat import tf
    from models.wsol_model import WSOLModel
    from utils.training.pretrained import backbone_variable_names

    with tf.Graph().as_default():
        model = WSOLModel(spec)
        inputs = [tf.placeholder(s.dtype, s.shape, s.name) for s in model.inputs()]
        with TowerContext("", is_training=False):
            model.build_graph(*inputs)
        names = backbone_variable_names(spec.arch)
    reader = tf.train.NewCheckpointReader(checkpoint)
    missing = [name for name in names if not reader.has_tensor(name)]
    if missing:
        raise PretrainError(f"{checkpoint} lacks {len(missing)} backbone variable(s): {' '.join(missing[:8])}")
    return {name: reader.get_tensor(name) for name in names}


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_zoo_file(path, arrays, card):
    """The npz (keys sorted) and, after it, its card with the npz's sha256 added."""
    write_npz(path, **{key: arrays[key] for key in sorted(arrays)})
    card = dict(card, npz=os.path.basename(path), sha256=sha256(path), keys=len(arrays))
    write_json(card_file(path), card, indent=2, sort_keys=True)
    return card


def main(argv=None):
    from utils import compat  # first: TensorFlow set-up
    from utils.compat import tf
    from utils.config import model_spec, parse_command_line, resolve as resolve_train
    from utils.training.checkpoints import newest_restorable_checkpoint
    from utils.training.loop import train

    argv = sys.argv[1:] if argv is None else list(argv)
    args = resolve(build_parser().parse_args(argv), argv)
    start = time.time()
    corpus_dir = os.path.join(args.data_dir, pretrain_corpus.DATASET_NAME)
    try:
        corpus, generated = pretrain_corpus.ensure(corpus_dir, workers=args.workers,
                                                   **pretrain_corpus.params_from(args))
    except OSError as error:
        raise PretrainError(f"cannot write the corpus to {corpus_dir}: {error.strerror or error}") from None
    print(f"[pretrain] corpus {'generated' if generated else 'cached'} in {corpus_dir}: {corpus['num_classes']} classes, "
          f"{corpus['num_train_per_class']} + {corpus['num_val_per_class']} images per class", flush=True)
    flags = train_flags(args, corpus["num_train_per_class"] * corpus["num_classes"])
    train_args, explicit = parse_command_line(flags)
    resolve_train(train_args, corpus["num_classes"], gpu_present=compat.gpu_available(), explicit=explicit)
    print(f"[pretrain] training: train.py {' '.join(flags)}", flush=True)
    resumed = newest_restorable_checkpoint(train_args.log_dir)
    train(train_args)
    checkpoint = tf.train.latest_checkpoint(train_args.log_dir)
    if checkpoint is None:
        raise PretrainError(f"{train_args.log_dir}: the run saved no checkpoint")
    step, top1 = final_val_top1(train_args.log_dir)
    arrays = backbone_arrays(model_spec(train_args), checkpoint)
    path = zoo_file(args.arch, args.width, args.out)
    card = {"backbone": args.arch, "model_zoo_file_format": BACKBONE_NAMES[args.arch], "width_multiplier": args.width,
            "corpus": {k: v for k, v in corpus.items() if k != "generation_seconds"},
            "recipe": {"train_py_flags": flags[:flags.index("--log_dir")] + flags[flags.index("--log_dir") + 2:],
                       "command": "python -m utils.pretrain " + " ".join(argv)},
            "checkpoint": os.path.basename(checkpoint), "global_step": step,
            "pretraining_val_top1": round(top1, 2), "wall_time_seconds": round(time.time() - start, 1),
            "resumed_from_global_step": resumed[1] if resumed else None}
    card = write_zoo_file(path, arrays, card)
    print(f"[pretrain] {path}: {card['keys']} keys, pretraining val top-1 {top1:.1f}% "
          f"(global step {step}), sha256 {card['sha256'][:12]}; card {card_file(path)}")
    print(f"[pretrain] wall time {card['wall_time_seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(exit_on_user_error("python -m utils.pretrain", main))
