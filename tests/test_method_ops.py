"""The training-time operations of HaS, CutMix, ACoL, SPG and FSL against hand-computed arrays
(fixed draws in place of the random ones), and ACoL's CAM rule in numpy and TensorFlow."""
import os

import numpy as np
import pytest
from tensorpack.tfutils.tower import TowerContext

from conftest import build_model_graph, new_session
from models.acol import acol_keep_mask
from models.cutmix import cutmix, cutmix_box, draw_cutmix
from models.fsl import pixel_bce
from models.has import hide_and_seek
from models.spg import MIN_FOREGROUND, masked_bce, spg_mask, upsample

pytestmark = pytest.mark.duration(20)  # seconds, for the scheduler (conftest.py)
from utils.compat import tf
from utils.evaluation.cam import fuse_heads, minmax_normalised
from utils.evaluation.export import fused_cam


def run(fn, *arrays, training=None, seed=None):
    """``fn(*constants)`` evaluated in a fresh graph (inside a TowerContext when ``training`` is set)."""
    with tf.Graph().as_default():
        if seed is not None:
            tf.set_random_seed(seed)
        tensors = [tf.constant(a) for a in arrays]
        if training is None:
            out = fn(*tensors)
        else:
            with TowerContext("", is_training=training):
                out = fn(*tensors)
        with new_session() as sess:
            return sess.run(out)


# --------------------------------------------------------------------------- HaS

IMAGE_6 = np.arange(2 * 6 * 6 * 2, dtype=np.float32).reshape(2, 6, 6, 2) + 1.0


FILL = [7.0, -2.0]   # the hidden cells' colour (the method passes the ImageNet mean colour in 0..255)


def test_has_hides_exactly_the_drawn_cells():
    """6x6 image, 4-pixel cells: a 2x2 grid whose last row/column of cells is 2 pixels wide."""
    hidden = np.array([[[True, False], [False, True]],
                       [[False, False], [True, False]]])
    out = run(lambda x, h: hide_and_seek(x, 4, 0.5, FILL, hidden=h), IMAGE_6, hidden)
    keep = np.ones((2, 6, 6, 1), np.float32)
    keep[0, :4, :4] = 0       # image 0, cell (0, 0): rows 0-3, columns 0-3
    keep[0, 4:, 4:] = 0       # image 0, cell (1, 1): rows 4-5, columns 4-5
    keep[1, 4:, :4] = 0       # image 1, cell (1, 0): rows 4-5, columns 0-3
    np.testing.assert_array_equal(out, IMAGE_6 * keep + np.array(FILL, np.float32) * (1 - keep))


def test_has_at_rate_1_hides_every_cell_and_grid_0_nothing():
    """uniform <= 1 always: every pixel takes the fill colour; grid 0 leaves the image."""
    np.testing.assert_array_equal(run(lambda x: hide_and_seek(x, 4, 1.0, FILL), IMAGE_6),
                                  np.broadcast_to(np.array(FILL, np.float32), IMAGE_6.shape))
    np.testing.assert_array_equal(run(lambda x: hide_and_seek(x, 0, 1.0, FILL), IMAGE_6), IMAGE_6)


def test_has_mean_colour_is_zero_after_the_normalisation_and_hiding_is_training_only():
    """The method fills with 255 x the ImageNet mean (BGR), i.e. 0 of the normalised image as in
    wsolevaluation; the inference graph has no HaS op, the training graph has."""
    from models.wsol_model import preprocess
    from models.spec import ModelSpec
    from models.methods.has import METHOD
    spec = ModelSpec(arch="vgg_gap", method="HaS", num_classes=3, image_size=32)
    images = np.full((1, 8, 8, 3), 200, np.uint8)
    hidden = run(lambda x: preprocess(METHOD.input_transform(spec.with_(options=(("has_grid_size", 4),
                                                                                  ("has_drop_rate", 1.0))),
                                                              x, tf.constant([0]))[0]), images)
    np.testing.assert_allclose(hidden, 0, atol=1e-6)
    for training in (True, False):
        graph = build_model_graph(spec.with_(width_multiplier=0.125), is_training=training)[0]
        assert any(op.name.startswith("has/") for op in graph.get_operations()) == training


