"""Choosing the tensorpack trainer for a run: CPU, one GPU, several towers, Horovod."""
from utils import compat  # noqa: F401  (first: TensorFlow set-up)
import os

from tensorpack import SimpleTrainer, SyncMultiGPUTrainerParameterServer, SyncMultiGPUTrainerReplicated

from utils.config import ConfigError


def make_trainer(args, towers):
    """SimpleTrainer for one device; one tower per GPU otherwise (batch split across them).

    On a machine without GPUs, several towers still run (soft placement puts them on
    the CPU), which is how the multi-tower path is tested."""
    if args.trainer == "horovod":
        try:
            from tensorpack import HorovodTrainer
            import horovod.tensorflow  # noqa: F401
        except ImportError:
            raise ConfigError("--trainer horovod needs the optional horovod package (see README)") from None
        return HorovodTrainer()
    if args.trainer.startswith("distributed"):
        from utils.training.distributed import make_distributed_trainer
        return make_distributed_trainer(args, towers)
    if towers == 1:
        return SimpleTrainer()
    if args.trainer == "parameter_server":
        return SyncMultiGPUTrainerParameterServer(towers, ps_device="cpu")
    return SyncMultiGPUTrainerReplicated(towers)


def select_gpus(args):
    """Restrict TensorFlow to the requested GPUs (before any session starts)."""
    if args.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = args.gpu
