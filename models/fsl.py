"""FSL, the few-shot fully supervised baseline of wsolevaluation (Choe et al., CVPR 2020).

The backbone's map -> a 1x1 convolution to one channel (``fsl_fg``) -> sigmoid: a
class-agnostic foreground probability map, trained with a per-pixel BCE against the object
masks of the small fully annotated ``train_fullsup`` list only (the logits bilinearly
upsampled to the input size).  Its map is scored by the same evaluation pass as a CAM.
"""
from utils.compat import tf  # first: TensorFlow set-up
from tensorpack import Conv2D

from models.layers import to_nhwc
from models.spg import upsample


def foreground_head(x, num_classes):
    """(head, foreground logits ``[N, h, w]`` NHWC) of the backbone's map ``x``: the head is the
    foreground probability map (graph layout), zero class logits and FC weights 1 for every class,
    so the CAM of any class is the map."""
    logits_map = Conv2D("fsl_fg", x, 1, 1, activation=None)
    weights = tf.ones([1, num_classes], name="fsl_class_weights")
    zero_logits = tf.zeros(tf.stack([tf.shape(x)[0], num_classes]))
    return (tf.sigmoid(logits_map), zero_logits, weights), to_nhwc(logits_map)[..., 0]


def pixel_bce(logits, mask):
    """Mean per-pixel sigmoid BCE of ``logits [N, h, w]`` (upsampled to the mask size) against
    ``mask [N, S, S]`` (1 object, 0 background)."""
    up = upsample(logits, int(mask.shape[1]))
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=mask, logits=up), name="pixel_bce")
