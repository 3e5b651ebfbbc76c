"""--precision: bf16 against fp32 (training step, CAMs and boxes of an evaluation), the refusals,
fp16 loss scaling wired on the CPU, and what runs record.

The suite runs with grappler off (conftest.py); the bf16 tests open their own sessions with it on.
"""
import json

import numpy as np
import pytest

from conftest import build_model_graph
from models.spec import ModelSpec
from utils import cpu
from utils.compat import tf
from utils.training import precision

pytestmark = pytest.mark.duration(30)  # seconds, for the scheduler (conftest.py)

# bf16 keeps 8 significant bits (one rounding: relative 2^-9 = 0.2 %): the losses before and after
# one training step agree within 0.5 % (measured here: 1e-4 and 4e-5 relative, 56 bf16 casts).
BF16_LOSS_RTOL = 5e-3
CAM_CORRELATION = 0.999       # measured: 0.99988 - 0.99999 per image
# reference boxes at τ of a bf16 and an fp32 evaluation: at most this fraction of images differ
# (measured: 0 of 8)
BOX_DIFFERENCE_FRACTION = 0.125
NUM_IMAGES = 8

SPEC = ModelSpec(arch="vgg_gap", method="E2Net", num_classes=4, positions=("3", "4", "53"),
                 ose_heads=("3x3", "1x3", "3x1"), width_multiplier=0.125, image_size=32)


def grappler_config(name):
    """A session config with grappler on (the suite's tensorpack default has it off) and the rewrite of ``name``."""
    return precision.with_rewrite(tf.ConfigProto(), name, on_gpu=False)


def smooth_images(rng, count, size):
    """uint8 BGR images with large blobs (CAM-like structure, not pixel noise)."""
    import cv2
    noise = rng.integers(0, 256, (count, size // 4, size // 4, 3)).astype(np.uint8)
    return np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC) for image in noise])


def initial_values(graph, variables):
    with tf.Session(graph=graph) as sess:
        sess.run(tf.global_variables_initializer())
        return sess.run(variables)


def assign(sess, variables, values):
    sess.run([v.initializer for v in variables], {v.initializer.inputs[1]: x for v, x in zip(variables, values)})


def test_a_bf16_training_step_gives_the_fp32_losses_within_the_bf16_tolerance():
    graph, model, inputs, cost = build_model_graph(SPEC, is_training=True)
    rng = np.random.default_rng(0)
    feed = {inputs[0]: smooth_images(rng, 4, 32), inputs[1]: np.arange(4, dtype=np.int32),
            inputs[2]: np.zeros((4, 2, 2), np.float32)}
    with graph.as_default():
        train_op = model.optimizer().minimize(cost)
        variables = tf.global_variables()
    start = initial_values(graph, variables)
    losses, bf16_ops = {}, 0
    for name in ("fp32", "bf16"):
        with tf.Session(graph=graph, config=grappler_config(name)) as sess:
            assign(sess, variables, start)
            options = tf.RunOptions(output_partition_graphs=True)
            metadata = tf.RunMetadata()
            before = sess.run([cost, train_op], feed, options=options, run_metadata=metadata)[0]
            losses[name] = (before, sess.run(cost, feed))
            if name == "bf16":   # the rewrite ran: the executed graph holds bfloat16 casts
                bf16_ops = sum(node.op == "Cast" and node.attr["DstT"].type == tf.bfloat16.as_datatype_enum
                               for partition in metadata.partition_graphs for node in partition.node)
    assert bf16_ops > 0
    # the loss StopOnNonFiniteLoss fetches (cost:0) stays float32 under the rewrite: inf / NaN reach it as such
    assert all(isinstance(loss, np.float32) for loss in losses["bf16"])
    fp32, bf16 = np.array(losses["fp32"]), np.array(losses["bf16"])
    assert np.all(np.isfinite(bf16)) and fp32[1] < fp32[0] and bf16[1] < bf16[0]   # both steps learn
    np.testing.assert_allclose(bf16, fp32, rtol=BF16_LOSS_RTOL)
    for value in start:
        assert value.dtype in (np.float32, np.int64, np.int32, np.bool_)   # variables stay fp32


