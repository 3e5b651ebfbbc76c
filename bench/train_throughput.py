"""Training throughput through the project's real training path, against a bare session
loop on the same graph, and against the machine's matmul ceiling.

    python bench/train_throughput.py [--quick] [--gpus N] [--precision P] [--out FILE]
                                     [--warmup W] [--window K] [--windows R]

For each configuration {VGG16-GAP, ResNet50-SE} x {CAM, E2Net} at 224 px (full width,
batch 8 on CPU) and at the demo's size (96 px, width multiplier 0.25, batch 32):

project   tensorpack ``launch_train_with_config`` with the project's ``WSOLModel``, the
          trainer ``utils.training.trainers.make_trainer`` picks (``SimpleTrainer`` for one device,
          ``SyncMultiGPUTrainerReplicated(N)`` for ``--gpus N`` > 1), ``QueueInput`` over
          ``utils.data.dataflow.get_train_dataflow`` on synthetic JPEGs (``utils.data.synthetic``) with
          the default number of decoding processes (one per core), tensorpack's default
          callbacks and session config, plus the project's per-step loss check
          (``StopOnNonFiniteLoss``, same fetch, here counting instead of stopping).  A timing
          callback records the wall clock after every step.
bare      the same graph (``WSOLModel.build_graph`` + ``WSOLModel.optimizer()``, gradients
          computed as tensorpack's trainers compute them, BN update ops grouped in, cost
          fetched every step) built on one constant in-memory batch (a non-trainable
          variable, so nothing is folded away) and driven by a plain ``tf.compat.v1.Session``
          loop with TF's default session config.  With ``--gpus N`` > 1 it is one tower at
          the per-tower batch, and its rate is multiplied by N (ideal linear scaling).
          Both paths use the data set's presets (``utils.config``: CUB at 224, SYNTH at 96)
          with a learning rate of 1e-4 (speed does not depend on it; it keeps the loss of
          these from-scratch runs finite).
FLOPs     TF profiler (``ProfileOptionBuilder.float_operation``) on the forward training
          graph (``is_training=True``, loss included) with a fixed batch of 1.  The training
          step is reported as 3 x forward (``gflops_per_image_train``, used for the achieved
          rate); the profiled forward+backward graph is given too
          (``gflops_per_image_train_profiled``; it lacks the input gradient of the first
          convolution, so it is a bit under 3x).
ceiling   median GFLOP/s of a 2048 x 2048 float32 ``tf.matmul`` (variables, TF default
          session config), over repeats taken before and after the configurations.
CPU use   for the timed windows of each path: CPU time of the training process's threads
          and busy time of the whole machine (/proc/stat) per wall second, to show how much
          of the machine the run actually had (other processes share it).

Precision (``--precision bf16`` / ``fp16``, default fp32): the project path trains at that
precision (``utils.training.precision``: the run's session config gets the grappler rewrite,
fp16 wraps the optimizer in dynamic loss scaling), and so does the bare loop (TF's default
config plus the same rewrite); a second bare loop on the same graph in fp32 runs a window after
each of them.  ``ratio_precision_to_fp32_bare_paired`` (median over windows of bare window i /
bare fp32 window i) is the speed-up of the precision itself; ``ratio_project_to_bare`` stays at
the run's precision, and ``ratio_project_to_fp32_bare_paired`` is what the project path at that
precision gives against a bare fp32 loop.  The machine's load average is printed and recorded
per configuration (``loadavg``).

Timing: both paths live in one process.  The bare loop takes ``W`` warm-up steps, then
the project trainer starts: ``W`` warm-up steps, then ``R`` windows of ``K`` steps, and
after each project window (once the input queue has refilled, so that decoding is not
charged to the bare loop) one bare window of ``K`` steps.  Interleaving exposes both paths
to the same load from other processes.  A window's rate is ``K * batch / (its wall time)``;
a path's rate is the median over its windows.  Every configuration runs in its own Python
process (fresh TensorFlow runtime; its decoding processes end with it).

On a machine with a GPU the graphs use NCHW and ``--gpus N`` sets the towers; on CPU the
graphs use NHWC and ``--gpus`` defaults to 0 (one CPU tower; ``--gpus N`` still builds N
towers, which TensorFlow's soft placement puts on the CPU).

JSON (``--out``): top level ``matmul_gflops_ceiling``, ``matmul_gflops_samples``,
``matmul_gflops_per_cpu_second`` (matmul FLOPs per CPU second of the process: the rate per
fully used core), ``matmul_gflops_ceiling_idle_estimate`` (that x cpu_count: the ceiling of
the machine with no other process running),
``machine`` (``cpu_count``, ``platform``, ``processor``, ``python``, ``tensorflow``,
``gpus_visible``, ``loadavg_start``, ``loadavg_end``), ``gpus``, ``quick``, ``timing``
(``warmup``, ``window``, ``windows`` per setting), ``configs``: a list of per-configuration
records with ``arch``, ``method``, ``image_size``, ``width_multiplier``, ``batch``
(total), ``towers``, ``data_format``, ``num_classes``, ``images_per_s_project``,
``images_per_s_bare``, ``ratio_project_to_bare``, ``gflops_per_image_forward``,
``gflops_per_image_train`` (3 x forward), ``gflops_per_image_train_profiled``,
``achieved_gflops`` (project rate x train GFLOPs), ``fraction_of_ceiling``,
``fraction_of_ceiling_per_core`` (achieved GFLOP per CPU second of the training process /
``matmul_gflops_per_cpu_second``),
``ratio_project_to_bare_paired`` (median over windows of project window i / bare window i,
which run one after the other), ``samples_project`` / ``samples_bare`` (images/s of every window),
``warmup_step_s_project`` / ``warmup_step_s_bare`` (s), ``nonfinite_steps_project`` /
``nonfinite_steps_bare`` (steps whose loss was NaN/inf; counted, not fatal),
``queued_batches_at_window_end`` (QueueInput fill, capacity 50), ``process_cores_project`` /
``process_cores_bare`` and ``machine_busy_cores_project`` / ``machine_busy_cores_bare``
(CPU use, see above), ``base_lr``, ``pretrained_grad_scale``, ``ose_heads``, ``positions``,
``setting``, ``decode_workers``, ``source_image_size`` and ``wall_s`` (the configuration's
total wall time, graph building and data generation included).
"""
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)  # run as a plain script: make ``utils`` and ``models`` importable