# --------------------------------------------------------------------------- CutMix

def _draws(lam, centre, permutation=(1, 0), apply=True):
    return {"apply": tf.constant(apply), "lam": tf.constant(lam, tf.float32),
            "centre": tf.constant(centre, tf.int32), "permutation": tf.constant(permutation, tf.int32)}


@pytest.mark.parametrize("lam, centre, expected", [
    (0.75, (1, 6), [0, 4, 3, 8]),    # side floor(8 * 0.5) = 4, half 2: rows -1..3 -> 0..3, cols 4..8
    (0.0, (4, 4), [0, 0, 8, 8]),     # side 8: the whole image
    (0.5, (7, 0), [5, 0, 8, 2]),     # side floor(8 * 0.7071) = 5, half 2: rows 5..9 -> 5..8, cols -2..2 -> 0..2
    (1.0, (3, 3), [3, 3, 3, 3]),     # side 0: an empty box
])
def test_cutmix_box_is_clipped_around_the_centre(lam, centre, expected):
    box = run(lambda: cutmix_box(8, 8, tf.constant(lam), tf.constant(centre, tf.int32)))
    np.testing.assert_array_equal(box, expected)


def test_cutmix_pastes_the_permuted_images_and_weights_by_the_pasted_area(monkeypatch):
    """The method's transform with fixed draws: pasted pixels, and the cross-entropy of the
    targets = (1 - w) CE(label) + w CE(label[perm]), w the clipped box's area ratio."""
    from models import cutmix as cutmix_ops
    from models.methods.cutmix import METHOD
    from models.spec import ModelSpec
    from models.wsol_model import cross_entropy
    images = np.stack([np.zeros((8, 8, 1)), np.ones((8, 8, 1))]).astype(np.float32)
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]], np.float32)
    labels = np.array([0, 2], np.int32)
    monkeypatch.setattr(cutmix_ops, "draw_cutmix", lambda *args: _draws(0.75, (1, 6)))

    def graph(x, lg, lb):
        mixed, targets = METHOD.input_transform(ModelSpec(method="CutMix"), x, lb)
        weight = targets[1][1][0]
        return mixed, weight, cross_entropy(lg, lb, targets)

    mixed, weight, loss = run(graph, images, logits, labels)
    inside = np.zeros((8, 8, 1), np.float32)
    inside[0:3, 4:8] = 1
    np.testing.assert_array_equal(mixed[0], inside)          # image 0 gets image 1's pixels in the box
    np.testing.assert_array_equal(mixed[1], 1 - inside)      # and image 1 image 0's
    assert weight == pytest.approx(12 / 64)                  # the clipped box: 3 x 4 pixels

    def xentropy(targets):
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return -np.mean(log_p[np.arange(2), targets])
    assert loss == pytest.approx((1 - 12 / 64) * xentropy(labels) + 12 / 64 * xentropy(labels[[1, 0]]), rel=1e-6)


def test_cutmix_without_mixing_leaves_images_and_weight_zero():
    images = np.random.RandomState(0).rand(2, 8, 8, 3).astype(np.float32)
    mixed, weight = run(lambda x: cutmix(x, _draws(0.3, (4, 4), apply=False))[::2], images)
    np.testing.assert_array_equal(mixed, images)
    assert weight == 0


def test_cutmix_draws_lambda_from_beta_and_mixes_with_the_probability():
    def graph():
        draws = [draw_cutmix(4, 8, 8, 1.0, 1.0) for _ in range(400)]
        never = draw_cutmix(4, 8, 8, 1.0, 0.0)
        return ([d["lam"] for d in draws], [d["centre"] for d in draws], [d["apply"] for d in draws],
                never["apply"], draws[0]["permutation"])
    lams, centres, applied, never, permutation = run(graph, seed=1)
    lams = np.array(lams)
    assert ((lams > 0) & (lams < 1)).all() and abs(lams.mean() - 0.5) < 0.06   # Beta(1, 1): mean 1/2, std/sqrt(400) = 0.014
    assert np.array(centres).min() >= 0 and np.array(centres).max() <= 7
    assert all(applied) and not never
    assert sorted(permutation) == [0, 1, 2, 3]


