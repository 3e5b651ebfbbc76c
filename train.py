#!/usr/bin/env python
"""Train or evaluate E2Net and its baselines (CAM, ADL, MAE, OSE) with tensorpack.

Examples:
  python train.py --dataset_name CUB --arch_name vgg_gap --method_name E2Net --use_pretrained_model --gpu 0,1
  python train.py --dataset_name CUB --arch_name vgg_gap --method_name AAE_SAE --gating_position 3 4 53 --evaluate
Run ``python train.py --help`` for every flag.
"""
import shlex
import sys

from utils import compat  # noqa: F401  (first: TensorFlow set-up for the whole program)
from utils.config import parse_command_line, resolve  # noqa: E402
from utils.errors import ConfigError, UserError  # noqa: E402
from utils.training.trainers import select_gpus  # noqa: E402

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process stopped by Ctrl-C


def class_list_size(args):
    """Number of class names of a data set whose class count has no preset."""
    from utils.data.paths import dataset_class_names_file
    from utils.data.labels import read_class_names
    names = dataset_class_names_file(args.dataset_name, args.data_dir, args.label_dir)
    return len(read_class_names(names)) if names else None


def check_model(args):
    """Refuse a model the graph code cannot build (e.g. an unknown --gating_position) before
    any data is read; the graph itself is built later."""
    from models.wsol_model import WSOLModel
    from utils.config import model_spec
    try:
        WSOLModel(model_spec(args))
    except ValueError as error:
        raise ConfigError(str(error)) from None


def evaluates_after_training(args):
    """As released, training ends with the evaluation of min-val-error-top1 -- in the process
    that trained (not a parameter server, and only the chief of a distributed run)."""
    if args.trainer.startswith("distributed"):
        return args.job == "worker" and args.task == 0
    return True


def rerun_command(argv):
    """The command line that runs this program again with the same flags."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return shlex.join([sys.executable, sys.argv[0]] + argv)   # the interpreter running now (a venv's)


def main(argv=None):
    args, explicit = parse_command_line(argv)
    try:
        select_gpus(args)
        resolve(args, class_list_size, gpu_present=compat.gpu_available(), explicit=explicit)
        check_model(args)
        from utils.training.precision import check_run
        check_run(args)
        if not args.evaluate:
            from utils.training.loop import train
            train(args)
            if not evaluates_after_training(args):
                return 0
            args.load = None   # evaluate this run's own min-val-error-top1, not the checkpoint it started from
        from utils.evaluation.evaluate import evaluate
        evaluate(args)
    except (UserError, FileNotFoundError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        todo = "evaluate again" if args.evaluate else "resume from the last checkpoint"
        print(f"train.py: interrupted (Ctrl-C); to {todo}, run: {rerun_command(argv)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
