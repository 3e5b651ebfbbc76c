"""The two published E2Net graphs against the released code's variable lists
(``../shared/ref/released_variables_*.txt``), line by line, and the released gradient rule."""
import os

import numpy as np
import pytest

from conftest import build_model_graph, new_session, shared_model_graph
from models.spec import ModelSpec
from utils.compat import tf

pytestmark = pytest.mark.duration(20)  # seconds, for the scheduler (conftest.py)

RELEASED = {
    "released_variables_vgg_gap_E2Net_200.txt":
        ModelSpec(arch="vgg_gap", method="E2Net", num_classes=200, positions=("3", "4", "53"),
                  ose_heads=("3x3", "1x3", "3x1")),
    "released_variables_resnet50_se_E2Net_bn_1000.txt":
        ModelSpec(arch="resnet", method="E2Net", num_classes=1000, positions=("31", "41", "5"),
                  ose_heads=("3x3", "1x3", "3x1"), use_bn=True, weight_decay=1e-4),
}


def read_released_list(path):
    """(trainable [(name, shape)], non-trainable [(name, shape)]) in the file's order."""
    trainable, non_trainable = [], []
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if fields[0].startswith("NONTRAINABLE "):
                non_trainable.append((fields[0].split(" ", 1)[1], fields[1]))
            else:
                assert int(fields[2]) == int(np.prod(eval(fields[1]))), line
                trainable.append((fields[0], fields[1]))
    return trainable, non_trainable


def graph_lists(graph):
    with graph.as_default():
        trainable = [(v.op.name, str(v.shape.as_list())) for v in tf.trainable_variables()]
        names = {name for name, _ in trainable}
        non_trainable = [(v.op.name, str(v.shape.as_list())) for v in tf.global_variables()
                         if v.op.name not in names]
    return trainable, non_trainable


@pytest.mark.parametrize("file_name", sorted(RELEASED))
def test_every_variable_equals_the_released_list_line_by_line(shared_dir, file_name):
    want_trainable, want_non_trainable = read_released_list(os.path.join(shared_dir, "ref", file_name))
    got_trainable, got_non_trainable = graph_lists(shared_model_graph(RELEASED[file_name]))
    assert len(got_trainable) == len(want_trainable)
    for got, want in zip(got_trainable, want_trainable):
        assert got == want
    assert got_non_trainable == want_non_trainable


def scaled_variables(spec):
    """Names of the variables whose gradient the model's optimizer multiplies by 0.1, and the
    names of all trainable variables."""
    graph, model, _, _ = build_model_graph(spec, is_training=True)
    with graph.as_default():
        variables = tf.trainable_variables()
        grads_and_vars = [(tf.ones_like(v), v) for v in variables]
        for processor in model.gradient_processors():
            grads_and_vars = processor.process(grads_and_vars)
        with new_session() as sess:
            firsts = sess.run([tf.reshape(g, [-1])[0] for g, _ in grads_and_vars])
    scale = dict(zip([v.op.name for _, v in grads_and_vars], firsts))
    assert all(np.isclose(value, 0.1) or np.isclose(value, 1.0) for value in scale.values())
    return sorted(name for name, value in scale.items() if np.isclose(value, 0.1)), list(scale)


def small(spec):
    return spec.with_(width_multiplier=0.0625, image_size=32, num_classes=5)


def test_resnet_pretrained_gradient_rule_covers_conv0_groups_0_to_2_and_aware_31():
    spec = small(RELEASED["released_variables_resnet50_se_E2Net_bn_1000.txt"])
    names, trainable = scaled_variables(spec)
    expected = sorted(n for n in trainable if n.startswith(("conv0/", "group0/", "group1/", "group2/")))
    assert names == expected
    assert "group2/block0/aware_31/W" in names and "group3/block0/aware_41/W" not in names
    assert "aware_5/W" not in names and "conv1x3/W" not in names


def test_vgg_pretrained_gradient_rule_covers_every_conv_including_the_ose_convolutions():
    spec = small(RELEASED["released_variables_vgg_gap_E2Net_200.txt"])
    names, _ = scaled_variables(spec)
    expected = sorted([f"conv{b}_{i}/{p}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
                       for i in range(1, n + 1) for p in ("W", "b")] +
                      [f"conv{h}/{p}" for h in ("1x3", "3x1") for p in ("W", "b")])
    assert names == expected


def test_without_pretrained_weights_no_gradient_is_scaled():
    spec = small(RELEASED["released_variables_vgg_gap_E2Net_200.txt"]).with_(pretrained_grad_scale=1.0)
    assert scaled_variables(spec)[0] == []