# --------------------------------------------------------------------------- ACoL

def test_acol_erases_where_the_normalised_map_reaches_the_threshold():
    class_map = np.array([[[0.0, 1.0], [2.0, 4.0]],      # normalised [0 .25; .5 1]
                          [[3.0, 3.0], [3.0, 3.0]]],     # flat: nothing to erase
                         np.float32)
    keep = run(lambda m: acol_keep_mask(m, 0.5), class_map)
    np.testing.assert_array_equal(keep, [[[1, 1], [0, 0]], [[1, 1], [1, 1]]])
    keep = run(lambda m: acol_keep_mask(m, 0.7), class_map)
    np.testing.assert_array_equal(keep[0], [[1, 1], [1, 0]])


def test_acol_cam_is_the_max_of_the_normalised_branch_cams_in_numpy_and_tensorflow():
    """Branch CAMs (1x1 features, weights = the map values): A [0 2; 4 8] -> [0 .25; .5 1],
    B [3 1; 1 1] -> [1 0; 0 0]; fused [1 .25; .5 1]."""
    features_a = np.array([[[0.0], [2.0]], [[4.0], [8.0]]], np.float32)
    features_b = np.array([[[3.0], [1.0]], [[1.0], [1.0]]], np.float32)
    weights = np.array([[1.0, -1.0]], np.float32)                   # class 1 flips the sign
    expected = np.array([[1.0, 0.25], [0.5, 1.0]])
    np.testing.assert_allclose(fuse_heads([features_a, features_b], [weights, weights], 0, "max_normalised"), expected)
    batch = [np.stack([f, f]) for f in (features_a, features_b)]
    classes = np.array([0, 1], np.int32)
    numpy_cams = fuse_heads(batch, [weights, weights], classes, "max_normalised")
    tf_cams = run(lambda fa, fb, w, c: fused_cam([fa, fb], [w, w], c, "max_normalised"),
                  batch[0], batch[1], weights, classes)
    np.testing.assert_allclose(numpy_cams[0], expected)
    # class 1: -A -> [1 .75; .5 0], -B -> [0 1; 1 1]
    np.testing.assert_allclose(numpy_cams[1], [[1.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(tf_cams, numpy_cams, rtol=1e-6)


def test_minmax_normalised_flat_and_non_finite_maps_are_zero():
    cams = np.array([[[1.0, 1.0]], [[np.nan, 1.0]], [[1.0, 3.0]]])
    np.testing.assert_array_equal(minmax_normalised(cams), [[[0, 0]], [[0, 0]], [[0, 1]]])


# --------------------------------------------------------------------------- SPG

def _spg_attention():
    """Three 8x8 maps (64 pixels):
    0: 32 pixels 0.9, 16 pixels 0.3, 16 pixels 0.005  -> 32 pass 0.7: no fallback;
    1: 4 pixels 0.6, 10 pixels 0.5, 50 pixels 0.2      -> none pass 0.7: fallback > 0.7 * 0.6 = 0.42;
    2: 20 pixels 0.02, 44 pixels 0.004                 -> fallback > 0.014, but all are below low 0.05."""
    maps = np.zeros((3, 64), np.float32)
    maps[0, :32], maps[0, 32:48], maps[0, 48:] = 0.9, 0.3, 0.005
    maps[1, :4], maps[1, 4:14], maps[1, 14:] = 0.6, 0.5, 0.2
    maps[2, :20], maps[2, 20:] = 0.02, 0.004
    return maps.reshape(3, 8, 8)


def test_spg_masks_foreground_background_ignored_with_the_fallback():
    assert MIN_FOREGROUND == 30
    attention = _spg_attention()
    target, valid = run(lambda a: spg_mask(a, 0.7, 0.01), attention)
    flat_target, flat_valid = target.reshape(3, 64), valid.reshape(3, 64)
    # image 0: 0.9 foreground, 0.3 ignored, 0.005 background
    np.testing.assert_array_equal(flat_target[0], [1] * 32 + [0] * 32)
    np.testing.assert_array_equal(flat_valid[0], [1] * 32 + [0] * 16 + [1] * 16)
    # image 1: the fallback makes 0.6 and 0.5 foreground; 0.2 is ignored (not < 0.01)
    np.testing.assert_array_equal(flat_target[1], [1] * 14 + [0] * 50)
    np.testing.assert_array_equal(flat_valid[1], [1] * 14 + [0] * 50)
    # image 2 with low 0.05: the fallback's foreground (0.02 > 0.014) is overridden by background
    target, valid = run(lambda a: spg_mask(a, 0.7, 0.05), attention)
    np.testing.assert_array_equal(target[2], np.zeros((8, 8)))
    np.testing.assert_array_equal(valid[2], np.ones((8, 8)))
    np.testing.assert_array_equal(valid[0].reshape(64), [1] * 32 + [0] * 16 + [1] * 16)


def test_spg_fallback_starts_below_30_pixels():
    """29 pixels above high -> fallback (here to > 0.7 * 0.9 = 0.63, adding the 0.65 pixels);
    30 pixels -> the high threshold stands."""
    maps = np.full((2, 64), 0.65, np.float32)
    maps[0, :29] = 0.9
    maps[1, :30] = 0.9
    target, _ = run(lambda a: spg_mask(a, 0.7, 0.01), maps.reshape(2, 8, 8))
    assert target[0].sum() == 64 and target[1].sum() == 30


def test_spg_bce_averages_over_the_valid_pixels_only():
    logits = np.array([[[2.0, -1.0], [0.0, 5.0]]], np.float32)
    target = np.array([[[1.0, 0.0], [1.0, 0.0]]], np.float32)
    valid = np.array([[[1.0, 1.0], [1.0, 0.0]]], np.float32)
    expected = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(-1.0)), np.log(2.0)])
    assert run(masked_bce, logits, target, valid) == pytest.approx(expected, rel=1e-6)
    assert run(masked_bce, logits, target, 0 * valid) == 0


