"""npz / checkpoint loading by name, with clear errors."""
import functools
import json
import os

import numpy as np
import pytest

from conftest import SHARED, new_session, shared_model_graph as graph_of, shared_training_graph
from models.spec import ModelSpec
from utils.compat import tf
from utils.training.pretrained import (BACKBONE_KEYS, CheckpointInit, NpzInit, PretrainedWeightsError,
                                       model_zoo_url)

pytestmark = pytest.mark.duration(40)  # seconds, for the scheduler (conftest.py)

# ResNet50-SE E2Net as released (MAE at 31 41 5, the three OSE heads with BN), narrow and small
SPEC = ModelSpec(arch="resnet", method="E2Net", num_classes=5, positions=("31", "41", "5"),
                 ose_heads=("3x3", "1x3", "3x1"), use_bn=True, image_size=32, width_multiplier=0.125)


def backbone_arrays(spec):
    """Model-zoo-named arrays of a freshly initialised graph, plus an unused 'linear/W'
    (a fresh dict each call; the arrays are drawn once per spec)."""
    return dict(_backbone_arrays(spec))


@functools.lru_cache(maxsize=None)
def _backbone_arrays(spec):
    graph = graph_of(spec)
    with graph.as_default(), new_session(graph) as sess:
        sess.run(tf.global_variables_initializer())
        variables = [v for v in tf.global_variables()
                     if v.op.name.startswith(("conv0", "group")) and "/aware_" not in v.op.name]
        arrays = dict(zip([v.op.name for v in variables], sess.run(variables)))
    arrays["linear/W"] = np.zeros((8, 1000), np.float32)
    return arrays


def test_npz_round_trip_and_loading_table(tmp_path):
    arrays = backbone_arrays(SPEC)
    path = str(tmp_path / "zoo.npz")
    np.savez(path, **arrays)
    graph = graph_of(SPEC)
    with graph.as_default(), new_session(graph) as sess:
        init = NpzInit(path, "resnet")
        sess.run(tf.global_variables_initializer())
        init.init(sess)
        loaded = dict(zip([v.op.name for v in tf.global_variables()], sess.run(tf.global_variables())))
    used, skipped, new = init.report
    assert len(used) == 329 and skipped == ["linear/W"]
    assert "group2/block0/aware_31/W" in new and "linearnew_1x3/W" in new and "conv1x3/bn/gamma" in new
    for key in used:
        np.testing.assert_array_equal(loaded[key], arrays[key])
    assert any("/EMA" in key for key in used)


def test_npz_shape_mismatch_names_the_key(tmp_path):
    arrays = backbone_arrays(SPEC)
    arrays["group1/block0/conv2/W"] = np.zeros((3, 3, 1, 1), np.float32)
    path = str(tmp_path / "bad.npz")
    np.savez(path, **arrays)
    graph = graph_of(SPEC)
    with graph.as_default(), new_session(graph) as sess:
        with pytest.raises(PretrainedWeightsError, match="group1/block0/conv2/W"):
            NpzInit(path).init(sess)


def test_missing_npz_names_the_path_and_the_download_address(tmp_path):
    with pytest.raises(PretrainedWeightsError,
                       match="nowhere.npz .*http://models.tensorpack.com/ResNet/ImageNet-ResNet50-SE.npz"):
        NpzInit(str(tmp_path / "nowhere.npz"), "resnet")
    assert model_zoo_url("vgg_gap") == "http://models.tensorpack.com/Caffe-Converted/vgg16.npz"


def test_npz_lacking_backbone_keys_names_them(tmp_path):
    arrays = backbone_arrays(SPEC)
    del arrays["group3/block2/conv3/W"], arrays["conv0/bn/gamma"]
    path = str(tmp_path / "partial.npz")
    np.savez(path, **arrays)
    graph = graph_of(SPEC)
    with graph.as_default(), new_session(graph) as sess:
        with pytest.raises(PretrainedWeightsError) as caught:
            NpzInit(path, "resnet").init(sess)
    assert str(caught.value) == (f"{path} lacks 2 of the 329 backbone weights of --arch_name resnet: "
                                 "conv0/bn/gamma group3/block2/conv3/W "
                                 "(the model-zoo file is http://models.tensorpack.com/ResNet/ImageNet-ResNet50-SE.npz)")


