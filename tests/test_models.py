"""Graphs: parameter counts, model-zoo names, NHWC/NCHW equality, one training step."""
import numpy as np
import pytest

from conftest import build_model_graph, new_session, shared_model_graph
from models.spec import ModelSpec
from utils.compat import tf

pytestmark = pytest.mark.duration(150)  # seconds, for the scheduler (conftest.py)

RELEASED_HEADS = ("3x3", "1x3", "3x1")


def trainable_count(graph):
    with graph.as_default():
        return sum(int(np.prod(v.shape.as_list())) for v in tf.trainable_variables())


@pytest.mark.parametrize("kwargs, expected", [
    (dict(arch="vgg_gap", method="E2Net", num_classes=200, positions=("3", "4", "53"),
          ose_heads=RELEASED_HEADS), 31_653_528),
    (dict(arch="vgg_gap", method="E2Net", num_classes=1000, positions=("3", "4", "53"),
          ose_heads=RELEASED_HEADS), 34_113_528),
    (dict(arch="resnet", method="E2Net", num_classes=1000, positions=("31", "41", "5"),
          ose_heads=RELEASED_HEADS, use_bn=True), 66_802_344),
    (dict(arch="resnet", method="E2Net", num_classes=200, positions=("31", "41", "5"),
          ose_heads=RELEASED_HEADS, use_bn=True), 61_884_744),
    (dict(arch="resnet", method="E2Net", num_classes=1000, positions=("31", "41", "5"),
          ose_heads=RELEASED_HEADS), 66_794_152),
    (dict(arch="vgg_gap", method="CAM", num_classes=200), 19_639_304),
    (dict(arch="resnet", method="CAM", num_classes=1000), 28_088_024),
])
def test_trainable_parameter_counts_match_released_graphs(kwargs, expected):
    graph = shared_model_graph(ModelSpec(**kwargs))
    assert trainable_count(graph) == expected


def test_resnet_e2net_with_bn_has_110_ema_variables():
    spec = ModelSpec(arch="resnet", method="E2Net", num_classes=10, positions=("31", "41", "5"),
                     ose_heads=RELEASED_HEADS, use_bn=True, width_multiplier=0.125, image_size=64)
    graph, *_ = build_model_graph(spec, is_training=True)
    with graph.as_default():
        assert len([v for v in tf.global_variables() if v.op.name.endswith("/EMA")]) == 110


def vgg_zoo_keys():
    """The 26 conv keys of tensorpack's vgg16.npz with their shapes."""
    widths = [(1, (64, 64)), (2, (128, 128)), (3, (256,) * 3), (4, (512,) * 3), (5, (512,) * 3)]
    keys, in_ch = {}, 3
    for block, outs in widths:
        for i, out in enumerate(outs, start=1):
            keys[f"conv{block}_{i}/W"] = (3, 3, in_ch, out)
            keys[f"conv{block}_{i}/b"] = (out,)
            in_ch = out
    return keys


