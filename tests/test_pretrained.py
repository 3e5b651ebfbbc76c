"""npz / checkpoint loading by name, with clear errors."""
import functools

import numpy as np
import pytest

from conftest import build_model_graph
from models.spec import ModelSpec
from utils.compat import tf
from utils.training.pretrained import CheckpointInit, NpzInit, PretrainedWeightsError, model_zoo_url

SPEC = ModelSpec(arch="resnet", method="E2Net", num_classes=5, positions=("31", "41", "5"),
                 ose_heads=("3x3", "1x3", "3x1"), use_bn=True, image_size=32, width_multiplier=0.125)


def backbone_arrays(spec, seed):
    """Model-zoo-named arrays of a freshly initialised graph, plus an unused 'linear/W'
    (a fresh dict each call; the arrays are built once per spec and seed)."""
    return dict(_backbone_arrays(spec, seed))


@functools.lru_cache(maxsize=None)
def _backbone_arrays(spec, seed):
    graph, *_ = build_model_graph(spec, is_training=True)
    with graph.as_default(), tf.Session(graph=graph) as sess:
        tf.set_random_seed(seed)
        sess.run(tf.global_variables_initializer())
        variables = [v for v in tf.global_variables() if v.op.name.startswith(("conv0", "group"))]
        arrays = dict(zip([v.op.name for v in variables], sess.run(variables)))
    arrays["linear/W"] = np.zeros((8, 1000), np.float32)
    return arrays


def test_npz_round_trip_and_loading_table(tmp_path):
    arrays = backbone_arrays(SPEC, seed=1)
    path = str(tmp_path / "zoo.npz")
    np.savez(path, **arrays)
    graph, *_ = build_model_graph(SPEC, is_training=True)
    with graph.as_default(), tf.Session(graph=graph) as sess:
        init = NpzInit(path, "resnet")
        sess.run(tf.global_variables_initializer())
        init.init(sess)
        loaded = dict(zip([v.op.name for v in tf.global_variables()], sess.run(tf.global_variables())))
    used, skipped, new = init.report
    assert len(used) == 329 and skipped == ["linear/W"]
    assert "aware_31/W" in new and "linearnew_1x3/W" in new and "conv1x3/bn/gamma" in new
    for key in used:
        np.testing.assert_array_equal(loaded[key], arrays[key])
    assert any("/EMA" in key for key in used)


def test_npz_shape_mismatch_names_the_key(tmp_path):
    arrays = backbone_arrays(SPEC, seed=1)
    arrays["group1/block0/conv2/W"] = np.zeros((3, 3, 1, 1), np.float32)
    path = str(tmp_path / "bad.npz")
    np.savez(path, **arrays)
    graph, *_ = build_model_graph(SPEC, is_training=True)
    with graph.as_default(), tf.Session(graph=graph) as sess:
        with pytest.raises(PretrainedWeightsError, match="group1/block0/conv2/W"):
            NpzInit(path).init(sess)


def test_missing_npz_names_the_path_and_the_download_address(tmp_path):
    with pytest.raises(PretrainedWeightsError,
                       match="nowhere.npz .*http://models.tensorpack.com/ResNet/ImageNet-ResNet50-SE.npz"):
        NpzInit(str(tmp_path / "nowhere.npz"), "resnet")
    assert model_zoo_url("vgg_gap") == "http://models.tensorpack.com/Caffe-Converted/vgg16.npz"


def test_npz_lacking_backbone_keys_names_them(tmp_path):
    arrays = backbone_arrays(SPEC, seed=1)
    del arrays["group3/block2/conv3/W"], arrays["conv0/bn/gamma"]
    path = str(tmp_path / "partial.npz")
    np.savez(path, **arrays)
    graph, *_ = build_model_graph(SPEC, is_training=True)
    with graph.as_default(), tf.Session(graph=graph) as sess:
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
    graph, *_ = build_model_graph(SPEC, is_training=True)
    with graph.as_default(), tf.Session(graph=graph) as sess:
        sess.run(tf.global_variables_initializer())
        tf.train.Saver().save(sess, str(tmp_path / "model-1"))
    other, *_ = build_model_graph(SPEC.with_(num_classes=7), is_training=True)
    with other.as_default(), tf.Session(graph=other) as sess:
        with pytest.raises(PretrainedWeightsError, match="linearnew"):
            CheckpointInit(str(tmp_path / "model-1")).init(sess)
    same, *_ = build_model_graph(SPEC, is_training=True)
    with same.as_default(), tf.Session(graph=same) as sess:
        CheckpointInit(str(tmp_path / "model-1")).init(sess)
