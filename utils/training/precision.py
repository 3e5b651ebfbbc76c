"""``--precision fp32 | bf16 | fp16``: which of TensorFlow's mixed-precision graph rewrites a
session runs, and the loss scaling fp16 training needs.

Variables, checkpoints and exported SavedModels are float32 whatever the precision: the
rewrites are grappler passes (``RewriterConfig`` of the session's ``ConfigProto``) that
insert casts around the operations they convert when the session first runs the graph, so
the graph, its variables and everything saved from it stay float32.  A checkpoint trained in
bf16 therefore evaluates in fp32 and vice versa; precision is recorded per run (config.json)
and per evaluation (metrics.json), never inherited from a run.

============  ======  ==================================================================
precision     device  what the session does
============  ======  ==================================================================
``fp32``      any     nothing new (the released behaviour; no session config of its own)
``bf16``      CPU     ``auto_mixed_precision_onednn_bfloat16``: oneDNN bfloat16 kernels for
                      convolutions, matmuls and their neighbours; needs a CPU with native
                      bf16 (``avx512_bf16`` or ``amx_bf16`` in /proc/cpuinfo), else it is
                      refused unless ``--allow_slow_precision`` (emulated bf16 is slower)
``fp16``      GPU     ``auto_mixed_precision`` (float16 on NVIDIA GPUs) and dynamic loss
                      scaling (``tf.compat.v1.mixed_precision.MixedPrecisionLossScaleOptimizer``
                      around the run's optimizer: loss x scale, gradients / scale, a step with
                      a non-finite gradient skipped and the scale halved, the scale doubled
                      after 2000 finite steps)
============  ======  ==================================================================

Refused with one line: a reduced precision with ``E2NET_GRAPH_OPTIMIZER=off`` (the rewrites
are grappler passes: it would silently run fp32), ``fp16`` without a GPU (TensorFlow's fp16
rewrite converts GPU operations only), ``bf16`` on a GPU (TensorFlow's grappler has no GPU
bfloat16 mode: its bf16 rewrite converts CPU operations only) and a reduced precision with the
distributed trainers (their session config is tensorpack's own).  What ran on this machine
(a CPU, no GPU) and what did not: docs/precision.md.

``enable_mixed_precision_graph_rewrite`` (the other documented TF1 route) does both the
rewrite and the optimizer wrapping, but by switching the rewrite on process-wide; here the
rewrite is set in the session configs of this run's own sessions only and the optimizer is
wrapped explicitly (``loss_scaled``), which is the same pair of changes.
"""
from utils import compat  # noqa: F401  (first: TensorFlow set-up)

from tensorpack.callbacks import Callback
from tensorpack.tfutils.common import get_default_sess_config
from tensorpack.tfutils.sesscreate import NewSessionCreator
from tensorpack.utils import logger

from utils.compat import tf
from utils import cpu
from utils.flags import PRECISIONS
from utils.errors import UserError

# RewriterConfig field of each reduced precision, by device.
REWRITES = {("bf16", "cpu"): "auto_mixed_precision_onednn_bfloat16", ("fp16", "gpu"): "auto_mixed_precision"}
LOSS_SCALE = "dynamic"      # TensorFlow's DynamicLossScale: initial 2**15, x2 after 2000 finite steps, /2 on overflow
LOSS_SCALE_FLOOR = 1.0      # DynamicLossScale never lowers the scale below 1


class PrecisionError(UserError, ValueError):
    """A precision this run cannot use (one line saying why and what to do)."""


def graph_optimizer_on():
    """Whether tensorpack's sessions run grappler (``E2NET_GRAPH_OPTIMIZER``, utils.compat)."""
    return not get_default_sess_config().graph_options.rewrite_options.disable_meta_optimizer


def running_on_gpu():
    """Whether this process's graphs run on a GPU (TensorFlow sees one after ``--gpu``)."""
    return compat.gpu_available()


def check_run(args, gpu=None):
    """``check`` for a resolved run configuration (``args.precision``, ``args.allow_slow_precision``,
    ``args.trainer``); prints the line describing a reduced precision.  ``gpu``: default ``running_on_gpu()``."""
    note = check(args.precision, running_on_gpu() if gpu is None else gpu, args.allow_slow_precision, args.trainer)
    if note:
        logger.info(note)