def resnet_se_zoo_keys():
    """The 329 used keys of ImageNet-ResNet50-SE.npz (all but linear/W, linear/b)."""
    def conv_bn(prefix, shape):
        out = shape[-1]
        return {f"{prefix}/W": shape, f"{prefix}/bn/gamma": (out,), f"{prefix}/bn/beta": (out,),
                f"{prefix}/bn/mean/EMA": (out,), f"{prefix}/bn/variance/EMA": (out,)}

    keys = conv_bn("conv0", (7, 7, 3, 64))
    in_ch = 64
    for g, (count, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))):
        for b in range(count):
            p = f"group{g}/block{b}"
            keys.update(conv_bn(f"{p}/conv1", (1, 1, in_ch, width)))
            keys.update(conv_bn(f"{p}/conv2", (3, 3, width, width)))
            keys.update(conv_bn(f"{p}/conv3", (1, 1, width, width * 4)))
            keys.update({f"{p}/fc1/W": (width * 4, width // 4), f"{p}/fc1/b": (width // 4,),
                         f"{p}/fc2/W": (width // 4, width * 4), f"{p}/fc2/b": (width * 4,)})
            if b == 0:
                keys.update(conv_bn(f"{p}/convshortcut", (1, 1, in_ch, width * 4)))
            in_ch = width * 4
    return keys


def graph_variable_shapes(graph):
    with graph.as_default():
        return {v.op.name: tuple(v.shape.as_list()) for v in tf.global_variables()}


@pytest.mark.parametrize("arch, zoo_keys, count", [("vgg_gap", vgg_zoo_keys, 26),
                                                   ("resnet", resnet_se_zoo_keys, 329)])
def test_backbone_variables_equal_model_zoo_keys(arch, zoo_keys, count):
    shapes = graph_variable_shapes(shared_model_graph(ModelSpec(arch=arch, method="CAM", num_classes=1000)))
    expected = zoo_keys()
    assert len(expected) == count
    for key, shape in expected.items():
        assert shapes.get(key) == shape, key
    backbone_prefixes = ("conv", "group")
    extra = {k for k in shapes if k.startswith(backbone_prefixes)} - set(expected)
    assert extra == set()


def test_e2net_new_variable_names_follow_the_release():
    spec = ModelSpec(arch="vgg_gap", method="E2Net", num_classes=5, positions=("3", "4", "53"),
                     ose_heads=RELEASED_HEADS, width_multiplier=0.125, image_size=32)
    shapes = graph_variable_shapes(build_model_graph(spec, is_training=True)[0])
    for name in ("aware_3/W", "aware_4/W", "aware_53/b", "new/W", "conv1x3/W", "new1x3/W",
                 "conv3x1/W", "new3x1/W", "linear/W", "1x3_linear/W", "3x1_linear/b"):
        assert name in shapes, name
    assert shapes["conv1x3/W"] == (1, 3, 64, 64) and shapes["conv3x1/W"] == (3, 1, 64, 64)


def copy_variables(src_graph, src_sess, dst_graph, dst_sess):
    """Every variable's value from one session into the same-named variables of another
    (one run each way: a session run per variable is slow)."""
    with src_graph.as_default():
        variables = tf.global_variables()
        values = dict(zip([v.op.name for v in variables], src_sess.run(variables)))
    with dst_graph.as_default():
        variables = tf.global_variables()
        dst_sess.run([v.initializer for v in variables],
                     {v.initializer.inputs[1]: values[v.op.name] for v in variables})


def init_session(graph, seed=0):
    with graph.as_default():
        tf.set_random_seed(seed)
        sess = new_session(graph)
        sess.run(tf.global_variables_initializer())
    return sess


@pytest.mark.parametrize("arch, positions", [("vgg_gap", ("3", "4", "53")), ("resnet", ("31", "41", "5"))])
def test_nhwc_and_nchw_give_the_same_logits(arch, positions):
    kwargs = dict(arch=arch, method="E2Net", num_classes=7, positions=positions, image_size=64,
                  width_multiplier=0.125, ose_heads=RELEASED_HEADS + ("diag", "antidiag"),
                  mae_mask="max", use_bn=arch == "resnet")
    images = np.random.RandomState(0).randint(0, 256, (2, 64, 64, 3)).astype(np.uint8)
    logits = {}
    sessions = {}
    for fmt in ("NHWC", "NCHW"):
        graph, _, inputs, _ = build_model_graph(ModelSpec(data_format=fmt, **kwargs), is_training=False)
        sess = init_session(graph)
        if fmt == "NCHW":
            copy_variables(*sessions["NHWC"], graph, sess)
        sessions[fmt] = (graph, sess)
        fetches = [graph.get_tensor_by_name(n) for n in ("logits:0", "features_1x3:0", "fc_weights_diag:0")]
        logits[fmt] = sess.run(fetches, {inputs[0]: images})
    for a, b in zip(logits["NHWC"], logits["NCHW"]):
        # float32 round-off of other convolution kernels, relative to the largest value (a layout
        # bug gives differences of the values' own size)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(b).max())))
    assert logits["NHWC"][1].shape[:3] == (2, 4, 4)  # features exported in NHWC


@pytest.mark.parametrize("arch", ["vgg_gap", "resnet"])
@pytest.mark.parametrize("method, size", [("ADL", 112), ("E2Net", 224)])
def test_one_full_width_training_step_is_finite(arch, method, size):
    """Full width, 200 classes; E2Net (the largest graph, a superset of CAM's) at the published
    224 px, ADL (its drop masks) at 112."""
    positions = {"vgg_gap": ("3", "4", "53"), "resnet": ("31", "41", "5")}[arch]
    spec = ModelSpec(arch=arch, method=method, num_classes=200, image_size=size,
                     positions=positions,
                     ose_heads=RELEASED_HEADS if method == "E2Net" else ("3x3",),
                     use_bn=arch == "resnet" and method == "E2Net")
    graph, model, inputs, cost = build_model_graph(spec, is_training=True)
    with graph.as_default():
        train_op = model.optimizer().minimize(cost)
        sess = init_session(graph)
    rng = np.random.RandomState(1)
    feed = {inputs[0]: rng.randint(0, 256, (2, size, size, 3)).astype(np.uint8),
            inputs[1]: np.array([3, 150], np.int32),
            inputs[2]: np.zeros((2, 2, 2), np.float32)}
    loss_before, _ = sess.run([cost, train_op], feed)
    loss_after = sess.run(cost, feed)
    assert np.isfinite(loss_before) and np.isfinite(loss_after)


def test_invalid_position_and_combinations_are_clear_errors():
    from models.wsol_model import WSOLModel
    with pytest.raises(ValueError, match="no insertion position"):
        WSOLModel(ModelSpec(arch="vgg_gap", method="MAE", positions=("5",)))
    with pytest.raises(ValueError, match="single localization head"):
        ModelSpec(method="CAM", ose_heads=RELEASED_HEADS).validate()
    with pytest.raises(ValueError, match="multiple of 16"):
        ModelSpec(method="CAM", image_size=100).validate()


@pytest.mark.parametrize("grad_scale, clip_norm", [(0.1, 0.0), (1.0, 0.05), (0.1, 0.05)])
def test_optimizer_scales_pretrained_gradients_then_clips_the_global_norm(grad_scale, clip_norm):
    """First Nesterov step (momentum 0.9): delta = -lr * 1.9 * g', where g' is the gradient
    scaled by 0.1 on the model-zoo layers (conv*) and then clipped to the global norm."""
    lr = 0.1
    spec = ModelSpec(arch="vgg_gap", method="CAM", num_classes=4, image_size=32, width_multiplier=0.125,
                     base_lr=lr, pretrained_grad_scale=grad_scale, gradient_clip_norm=clip_norm)
    graph, model, inputs, cost = build_model_graph(spec, is_training=True)
    with graph.as_default():
        variables = tf.trainable_variables()
        raw_grads = tf.gradients(cost, variables)
        train_op = model.optimizer().minimize(cost)
        sess = init_session(graph)
    rng = np.random.RandomState(2)
    feed = {inputs[0]: rng.randint(0, 256, (4, 32, 32, 3)).astype(np.uint8),
            inputs[1]: np.array([0, 1, 2, 3], np.int32), inputs[2]: np.zeros((4, 2, 2), np.float32)}
    before, grads = sess.run([variables, raw_grads], feed)
    sess.run(train_op, feed)
    after = sess.run(variables)
    expected = [g * (grad_scale if v.op.name.startswith("conv") else 1.0) for v, g in zip(variables, grads)]
    if clip_norm:
        norm = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in expected))
        assert norm > clip_norm  # the clip is active
        expected = [g * clip_norm / norm for g in expected]
    for v, b, a, e in zip(variables, before, after, expected):
        np.testing.assert_allclose(a - b, -lr * 1.9 * e, rtol=2e-3, atol=1e-7, err_msg=v.op.name)
