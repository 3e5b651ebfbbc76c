"""Class activation maps of GAP+FC heads and the fusion of several heads.

For a head ``feature map F [H, W, C] -> global average pooling -> FC W [C, K]``
the CAM of class ``c`` is ``sum_k W[k, c] * F[:, :, k]`` (no ReLU).  The released
code obtains the same map as spatially averaged gradients of the class logit; for
a GAP+FC head the two are identical, so no gradient is needed.

Fusion rules for E2Net's parallel OSE heads (the released quirk: docs/fidelity.md):

``'mean_weights_max_maps'``    the released VGG rule: the mean of the heads' FC
                               weights applied to the element-wise max of the
                               heads' feature maps (all heads need the same C);
``'mean_weights_first_max'``   the released ResNet rule: per-pixel max of the
                               heads' CAMs in which the FIRST head (the 3x3 head in
                               the released order) uses the mean of all heads' FC
                               weights and the others their own:
                               ``max(mean(W)·F_3x3, W_1x3·F_1x3, W_3x1·F_3x1)``.  The
                               released evaluation overwrites the first head's
                               averaged gradient with the heads' mean before fusing;
``'max'``                      per-pixel max of the per-head CAMs (the fusion drawn
                               in the paper's figure);
``'mean'``                     per-pixel mean of the per-head CAMs;
``'max_normalised'``           per-pixel max of the per-head CAMs, each min-max
                               normalised first (a flat map becomes 0): ACoL's rule
                               (wsolevaluation) for its branches A and B.

A single head gives its own CAM under every rule.
"""
import numpy as np

from utils.evaluation.localization import normalize_cam

FUSION_RULES = ("mean_weights_max_maps", "mean_weights_first_max", "max", "mean", "max_normalised")
RELEASED_FUSION_RULES = {"vgg_gap": "mean_weights_max_maps", "resnet": "mean_weights_first_max"}


def class_activation_map(features, fc_weights, class_index):
    """CAM ``[H, W]`` of one image: ``features [H, W, C] @ fc_weights[:, class_index]``."""
    features = np.asarray(features)
    if features.ndim != 3:
        raise ValueError(f"features must be [H, W, C], got shape {features.shape}")
    return features @ np.asarray(fc_weights)[:, int(class_index)]


def class_activation_maps(features, fc_weights, class_indices):
    """CAMs ``[B, H, W]`` of a batch ``features [B, H, W, C]``, one class per image."""
    features = np.asarray(features)
    if features.ndim != 4:
        raise ValueError(f"features must be [B, H, W, C], got shape {features.shape}")
    class_indices = np.asarray(class_indices, dtype=np.int64).reshape(-1)
    if len(class_indices) != len(features):
        raise ValueError(f"{len(class_indices)} class indices for {len(features)} images")
    class_weights = np.asarray(fc_weights)[:, class_indices]          # [C, B]
    return np.einsum("bhwc,cb->bhw", features, class_weights)


def minmax_normalised(cams):
    """CAMs ``[H, W]`` or ``[B, H, W]``, each ``normalize_cam``-ed (flat or non-finite maps -> 0)."""
    cams = np.asarray(cams)
    return np.stack([normalize_cam(cam) for cam in cams.reshape((-1,) + cams.shape[-2:])]).reshape(cams.shape)


def released_fusion_rule(arch):
    """Fusion rule of the released evaluation for a backbone ('vgg_gap' or 'resnet')."""
    try:
        return RELEASED_FUSION_RULES[arch]
    except KeyError:
        raise ValueError(f"unknown arch {arch!r}; expected one of {sorted(RELEASED_FUSION_RULES)}")


def fusion_rule(choice, arch):
    """Resolve the ``--cam_fusion`` choice ('released', 'max' or 'mean', or a method's fixed rule
    such as ACoL's 'max_normalised') for ``arch``."""
    if choice == "released":
        return released_fusion_rule(arch)
    if choice not in FUSION_RULES:
        raise ValueError(f"unknown CAM fusion {choice!r}; expected 'released' or one of {FUSION_RULES}")
    return choice


def fuse_heads(head_features, head_weights, class_index, rule):
    """Fused CAM of several heads.

    ``head_features`` is a list of per-head maps, all ``[H, W, C_h]`` (one image,
    ``class_index`` an int) or all ``[B, H, W, C_h]`` (a batch, ``class_index``
    one class per image); ``head_weights`` the matching list of FC weights
    ``[C_h, K]``.  Returns ``[H, W]`` or ``[B, H, W]``.
    """
    if rule not in FUSION_RULES:
        raise ValueError(f"unknown fusion rule {rule!r}; expected one of {FUSION_RULES}")
    if len(head_features) == 0 or len(head_features) != len(head_weights):
        raise ValueError(f"{len(head_features)} head feature maps for {len(head_weights)} FC weights")
    head_features = [np.asarray(f) for f in head_features]
    cam_of = class_activation_map if head_features[0].ndim == 3 else class_activation_maps
    if len(head_features) == 1:
        return cam_of(head_features[0], head_weights[0], class_index)
    if rule == "mean_weights_max_maps":
        max_map = np.maximum.reduce(head_features)
        mean_weights = np.mean([np.asarray(w) for w in head_weights], axis=0)
        return cam_of(max_map, mean_weights, class_index)
    if rule == "mean_weights_first_max":
        head_weights = [np.mean([np.asarray(w) for w in head_weights], axis=0)] + list(head_weights[1:])
    head_cams = [cam_of(f, w, class_index) for f, w in zip(head_features, head_weights)]
    if rule == "max_normalised":
        return np.max([minmax_normalised(cam) for cam in head_cams], axis=0)
    return np.mean(head_cams, axis=0) if rule == "mean" else np.max(head_cams, axis=0)
