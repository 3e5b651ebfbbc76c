"""Multi-machine training: cluster specs, the tensorpack fixes (utils.training.distributed), and a real cluster of
one parameter server and two workers (local subprocesses on 127.0.0.1) for both
distributed trainers.  Every process is killed (its whole process group) whatever happens."""
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import REPO
from utils.compat import tf
from utils.training import distributed
from utils.config import ConfigError, parse_args
from utils.training.cluster import load_cluster_spec
from utils.data.synthetic import generate_synthetic

pytestmark = pytest.mark.duration(65)  # seconds, for the scheduler (conftest.py)

CLUSTER = {"ps": ["127.0.0.1:2222"], "worker": ["127.0.0.1:2223", "127.0.0.1:2224"]}
BASE_ARGS = ["--dataset_name", "SYNTH", "--number_of_class", "4"]


# ----------------------------------------------------------------------------- cluster spec

def test_cluster_spec_inline_json_and_file(tmp_path):
    assert load_cluster_spec(json.dumps(CLUSTER)) == (CLUSTER, None, None)
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(CLUSTER))
    assert load_cluster_spec(str(path)) == (CLUSTER, None, None)


def test_tf_config_file_supplies_job_and_task(tmp_path):
    path = tmp_path / "tf_config.json"
    path.write_text(json.dumps({"cluster": CLUSTER, "task": {"type": "worker", "index": 1}}))
    args = parse_args(BASE_ARGS + ["--trainer", "distributed_ps", "--cluster", str(path)])
    assert (args.job, args.task, args.cluster_spec) == ("worker", 1, CLUSTER)
    # the command line wins over the file
    args = parse_args(BASE_ARGS + ["--trainer", "distributed_ps", "--cluster", str(path), "--job", "ps", "--task", "0"])
    assert (args.job, args.task) == ("ps", 0)


def test_inline_spec_defaults_to_task_zero():
    args = parse_args(BASE_ARGS + ["--trainer", "distributed_replicated", "--cluster", json.dumps(CLUSTER),
                                   "--job", "worker"])
    assert (args.job, args.task) == ("worker", 0)