def test_upsample_matches_half_pixel_bilinear():
    """2 -> 4 with half-pixel centres: source coordinates -0.25, 0.25, 0.75, 1.25 clamp to
    weights r = [0, .25, .75, 1]; map [[0, 1], [2, 3]] -> 2 r_y + r_x."""
    r = np.array([0.0, 0.25, 0.75, 1.0])
    out = run(lambda m: upsample(m, 4), np.array([[[0.0, 1.0], [2.0, 3.0]]], np.float32))
    np.testing.assert_allclose(out[0], 2 * r[:, None] + r[None, :], rtol=1e-6)


# --------------------------------------------------------------------------- FSL

def test_fsl_pixel_bce_against_the_mask_at_input_size():
    """Logits 0 -> log 2 everywhere; logits +-3 on a 1x1 map upsample to a constant."""
    mask = np.zeros((1, 4, 4), np.float32)
    mask[0, :2] = 1
    assert run(pixel_bce, np.zeros((1, 2, 2), np.float32), mask) == pytest.approx(np.log(2.0), rel=1e-6)
    expected = np.mean([np.log1p(np.exp(-3.0))] * 8 + [np.log1p(np.exp(3.0))] * 8)
    assert run(pixel_bce, np.full((1, 1, 1), 3.0, np.float32), mask) == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------------------------------- FSL data

TINY = {"num_classes": 2, "num_train": 8, "num_val": 4, "num_fullsup_per_class": 3, "size": 48, "seed": 2}


def test_fsl_training_batches_carry_masks_cropped_and_flipped_like_the_image(data_dir, monkeypatch):
    """Every datapoint's mask is the stored mask through the image's own crop and flip, and only
    the masks of the listed (train_fullsup) images are opened."""
    import cv2
    from utils.data import dataflow
    from utils.data.masks import default_mask_dir, load_mask, mask_file, mask_in_crop, object_pixels
    from utils.data.paths import dataset_paths
    from utils.data.labels import read_label_list

    opened = []

    def recording_load_mask(path, expected_hw=None):
        opened.append(path)
        return load_mask(path, expected_hw)

    monkeypatch.setattr(dataflow, "load_mask", recording_load_mask)
    label_file, image_root = dataset_paths("SYNTH", str(data_dir), split="train_fullsup")
    mask_dir = default_mask_dir(str(data_dir), "SYNTH")
    source = dataflow.TrainSource(read_label_list(label_file), image_root, seed=0, mask_dir=mask_dir)
    source.reset_state()
    for datapoint in source:
        image, label, _, mask, _ = dataflow.map_train_image_and_mask(datapoint, 32)
        stored = cv2.imread(datapoint[-1], cv2.IMREAD_UNCHANGED)
        crop_x, crop_y, flip = datapoint[3:6]
        np.testing.assert_array_equal(mask, object_pixels(mask_in_crop(stored, 32, (crop_x, crop_y), flip)))
        assert mask.dtype == np.float32 and image.shape == (32, 32, 3)
    expected = {mask_file(mask_dir, e.path) for e in read_label_list(label_file)}
    assert set(opened) == expected and len(opened) == 6
    assert all(os.path.basename(p).startswith("train_fullsup_") for p in opened)