def test_a_bf16_evaluation_of_a_checkpoint_gives_the_fp32_cams_and_boxes(tmp_path, monkeypatch):
    """The evaluation path itself (``make_predictor``) on one checkpoint, in fp32 and in bf16."""
    from utils.config import parse_args
    from utils.evaluation import evaluate
    from utils.evaluation.cam import fuse_heads, fusion_rule
    from utils.evaluation.localization import normalize_cam, reference_box, resize_cam

    spec = SPEC.with_(image_size=64)
    graph, _, _, _ = build_model_graph(spec, is_training=False)
    with graph.as_default(), tf.Session(graph=graph) as sess:
        sess.run(tf.global_variables_initializer())
        checkpoint = tf.train.Saver().save(sess, str(tmp_path / "model"), global_step=1)
    on = tf.ConfigProto(allow_soft_placement=True)     # grappler on for the bf16 predictor's session
    monkeypatch.setattr(precision, "get_default_sess_config", lambda: on)
    images = smooth_images(np.random.default_rng(1), NUM_IMAGES, 64)
    labels = np.arange(NUM_IMAGES) % 4
    cams, boxes = {}, {}
    for name in ("fp32", "bf16"):
        args = parse_args(["--dataset_name", "SYNTH", "--number_of_class", "4", "--arch_name", "vgg_gap",
                           "--method_name", "E2Net", "--width_multiplier", "0.125", "--final_size", "64",
                           "--log_dir", str(tmp_path / "run"), "--precision", name])
        predictor, heads = evaluate.make_predictor(args, checkpoint)
        _, *outputs = predictor(images)
        fused = fuse_heads(outputs[:heads], outputs[heads:], labels, fusion_rule("released", "vgg_gap"))
        cams[name] = np.stack([resize_cam(cam, (64, 64)) for cam in fused])
        boxes[name] = [tuple(reference_box(normalize_cam(cam), args.cam_threshold)) for cam in cams[name]]
    assert not np.array_equal(cams["fp32"], cams["bf16"])     # bf16 ran
    for fp32, bf16 in zip(cams["fp32"], cams["bf16"]):
        assert np.corrcoef(fp32.ravel(), bf16.ravel())[0, 1] >= CAM_CORRELATION
    differ = sum(a != b for a, b in zip(boxes["fp32"], boxes["bf16"]))
    assert differ <= BOX_DIFFERENCE_FRACTION * NUM_IMAGES


TRAIN_ARGV = ["--dataset_name", "SYNTH", "--number_of_class", "4", "--method_name", "CAM", "--final_size", "32",
              "--width_multiplier", "0.125", "--epoch", "1", "--steps_per_epoch", "1"]


def run_train_py(argv, tmp_path, capsys):
    import train
    code = train.main(TRAIN_ARGV + ["--log_dir", str(tmp_path / "run")] + argv)
    return code, capsys.readouterr().err.strip().splitlines()


def test_bf16_with_the_graph_optimizer_off_is_one_line(tmp_path, capsys):
    assert not precision.graph_optimizer_on()     # the suite's E2NET_GRAPH_OPTIMIZER=off
    code, lines = run_train_py(["--precision", "bf16"], tmp_path, capsys)
    assert code == 2 and lines == [
        "train.py: error: --precision bf16 is a graph optimizer (grappler) rewrite, which E2NET_GRAPH_OPTIMIZER=off "
        "turns off; unset E2NET_GRAPH_OPTIMIZER or use --precision fp32"]
    assert not (tmp_path / "run").exists()


