"""The project's own model zoo: the pretraining corpus, ``utils.pretrain`` and the committed files."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, SHARED, new_session, shared_model_graph
from models.spec import ModelSpec
from utils.data import pretrain_corpus, synthetic
from utils.pretrain import BACKBONE_NAMES, ZOO_DIR, backbone_arrays, card_file, zoo_file

pytestmark = pytest.mark.duration(30)  # seconds, for the scheduler (conftest.py)

MODEL_ZOO_KEY_FILES = {"resnet": "model_zoo_keys_resnet50_se.txt", "vgg_gap": "model_zoo_keys_vgg16.txt"}
FIRST_LAYERS = ("conv0/W", "conv1_1/W")


def model_zoo_shapes(arch, width):
    """{key: shape} of the real model-zoo file of ``arch`` without the classifier (``linear``),
    every channel count scaled by ``width`` as ModelSpec.channels does (kernels and RGB kept)."""
    path = os.path.join(SHARED, "ref", MODEL_ZOO_KEY_FILES[arch])
    if not os.path.isfile(path):
        pytest.skip(f"{path} (the model-zoo key lists) is not beside the checkout")
    shapes = {}
    with open(path) as f:
        for key, shape in (line.rstrip("\n").split("\t") for line in f):
            if key.startswith("linear/"):
                continue
            shape = json.loads(shape)
            kept = {0, 1} | ({2} if key in FIRST_LAYERS else set()) if len(shape) == 4 else set()
            shapes[key] = tuple(d if i in kept else max(1, int(round(d * width))) for i, d in enumerate(shape))
    return shapes


# --------------------------------------------------------------------------- corpus

def test_corpus_has_many_classes_disjoint_from_synth_heads():
    classes = pretrain_corpus.classes(4)
    assert len(classes) == 128 == len(set(classes))
    assert not {shape for shape, _, _ in classes} & set(synthetic.HEAD_SHAPES)
    names = [pretrain_corpus.class_dir_name(i, 4) for i in range(len(classes))]
    assert len(set(names)) == len(names) and names[5] == "005.hexagon_stripes_h045"


def test_corpus_images_are_deterministic_with_the_object_inside():
    for label in (0, 37, 127):
        a, box_a = pretrain_corpus.render(pretrain_corpus.sample_rng(1, "val", label), label, 4, 96)
        b, box_b = pretrain_corpus.render(pretrain_corpus.sample_rng(1, "val", label), label, 4, 96)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(box_a, box_b)
        assert a.shape == (96, 96, 3) and 0 <= box_a.min() and box_a.max() <= 95
        side = max(box_a[2] - box_a[0], box_a[3] - box_a[1]) + 1
        assert 0.2 * 96 <= side <= 0.9 * 96   # scale 0.3-0.6 of the side, stretched and rotated


def test_corpus_is_generated_once_per_parameters(tmp_path):
    params = dict(hues=1, num_train_per_class=1, num_val_per_class=1, size=48)
    record, generated = pretrain_corpus.ensure(str(tmp_path), workers=1, **params)
    assert generated and record["num_classes"] == 32
    with open(tmp_path / "train.txt") as f:
        assert len(f.readlines()) == 32
    assert pretrain_corpus.ensure(str(tmp_path), workers=1, **params) == (record, False)
    assert pretrain_corpus.ensure(str(tmp_path), workers=1, **dict(params, seed=5))[1]


# --------------------------------------------------------------------------- utils.pretrain

@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    """``python -m utils.pretrain --tiny`` (ResNet50-SE, width 0.25, 2 steps): its npz path."""
    root = tmp_path_factory.mktemp("pretrain")
    result = subprocess.run([sys.executable, "-m", "utils.pretrain", "--tiny", "--workers", "0",
                             "--data_dir", str(root / "data"), "--log_dir", str(root / "run"), "--out", str(root / "zoo")],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return zoo_file("resnet", 0.25, str(root / "zoo"))


def test_tiny_pretraining_writes_a_model_zoo_file_and_its_card(tiny_zoo):
    with np.load(tiny_zoo) as npz:
        shapes = {key: npz[key].shape for key in npz.files}
    assert shapes == model_zoo_shapes("resnet", 0.25)
    with open(card_file(tiny_zoo)) as f:
        card = json.load(f)
    with open(tiny_zoo, "rb") as f:
        assert card["sha256"] == hashlib.sha256(f.read()).hexdigest()
    assert card["keys"] == 329 and card["backbone"] == "resnet" and card["width_multiplier"] == 0.25
    assert card["corpus"]["num_classes"] == 128 and 0 <= card["pretraining_val_top1"] <= 100
    assert "--method_name" in card["recipe"]["train_py_flags"]


def load_into(path, spec):
    from utils.compat import tf
    from utils.training.pretrained import NpzInit
    graph = shared_model_graph(spec)
    with graph.as_default(), new_session(graph) as sess:
        init = NpzInit(path, spec.arch)
        init.init(sess)
        uninitialised = {name.decode() for name in sess.run(tf.report_uninitialized_variables())}
    return init.report, uninitialised


RESNET_CAM = ModelSpec(arch="resnet", method="CAM", num_classes=10, image_size=32, width_multiplier=0.25)


def test_a_file_of_another_width_or_backbone_is_one_line_naming_both(tiny_zoo):
    from utils.training.pretrained import PretrainedWeightsError
    with pytest.raises(PretrainedWeightsError) as caught:
        load_into(tiny_zoo, RESNET_CAM.with_(width_multiplier=0.125))
    assert str(caught.value) == (f"{tiny_zoo} holds a resnet backbone of width 0.25 (conv0/W: 16 channels), but the "
                                 f"graph has --width_multiplier 0.125 (8 channels); use a file of width 0.125 or "
                                 f"--width_multiplier 0.25")
    with pytest.raises(PretrainedWeightsError) as caught:
        load_into(tiny_zoo, ModelSpec(arch="vgg_gap", method="CAM", num_classes=10, image_size=32, width_multiplier=0.25))
    assert str(caught.value) == (f"{tiny_zoo} holds a resnet backbone (conv0/W), but the graph is --arch_name vgg_gap; "
                                 f"use the vgg_gap file")


def test_vgg_export_takes_exactly_the_model_zoo_keys_from_a_checkpoint(tmp_path):
    from utils.compat import tf
    spec = ModelSpec(arch="vgg_gap", method="CAM", num_classes=7, image_size=32, width_multiplier=0.25)
    graph = shared_model_graph(spec)
    with graph.as_default(), new_session(graph) as sess:
        sess.run(tf.global_variables_initializer())
        tf.train.Saver().save(sess, str(tmp_path / "model-1"))
        expected = sess.run(next(v for v in tf.global_variables() if v.op.name == "conv5_3/W"))
    arrays = backbone_arrays(spec, str(tmp_path / "model-1"))
    assert {k: v.shape for k, v in arrays.items()} == model_zoo_shapes("vgg_gap", 0.25)
    np.testing.assert_array_equal(arrays["conv5_3/W"], expected)


# --------------------------------------------------------------------------- the committed files

@pytest.mark.parametrize("arch", ["resnet", "vgg_gap"])
def test_committed_file_has_the_model_zoo_keys_and_fills_every_backbone_variable(arch):
    path = zoo_file(arch, 0.25)
    assert os.path.dirname(path) == ZOO_DIR and BACKBONE_NAMES[arch] in os.path.basename(path)
    with np.load(path) as npz:
        assert {key: npz[key].shape for key in npz.files} == model_zoo_shapes(arch, 0.25)
    with open(card_file(path)) as f:
        card = json.load(f)
    with open(path, "rb") as f:
        assert card["sha256"] == hashlib.sha256(f.read()).hexdigest()
    spec = (RESNET_CAM if arch == "resnet" else
            ModelSpec(arch="vgg_gap", method="CAM", num_classes=10, image_size=32, width_multiplier=0.25))
    (used, skipped, new), uninitialised = load_into(path, spec)
    assert len(used) == len(model_zoo_shapes(arch, 0.25)) and not skipped
    assert not any(name.startswith(("conv", "group")) for name in new)   # only the new classifier is random
    assert not {name for name in uninitialised if name.startswith(("conv", "group"))}


FINE_TUNE_SYNTH = dict(num_classes=10, num_train=320, num_val=100, size=96, seed=4)
FINE_TUNE_MARGIN = 15.0   # points of val Top-1 Cls (measured 50 vs 24: docs/pretraining.md)


def short_run_val_top1(data_dir, log_dir, *extra):
    """Val top-1 (%) after a short CAM run on SYNTH (ResNet50-SE, width 0.25, 64 px crops, seed 0)."""
    cmd = [sys.executable, os.path.join(REPO, "train.py"), "--dataset_name", "SYNTH", "--data_dir", str(data_dir),
           "--arch_name", "resnet", "--method_name", "CAM", "--final_size", "64", "--width_multiplier", "0.25",
           "--batch", "32", "--epoch", "2", "--steps_per_epoch", "10", "--base_lr", "0.01", "--workers", "0",
           "--seed", "0", "--number_of_examples", "0", "--number_of_val", "100", "--log_dir", str(log_dir), *extra]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(log_dir, "stats.json")) as f:
        return 100.0 * (1.0 - json.load(f)[-1]["val-error-top1"])


def test_fine_tuning_from_the_committed_resnet_file_beats_the_same_steps_from_scratch(tmp_path):
    """The weights carry features, not only names: 20 steps of the released fine-tuning recipe
    (x0.1 on the pretrained layers) against the same 20 steps from scratch, same seed."""
    synthetic.ensure_synthetic(str(tmp_path / "SYNTH"), workers=1, **FINE_TUNE_SYNTH)
    scratch = short_run_val_top1(tmp_path, tmp_path / "scratch")
    pretrained = short_run_val_top1(tmp_path, tmp_path / "pretrained", "--pretrained", zoo_file("resnet", 0.25))
    assert pretrained >= scratch + FINE_TUNE_MARGIN, (pretrained, scratch)