# --------------------------------------------------------------------------- ACoL / SPG graphs

def _tiny_spec(arch):
    from models.spec import ModelSpec
    return ModelSpec(arch=arch, method="CAM", num_classes=3, image_size=32, width_multiplier=8 / 1024)


@pytest.mark.parametrize("training", [True, False])
def test_acol_branch_b_reads_the_map_erased_by_a(training):
    """B's first convolution gets X x [normalised A-map of the class < threshold]; the class is
    the label in training and A's top-1 class at inference."""
    from models.acol import acol_heads
    x = np.random.RandomState(0).rand(2, 4, 4, 6).astype(np.float32)
    label = np.array([2, 0], np.int32)
    with tf.Graph().as_default() as graph:
        with TowerContext("", is_training=training):
            heads = acol_heads(tf.constant(x), _tiny_spec("resnet"), tf.constant(label) if training else None, 0.6)
        b_input = graph.get_operation_by_name("acol_b/conv1/Conv2D").inputs[0]
        with new_session() as sess:
            sess.run(tf.global_variables_initializer())
            features, logits, weights = sess.run(heads["A"])
            erased = sess.run(b_input)
    classes = label if training else logits.argmax(axis=1)
    cams = np.einsum("bhwc,cb->bhw", features, weights[:, classes])
    keep = minmax_normalised(cams) < 0.6
    assert 0 < keep.mean() < 1
    np.testing.assert_allclose(erased, x * keep[..., None], rtol=1e-6)


@pytest.mark.parametrize("arch, taps", [("vgg_gap", {"4": (4, 6), "53": (4, 6)}),
                                         ("resnet", {"31": (4, 10), "36": (4, 10)})])
def test_spg_branches_share_their_last_convolutions_and_give_finite_losses(arch, taps):
    from models.spg import spg_heads, spg_losses
    rng = np.random.RandomState(1)
    with tf.Graph().as_default():
        maps = {p: tf.constant(rng.rand(2, size, size, c).astype(np.float32)) for p, (size, c) in taps.items()}
        x = tf.constant(rng.rand(2, 4, 4, 6).astype(np.float32))
        with TowerContext("", is_training=True):
            heads, branches = spg_heads(x, *maps.values(), _tiny_spec(arch))
            features, _, weights = heads["3x3"]
            losses = spg_losses(features, weights, tf.constant([0, 1]), branches, ((0.7, 0.01), (0.5, 0.05), (0.7, 0.1)), 32)
        names = sorted(v.op.name for v in tf.trainable_variables())
        with new_session() as sess:
            sess.run(tf.global_variables_initializer())
            values = sess.run(losses)
    fc = "linear" if arch == "vgg_gap" else "linearnew"
    expected = ["spg_b1a/W", "spg_b1a/b", "spg_b2a/W", "spg_b2a/b", "spg_b_shared/conv/W", "spg_b_shared/conv/b",
                "spg_b_shared/out/W", "spg_b_shared/out/b", "spg_c/conv/W", "spg_c/conv/b", "spg_c/out/W", "spg_c/out/b",
                f"{fc}/W", f"{fc}/b"]
    if arch == "vgg_gap":
        expected += ["spg_a3_1/W", "spg_a3_1/b", "spg_a3_2/W", "spg_a3_2/b"]
    assert names == sorted(expected)
    assert all(np.isfinite(v) and v > 0 for v in values.values())