def test_bf16_on_a_cpu_without_native_bf16_is_one_line_unless_allowed(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(precision, "graph_optimizer_on", lambda: True)
    monkeypatch.setattr(cpu, "cpu_bf16_flags", lambda: ())
    code, lines = run_train_py(["--precision", "bf16", "--evaluate"], tmp_path, capsys)
    assert code == 2 and lines == [
        "train.py: error: this CPU has no native bf16 (avx512_bf16 or amx_bf16 not in /proc/cpuinfo): --precision "
        "bf16 would be emulated and slower than fp32; use --precision fp32, or add --allow_slow_precision to run "
        "it anyway"]
    note = precision.check("bf16", on_gpu=False, allow_slow=True)
    assert "slower than fp32" in note and "--allow_slow_precision" in note


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 avx512_bf16 sse\n\nprocessor\t: 1\n")
    assert cpu.cpu_bf16_flags(str(path)) == ("avx512_bf16", "amx_bf16")
    path.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16x sse\n")
    assert cpu.cpu_bf16_flags(str(path)) == ()
    assert cpu.cpu_bf16_flags(str(tmp_path / "missing")) == ()


def test_the_device_decides_what_each_precision_may_do(monkeypatch):
    monkeypatch.setattr(precision, "graph_optimizer_on", lambda: True)
    assert precision.check("fp32", on_gpu=False) is None and precision.check("fp32", on_gpu=True) is None
    with pytest.raises(precision.PrecisionError, match="fp16 is TensorFlow's GPU mixed-precision rewrite"):
        precision.check("fp16", on_gpu=False)
    with pytest.raises(precision.PrecisionError, match="no GPU bfloat16 mode"):
        precision.check("bf16", on_gpu=True)
    with pytest.raises(precision.PrecisionError, match="distributed"):
        precision.check("bf16", on_gpu=False, trainer="distributed_replicated", cpu_flags=("amx_bf16",))
    assert "dynamic loss scaling" in precision.check("fp16", on_gpu=True)
    assert "amx_bf16" in precision.check("bf16", on_gpu=False, cpu_flags=("amx_bf16",))
    gpu = precision.with_rewrite(tf.ConfigProto(), "fp16", on_gpu=True).graph_options.rewrite_options
    cpu = precision.with_rewrite(tf.ConfigProto(), "bf16", on_gpu=False).graph_options.rewrite_options
    assert gpu.auto_mixed_precision == gpu.ON and gpu.auto_mixed_precision_onednn_bfloat16 == gpu.DEFAULT
    assert cpu.auto_mixed_precision_onednn_bfloat16 == cpu.ON and cpu.auto_mixed_precision == cpu.DEFAULT
    assert precision.session_creator("fp32", on_gpu=False) is None    # fp32: tensorpack's default, as released


def test_fp16_loss_scaling_trains_as_fp32_and_skips_an_overflowing_step():
    """The loss-scaling wiring on the CPU (TensorFlow's fp16 rewrite itself needs a GPU): with
    finite gradients a step equals the unscaled one; an overflowing step changes no weight,
    restarts the count of good steps and is counted."""
    graph, model, inputs, cost = build_model_graph(SPEC, is_training=True)
    rng = np.random.default_rng(2)
    feed = {inputs[0]: smooth_images(rng, 4, 32), inputs[1]: np.arange(4, dtype=np.int32),
            inputs[2]: np.zeros((4, 2, 2), np.float32)}
    with graph.as_default():
        plain = model.optimizer()
        weights = tf.trainable_variables()
        plain_step = plain.minimize(cost, name="plain")
        scaled = precision.loss_scaled(plain, "fp16")      # the same optimizer (and momentum slots), wrapped
        scaled_step = scaled.minimize(cost, name="scaled")
        scale, good = precision.loss_scale_variables()
        everything = tf.global_variables()
    start = initial_values(graph, everything)
    with tf.Session(graph=graph) as sess:
        assign(sess, everything, start)
        sess.run(plain_step, feed)
        expected = sess.run(weights)
        assign(sess, everything, start)
        sess.run(scaled_step, feed)
        for value, want in zip(sess.run(weights), expected):
            np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-7)
        assert sess.run([scale, good]) == [2.0 ** 15, 1]
        counter = precision.LossScaleCounter(*sess.run([scale, good]))
        scale.load(np.inf, sess)                # an overflowing scale: every scaled gradient is inf or NaN
        counter.scale = np.inf
        before = sess.run(weights)
        sess.run(scaled_step, feed)
        counter.after_step(*sess.run([scale, good]))
        for value, want in zip(sess.run(weights), before):
            np.testing.assert_array_equal(value, want)
        assert sess.run(good) == 0
    assert (counter.overflow, counter.underflow, counter.increases) == (1, 0, 0)


def test_the_loss_scale_counter_counts_by_hand():
    counter = precision.LossScaleCounter(4.0, 0)
    for state in [(4.0, 1), (4.0, 2), (2.0, 0), (2.0, 1), (4.0, 0), (1.0, 0), (1.0, 0), (1.0, 1)]:
        counter.after_step(*state)
    # (2, 0): overflow; (4, 0): an increase; (1, 0): overflow; (1, 0) again: overflow at the floor
    assert (counter.overflow, counter.underflow, counter.increases) == (3, 1, 1)
    assert counter.summary() == ("fp16 loss scale 1: 3 overflow steps skipped (1 at the scale's floor, underflow), "
                                 "1 increases")


def test_precision_is_recorded_per_run_and_never_inherited(tmp_path):
    from utils.config import config_dict, parse_args
    from utils.training.launch import config_differences
    run = tmp_path / "run"
    argv = ["--dataset_name", "SYNTH", "--number_of_class", "4", "--log_dir", str(run)]
    trained = parse_args(argv + ["--precision", "bf16"])
    run.mkdir()
    (run / "config.json").write_text(json.dumps(config_dict(trained), default=str))
    assert json.loads((run / "config.json").read_text())["precision"] == "bf16"
    evaluated = parse_args(argv + ["--evaluate"])
    assert evaluated.precision == "fp32"      # a bf16 run evaluates in fp32 unless asked
    assert precision.record("bf16", False) == {"precision": "bf16", "rewrite": "auto_mixed_precision_onednn_bfloat16",
                                               "device": "cpu", "variables": "float32", "loss_scale": None}
    # a result recorded before --precision existed was fp32
    assert config_differences({}, {"precision": "fp32"}) == []
    assert config_differences({}, {"precision": "bf16"}) == [("precision", "fp32", "bf16")]