from utils import compat  # noqa: E402  (first: TF1 graph mode, legacy Keras, tensorpack shims)
from utils.compat import tf  # noqa: E402
from utils.flags import PRECISIONS  # noqa: E402

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from tabulate import tabulate  # noqa: E402
from utils.atomic import write_json  # noqa: E402

ARCH_NAMES = {"vgg_gap": "VGG16-GAP", "resnet": "ResNet50-SE"}
ARCHS = ("vgg_gap", "resnet")
METHODS = ("CAM", "E2Net")
SYNTH_CLASSES = 10          # classes of the generated JPEG set
MATMUL_SIZE = 2048
TRAIN_TO_FORWARD = 3.0      # a training step ~ forward + 2x forward for the backward pass
RATIO_TARGET = 0.95
# Learning rate of both paths.  Speed does not depend on it.  From scratch (no pretrained
# weights here), 0.01 and even 0.001 can reach a NaN loss within tens of steps on CPU (seen
# only with tensorpack's ungated gradients on TF1 reference variables; see bench/README.md);
# non-finite steps are counted in the JSON either way.
BENCH_LR = 1e-4

# Settings: input size, channel scaling, total batch, data set whose presets apply (classes,
# positions, heads, weight decay), side of the generated JPEGs, how many are generated, and
# the timing (warm-up steps, steps per window, windows).
SETTINGS = {
    "full224": dict(image_size=224, width_multiplier=1.0, batch=8, dataset="CUB", source_size=400,
                    num_images=48, warmup=2, window=1, windows=6),
    "demo96": dict(image_size=96, width_multiplier=0.25, batch=32, dataset="SYNTH", source_size=128,
                   num_images=256, warmup=5, window=5, windows=12),
    "quick": dict(image_size=32, width_multiplier=0.125, batch=4, dataset="SYNTH", source_size=48,
                  num_images=16, warmup=2, window=1, windows=3),
}
DEFAULT_RUN = [(setting, arch, method) for setting in ("full224", "demo96")
               for arch in ARCHS for method in METHODS]
