"""The wsolevaluation baselines (HaS, CutMix, ACoL, SPG) and the few-shot fully supervised
baseline (FSL) end to end: each trains on tiny SYNTH with a falling loss and is evaluated by
the same pass as CAM; their flags reach config.json, --evaluate, predict and export; FSL reads
only the train_fullsup masks; on the other backbone each graph takes a training step whose
gradients reach the method's own layers."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, build_model_graph, new_session
from models.spec import ModelSpec

pytestmark = pytest.mark.duration(110)  # seconds, for the scheduler (conftest.py)

TINY = dict(num_classes=4, num_train=64, num_val=16, num_fullsup_per_class=4, size=48, seed=3)
EPOCHS, STEPS = 3, 6
# Each method end to end on ResNet50-SE (BN: learns in a few steps), with a non-default value of
# one of its flags where it has one, to see it recorded and inherited.
RUNS = {"HaS": ["--has_drop_rate", "0.3"], "CutMix": ["--cutmix_beta", "0.5"], "ACoL": ["--acol_threshold", "0.6"],
        "SPG": [], "FSL": []}


def train_command(data_dir, log_dir, method, *extra):
    return [sys.executable, os.path.join(REPO, "train.py"), "--dataset_name", "SYNTH", "--data_dir", str(data_dir),
            "--arch_name", "resnet", "--method_name", method, "--final_size", "32", "--width_multiplier", "0.125",
            "--batch", "16", "--epoch", str(EPOCHS), "--steps_per_epoch", str(STEPS), "--workers", "0",
            "--seed", "1", "--number_of_examples", "2", "--log_dir", str(log_dir), *extra]


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    """{method: run folder}, each trained then evaluated by train.py."""
    root = tmp_path_factory.mktemp("methods")
    folders = {}
    for method, extra in RUNS.items():
        folders[method] = root / method
        result = subprocess.run(train_command(data_dir, folders[method], method, *extra), cwd=REPO,
                                capture_output=True, text=True, timeout=400)
        assert result.returncode == 0, f"{method}: {result.stderr[-3000:]}"
    return folders


def read_json(path):
    with open(path) as f:
        return json.load(f)


@pytest.mark.parametrize("method", list(RUNS))
def test_each_method_learns_and_is_evaluated_like_cam(runs, method):
    stats = read_json(runs[method] / "stats.json")
    assert [s["epoch_num"] for s in stats] == list(range(1, EPOCHS + 1))
    assert stats[-1]["xentropy"] < stats[0]["xentropy"]
    metrics = read_json(runs[method] / "result" / "latest" / "metrics.json")["metrics"]
    assert metrics["num_images"] == TINY["num_val"]
    assert 0 <= metrics["maxboxacc_v2"] <= 100 and 0 <= metrics["pixel"]["pxap"] <= 100
    config = read_json(runs[method] / "config.json")
    assert config["method_name"] == config["model_spec"]["method"] == method
    if method == "FSL":   # no validation pass: the newest checkpoint is evaluated
        assert "val-error-top1" not in stats[-1]
        assert metrics["checkpoint"].endswith(f"model-{EPOCHS * STEPS}")
        # no classifier: no classification numbers (not a chance-level Top-1 Cls presented as a result)
        assert not {"top1_cls", "top5_cls", "top1_loc", "top5_loc"} & set(metrics)
    else:
        assert {"top1_cls", "top5_cls", "top1_loc", "top5_loc"} <= set(metrics)
        assert metrics["checkpoint"].endswith("min-val-error-top1")


def test_method_flags_are_recorded_and_inherited_and_another_methods_refused(runs):
    from utils.config import ConfigError, parse_args, run_config
    expected = {"HaS": ("has_drop_rate", 0.3), "CutMix": ("cutmix_beta", 0.5), "ACoL": ("acol_threshold", 0.6)}
    for method, (name, value) in expected.items():
        config = read_json(runs[method] / "config.json")
        assert config[name] == value and [name, value] in config["model_spec"]["options"]
        assert getattr(run_config(str(runs[method])), name) == value         # --evaluate, predict, export
    assert read_json(runs["SPG"] / "config.json")["spg_thresholds"] == [0.7, 0.01, 0.5, 0.05, 0.7, 0.1]
    with pytest.raises(ConfigError, match="--acol_threshold 0.5 contradicts"):
        parse_args(["--evaluate", "--log_dir", str(runs["ACoL"]), "--acol_threshold", "0.5"])
    with pytest.raises(ConfigError, match="--has_grid_size 8 contradicts"):
        parse_args(["--evaluate", "--log_dir", str(runs["ACoL"]), "--has_grid_size", "8"])
    new_run = ["--dataset_name", "SYNTH", "--number_of_class", "4", "--log_dir", str(runs["ACoL"].parent / "new")]
    for method, other in (("ACoL", ["--has_grid_size", "8"]), ("HaS", ["--spg_thresholds"] + ["0.5"] * 6),
                          ("CAM", ["--cutmix_prob", "0.5"]), ("FSL", ["--acol_threshold", "0.5"])):
        with pytest.raises(ConfigError, match=f"{other[0]} needs --method_name"):
            parse_args(new_run + ["--method_name", method] + other)


def test_acol_export_equals_the_predictor_with_the_max_of_normalised_branch_cams(runs, data_dir, tmp_path):
    """ACoL's CAM: the SavedModel's TensorFlow fusion equals predict.py's numpy one, whose rule is
    the max of the min-max normalised CAMs of A and B."""
    from utils.compat import tf
    from utils.config import run_config
    from utils.evaluation.export import main as export_main
    from utils.evaluation.predict import RunPredictor
    predictor = RunPredictor(run_config(str(runs["ACoL"])))
    assert predictor.rule == "max_normalised" and predictor.args.acol_threshold == 0.6
    crops = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    logits, cams = predictor(crops)
    assert cams.min() >= 0 and np.allclose(cams.max(axis=(1, 2)), 1)
    out = tmp_path / "saved"
    assert export_main(["--log_dir", str(runs["ACoL"]), "--out", str(out)]) == 0
    with tf.Graph().as_default(), new_session() as sess:
        meta = tf.saved_model.loader.load(sess, ["serve"], str(out))
        signature = meta.signature_def["serving_default"]
        fetch = {k: signature.outputs[k].name for k in ("cam", "logits")}
        got = sess.run(fetch, {signature.inputs["image"].name: crops[..., ::-1]})
    np.testing.assert_allclose(got["logits"], logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["cam"], cams, rtol=1e-4, atol=1e-4)


def test_fsl_training_reads_only_the_train_fullsup_masks_and_never_the_val_list(data_dir, tmp_path, monkeypatch):
    from tensorpack import InferenceRunner
    from utils.config import parse_args
    from utils.data import dataflow
    from utils.data.labels import read_label_list
    from utils.data.masks import load_mask
    from utils.training import loop
    opened = []

    def recording_load_mask(path, expected_hw=None):
        opened.append(os.path.relpath(path, data_dir / "SYNTH" / "masks"))
        return load_mask(path, expected_hw)

    monkeypatch.setattr(dataflow, "load_mask", recording_load_mask)
    args = parse_args(["--dataset_name", "SYNTH", "--data_dir", str(data_dir), "--arch_name", "resnet",
                       "--method_name", "FSL", "--final_size", "32", "--workers", "0", "--seed", "0",
                       "--log_dir", str(tmp_path / "fsl")], class_list_size=lambda a: TINY["num_classes"])
    batches = loop.train_dataflow(args, 8, fully_supervised=True)
    batches.reset_state()
    for images, labels, boxes, masks in batches:
        assert masks.shape == (8, 32, 32) and set(np.unique(masks)) <= {0.0, 1.0}
    fullsup = read_label_list(str(data_dir / "SYNTH" / "train_fullsup.txt"))
    assert sorted(opened) == sorted(os.path.splitext(e.path)[0] + ".png" for e in fullsup)
    assert all(os.path.basename(path).startswith("train_fullsup_") for path in opened)
    assert not any(isinstance(c, InferenceRunner) for c in loop.callbacks(args, 8, fully_supervised=True))


@pytest.mark.parametrize("method, own", [
    ("HaS", ("linear/",)), ("CutMix", ("linear/",)), ("ACoL", ("acol_a/", "acol_b/")),
    ("SPG", ("spg_a3_1/", "spg_b1a/", "spg_b2a/", "spg_b_shared/", "spg_c/", "linear/")), ("FSL", ("fsl_fg/",))])
def test_vgg_graph_takes_a_finite_step_with_gradients_into_the_methods_layers(method, own):
    spec = ModelSpec(arch="vgg_gap", method=method, num_classes=4, image_size=32, width_multiplier=0.125)
    graph, model, inputs, cost = build_model_graph(spec, is_training=True)
    from utils.compat import tf
    with graph.as_default():
        variables = [v for v in tf.trainable_variables() if v.op.name.startswith(own)]
        gradients = tf.gradients(cost, variables)
        sess = new_session(graph)
        sess.run(tf.global_variables_initializer())
    rng = np.random.RandomState(0)
    feed = {inputs[0]: rng.randint(0, 256, (4, 32, 32, 3)).astype(np.uint8), inputs[1]: np.arange(4, dtype=np.int32),
            inputs[2]: np.zeros((4, 2, 2), np.float32)}
    if method == "FSL":
        feed[inputs[3]] = (rng.rand(4, 32, 32) > 0.5).astype(np.float32)
    loss, grads = sess.run([cost, gradients], feed)
    assert np.isfinite(loss) and len(variables) >= len(own)
    for variable, grad in zip(variables, grads):
        assert np.isfinite(grad).all() and np.abs(grad).max() > 0, variable.op.name


def test_baselines_are_rows_of_the_demo():
    from utils.demo import METHODS, apply_recipe, build_parser, train_options
    args = apply_recipe(build_parser().parse_args(["--methods", "CAM", "HaS", "ACoL", "SPG", "CutMix", "FSL"]))
    assert [train_options(args, m)["method_name"] for m in args.methods] == ["CAM", "HaS", "ACoL", "SPG", "CutMix",
                                                                             "FSL"]
    assert build_parser().parse_args([]).methods == list(METHODS) and "FSL" not in METHODS


@pytest.mark.parametrize("argv, message", [
    (["--method_name", "HaS", "--has_drop_rate", "1.5"], "--has_drop_rate must be in [0, 1], got 1.5"),
    (["--method_name", "HaS", "--has_grid_size", "-1"], "--has_grid_size must be >= 0 (0 = hide nothing), got -1"),
    (["--method_name", "ACoL", "--acol_threshold", "nan"], "--acol_threshold must be in [0, 1], got nan"),
    (["--method_name", "CutMix", "--cutmix_beta", "-0.5"], "--cutmix_beta must be >= 0 (0 = no mixing), got -0.5"),
    (["--method_name", "CutMix", "--cutmix_prob", "2"], "--cutmix_prob must be in [0, 1], got 2.0"),
    (["--method_name", "SPG", "--spg_thresholds", "0.1", "0.5", "0.5", "0.05", "0.7", "0.1"],
     "--spg_thresholds: each low threshold must be <= its high one, got 0.1 0.5 0.5 0.05 0.7 0.1"),
    (["--method_name", "SPG", "--spg_thresholds", "1.7", "0.5", "0.5", "0.05", "0.7", "0.1"],
     "--spg_thresholds must be six values h1 l1 h2 l2 h3 l3 in [0, 1], got 1.7 0.5 0.5 0.05 0.7 0.1"),
])
def test_method_flags_out_of_range_are_one_line(argv, message, tmp_path):
    from utils.config import ConfigError, parse_args
    with pytest.raises(ConfigError) as error:
        parse_args(["--dataset_name", "SYNTH", "--number_of_class", "4", "--log_dir", str(tmp_path / "r")] + argv)
    assert str(error.value) == message


@pytest.mark.parametrize("method", ["ACoL", "SPG", "FSL"])
def test_nhwc_and_nchw_graphs_give_the_same_outputs(method):
    """The methods' own layers follow the graph's layout (GPU runs use NCHW): same variables, same
    logits, exported features and training cost in both layouts."""
    from utils.compat import tf
    rng = np.random.RandomState(3)
    feed_values = [rng.randint(0, 256, (2, 32, 32, 3)).astype(np.uint8), np.array([1, 2], np.int32),
                   np.zeros((2, 2, 2), np.float32), (rng.rand(2, 32, 32) > 0.5).astype(np.float32)]
    results, values = {}, None
    for fmt in ("NHWC", "NCHW"):
        spec = ModelSpec(arch="vgg_gap", method=method, num_classes=4, image_size=32, width_multiplier=0.125,
                         data_format=fmt)
        graph, model, inputs, cost = build_model_graph(spec, is_training=True)
        with graph.as_default():
            variables = tf.global_variables()
            sess = new_session(graph)
            if values is None:
                tf.set_random_seed(0)
                sess.run(tf.global_variables_initializer())
                values = dict(zip([v.op.name for v in variables], sess.run(variables)))
            else:
                sess.run([v.initializer for v in variables], {v.initializer.inputs[1]: values[v.op.name] for v in variables})
            fetches = [cost, graph.get_tensor_by_name("logits:0")] + [graph.get_tensor_by_name(f"features_{h}:0")
                                                                      for h in model.head_names]
            results[fmt] = sess.run(fetches, dict(zip(inputs, feed_values)))
    for a, b in zip(results["NHWC"], results["NCHW"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(b).max())))
