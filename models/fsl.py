"""FSL, the few-shot fully supervised baseline of wsolevaluation (Choe et al., CVPR 2020).

The backbone's map -> a 1x1 convolution to one channel (``fsl_fg``) -> sigmoid: a
class-agnostic foreground probability map, trained with a per-pixel BCE against the object
masks of the small fully annotated ``train_fullsup`` list only (the logits bilinearly
upsampled to the input size).  Its map is scored by the same evaluation pass as a CAM.
"""
from utils.compat import tf  # first: TensorFlow set-up
from tensorpack import Conv2D

from models.layers import to_nhwc
from models.method import Method
from models.spg import upsample


def pixel_bce(logits, mask):
    """Mean per-pixel sigmoid BCE of ``logits [N, h, w]`` (upsampled to the mask size) against
    ``mask [N, S, S]`` (1 object, 0 background)."""
    up = upsample(logits, int(mask.shape[1]))
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=mask, logits=up), name="pixel_bce")


class FSLMethod(Method):
    name = "FSL"
    fully_supervised = True

    def extra_inputs(self, spec):
        return [tf.TensorSpec([None, spec.image_size, spec.image_size], tf.float32, "mask")]

    def heads(self, model, features, taps, label, is_training, state):
        """One head: the foreground probability map (graph layout) with FC weights 1 for every
        class, so the CAM of any class is the map; logits 0 (no classifier)."""
        logits_map = Conv2D("fsl_fg", features, 1, 1, activation=None)
        state["foreground_logits"] = to_nhwc(logits_map)[..., 0]
        weights = tf.ones([1, model.spec.num_classes], name="fsl_class_weights")
        zero_logits = tf.zeros(tf.stack([tf.shape(features)[0], model.spec.num_classes]))
        return {"3x3": (tf.sigmoid(logits_map), zero_logits, weights)}

    def xentropy(self, spec, heads, logits, label, extra, state):
        return tf.identity(pixel_bce(state["foreground_logits"], extra["mask"]), name="xentropy")


METHOD = FSLMethod()