QUICK_RUN = [("quick", "vgg_gap", "E2Net")]
CHILD_TIMEOUT_S = 1800
REFILL_WAIT_S = 2.0         # longest wait for the input queue to refill before a bare window


# --------------------------------------------------------------------------- CPU accounting

def cpu_snapshot():
    """(wall s, CPU s of this process's threads, busy CPU s of the whole machine or nan).

    Machine busy time comes from /proc/stat (user + nice + system + irq + softirq), so
    comparing it with this process's share shows how much other processes were running."""
    busy = float("nan")
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        busy = (sum(fields[0:3]) + fields[5] + fields[6]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    return time.perf_counter(), time.process_time(), busy


class CpuMeter:
    """Sums wall, own CPU and machine busy time over measured intervals."""

    def __init__(self):
        self.wall = self.own = self.busy = 0.0

    def add(self, start, end):
        self.wall += end[0] - start[0]
        self.own += end[1] - start[1]
        self.busy += end[2] - start[2]

    def cores(self):
        """(cores used by this process, cores busy on the machine) on average."""
        if self.wall <= 0:
            return float("nan"), float("nan")
        return self.own / self.wall, self.busy / self.wall


# --------------------------------------------------------------------------- machine ceiling

def matmul_ceiling(repeats, size=MATMUL_SIZE):
    """(GFLOP/s samples, GFLOP per CPU second of this process samples) of a size x size
    float32 matmul between two variables."""
    graph = tf.Graph()
    with graph.as_default():
        a = tf.Variable(tf.random.normal([size, size], seed=1))
        b = tf.Variable(tf.random.normal([size, size], seed=2))
        product = tf.matmul(a, b)
        init = tf.global_variables_initializer()
    with tf.Session(graph=graph) as sess:
        sess.run(init)
        for _ in range(3):
            sess.run(product.op)
        samples, per_cpu_second = [], []
        for _ in range(repeats):
            start_cpu, start = time.process_time(), time.perf_counter()
            sess.run(product.op)
            wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
            samples.append(2.0 * size ** 3 / wall / 1e9)
            per_cpu_second.append(2.0 * size ** 3 / max(cpu, 1e-6) / 1e9)
    return samples, per_cpu_second


def machine_info():
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(),
            "processor": _cpu_model() or platform.processor(), "python": platform.python_version(),
            "tensorflow": tf.__version__ if hasattr(tf, "__version__") else compat._tf_root.__version__,
            "gpus_visible": compat.gpu_available()}


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------- one configuration (child)

def run_args(job):
    """The resolved train.py configuration of a job (presets of its data set)."""
    from utils.config import parse_args
    setting = SETTINGS[job["setting"]]
    argv = ["--dataset_name", setting["dataset"], "--arch_name", job["arch"], "--method_name", job["method"],
            "--final_size", str(setting["image_size"]), "--width_multiplier", str(setting["width_multiplier"]),
            "--batch_size", str(setting["batch"]), "--data_format", job["data_format"],
            "--base_lr", str(BENCH_LR), "--log_dir", os.path.join(tempfile.gettempdir(), "train_throughput_unused"),
            "--precision", job["precision"]]
    if job["towers"] > 1:
        argv += ["--gpu", ",".join(str(i) for i in range(job["towers"]))]
    if job["workers"] is not None:
        argv += ["--workers", str(job["workers"])]
    if setting["dataset"] == "CUB":
        argv.append("--use_pretrained_model")  # the published recipe's gradient scaling (no weights loaded)
    return parse_args(argv, class_list_size=SYNTH_CLASSES, gpu_present=job["data_format"] == "NCHW")


def window_rates(durations, batch, warmup, window, windows):
    """images/s of each timed window of ``window`` steps after ``warmup`` steps."""
    rates = []
    for i in range(windows):
        chunk = durations[warmup + i * window: warmup + (i + 1) * window]
        rates.append(batch * len(chunk) / sum(chunk))
    return rates