def check(precision, on_gpu, allow_slow=False, trainer="replicated", cpu_flags=None):
    """Refuse a precision this run cannot use (PrecisionError); returns one line describing the
    precision the run will use (printed by the entry points), or None for fp32.

    ``cpu_flags``: the native-bf16 flags of the CPU (default: read from /proc/cpuinfo)."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return None
    device = "gpu" if on_gpu else "cpu"
    if (precision, device) not in REWRITES:
        if precision == "fp16":
            raise PrecisionError("--precision fp16 is TensorFlow's GPU mixed-precision rewrite and this run has no "
                                 "GPU; on a CPU use --precision bf16 (or fp32)")
        raise PrecisionError("--precision bf16 on a GPU: TensorFlow's graph rewrite has no GPU bfloat16 mode (its "
                             "bf16 rewrite converts CPU operations only); use --precision fp16 on a GPU (or fp32)")
    if not graph_optimizer_on():
        raise PrecisionError(f"--precision {precision} is a graph optimizer (grappler) rewrite, which "
                             f"{compat.GRAPH_OPTIMIZER_ENV}=off turns off; unset {compat.GRAPH_OPTIMIZER_ENV} "
                             f"or use --precision fp32")
    if trainer.startswith("distributed"):
        raise PrecisionError(f"--precision {precision} is not available with --trainer {trainer} (tensorpack's "
                             f"distributed trainers use their own session config); use --precision fp32")
    rewrite = REWRITES[(precision, device)]
    if precision == "fp16":
        return f"precision fp16: {rewrite} on the GPU with dynamic loss scaling; variables stay float32"
    flags = cpu.cpu_bf16_flags() if cpu_flags is None else tuple(cpu_flags)
    if not flags:
        note = (f"this CPU has no native bf16 ({' or '.join(cpu.NATIVE_BF16_FLAGS)} not in {cpu.CPUINFO}): "
                f"--precision bf16 would be emulated and slower than fp32")
        if not allow_slow:
            raise PrecisionError(f"{note}; use --precision fp32, or add --allow_slow_precision to run it anyway")
        return f"precision bf16: {rewrite}, although {note} (--allow_slow_precision); variables stay float32"
    return f"precision bf16: {rewrite} on a CPU with {' and '.join(flags)}; variables stay float32"


def rewrite_name(precision, on_gpu):
    """The RewriterConfig field a precision turns on (None for fp32)."""
    if precision == "fp32":
        return None
    return REWRITES[(precision, "gpu" if on_gpu else "cpu")]


def with_rewrite(config, precision, on_gpu):
    """``config`` (a ConfigProto, changed in place and returned) with the precision's rewrite ON."""
    name = rewrite_name(precision, on_gpu)
    if name is not None:
        options = config.graph_options.rewrite_options
        if options.disable_meta_optimizer:
            raise PrecisionError(f"--precision {precision}: this session config turns the graph optimizer off")
        setattr(options, name, options.ON)
    return config


def session_creator(precision, on_gpu):
    """The session creator of a run's tensorpack trainer or predictor: None for fp32 (tensorpack's
    default, unchanged), else a ``NewSessionCreator`` with tensorpack's default config plus the rewrite."""
    if precision == "fp32":
        return None
    return NewSessionCreator(config=with_rewrite(get_default_sess_config(), precision, on_gpu))


def for_training(model, precision):
    """The run's ModelDesc with its optimizer wrapped by ``loss_scaled`` (fp16; unchanged otherwise)."""
    if precision == "fp16":
        optimizer = model.optimizer
        model.optimizer = lambda: loss_scaled(optimizer(), precision)
    return model


def callbacks(precision):
    """The callbacks a precision adds to training: the loss-scale log of fp16."""
    return [LogLossScale()] if precision == "fp16" else []


def loss_scaled(optimizer, precision):
    """The run's optimizer, wrapped in dynamic loss scaling for fp16 (unchanged otherwise).

    The wrapper is the outermost optimizer: the gradients the run's own processors (released
    x0.1 scaling, clipping) see are unscaled, and a step with a non-finite gradient is skipped
    before they run."""
    if precision != "fp16":
        return optimizer
    return tf.mixed_precision.MixedPrecisionLossScaleOptimizer(optimizer, LOSS_SCALE)


def record(precision, on_gpu):
    """The precision of a run or an evaluation as recorded in metrics.json."""
    return {"precision": precision, "rewrite": rewrite_name(precision, on_gpu),
            "device": "gpu" if on_gpu else "cpu", "variables": "float32",
            "loss_scale": LOSS_SCALE if precision == "fp16" else None}


def loss_scale_variables(graph=None):
    """``(current loss scale, good steps)`` variables of the graph's DynamicLossScale, or None."""
    graph = graph or tf.get_default_graph()
    found = {}
    for variable in graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES):
        leaf = variable.op.name.rsplit("/", 1)[-1]
        if leaf in ("current_loss_scale", "good_steps"):
            found.setdefault(leaf, variable)
    if len(found) < 2:
        return None
    return found["current_loss_scale"], found["good_steps"]


class LossScaleCounter:
    """Counts fp16 loss-scale events from the (scale, good steps) state after each step.

    overflow   a step whose gradients were not finite: its update was skipped, good steps
               reset to 0 (and the scale halved, unless already at its floor);
    underflow  an overflow step with the scale already at its floor (1): the scale cannot go
               lower -- the gradients overflow even unscaled (a loss-scale underflow);
    increases  the scale doubled after 2000 finite steps."""

    def __init__(self, scale, good_steps=0):
        self.scale, self.good_steps = float(scale), int(good_steps)
        self.overflow = self.underflow = self.increases = 0

    def after_step(self, scale, good_steps):
        scale, good_steps = float(scale), int(good_steps)
        if scale > self.scale:
            self.increases += 1
        elif good_steps == 0:
            self.overflow += 1
            self.underflow += self.scale <= LOSS_SCALE_FLOOR
        self.scale, self.good_steps = scale, good_steps

    def summary(self):
        return (f"fp16 loss scale {self.scale:g}: {self.overflow} overflow steps skipped "
                f"({self.underflow} at the scale's floor, underflow), {self.increases} increases")


class LogLossScale(Callback):
    """fp16 runs: reads the loss scale after every step, counts overflow / underflow steps
    (``LossScaleCounter``) and logs the counts at every epoch end and at the end of training."""

    def _setup_graph(self):
        self._variables = loss_scale_variables()
        self.counter = None

    def _before_train(self):
        if self._variables is not None:
            self.counter = LossScaleCounter(*self.trainer.sess.run(self._variables))

    def _trigger_step(self):
        if self.counter is not None:
            self.counter.after_step(*self.trainer.sess.run(self._variables))

    def _trigger_epoch(self):
        if self.counter is not None:
            logger.info(self.counter.summary())
            self.trainer.monitors.put_scalar("loss_scale", self.counter.scale)
            self.trainer.monitors.put_scalar("loss_scale_overflow_steps", self.counter.overflow)

    def _after_train(self):
        if self.counter is not None:
            logger.info(self.counter.summary())

