#!/usr/bin/env python
"""Train or evaluate E2Net and its baselines (CAM, ADL, MAE, OSE) with tensorpack.

Examples:
  python train.py --dataset_name CUB --arch_name vgg_gap --method_name E2Net --use_pretrained_model --gpu 0,1
  python train.py --dataset_name CUB --arch_name vgg_gap --method_name AAE_SAE --gating_position 3 4 53 --evaluate
Run ``python train.py --help`` for every flag.
"""
import os
import sys

from utils import compat  # noqa: F401  (first: TensorFlow set-up for the whole program)
from utils.config import build_parser, resolve  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.training.trainers import select_gpus  # noqa: E402


def class_list_size(args):
    """Number of class names of a data set whose class count has no preset."""
    from utils.data.dataflow import dataset_paths
    from utils.data.labels import read_class_names
    label_file, _ = dataset_paths(args.dataset_name, args.data_dir, args.label_dir, split="train")
    names = os.path.join(os.path.dirname(label_file), "words.txt")
    return len(read_class_names(names)) if os.path.isfile(names) else None


def check_model(args):
    """Refuse a model the graph code cannot build (e.g. an unknown --gating_position) before
    any data is read; the graph itself is built later."""
    from models.wsol_model import WSOLModel
    from utils.config import ConfigError, model_spec
    try:
        WSOLModel(model_spec(args))
    except ValueError as error:
        raise ConfigError(str(error)) from None


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        select_gpus(args)
        resolve(args, class_list_size(args), gpu_present=compat.gpu_available())
        check_model(args)
        if args.evaluate:
            from utils.evaluation.evaluate import evaluate
            evaluate(args)
        else:
            from utils.training.loop import train
            train(args)
    except (UserError, FileNotFoundError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