def profile_gflops(spec):
    """(forward, profiled forward+backward) GFLOPs per image: TF profiler, batch 1."""
    from tensorpack.tfutils.tower import TowerContext
    from models.wsol_model import WSOLModel

    options = (tf.profiler.ProfileOptionBuilder(tf.profiler.ProfileOptionBuilder.float_operation())
               .with_empty_output().build())
    graph = tf.Graph()
    with graph.as_default():
        model = WSOLModel(spec.with_(data_format="NHWC"))
        inputs = [tf.placeholder(s.dtype, [1] + s.shape.as_list()[1:], s.name) for s in model.inputs()]
        with TowerContext("", is_training=True):
            cost = model.build_graph(*inputs)
            forward = tf.profiler.profile(graph, options=options).total_float_ops
            model.optimizer().compute_gradients(cost, gate_gradients=False, colocate_gradients_with_ops=True)
            train = tf.profiler.profile(graph, options=options).total_float_ops
    return forward / 1e9, train / 1e9


class BareLoop:
    """The same graph on one constant in-memory batch, driven by a plain Session loop.

    The batch is held in a non-trainable variable (a constant could be folded away by
    Grappler together with the preprocessing); gradients are computed as tensorpack's
    trainers compute them (``gate_gradients=False``, colocated), BN update ops are grouped
    into the step as ``RunUpdateOps`` does, and the cost is fetched every step as the
    project's ``StopOnNonFiniteLoss`` does.  TF's default session config (plus soft placement).
    """

    def __init__(self, spec, batch_arrays, device, precision_name="fp32"):
        from tensorpack.tfutils.tower import TowerContext
        from models.wsol_model import WSOLModel
        from utils.training import precision

        graph = tf.Graph()
        with graph.as_default(), tf.device(device):
            model = WSOLModel(spec)
            held = [tf.Variable(array, trainable=False, collections=[], name=f"bench_{name}")
                    for array, name in zip(batch_arrays, ("input", "label", "bbox"))]
            with TowerContext("", is_training=True):
                self.cost = model.build_graph(*held)
                opt = precision.loss_scaled(model.optimizer(), precision_name)
                grads = opt.compute_gradients(self.cost, gate_gradients=False, colocate_gradients_with_ops=True)
                train_op = opt.apply_gradients([(g, v) for g, v in grads if g is not None])
            self.step = tf.group(train_op, *tf.get_collection(tf.GraphKeys.UPDATE_OPS))
            init = [tf.global_variables_initializer(), tf.local_variables_initializer()]
            init += [v.initializer for v in held]
        config = precision.with_rewrite(tf.ConfigProto(allow_soft_placement=True), precision_name, device != "/cpu:0")
        self.sess = tf.Session(graph=graph, config=config)
        self.sess.run(init)
        self.nonfinite_steps = 0
        self.meter = CpuMeter()

    def run(self, steps, meter=None):
        """Wall time of each of ``steps`` steps (CPU use added to ``meter`` if given)."""
        durations = []
        window_start = cpu_snapshot()
        for _ in range(steps):
            start = time.perf_counter()
            cost, _ = self.sess.run([self.cost, self.step])
            durations.append(time.perf_counter() - start)
            self.nonfinite_steps += not math.isfinite(float(cost))
        if meter is not None:
            meter.add(window_start, cpu_snapshot())
        return durations

    def close(self):
        self.sess.close()


