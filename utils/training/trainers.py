"""Choosing the tensorpack trainer for a run: CPU, one GPU, several towers, Horovod."""
from utils import compat  # noqa: F401  (first: TensorFlow set-up)
import os

from tensorpack import SimpleTrainer, SyncMultiGPUTrainerParameterServer, SyncMultiGPUTrainerReplicated

from utils.config import gpu_list
from utils.errors import ConfigError


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
        from utils.training.distributed import TENSORPACK_HOROVOD_MODULES, use_tf1_in_tensorpack_modules
        use_tf1_in_tensorpack_modules(TENSORPACK_HOROVOD_MODULES)  # HorovodTrainer calls tf.global_variables
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
    """Restrict TensorFlow to the requested GPUs (before any session starts) and check that
    it sees each of them: an id that is not a GPU of this machine is a ConfigError, never
    a silent CPU run.  ``--gpu ''`` hides every GPU (CPU run)."""
    if args.gpu is None:
        return
    ids = gpu_list(args)
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
    visible = compat.gpu_count() if ids else 0
    if visible == 0 and ids:
        raise ConfigError(f"--gpu {args.gpu}: TensorFlow sees no GPU on this machine; drop --gpu to train "
                          f"on the CPU (GPU set-up: README, 'GPU install')")
    if visible < len(ids):
        raise ConfigError(f"--gpu {args.gpu}: TensorFlow sees only {visible} of these {len(ids)} GPUs "
                          f"(CUDA drops an id that does not exist and every id after it)")