@pytest.mark.parametrize("extra, message", [
    (["--cluster", json.dumps(CLUSTER)], "needs --job"),
    (["--job", "worker"], "needs --cluster"),
    (["--cluster", json.dumps(CLUSTER), "--job", "worker", "--task", "2"], "2 'worker' task"),
    (["--cluster", json.dumps(CLUSTER), "--job", "ps", "--task", "1"], "1 'ps' task"),
    (["--cluster", '{"ps": ["a:1"]}', "--job", "ps"], "'worker' must be a non-empty list"),
    (["--cluster", '{"ps": ["a:1"], "worker": ["b:2"], "chief": ["c:3"]}', "--job", "ps"], "only the jobs"),
    (["--cluster", "{not json", "--job", "ps"], "invalid JSON"),
    (["--cluster", "/no/such/cluster.json", "--job", "ps"], "neither a JSON object nor an existing file"),
])
def test_bad_distributed_flags_are_config_errors(extra, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_args(BASE_ARGS + ["--trainer", "distributed_ps"] + extra)


def test_non_distributed_runs_ignore_cluster_flags():
    args = parse_args(BASE_ARGS)
    assert args.task is None and not hasattr(args, "cluster_spec")


# ----------------------------------------------------------------------------- tensorpack fixes

def test_greedy_load_balancing_puts_variables_on_the_least_loaded_ps():
    with tf.Graph().as_default():
        big = tf.get_variable("big", [100, 10])
        small = [tf.get_variable(f"small{i}", [10]) for i in range(3)]
        assert distributed.byte_size_load_fn(big.op) == 4000
        assert distributed.byte_size_load_fn(small[0].op) == 40
        strategy = distributed.GreedyLoadBalancingStrategy(2, distributed.byte_size_load_fn)
        assert [strategy(v.op) for v in [big] + small] == [0, 1, 1, 1]
        setter = tf.train.replica_device_setter(
            cluster=tf.train.ClusterSpec({"ps": ["a:1", "b:2"], "worker": ["c:3"]}),
            ps_strategy=distributed.tf1_namespace().contrib.training.GreedyLoadBalancingStrategy(
                2, distributed.tf1_namespace().contrib.training.byte_size_load_fn))
        with tf.device(setter):
            placed = [tf.get_variable("p0", [1000]), tf.get_variable("p1", [10]), tf.get_variable("p2", [10])]
        assert [v.device for v in placed] == ["/job:ps/task:0", "/job:ps/task:1", "/job:ps/task:1"]


def test_distributed_shims_are_idempotent_and_expose_tf1():
    from tensorpack.graph_builder import distributed as gb_dist
    from tensorpack.graph_builder import utils as gb_utils
    from tensorpack.tfutils import distributed as tfu_dist
    distributed.patch_tensorpack_distributed()
    namespace = gb_dist.tf
    distributed.patch_tensorpack_distributed()
    assert gb_dist.tf is namespace
    for module in (gb_dist, tfu_dist):
        assert module.tf.train.replica_device_setter is tf.train.replica_device_setter
        assert module.tf.contrib.training.GreedyLoadBalancingStrategy is distributed.GreedyLoadBalancingStrategy
    assert gb_utils._replace_global_by_local is distributed._replace_global_by_local
    # the builder fixes are subclasses: tensorpack's own classes stay as released
    assert gb_dist.DistributedReplicatedBuilder.build is not distributed.ReplicatedBuilder.build


def test_single_process_training_leaves_tensorpack_unpatched():
    """The module patches are applied only when a distributed trainer is built."""
    code = ("import sys, utils.training.loop, utils.training.trainers\n"
            "from tensorpack.graph_builder import distributed as d, utils as u\n"
            "sys.exit(not (u._replace_global_by_local.__module__ == 'tensorpack.graph_builder.utils'\n"
            "              and d.tf.__name__ == 'tensorflow'))")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_nested_override_to_local_variable():
    distributed.patch_tensorpack_distributed()
    from tensorpack.graph_builder.utils import override_to_local_variable
    with tf.Graph().as_default():
        with override_to_local_variable(), override_to_local_variable():
            v = tf.get_variable("v", [2])
        assert v in tf.local_variables() and v not in tf.global_variables()


def test_single_worker_barrier_depends_on_the_train_op():
    """(v): with one worker tensorpack's barrier had no dependency: the train op did nothing."""
    from tensorflow.python.ops.op_selector import get_backward_walk_ops
    builder = SimpleNamespace(num_worker=1, task_index=0, sync_queue_devices=["/cpu:0"], _sync_queue_counter=0)
    with tf.Graph().as_default():
        step = tf.no_op(name="apply_gradients")
        barrier = distributed.ReplicatedBuilder._add_sync_queues_and_barrier(builder, "barrier", [step])
        assert step in get_backward_walk_ops([barrier], control_inputs=True)


def test_main_loop_failure_message_is_logged_in_full():
    from tensorpack.utils import logger
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    tp_logger = logging.getLogger("tensorpack")
    tp_logger.addHandler(handler)
    try:
        logger.error("Training failed at global_step=", 17)   # as tensorpack's main_loop does
        logger.info("normal %s formatting", "still works")
    finally:
        tp_logger.removeHandler(handler)
    assert records == ["Training failed at global_step=17", "normal still works formatting"]


# ----------------------------------------------------------------------------- a real cluster

STEPS, EPOCHS = 2, 2
CLUSTER_TIMEOUT_S = 120


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    generate_synthetic(str(root / "SYNTH"), num_classes=4, num_train=64, num_val=16, size=64, workers=1)
    return str(root)


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def run_cluster(synth_dir, tmp_path, trainer, *extra):
    """One ps and two workers; returns ({role: exit status}, {role: output}, seconds)."""
    ps_port, w0_port, w1_port = free_ports(3)
    cluster = json.dumps({"ps": [f"127.0.0.1:{ps_port}"],
                          "worker": [f"127.0.0.1:{w0_port}", f"127.0.0.1:{w1_port}"]})
    common = [sys.executable, "train.py", "--dataset_name", "SYNTH", "--data_dir", synth_dir,
              "--arch_name", "vgg_gap", "--method_name", "CAM", "--final_size", "32",
              "--width_multiplier", "0.125", "--batch", "8", "--epoch", str(EPOCHS),
              "--steps_per_epoch", str(STEPS), "--number_of_val", "8", "--workers", "0",
              "--trainer", trainer, "--cluster", cluster, *extra]
    roles = {"ps": ["--job", "ps", "--task", "0"],
             "w0": ["--job", "worker", "--task", "0", "--log_dir", str(tmp_path / "w0")],
             "w1": ["--job", "worker", "--task", "1", "--log_dir", str(tmp_path / "w1")]}
    procs, logs, codes = {}, {}, {}
    start = time.time()
    try:
        for name, role in roles.items():
            logs[name] = open(tmp_path / f"{name}.out", "w")
            procs[name] = subprocess.Popen(common + role, cwd=REPO, stdout=logs[name], stderr=subprocess.STDOUT,
                                           start_new_session=True)   # own process group, killed below
        for name, proc in procs.items():
            try:
                codes[name] = proc.wait(timeout=max(1.0, CLUSTER_TIMEOUT_S - (time.time() - start)))
            except subprocess.TimeoutExpired:
                codes[name] = "timeout"
    finally:
        for proc in procs.values():
            kill_group(proc)
        for f in logs.values():
            f.close()
    output = {name: (tmp_path / f"{name}.out").read_text() for name in roles}
    return codes, output, time.time() - start


def describe(output):
    return "\n\n".join(f"== {name}\n{text[-3000:]}" for name, text in output.items())


@pytest.mark.parametrize("trainer", ["distributed_replicated", "distributed_ps"])
def test_one_ps_two_workers_train_and_all_exit(synth_dir, tmp_path, trainer):
    codes, output, elapsed = run_cluster(synth_dir, tmp_path, trainer)
    assert codes == {"ps": 0, "w0": 0, "w1": 0}, describe(output)
    assert "all workers finished" in output["ps"]
    print(f"{trainer}: cluster finished in {elapsed:.1f} s")

    # Only the chief (worker 0) validates and saves; steps are counted per worker.
    expected = [STEPS * (e + 1) for e in range(EPOCHS)]
    chief = tmp_path / "w0"
    assert sorted(int(m.group(1)) for p in os.listdir(chief)
                  for m in [re.fullmatch(r"model-(\d+)\.index", p)] if m) == expected
    assert (chief / "min-val-error-top1.index").is_file()
    assert not any(p.startswith("model-") for p in os.listdir(tmp_path / "w1"))
    assert "waiting for the chief worker" in output["w1"]
    assert json.loads((chief / "stats.json").read_text())[-1]["global_step"] == STEPS * EPOCHS

    # The checkpoints use the single-machine variable names, and training changed the weights.
    first, last = (tf.train.load_checkpoint(str(chief / f"model-{s}")) for s in expected)
    names = first.get_variable_to_shape_map()
    assert "conv1_1/W" in names and "linear/W" in names
    assert not any(n.startswith("tower") for n in names)
    assert not np.allclose(first.get_tensor("linear/W"), last.get_tensor("linear/W"))


def test_a_failing_worker_stops_the_whole_cluster(synth_dir, tmp_path):
    """The chief stops on a NaN loss: it releases the other worker from the step barrier and
    reports; the other worker stops with an error, the ps exits with status 1."""
    codes, output, elapsed = run_cluster(synth_dir, tmp_path, "distributed_replicated", "--base_lr", "1e30")
    assert codes == {"ps": 1, "w0": 2, "w1": 1}, describe(output)
    # lr 1e30 makes the loss inf or nan, depending on the order of the (non-deterministic) CPU sums
    assert re.search(r"training loss became (nan|-?inf) at global step", output["w0"]), describe(output)
    assert "Training failed at global_step=" in output["w0"]   # tensorpack's message, logged in full
    assert "another worker failed" in output["w1"]
    assert "2 of 2 worker(s) failed" in output["ps"]
    print(f"failing cluster stopped in {elapsed:.1f} s")