def project_run(args, spec, label_file, image_root, towers, bare, warmup, window, windows, bare_fp32=None):
    """Train through the project's path; a callback times every step and, after each
    timed window, runs one window of the bare loop (so both see the same machine load).

    Returns (the timer callback: ``project`` / ``bare`` step durations, ``queued`` batches
    at each window end, ``project_meter`` / ``bare_meter`` CPU use of the timed windows;
    the number of non-finite project steps)."""
    from tensorpack import QueueInput, TrainConfig, launch_train_with_config
    from tensorpack.callbacks import Callback
    from models.wsol_model import WSOLModel
    from utils.data.dataflow import get_train_dataflow
    from utils.training.trainers import make_trainer
    from utils.training import precision
    from utils.training.loop import StopOnNonFiniteLoss

    class CountNonFiniteLoss(StopOnNonFiniteLoss):
        """The project's per-step loss check (same fetch), counting instead of stopping."""
        count = 0

        def _after_run(self, _, run_values):
            CountNonFiniteLoss.count += not np.isfinite(run_values.results[0])

    class InterleavedTimer(Callback):
        """Wall clock after every step; a bare window after every project window."""

        def __init__(self):
            self.project, self.bare, self.bare_fp32, self.queued = [], [], [], []
            self.project_meter, self.bare_meter = CpuMeter(), CpuMeter()

        def _setup_graph(self):
            self._queue_size = queue_input.queue.size()

        def _before_train(self):
            self._mark = time.perf_counter()
            self._window_start = cpu_snapshot()

        def _refilled_queue(self):
            """Queued batches at the end of a window, after waiting (up to REFILL_WAIT_S) for
            the decoders to refill the queue, so that their work is not done during the
            bare window."""
            deadline = time.perf_counter() + REFILL_WAIT_S
            queued = int(self.trainer.sess.run(self._queue_size))
            while queued < queue_capacity and time.perf_counter() < deadline:
                time.sleep(0.02)
                queued = int(self.trainer.sess.run(self._queue_size))
            time.sleep(0.05)
            return queued

        def _trigger_step(self):
            self.project.append(time.perf_counter() - self._mark)
            done = len(self.project) - warmup
            if 0 < done <= window * windows and done % window == 0:
                self.project_meter.add(self._window_start, cpu_snapshot())
                self.queued.append(self._refilled_queue())
                self.bare.extend(bare.run(window, self.bare_meter))
                if bare_fp32 is not None:
                    self.bare_fp32.extend(bare_fp32.run(window))
            self._mark = time.perf_counter()
            if done >= 0 and done % window == 0:
                self._window_start = cpu_snapshot()

    queue_capacity = 50  # QueueInput's default queue_size (batches)
    queue_input = QueueInput(get_train_dataflow(label_file, image_root, args.final_size, args.batch_size // towers,
                                                workers=args.workers, on_bad_image="error", seed=0))
    timer = InterleavedTimer()
    config = TrainConfig(model=precision.for_training(WSOLModel(spec), args.precision), data=queue_input,
                         callbacks=[CountNonFiniteLoss(), timer] + precision.callbacks(args.precision),
                         session_creator=precision.session_creator(args.precision, spec.data_format == "NCHW"),
                         # + 1 untimed step: tensorpack evaluates all summaries in an epoch's
                         # last step (MergeAllSummaries), once per epoch in real training
                         steps_per_epoch=warmup + window * windows + 1, max_epoch=1)
    with tf.Graph().as_default():
        launch_train_with_config(config, make_trainer(args, towers))
    return timer, CountNonFiniteLoss.count


def first_batch(label_file, image_root, final_size, batch):
    """One real batch from the training dataflow (in-process), as numpy arrays."""
    from utils.data.dataflow import get_train_dataflow
    dataflow = get_train_dataflow(label_file, image_root, final_size, batch, workers=0, seed=1)
    dataflow.reset_state()
    images, labels, boxes = next(iter(dataflow))
    return [np.asarray(images, np.uint8), np.asarray(labels, np.int32), np.asarray(boxes, np.float32)]


