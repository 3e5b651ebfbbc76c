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
  ``E2NET_GRAPH_OPTIMIZER=off`` (see ``GRAPH_OPTIMIZER_ENV``).

Every TF2-only call of the project lives here, so the rest of the code runs on
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


# ---------------------------------------------------------------------------------------
# Multi-machine training (tensorpack's distributed trainers) and Horovod.
#
# Applied lazily by ``utils.training.distributed`` (``patch_tensorpack_distributed``) and, when the
# optional horovod package is installed, at import (``patch_tensorpack_horovod``).  Every
# function here is idempotent and leaves single-process training unchanged.
# ---------------------------------------------------------------------------------------

# tensorpack modules that ``import tensorflow as tf`` and then call TF1-only functions
# (``tf.train.replica_device_setter``, ``tf.train.SessionManager``, ``tf.global_variables``,
# ``tf.contrib.training.GreedyLoadBalancingStrategy`` ...) on the distributed / Horovod path.
TENSORPACK_DISTRIBUTED_MODULES = ("tensorpack.graph_builder.distributed", "tensorpack.tfutils.distributed",
                                  "tensorpack.train.trainers")
TENSORPACK_HOROVOD_MODULES = ("tensorpack.train.trainers",)

import types  # noqa: E402


class GreedyLoadBalancingStrategy:
    """Stand-in for TF1's ``tf.contrib.training.GreedyLoadBalancingStrategy`` (removed with
    tf.contrib): a ``ps_strategy`` for ``replica_device_setter`` that puts each variable on
    the parameter server with the smallest load so far (load of a variable: ``load_fn(op)``)."""

    def __init__(self, num_tasks, load_fn):
        self._load_fn = load_fn
        self._loads = [0] * num_tasks

    def __call__(self, op):
        task = min(range(len(self._loads)), key=self._loads.__getitem__)
        self._loads[task] += self._load_fn(op)
        return task


def byte_size_load_fn(op):
    """Load of a variable-creating op for ``GreedyLoadBalancingStrategy``: the variable's size
    in bytes (from the op's ``shape`` / ``dtype`` attributes; 0 when not fully known)."""
    try:
        shape = _tf_root.TensorShape(op.get_attr("shape"))
        dtype = _tf_root.as_dtype(op.get_attr("dtype"))
    except (ValueError, TypeError):
        if not op.outputs:
            return 0
        shape, dtype = op.outputs[0].shape, op.outputs[0].dtype
    if not shape.is_fully_defined():
        return 0
    return shape.num_elements() * dtype.base_dtype.size


class _TF1Namespace(types.ModuleType):
    """A module object that is ``tf.compat.v1`` plus extra attributes (``contrib``): what
    tensorpack's ``import tensorflow as tf`` modules expect to see under the name ``tf``."""

    def __init__(self, base, **extra):
        super().__init__(base.__name__, getattr(base, "__doc__", None))
        self.__dict__.update(extra)
        self._base = base

    def __getattr__(self, name):
        return getattr(self._base, name)


def tf1_namespace():
    """``tf.compat.v1`` with ``contrib.training.{GreedyLoadBalancingStrategy, byte_size_load_fn}``
    (on TensorFlow 1.15: ``tensorflow`` itself, which has the real tf.contrib)."""
    if not TF2:
        return tf
    training = types.SimpleNamespace(GreedyLoadBalancingStrategy=GreedyLoadBalancingStrategy,
                                     byte_size_load_fn=byte_size_load_fn)
    return _TF1Namespace(tf, contrib=types.SimpleNamespace(training=training))


def _use_tf1_in_tensorpack_modules(module_names):
    """(i) Rebind the global ``tf`` of the given tensorpack modules to ``tf1_namespace()``.
    These modules call TF1-only functions through ``import tensorflow as tf``; everything they
    use exists in tf.compat.v1, so other code paths in them are unaffected."""
    import importlib
    namespace = None
    for name in module_names:
        module = importlib.import_module(name)
        if not isinstance(getattr(module, "tf", None), _TF1Namespace) and TF2:
            namespace = namespace or tf1_namespace()
            module.tf = namespace


def _patch_tensorpack_replace_global_by_local():
    """(ii) tensorpack 0.11's ``override_to_local_variable`` custom getter removes
    GLOBAL_VARIABLES from a variable's collections with ``set.remove``; when two such scopes
    are nested the inner one finds it already gone and raises ``KeyError: 'variables'``.
    Replacement: the same rewrite (collections -> LOCAL_VARIABLES instead of GLOBAL_VARIABLES)
    with a tolerant removal (and no unbound name when ``collections`` is not passed)."""
    from tensorpack.graph_builder import utils as gb_utils
    if getattr(gb_utils._replace_global_by_local, "_e2net_patched", False):
        return

    def _replace_global_by_local(kwargs):
        collections = set(kwargs.get("collections") or [tf.GraphKeys.GLOBAL_VARIABLES])
        collections.discard(tf.GraphKeys.GLOBAL_VARIABLES)
        collections.add(tf.GraphKeys.LOCAL_VARIABLES)
        kwargs["collections"] = list(collections)

    _replace_global_by_local._e2net_patched = True
    gb_utils._replace_global_by_local = _replace_global_by_local


