"""MAE, ADL and OSE numerics against hand-computed arrays."""
import numpy as np
import pytest
from tensorpack.tfutils.tower import TowerContext

from conftest import build_model_graph, new_session
from models.adl import adl_maps, attention_based_dropout
from models.mae import mae_keep_mask, maxout_attention_excitation
from models.ose import diagonal_placement
from models.spec import ModelSpec
from utils.compat import tf

# One image, 2x2 positions, 2 channels; channel means A = [[1, 2], [3, 4]].
X = np.array([[[[0.0, 2.0], [1.0, 3.0]],
               [[2.0, 4.0], [5.0, 3.0]]]], np.float32)
ATTENTION = np.array([[1.0, 2.0], [3.0, 4.0]])


def run(fn, *arrays):
    with tf.Graph().as_default():
        tensors = [tf.constant(a) for a in arrays]
        out = fn(*tensors)
        with new_session() as sess:
            sess.run(tf.global_variables_initializer())
            return sess.run(out)


@pytest.mark.parametrize("rule, threshold, expected_keep", [
    ("sum", 0.25, [[1, 1], [0, 0]]),   # A / sum(A) = [.1 .2; .3 .4] < .25
    ("sum", 0.5, [[1, 1], [1, 1]]),    # released theta: nothing is erased
    ("max", 0.6, [[1, 1], [0, 0]]),    # A < 0.6 * 4 = 2.4
    ("max", 0.5, [[1, 0], [0, 0]]),    # A < 2
])
def test_mae_keep_mask(rule, threshold, expected_keep):
    keep = run(lambda x: mae_keep_mask(x, threshold, rule), X)
    np.testing.assert_array_equal(keep[0, :, :, 0], expected_keep)


def test_mae_output_is_maxout_of_features_and_excitation():
    """With an identity 1x1 conv and bias -1: A^e = relu(X*M - 1); out = max(X, A^e)."""
    x = X * np.array([1.0, -1.0], np.float32)  # a negative channel, so the maxout matters

    with tf.Graph().as_default(), new_session() as sess:
        out = maxout_attention_excitation("aware_t", tf.constant(x), threshold=0.6, mask_rule="max")
        with tf.variable_scope("aware_t", reuse=True):
            weights, bias = tf.get_variable("W"), tf.get_variable("b")
        sess.run(tf.global_variables_initializer())
        weights.load(np.eye(2, dtype=np.float32).reshape(1, 1, 2, 2), sess)
        bias.load([-1.0, -1.0], sess)
        result = sess.run(out)
    keep = np.array([[1, 1], [0, 0]], np.float32)[None, :, :, None]
    expected = np.maximum(x, np.maximum(x * keep - 1.0, 0.0))
    np.testing.assert_allclose(result, expected, rtol=1e-6)


def test_adl_maps_and_choice():
    drop, importance = run(lambda x: adl_maps(x, 0.6), X)
    np.testing.assert_array_equal(drop[0, :, :, 0], [[1, 1], [0, 0]])
    np.testing.assert_allclose(importance[0, :, :, 0], 1 / (1 + np.exp(-ATTENTION)), rtol=1e-6)
    for choose, selected in ((True, 1 / (1 + np.exp(-ATTENTION))), (False, np.array([[1, 1], [0, 0]]))):
        with tf.Graph().as_default(), TowerContext("", is_training=True):
            out = attention_based_dropout("adl", tf.constant(X), 0.6, 0.25, tf.constant(choose))
            with new_session() as sess:
                np.testing.assert_allclose(sess.run(out), X * selected[None, :, :, None], rtol=1e-6)


def test_adl_is_identity_at_inference():
    with tf.Graph().as_default(), TowerContext("", is_training=False):
        out = attention_based_dropout("adl", tf.constant(X), 0.6, 0.25)
        with new_session() as sess:
            np.testing.assert_array_equal(sess.run(out), X)


def small_spec(method, **kw):
    base = dict(arch="vgg_gap", method=method, num_classes=4, image_size=32, width_multiplier=0.125,
                positions=("3", "4", "53") if method != "CAM" else ())
    base.update(kw)
    return ModelSpec(**base)


def inference_logits(spec, values, images):
    graph, _, inputs, _ = build_model_graph(spec, is_training=False)
    with graph.as_default(), new_session(graph) as sess:
        sess.run(tf.global_variables_initializer())
        shared = [v for v in tf.global_variables() if v.op.name in values]
        sess.run([v.initializer for v in shared], {v.initializer.inputs[1]: values[v.op.name] for v in shared})
        variables = tf.global_variables()
        own = dict(zip([v.op.name for v in variables], sess.run(variables)))
        return sess.run("logits:0", {inputs[0]: images}), own


def test_mae_changes_inference_outputs_and_adl_does_not():
    images = np.random.RandomState(0).randint(0, 256, (2, 64, 64, 3)).astype(np.uint8)
    cam_logits, cam_values = inference_logits(small_spec("CAM", image_size=64), {}, images)
    adl_logits, _ = inference_logits(small_spec("ADL", image_size=64), cam_values, images)
    np.testing.assert_array_equal(adl_logits, cam_logits)
    mae_logits, _ = inference_logits(small_spec("MAE", image_size=64, mae_mask="max", mae_threshold=0.9),
                                     cam_values, images)
    assert np.abs(mae_logits - cam_logits).max() > 1e-3 * np.abs(cam_logits).max(), (mae_logits, cam_logits)


def test_diagonal_placement():
    diag = diagonal_placement("diag").sum(axis=0)
    anti = diagonal_placement("antidiag").sum(axis=0)
    np.testing.assert_array_equal(diag, np.eye(3))
    np.testing.assert_array_equal(anti, np.fliplr(np.eye(3)))


def test_oblique_kernels_keep_exact_zeros_through_training():
    spec = small_spec("OSE", ose_heads=("3x3", "diag", "antidiag"), positions=())
    graph, model, inputs, cost = build_model_graph(spec, is_training=True)
    rng = np.random.RandomState(0)
    with graph.as_default(), new_session(graph) as sess:
        train_op = model.optimizer().minimize(cost)
        sess.run(tf.global_variables_initializer())
        kernels = [graph.get_tensor_by_name(f"conv_{h}/kernel:0") for h in ("diag", "antidiag")]
        before = sess.run(kernels)
        for _ in range(3):
            sess.run(train_op, {inputs[0]: rng.randint(0, 256, (4, 32, 32, 3)).astype(np.uint8),
                                inputs[1]: rng.randint(0, 4, 4).astype(np.int32),
                                inputs[2]: np.zeros((4, 2, 2), np.float32)})
        after = sess.run(kernels)
    for head, k0, k1 in zip(("diag", "antidiag"), before, after):
        on = diagonal_placement(head).sum(axis=0).astype(bool)
        assert np.all(k1[~on] == 0.0)
        assert np.abs(k1[on] - k0[on]).max() > 0  # the diagonal taps did train