def run_child(job):
    """Measure one configuration; returns its record (without the ceiling-derived keys)."""
    from utils.config import model_spec
    from utils.data.dataflow import resolve_workers
    from utils.data.synthetic import generate_synthetic

    started = time.perf_counter()
    setting = SETTINGS[job["setting"]]
    args = run_args(job)
    spec = model_spec(args)
    towers = job["towers"]
    warmup, window, windows = job["warmup"], job["window"], job["windows"]
    per_tower = args.batch_size // towers

    forward, train_profiled = profile_gflops(spec)
    with tempfile.TemporaryDirectory(prefix="train_throughput_") as data_dir:
        generate_synthetic(data_dir, num_classes=SYNTH_CLASSES, num_train=setting["num_images"], num_val=0,
                           size=setting["source_size"], seed=0)
        label_file, image_root = os.path.join(data_dir, "train.txt"), os.path.join(data_dir, "images")
        batch_arrays = first_batch(label_file, image_root, args.final_size, per_tower)
        device = "/gpu:0" if job["data_format"] == "NCHW" else "/cpu:0"
        bare = BareLoop(spec, batch_arrays, device, args.precision)
        bare_fp32 = BareLoop(spec, batch_arrays, device) if args.precision != "fp32" else None
        bare_warmup = bare.run(warmup)
        if bare_fp32 is not None:
            bare_fp32.run(warmup)
        timer, project_nonfinite = project_run(
            args, spec, label_file, image_root, towers, bare, warmup, window, windows, bare_fp32)
        bare.close()
        if bare_fp32 is not None:
            bare_fp32.close()
    project = timer.project
    samples_bare = [rate * towers for rate in window_rates(timer.bare, per_tower, 0, window, windows)]
    samples_project = window_rates(project, args.batch_size, warmup, window, windows)
    own_project, busy_project = timer.project_meter.cores()
    own_bare, busy_bare = timer.bare_meter.cores()
    precision_record = {"precision": args.precision}
    if bare_fp32 is not None:
        samples_fp32 = [rate * towers for rate in window_rates(timer.bare_fp32, per_tower, 0, window, windows)]
        precision_record.update(
            images_per_s_bare_fp32=statistics.median(samples_fp32), samples_bare_fp32=samples_fp32,
            ratio_precision_to_fp32_bare_paired=statistics.median(b / f for b, f in zip(samples_bare, samples_fp32)),
            ratio_project_to_fp32_bare_paired=statistics.median(p / f for p, f in zip(samples_project, samples_fp32)),
            nonfinite_steps_bare_fp32=bare_fp32.nonfinite_steps)
    return {**precision_record, "loadavg": os.getloadavg(),
        "arch": job["arch"], "method": job["method"], "setting": job["setting"],
        "image_size": args.final_size, "width_multiplier": args.width_multiplier,
        "batch": args.batch_size, "towers": towers, "data_format": spec.data_format,
        "num_classes": spec.num_classes, "ose_heads": list(spec.ose_heads), "positions": list(spec.positions),
        "images_per_s_project": statistics.median(samples_project),
        "images_per_s_bare": statistics.median(samples_bare),
        "samples_project": samples_project, "samples_bare": samples_bare,
        "warmup_step_s_project": project[:warmup], "warmup_step_s_bare": bare_warmup,
        "nonfinite_steps_project": project_nonfinite, "nonfinite_steps_bare": bare.nonfinite_steps,
        "queued_batches_at_window_end": timer.queued,
        "process_cores_project": own_project, "process_cores_bare": own_bare,
        "machine_busy_cores_project": busy_project, "machine_busy_cores_bare": busy_bare,
        "gflops_per_image_forward": forward,
        "gflops_per_image_train": TRAIN_TO_FORWARD * forward,
        "gflops_per_image_train_profiled": train_profiled,
        "base_lr": spec.base_lr, "pretrained_grad_scale": spec.pretrained_grad_scale,
        "decode_workers": resolve_workers(args.workers),
        "source_image_size": setting["source_size"],
        "wall_s": time.perf_counter() - started,
    }


def launch_child(job):
    """Run one configuration in a fresh Python process; returns its record."""
    with tempfile.TemporaryDirectory(prefix="train_throughput_") as folder:
        result = os.path.join(folder, "result.json")   # the child writes it whole (temporary name, rename)
        command = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(job), "--child_result", result]
        done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
            raise RuntimeError(f"configuration {job} failed (exit {done.returncode}):\n{tail}")
        with open(result) as f:
            return json.load(f)


# --------------------------------------------------------------------------- report

def finish_record(record, ceiling, per_core_ceiling=None):
    record["ratio_project_to_bare"] = record["images_per_s_project"] / record["images_per_s_bare"]
    # Windows i of both paths are adjacent in time: their ratio is less exposed to load drift.
    record["ratio_project_to_bare_paired"] = statistics.median(
        p / b for p, b in zip(record["samples_project"], record["samples_bare"]))
    record["achieved_gflops"] = record["images_per_s_project"] * record["gflops_per_image_train"]
    record["fraction_of_ceiling"] = record["achieved_gflops"] / ceiling
    if per_core_ceiling:
        # GFLOP per CPU second of the training process vs the matmul's: independent of how
        # many cores other processes left to the run
        record["fraction_of_ceiling_per_core"] = (
            record["achieved_gflops"] / record["process_cores_project"] / per_core_ceiling)
    return record


