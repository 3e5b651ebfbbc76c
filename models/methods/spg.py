"""SPG, Self-Produced Guidance (Zhang et al., ECCV 2018), as wsolevaluation defines it: what the
method adds -- attention branches B1, B2 (on tapped backbone maps) and C trained towards masks
the network produces itself, at three (high, low) threshold pairs (the layers: ``models/spg.py``);
the CAM is the classification head's."""
from models.methods.base import Method
from utils.flag import Flag

THRESHOLDS = (0.7, 0.01, 0.5, 0.05, 0.7, 0.1)   # wsolevaluation's h1 l1 (B2), h2 l2 (B1), h3 l3 (C)
# Insertion points feeding B1 and B2 (models.vgg / models.resnet; docs/fidelity.md).
TAPS = {"vgg_gap": ("4", "53"), "resnet": ("31", "36")}


def threshold_pairs(spec):
    """((h1, l1), (h2, l2), (h3, l3)) of ``--spg_thresholds``."""
    values = tuple(spec.option("spg_thresholds"))
    return tuple(zip(values[0::2], values[1::2]))


def _heads(spec, features, build, forward):
    from models.layers import to_nhwc
    from models.spg import spg_heads
    heads, forward.aux["branches"] = spg_heads(features, *(forward.taps[p] for p in TAPS[spec.arch]), spec)
    forward.aux["cam_features"] = to_nhwc(heads["3x3"][0])      # in the graph's layout scope
    return heads


def _loss(spec, heads, logits, label, forward):
    from models.spg import spg_losses
    from utils.compat import tf
    losses = spg_losses(forward.aux["cam_features"], heads["3x3"][2], label, forward.aux["branches"],
                        threshold_pairs(spec), spec.image_size)
    xentropy = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=label, logits=logits),
                              name="class_xentropy")
    return tf.add_n([xentropy] + list(losses.values()))


def _check(spec):
    values = tuple(spec.option("spg_thresholds"))
    if len(values) != 6 or not all(0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"--spg_thresholds must be six values h1 l1 h2 l2 h3 l3 in [0, 1], got "
                         f"{' '.join(map(str, values))}")
    if any(low > high for high, low in threshold_pairs(spec)):
        raise ValueError(f"--spg_thresholds: each low threshold must be <= its high one, got "
                         f"{' '.join(map(str, values))}")


METHOD = Method(
    "SPG", "self-produced guidance: attention branches trained on the network's own masks (wsolevaluation)",
    flags=(Flag("spg_thresholds", "model", type=float, nargs=6, default=list(THRESHOLDS),
                metavar=("H1", "L1", "H2", "L2", "H3", "L3"),
                help="SPG: (high, low) mask thresholds of B2 (from the CAM), B1 (from B2) and C (from B1 and "
                     "B2), each in [0, 1], low <= high"),),
    taps=TAPS, heads=_heads, loss=_loss, check=_check)