def _patch_tensorpack_distributed_replicated_build():
    """(iii) tensorpack 0.11's ``DistributedReplicatedBuilder.build`` averages the towers'
    gradients and then pairs the *unaveraged* per-tower lists with the variables
    (``zip(all_grads, ...)``), which fails with "Shapes must be equal rank" even with one
    tower.  Replacement: the same build with the averaged gradients paired with the
    variables of tower 0 (they are then mapped to the PS shadow variables as before)."""
    from tensorpack.graph_builder import distributed as gb_dist
    from tensorpack.graph_builder.training import DataParallelBuilder
    from tensorpack.graph_builder.utils import allreduce_grads_naive, override_to_local_variable, split_grad_list
    from tensorpack.tfutils.common import get_global_step_var
    from tensorpack.utils.argtools import memoized

    builder = gb_dist.DistributedReplicatedBuilder
    if getattr(builder.build, "_e2net_patched", False):
        return

    def build(self, get_grad_fn, get_opt_fn):
        """Returns (train_op, op syncing local variables from the PS, op syncing the chief's
        local MODEL_VARIABLES to the PS or None) — see tensorpack's original docstring."""
        with override_to_local_variable():
            get_global_step_var()
        get_opt_fn = memoized(get_opt_fn)
        get_opt_fn()  # the optimizer (learning_rate) first, outside the towers: a global variable

        grad_list = DataParallelBuilder.build_on_towers(
            self.towers, get_grad_fn, devices=self.raw_devices, use_vs=[True] * len(self.towers))
        DataParallelBuilder._check_grad_list(grad_list)

        all_grads, all_vars = split_grad_list(grad_list)
        averaged = allreduce_grads_naive(all_grads, devices=self.raw_devices)
        avg_grads = list(zip(averaged, all_vars[0]))  # the fix: averaged gradients, tower-0 variables
        with tf.device(self.param_server_device):
            ps_var_grads = builder._apply_shadow_vars(avg_grads)
            var_update_ops = self._apply_gradients_and_copy(get_opt_fn(), grad_list, ps_var_grads)
            self._shadow_vars = [v for _, v in ps_var_grads]
            self._shadow_model_vars = builder._shadow_model_variables(self._shadow_vars)

        main_fetch = tf.group(*var_update_ops, name="main_fetches")
        train_op = self._add_sync_queues_and_barrier("post_copy_barrier", [main_fetch])
        with tf.name_scope("initial_sync_variables"):
            initial_sync_op = self._get_initial_sync_op()
        model_sync_op = None
        if self._shadow_model_vars and self.is_chief:
            with tf.name_scope("sync_model_variables"):
                model_sync_op = self._get_sync_model_vars_op()
        return train_op, initial_sync_op, model_sync_op

    build._e2net_patched = True
    builder.build = build


def _patch_tensorpack_sync_barrier():
    """(v) tensorpack 0.11's ``DistributedBuilderBase._add_sync_queues_and_barrier`` attaches
    the control dependencies (the step's train op) only to the enqueue ops for the *other*
    workers.  With a single worker there are none, so the returned barrier (which is the
    trainer's ``train_op``) depends on nothing: training silently does nothing, and with
    several towers the StagingArea input is never refilled and the second step hangs.
    Replacement: the same barrier, plus a no-op carrying the dependencies (as in the
    tensorflow/benchmarks code it follows); it also records the queues it creates."""
    from tensorpack.graph_builder import distributed as gb_dist
    base = gb_dist.DistributedBuilderBase
    if getattr(base._add_sync_queues_and_barrier, "_e2net_patched", False):
        return

    def _add_sync_queues_and_barrier(self, name, dependencies):
        """An op that completes once every worker has finished ``dependencies`` for this step.
        The queues' (device, shared_name) go to ``self.sync_queue_names`` (so that a failing
        worker can close them and release the others)."""
        self._sync_queue_counter += 1
        device = self.sync_queue_devices[self._sync_queue_counter % len(self.sync_queue_devices)]
        names = [f"{name}{i}" for i in range(self.num_worker)]
        self.__dict__.setdefault("sync_queue_names", []).extend((device, n) for n in names)
        with tf.device(device):
            queues = [tf.FIFOQueue(self.num_worker, [tf.bool], shapes=[[]], shared_name=n) for n in names]
            token = tf.constant(False)
            with tf.control_dependencies(dependencies):
                ops = [tf.no_op()]  # the fix: the barrier depends on ``dependencies`` even alone
                ops += [q.enqueue(token) for i, q in enumerate(queues) if i != self.task_index]
            ops.append(queues[self.task_index].dequeue_many(len(queues) - 1))
            return tf.group(*ops, name=name)

    _add_sync_queues_and_barrier._e2net_patched = True
    base._add_sync_queues_and_barrier = _add_sync_queues_and_barrier


def patch_tensorpack_distributed():
    """All shims tensorpack 0.11's ``DistributedTrainerReplicated`` /
    ``DistributedTrainerParameterServer`` need on TensorFlow 2.x: (i) the TF1 namespace in
    their modules, (ii) nested ``override_to_local_variable``, (iii) the replicated builder's
    gradient pairing, (v) the step barrier of a single worker.  (iv), where the global step
    and the learning rate live, is handled by the trainer classes in ``utils.training.distributed``.
    Idempotent; called by ``utils.training.distributed``."""
    _use_tf1_in_tensorpack_modules(TENSORPACK_DISTRIBUTED_MODULES)
    _patch_tensorpack_replace_global_by_local()
    _patch_tensorpack_distributed_replicated_build()
    _patch_tensorpack_sync_barrier()


def patch_tensorpack_horovod():
    """tensorpack's ``HorovodTrainer`` (tensorpack/train/trainers.py) calls the TF1-only
    ``tf.global_variables`` through ``import tensorflow as tf``: give that module the TF1
    namespace.  Applied at import when the optional horovod package is installed (untested
    here: horovod is not installed in this environment).  Idempotent."""
    _use_tf1_in_tensorpack_modules(TENSORPACK_HOROVOD_MODULES)


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


def _horovod_installed():
    import importlib.util
    return importlib.util.find_spec("horovod") is not None


_patch_tensorpack_main_loop_logging()
if _horovod_installed():
    patch_tensorpack_horovod()