def print_table(records, ceiling, per_core_ceiling):
    rows = [[ARCH_NAMES[r["arch"]], r["method"], r["image_size"], r["width_multiplier"], r["batch"],
             r["images_per_s_project"], r["images_per_s_bare"], r["ratio_project_to_bare"],
             r["ratio_project_to_bare_paired"],
             r["gflops_per_image_forward"], r["gflops_per_image_train"], r["achieved_gflops"],
             100.0 * r["fraction_of_ceiling"], 100.0 * r.get("fraction_of_ceiling_per_core", float("nan")),
             r["process_cores_project"],
             r["machine_busy_cores_project"]] for r in records]
    print(tabulate(rows, ["backbone", "method", "size", "width", "batch", "img/s project", "img/s bare",
                          "project/bare", "paired", "GFLOP/img fwd", "GFLOP/img train (3x)", "GFLOP/s achieved",
                          "% of ceiling", "% per core", "cores used", "cores busy (machine)"],
                   tablefmt="github", floatfmt=("", "", "", ".3g", "", ".2f", ".2f", ".3f", ".3f", ".3g", ".3g",
                                                ".1f", ".1f", ".1f", ".2f", ".2f")))
    print("cores used: CPU time of the training process's threads per wall second (project windows); "
          "cores busy: the whole machine's (/proc/stat), decoders and other processes included; "
          "% per core: achieved GFLOP per CPU second of the training process / the matmul's")
    print(f"matmul ceiling ({MATMUL_SIZE}^2 fp32, median): {ceiling:.1f} GFLOP/s "
          f"(per CPU second: {per_core_ceiling:.1f}); "
          f"training FLOPs per image = {TRAIN_TO_FORWARD:g} x profiled forward (batch 1)")
    below = [r for r in records if r["ratio_project_to_bare"] < RATIO_TARGET]
    if below:
        names = ", ".join(f"{ARCH_NAMES[r['arch']]} {r['method']} {r['image_size']}px" for r in below)
        print(f"project/bare below the {RATIO_TARGET} target: {names}")
    else:
        print(f"project/bare >= {RATIO_TARGET} for every configuration")


def print_precision_table(records, name):
    """bf16 (or fp16) against fp32: the bare loops' paired ratio, project/bare at the precision,
    the project path at the precision against the bare fp32 loop, and the load during the run."""
    rows = [[ARCH_NAMES[r["arch"]], r["method"], r["image_size"], r["width_multiplier"], r["batch"],
             r["images_per_s_bare_fp32"], r["images_per_s_bare"], r["images_per_s_project"],
             r["ratio_precision_to_fp32_bare_paired"], r["ratio_project_to_bare"],
             r["ratio_project_to_fp32_bare_paired"], r["loadavg"][0], r["machine_busy_cores_project"]]
            for r in records]
    print(tabulate(rows, ["backbone", "method", "size", "width", "batch", "img/s bare fp32", f"img/s bare {name}",
                          f"img/s project {name}", f"{name}/fp32 (bare, paired)", f"project/bare ({name})",
                          f"project {name} / bare fp32 (paired)", "load (1 min)", "cores busy (machine)"],
                   tablefmt="github", floatfmt=("", "", "", ".3g", "", ".2f", ".2f", ".2f", ".3f", ".3f", ".3f",
                                                ".2f", ".2f")))


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny run for the tests: 32 px, width 0.125, batch 4, 3 timed steps, VGG16-GAP E2Net only")
    parser.add_argument("--gpus", type=int, default=None,
                        help="towers (default: 1 when a GPU is visible, else 0 = one CPU tower)")
    parser.add_argument("--data_format", default=None, choices=("NHWC", "NCHW"),
                        help="default: NCHW when a GPU is visible, NHWC on CPU")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: all cores)")
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=None,
                        help="restrict to these settings (default: full224 demo96; --quick: quick)")
    parser.add_argument("--archs", nargs="+", choices=ARCHS, default=None, help="restrict to these backbones")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=None, help="restrict to these methods")
    parser.add_argument("--warmup", type=int, default=None, help="override the warm-up steps of every setting")
    parser.add_argument("--window", type=int, default=None, help="override the steps per timing window")
    parser.add_argument("--windows", type=int, default=None, help="override the number of timing windows")
    parser.add_argument("--matmul_repeats", type=int, default=None, help="matmul repeats (default 15; quick 5)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="train at this precision (utils.training.precision); a reduced one is also timed "
                             "against a bare fp32 loop in alternating windows")
    parser.add_argument("--allow_slow_precision", action="store_true",
                        help="--precision bf16 on a CPU without native bf16")
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "bench", "results", "train_throughput.json"))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child_result", default=None, help=argparse.SUPPRESS)
    return parser