def test_not_an_npz_is_named(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("not a zip\n")
    with pytest.raises(PretrainedWeightsError, match=f"{path}: not a readable npz file"):
        NpzInit(str(path), "vgg_gap")


def test_checkpoint_of_another_class_count_is_refused(tmp_path):
    graph = graph_of(SPEC)
    with graph.as_default(), new_session(graph) as sess:
        sess.run(tf.global_variables_initializer())
        tf.train.Saver().save(sess, str(tmp_path / "model-1"))
    other = graph_of(SPEC.with_(num_classes=7))
    with other.as_default(), new_session(other) as sess:
        with pytest.raises(PretrainedWeightsError, match="linearnew"):
            CheckpointInit(str(tmp_path / "model-1")).init(sess)
    same = graph_of(SPEC)
    with same.as_default(), new_session(same) as sess:
        CheckpointInit(str(tmp_path / "model-1")).init(sess)


def save_checkpoint(spec, path):
    graph = graph_of(spec)
    with graph.as_default(), new_session(graph) as sess:
        sess.run(tf.global_variables_initializer())
        tf.train.Saver().save(sess, path)
        return variable_values(sess)


def variable_values(sess):
    """{name: value} of every global variable, in one session run (one run per variable is slow)."""
    variables = tf.global_variables()
    return dict(zip([v.op.name for v in variables], sess.run(variables)))


def test_checkpoint_with_released_names_restores_every_variable(tmp_path):
    """Saved by a graph with the released names (group2/block0/aware_31, ...): nothing stays random."""
    saved = save_checkpoint(SPEC, str(tmp_path / "model-1"))
    assert "group2/block0/aware_31/W" in saved and "group3/block0/aware_41/W" in saved and "aware_5/W" in saved
    graph = graph_of(SPEC, is_training=False)
    with graph.as_default(), new_session(graph) as sess:
        CheckpointInit(str(tmp_path / "model-1")).init(sess)
        uninitialised = sess.run(tf.report_uninitialized_variables())
        restored = variable_values(sess)
    assert len(uninitialised) == 0
    for name, value in restored.items():
        np.testing.assert_array_equal(value, saved[name])


def test_cam_checkpoint_into_an_e2net_graph_names_the_missing_variables(tmp_path):
    save_checkpoint(SPEC.with_(method="CAM", positions=(), ose_heads=("3x3",), use_bn=False),
                    str(tmp_path / "model-1"))
    graph = graph_of(SPEC, is_training=False)
    with graph.as_default(), new_session(graph) as sess:
        with pytest.raises(PretrainedWeightsError) as error:
            CheckpointInit(str(tmp_path / "model-1"), allow_partial=False).init(sess)   # train.py --load
        with pytest.raises(PretrainedWeightsError) as evaluating:      # evaluate/predict/export: no such flag
            CheckpointInit(str(tmp_path / "model-1")).init(sess)
    assert "--allow_partial_load" not in str(evaluating.value) and "another model" in str(evaluating.value)
    message = str(error.value)
    assert "\n" not in message
    for name in ("group2/block0/aware_31/W", "aware_5/W", "conv1x3/W", "linearnew_1x3/W"):
        assert name in message or "..." in message
    # 3 MAE x (W, b) + 2 OSE convs x (W, gamma, beta, mean/EMA, variance/EMA) + 2 FCs x (W, b)
    assert "lacks 20 variable(s)" in message
    assert "looks like resnet CAM or ADL (heads 3x3; 5 classes)" in message
    assert "the graph is resnet E2Net (MAE at 31 41 5; heads 3x3 1x3 3x1; 5 classes)" in message
    assert "--allow_partial_load" in message


def test_partial_load_is_an_explicit_opt_in_and_restores_what_exists(tmp_path):
    saved = save_checkpoint(SPEC.with_(method="CAM", positions=(), ose_heads=("3x3",), use_bn=False),
                            str(tmp_path / "model-1"))
    graph = graph_of(SPEC, is_training=False)
    with graph.as_default(), new_session(graph) as sess:
        sess.run(tf.global_variables_initializer())
        CheckpointInit(str(tmp_path / "model-1"), allow_partial=True).init(sess)
        restored = variable_values(sess)
    np.testing.assert_array_equal(restored["group1/block0/conv1/W"], saved["group1/block0/conv1/W"])
    np.testing.assert_array_equal(restored["linearnew/W"], saved["linearnew/W"])


MODEL_ZOO_KEY_FILES = {"resnet": "model_zoo_keys_resnet50_se.txt", "vgg_gap": "model_zoo_keys_vgg16.txt"}


def model_zoo_keys(arch):
    """{key: shape} of the real model-zoo file of a backbone (../shared/ref), e.g. ``linear/W``
    included for ResNet50-SE; skips when the shared folder is not beside the checkout."""
    path = os.path.join(SHARED, "ref", MODEL_ZOO_KEY_FILES[arch])
    if not os.path.isfile(path):
        pytest.skip(f"{path} (the model-zoo key lists) is not beside the checkout")
    with open(path) as f:
        return {key: tuple(json.loads(shape)) for key, shape in (line.rstrip("\n").split("\t") for line in f)}


@pytest.mark.parametrize("arch, method, positions", [("resnet", "E2Net", ("31", "41", "5")),
                                                     ("vgg_gap", "E2Net", ("3", "4", "53"))])
def test_full_model_zoo_keys_load_into_a_training_graph_with_its_optimizer(tmp_path, arch, method, positions):
    """A file with exactly the model-zoo keys and shapes is accepted by the full-width training
    graph, optimizer slots (``.../W/Momentum``) built: every backbone model variable comes from
    the file and none is left random (the check once counted the slots as backbone weights)."""
    shapes = model_zoo_keys(arch)
    path = str(tmp_path / "zoo.npz")
    np.savez(path, **{key: np.zeros(shape, np.float32) for key, shape in shapes.items()})
    spec = ModelSpec(arch=arch, method=method, num_classes=200, positions=positions,
                     ose_heads=("3x3", "1x3", "3x1"), use_bn=arch == "resnet")
    graph = shared_training_graph(spec)
    with graph.as_default():
        assert any(v.op.name == "conv0/W/Momentum" or v.op.name == "conv1_1/W/Momentum"
                   for v in tf.global_variables())
        init = NpzInit(path, arch)
        init._setup_graph()
    used, skipped, new = init.report
    backbone = {key for key in shapes if BACKBONE_KEYS[arch].fullmatch(key)}
    assert len(backbone) == {"resnet": 329, "vgg_gap": 26}[arch]
    assert set(used) == backbone and set(skipped) == set(shapes) - backbone
    assert not [name for name in new if BACKBONE_KEYS[arch].fullmatch(name) and not name.endswith("/Momentum")]
