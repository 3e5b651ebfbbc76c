"""CAM of GAP+FC heads and head fusion, against hand-computed arrays."""
import numpy as np
import pytest

from utils.evaluation.cam import (class_activation_map, class_activation_maps, fuse_heads, fusion_rule,
                       released_fusion_rule)

# Head 1: channels [[1,2],[3,4]] and [[0,1],[0,1]]; FC weights [C=2, K=2].
FEATURES_1 = np.stack([[[1, 2], [3, 4]], [[0, 1], [0, 1]]], axis=-1).astype(np.float64)
WEIGHTS_1 = np.array([[1.0, 0.5], [2.0, -1.0]])
# Head 2: channels [[2,0],[1,5]] and [[1,1],[1,0]].
FEATURES_2 = np.stack([[[2, 0], [1, 5]], [[1, 1], [1, 0]]], axis=-1).astype(np.float64)
WEIGHTS_2 = np.array([[3.0, 0.0], [1.0, 1.0]])


def test_cam_is_weighted_sum_of_channels_without_relu():
    # class 0: 1*ch0 + 2*ch1 ; class 1: 0.5*ch0 - 1*ch1 (keeps the negative value)
    np.testing.assert_allclose(class_activation_map(FEATURES_1, WEIGHTS_1, 0), [[1, 4], [3, 6]])
    np.testing.assert_allclose(class_activation_map(FEATURES_1, WEIGHTS_1, 1), [[0.5, 0.0], [1.5, 1.0]])
    np.testing.assert_allclose(class_activation_map(FEATURES_2, WEIGHTS_2, 0), [[7, 1], [4, 15]])


def test_batched_cams_use_each_images_class():
    batch = np.stack([FEATURES_1, FEATURES_2])
    cams = class_activation_maps(batch, WEIGHTS_1, [1, 0])
    np.testing.assert_allclose(cams[0], class_activation_map(FEATURES_1, WEIGHTS_1, 1))
    np.testing.assert_allclose(cams[1], class_activation_map(FEATURES_2, WEIGHTS_1, 0))
    with pytest.raises(ValueError):
        class_activation_maps(batch, WEIGHTS_1, [0])


def test_fusion_rules_by_hand():
    heads, weights = [FEATURES_1, FEATURES_2], [WEIGHTS_1, WEIGHTS_2]
    # per-head CAMs of class 0: [[1,4],[3,6]] and [[7,1],[4,15]]
    np.testing.assert_allclose(fuse_heads(heads, weights, 0, "max"), [[7, 4], [4, 15]])
    np.testing.assert_allclose(fuse_heads(heads, weights, 0, "mean"), [[4, 2.5], [3.5, 10.5]])
    # max map: ch0 [[2,2],[3,5]], ch1 all 1; mean weights of class 0: [2, 1.5]
    np.testing.assert_allclose(fuse_heads(heads, weights, 0, "mean_weights_max_maps"),
                               [[5.5, 5.5], [7.5, 11.5]])
    # released ResNet: head 1 with the mean weights [2, 1.5] -> [[2,5.5],[6,9.5]]; head 2 its own
    # [[7,1],[4,15]]; per-pixel max
    np.testing.assert_allclose(fuse_heads(heads, weights, 0, "mean_weights_first_max"),
                               [[7, 5.5], [6, 15]])


def test_released_resnet_rule_with_three_heads_by_hand():
    third = np.stack([[[0, 0], [9, 0]], [[0, 0], [0, 0]]], axis=-1).astype(np.float64)
    third_weights = np.array([[1.0, 0.0], [5.0, 0.0]])
    heads, weights = [FEATURES_1, FEATURES_2, third], [WEIGHTS_1, WEIGHTS_2, third_weights]
    # mean weights of class 0 over three heads: [(1+3+1)/3, (2+1+5)/3] = [5/3, 8/3] on head 1:
    # 5/3*[[1,2],[3,4]] + 8/3*[[0,1],[0,1]] = [[5/3, 6], [5, 28/3]]; head 2 [[7,1],[4,15]];
    # head 3 with its own weights: [[0,0],[9,0]]
    np.testing.assert_allclose(fuse_heads(heads, weights, 0, "mean_weights_first_max"),
                               [[7, 6], [9, 15]])
    # differs from the plain per-head max (head 1 with its own weights: [[1,4],[3,6]])
    np.testing.assert_allclose(fuse_heads(heads, weights, 0, "max"), [[7, 4], [9, 15]])


@pytest.mark.parametrize("rule", ["mean_weights_max_maps", "mean_weights_first_max", "max", "mean"])
def test_single_head_is_unchanged_by_every_rule(rule):
    np.testing.assert_allclose(fuse_heads([FEATURES_1], [WEIGHTS_1], 1, rule),
                               class_activation_map(FEATURES_1, WEIGHTS_1, 1))


@pytest.mark.parametrize("rule", ["mean_weights_max_maps", "mean_weights_first_max", "max", "mean"])
def test_batched_fusion_matches_per_image(rule):
    heads = [np.stack([FEATURES_1, FEATURES_2]), np.stack([FEATURES_2, FEATURES_1])]
    fused = fuse_heads(heads, [WEIGHTS_1, WEIGHTS_2], [0, 1], rule)
    for i, class_index in enumerate([0, 1]):
        single = fuse_heads([heads[0][i], heads[1][i]], [WEIGHTS_1, WEIGHTS_2], class_index, rule)
        np.testing.assert_allclose(fused[i], single)


def test_released_rules_and_cli_choice():
    assert released_fusion_rule("vgg_gap") == "mean_weights_max_maps"
    assert released_fusion_rule("resnet") == "mean_weights_first_max"
    assert fusion_rule("released", "resnet") == "mean_weights_first_max"
    assert fusion_rule("max", "resnet") == "max"
    assert fusion_rule("mean", "vgg_gap") == "mean"
    with pytest.raises(ValueError):
        released_fusion_rule("alexnet")
    with pytest.raises(ValueError):
        fusion_rule("median", "vgg_gap")
    with pytest.raises(ValueError):
        fuse_heads([FEATURES_1], [WEIGHTS_1], 0, "median")
    with pytest.raises(ValueError):
        fuse_heads([FEATURES_1, FEATURES_2], [WEIGHTS_1], 0, "max")