def plan(args):
    """The (setting, arch, method) list to run."""
    if args.settings is None and args.archs is None and args.methods is None:
        return QUICK_RUN if args.quick else DEFAULT_RUN
    settings = args.settings or (["quick"] if args.quick else ["full224", "demo96"])
    return [(s, a, m) for s in settings for a in (args.archs or ARCHS) for m in (args.methods or METHODS)]


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.child:
        record = run_child(json.loads(args.child))
        write_json(args.child_result, record)
        return 0

    gpu = compat.gpu_available()
    gpus = args.gpus if args.gpus is not None else (1 if gpu else 0)
    towers = max(1, gpus)
    data_format = args.data_format or ("NCHW" if gpu else "NHWC")
    from utils.training import precision
    note = precision.check(args.precision, data_format == "NCHW", args.allow_slow_precision)
    if note:
        print(note, flush=True)
    loadavg_start = os.getloadavg()
    print(f"load average at the start (1, 5, 15 min): {' '.join(f'{v:.2f}' for v in loadavg_start)} "
          f"on {os.cpu_count()} cores", flush=True)
    repeats = args.matmul_repeats or (5 if args.quick else 15)
    ceiling_samples, per_cpu_second = matmul_ceiling(repeats)
    ceiling = statistics.median(ceiling_samples)
    print(f"matmul ceiling: {ceiling:.1f} GFLOP/s (median of {len(ceiling_samples)})", flush=True)

    records, timing = [], {}
    for setting, arch, method in plan(args):
        s = SETTINGS[setting]
        job = {"setting": setting, "arch": arch, "method": method, "towers": towers, "data_format": data_format,
               "workers": args.workers, "precision": args.precision,
               "warmup": args.warmup if args.warmup is not None else s["warmup"],
               "window": args.window or s["window"], "windows": args.windows or s["windows"]}
        timing[setting] = {k: job[k] for k in ("warmup", "window", "windows")}
        record = finish_record(launch_child(job), ceiling)
        records.append(record)
        versus = (f"  bare fp32 {record['images_per_s_bare_fp32']:8.2f}  {args.precision}/fp32 (bare, paired) "
                  f"{record['ratio_precision_to_fp32_bare_paired']:.3f}" if "images_per_s_bare_fp32" in record else "")
        print(f"{ARCH_NAMES[arch]:12s} {method:6s} {s['image_size']:4d}px  project {record['images_per_s_project']:8.2f}"
              f"  bare {record['images_per_s_bare']:8.2f} img/s{versus}  load {record['loadavg'][0]:.2f}"
              f"  ({record['wall_s']:.0f} s)", flush=True)

    # Measured again at the end; the ceiling is the median of both sets of repeats.
    after_samples, after_per_cpu_second = matmul_ceiling(repeats)
    ceiling_samples += after_samples
    per_cpu_second += after_per_cpu_second
    ceiling = statistics.median(ceiling_samples)
    per_core_ceiling = statistics.median(per_cpu_second)
    records = [finish_record(record, ceiling, per_core_ceiling) for record in records]
    print()
    print_table(records, ceiling, per_core_ceiling)
    if args.precision != "fp32":
        print_precision_table(records, args.precision)
    print(f"load average at the end (1, 5, 15 min): {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    result = {"matmul_gflops_ceiling": ceiling, "matmul_gflops_samples": ceiling_samples,
              "matmul_gflops_per_cpu_second": per_core_ceiling,
              "matmul_gflops_ceiling_idle_estimate": per_core_ceiling * (os.cpu_count() or 1),
              "machine": {**machine_info(), "loadavg_start": loadavg_start, "loadavg_end": os.getloadavg()},
              "gpus": gpus, "quick": args.quick, "timing": timing,
              "train_flops_convention": f"{TRAIN_TO_FORWARD:g} x forward (TF profiler, batch 1)",
              "configs": records}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_json(args.out, result, indent=2)
    print(f"wrote {args.out}")
    bad = [r for r in records for key in ("images_per_s_project", "images_per_s_bare", "achieved_gflops")
           if not (math.isfinite(r[key]) and r[key] > 0)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
