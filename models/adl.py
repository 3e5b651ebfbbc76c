"""ADL, Attention-based Dropout Layer (Choe & Shim, CVPR 2019); training only.

Attention A = channel mean; drop mask = [A < threshold * max A]; importance map =
sigmoid(A).  At each training step one of the two is chosen for the whole batch
(as in the released tensorpack code): the importance map with probability
``keep_prob``, else the drop mask.  The feature map is multiplied by it.
"""
from utils.compat import tf  # first: TensorFlow set-up
from tensorpack.tfutils.tower import get_current_tower_context

from models.layers import channel_mean, spatial_max


def adl_maps(x, threshold):
    """(drop_mask, importance_map) of a feature map; both broadcast over channels."""
    attention = channel_mean(x)
    drop_mask = tf.cast(attention < threshold * spatial_max(attention), x.dtype)
    importance_map = tf.sigmoid(attention)
    return drop_mask, importance_map


def attention_based_dropout(name, x, threshold=0.8, keep_prob=0.25, choose_importance=None):
    """Apply ADL in training; identity at inference.

    ``choose_importance`` (a bool tensor) overrides the random choice (tests).
    """
    ctx = get_current_tower_context()
    if ctx is None or not ctx.is_training:
        return x
    with tf.name_scope(name):
        drop_mask, importance_map = adl_maps(x, threshold)
        if choose_importance is None:
            choose_importance = tf.random_uniform([]) < keep_prob
        selected = tf.cond(choose_importance, lambda: importance_map, lambda: drop_mask)
        return tf.multiply(x, selected, name="output")
