"""The one place where TensorFlow is brought up for this project.

Import this module before anything that imports TensorFlow or tensorpack.  It

* sets ``TF_USE_LEGACY_KERAS=1`` so that tensorpack's ``tf.layers`` come from
  tf-keras (with Keras 3 tensorpack's layers raise "Conv2D is not available");
* switches TensorFlow 2.x into TF1 graph mode (``disable_v2_behavior``);
* exposes ``tf``: the TF1 API (``tf.compat.v1`` on TF 2.x, ``tensorflow`` itself on 1.15);
* installs the shims tensorpack 0.11 needs on current TensorFlow / numpy / OpenCV;
* keeps Python's cyclic garbage collector off TensorFlow's import-time objects
  (see ``_GC_WAS_ENABLED`` below);
* turns TensorFlow's graph optimizer off in tensorpack's sessions when
  ``E2NET_GRAPH_OPTIMIZER=off`` (see ``GRAPH_OPTIMIZER_ENV``);
* makes tensorpack's logger print ``logger.error("...", value)`` calls whole.

The fixes tensorpack's distributed and Horovod trainers need live beside those trainers
(``utils.training.distributed``) and are applied only when such a trainer is built.

Every TF2-only call of the project lives here (and, for the distributed trainers, in
``utils.training.distributed``'s tensorpack fixes), so the rest of the code runs on
TensorFlow 1.15 too.
"""
import atexit
import gc
import os
import sys

# TensorFlow's import creates about half a million long-lived Python objects.  Unfrozen, the cyclic
# collector walks them again and again: during the import (~0.8 s), and at interpreter exit,
# where its final collections over them and the graphs built since take 1.5-2.5 s per process
# (measured on 2 cores; the tests start ~40 TensorFlow processes).  So: no collection during the
# import, the imported objects frozen afterwards (``gc.freeze``: left out of every later
# collection; reference counting still frees them), and everything alive at exit frozen too
# (the ``atexit`` call below runs before the interpreter's final collections).
_GC_WAS_ENABLED = gc.isenabled()
gc.disable()

# TensorFlow's graph optimizer (grappler) rewrites a session's graph before its first run: on
# 2 CPU cores 3-4 s a session for a narrow ResNet50-SE E2Net, for steps 0-15% faster afterwards
# (bench/session_startup.py; on GPUs its layout and fusion passes matter more).  The default,
# as released, keeps it; the test suite's dozens of few-step runs set E2NET_GRAPH_OPTIMIZER=off
# (tests/conftest.py; test_compat checks that a step trains the same with it on).
GRAPH_OPTIMIZER_ENV = "E2NET_GRAPH_OPTIMIZER"
_graph_optimizer = os.environ.get(GRAPH_OPTIMIZER_ENV, "on")
if _graph_optimizer not in ("on", "off"):   # checked before the slow TensorFlow import
    print(f"{os.path.basename(sys.argv[0]) or 'python'}: error: {GRAPH_OPTIMIZER_ENV}={_graph_optimizer!r} "
          f"must be 'on' or 'off'", file=sys.stderr)
    sys.exit(2)

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN kernels on every x86 CPU: TensorFlow enables them by default only on some (Intel)
# processors, and without them NCHW pooling/convolutions cannot run on the CPU at all
# ("Default MaxPoolingOp only supports NHWC on device type CPU", seen on AMD EPYC).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import numpy as np  # noqa: E402
import tensorflow as _tf_root  # noqa: E402

TF2 = _tf_root.__version__.startswith("2.")
if TF2:
    _tf_root.get_logger().setLevel("ERROR")  # before the switch: it logs a deprecation warning
    _tf_root.compat.v1.disable_v2_behavior()
    # Resource variables: with TF1 reference variables and tensorpack's ungated gradients
    # (gate_gradients=False) an update could race a backward op of the same step on CPU and
    # turn the loss NaN (measured: 3 of 4 from-scratch runs vs 0 of 4 with resource variables).
    _tf_root.compat.v1.enable_resource_variables()
    tf = _tf_root.compat.v1
else:  # TensorFlow 1.15
    tf = _tf_root


def _patch_tensorpack_validate_coords():
    """tensorpack 0.11 checks ``np.issubdtype(coords.dtype, np.float)``; numpy 2 removed np.float."""
    from tensorpack.dataflow import image as tp_image

    def validate_coords(coords):
        assert coords.ndim == 2, coords.ndim
        assert coords.shape[1] == 2, coords.shape
        assert np.issubdtype(coords.dtype, np.floating), coords.dtype

    tp_image.validate_coords = validate_coords


def gpu_count():
    """GPUs TensorFlow sees (after ``CUDA_VISIBLE_DEVICES``), without allocating GPU memory."""
    if TF2:
        return len(_tf_root.config.list_physical_devices("GPU"))
    from tensorflow.python.client import device_lib
    return sum(d.device_type == "GPU" for d in device_lib.list_local_devices())


def gpu_available():
    """True when TensorFlow sees at least one GPU."""
    return gpu_count() > 0


def _patch_tensorpack_session_config():
    """With ``E2NET_GRAPH_OPTIMIZER=off``: tensorpack's default session config (used by its
    trainers, predictors and this project's distributed code) with grappler's meta optimizer off."""
    from tensorpack.tfutils import common
    original = common.get_default_sess_config

    def get_default_sess_config(*args, **kwargs):
        config = original(*args, **kwargs)
        config.graph_options.rewrite_options.disable_meta_optimizer = True
        return config

    # rebind it in the tensorpack modules that imported the name (tensorpack.tfutils.sesscreate ...)
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("tensorpack") and \
                getattr(module, "get_default_sess_config", None) is original:
            module.get_default_sess_config = get_default_sess_config


_patch_tensorpack_validate_coords()
if _graph_optimizer == "off":
    _patch_tensorpack_session_config()

gc.freeze()
if _GC_WAS_ENABLED:
    gc.enable()
atexit.register(gc.freeze)


class _JoinStrayLogArguments:
    """logging filter: tensorpack's ``Trainer.main_loop`` logs
    ``logger.error("Training failed at global_step=", step)`` — an argument without a ``%``
    placeholder, which makes the logging module print "--- Logging error ---" instead of the
    message.  Such records get their arguments appended to the message instead."""

    def filter(self, record):
        if record.args and isinstance(record.msg, str) and "%" not in record.msg:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.msg = record.msg + "".join(str(a) for a in args)
            record.args = ()
        return True


def _patch_tensorpack_main_loop_logging():
    """Install ``_JoinStrayLogArguments`` on tensorpack's logger (once)."""
    import logging
    tp_logger = logging.getLogger("tensorpack")
    if not any(isinstance(f, _JoinStrayLogArguments) for f in tp_logger.filters):
        tp_logger.addFilter(_JoinStrayLogArguments())


_patch_tensorpack_main_loop_logging()
