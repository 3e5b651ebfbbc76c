"""MAE, Maxout-Attention Excitation (``AAE`` in the released code).

For a feature map X: attention A = channel mean of X; a mask M keeps the
positions of low attention; the erased map X*M goes through a 1x1 convolution
(C -> C, bias, ReLU) giving the excitation A^e; the output is max(X, A^e).
MAE is active at training and at test time.
"""
from utils.compat import tf  # first: TensorFlow set-up
from tensorpack import Conv2D
from tensorpack.tfutils.summary import add_moving_summary

from models.layers import channel_mean, num_channels, spatial_max, spatial_sum

_SUM_EPSILON = 1e-12  # guards the released sum-normalisation against an all-zero map


def mae_keep_mask(x, threshold, mask_rule):
    """1 where MAE keeps a position, 0 where it erases; shape [N,1,H,W] or [N,H,W,1].

    ``mask_rule='sum'`` (released): keep where A / sum(A) < threshold.
    ``mask_rule='max'`` (paper's reading, as ADL): keep where A < threshold * max(A).
    """
    attention = channel_mean(x)
    if mask_rule == "sum":
        keep = attention / (spatial_sum(attention) + _SUM_EPSILON) < threshold
    elif mask_rule == "max":
        keep = attention < threshold * spatial_max(attention)
    else:
        raise ValueError(f"unknown MAE mask rule {mask_rule!r}")
    return tf.cast(keep, x.dtype)


def maxout_attention_excitation(name, x, threshold=0.5, mask_rule="sum"):
    """MAE block in variable scope ``name`` (released: ``aware_<position>``)."""
    with tf.variable_scope(name):
        keep = mae_keep_mask(x, threshold, mask_rule)
        erased_fraction = tf.subtract(1.0, tf.reduce_mean(keep), name="erased_fraction")
        add_moving_summary(erased_fraction)
    excitation = Conv2D(name, x * keep, num_channels(x), 1, use_bias=True,
                        activation=tf.nn.relu,
                        kernel_initializer=tf.variance_scaling_initializer(2.0))
    return tf.maximum(x, excitation, name=name + "_out")
