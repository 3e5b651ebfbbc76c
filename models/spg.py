"""SPG, Self-Produced Guidance (Zhang et al., ECCV 2018), as wsolevaluation defines it: the layers.

Besides the classification head (GAP + FC on the last map, the same linear map as
wsolevaluation's 1x1 class convolution ``SPG_A4`` before GAP), three one-channel attention
branches read the backbone: B1 after the first tapped layer, B2 after the second (their last
two convolutions shared), C on the last map.  Each branch's logits, bilinearly upsampled to
the input size, are trained with a per-pixel BCE towards a self-produced mask in which
pixels above ``high`` are foreground, pixels below ``low`` background (background wins), the
rest ignored; when fewer than ``MIN_FOREGROUND`` pixels of an image pass ``high`` its
foreground is the pixels above ``FALLBACK_RATIO`` x its maximum instead:

    B2 <- mask(min-max normalised CAM of the label, h1, l1)
    B1 <- mask(sigmoid(B2), h2, l2)
    C  <- mask((sigmoid(B1) + sigmoid(B2)) / 2, h3, l3)

Loss = CE + the three BCEs (each averaged over the batch's non-ignored pixels); the masks
carry no gradient.  The CAM is the classification head's, as wsolevaluation's.
"""
from utils.compat import tf  # first: TensorFlow set-up
from tensorpack import Conv2D
from tensorpack.tfutils.argscope import argscope

from models.layers import class_maps, minmax_normalise, num_channels, to_nhwc
from models.ose import classifier

MIN_FOREGROUND = 30       # pixels of the upsampled map (wsolevaluation: 224 x 224)
FALLBACK_RATIO = 0.7
HIDDEN_WIDTH = 512        # SPG_C's (and, on VGG, SPG_A_3's) width
# The classification head's FC, named like the CAM head of each backbone (models.ose).
FC_NAMES = {"vgg_gap": "linear", "resnet": "linearnew"}


def spg_mask(attention, high, low):
    """(target, valid), float ``[N, H, W]``: target 1 on foreground pixels, valid 1 on
    foreground and background pixels (0 on ignored ones) of ``attention [N, H, W]``."""
    foreground = attention > high
    count = tf.reduce_sum(tf.cast(foreground, tf.int32), axis=[1, 2], keepdims=True)
    fallback = attention > FALLBACK_RATIO * tf.reduce_max(attention, axis=[1, 2], keepdims=True)
    foreground = tf.where(tf.broadcast_to(count < MIN_FOREGROUND, tf.shape(foreground)), fallback, foreground)
    background = attention < low
    foreground = tf.logical_and(foreground, tf.logical_not(background))
    return tf.cast(foreground, tf.float32), tf.cast(tf.logical_or(foreground, background), tf.float32)


def masked_bce(logits, target, valid):
    """Mean sigmoid BCE of ``logits`` against ``target`` over the ``valid`` pixels (0 if none)."""
    losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits)
    return tf.math.divide_no_nan(tf.reduce_sum(losses * valid), tf.reduce_sum(valid))


def upsample(maps, size):
    """Bilinear resize of ``[N, h, w]`` maps to ``[N, size, size]`` (half-pixel centres, as
    PyTorch's ``align_corners=False``)."""
    return tf.image.resize_bilinear(maps[..., None], [size, size], half_pixel_centers=True)[..., 0]


def attention_logits(name, x):
    """A one-channel 1x1 convolution: ``[N, h, w]`` logits in NHWC."""
    return to_nhwc(Conv2D(name, x, 1, 1, activation=None))[..., 0]


def b_branches(b1_input, b2_input):
    """Logits ``[N, h, w]`` of B1 and B2: their own 3x3 conv, then the shared 3x3 conv + 1x1."""
    logits = []
    for i, x in enumerate((b1_input, b2_input), start=1):
        x = Conv2D(f"spg_b{i}a", x, num_channels(x), 3, activation=tf.nn.relu)
        with tf.variable_scope("spg_b_shared", reuse=i > 1):
            x = Conv2D("conv", x, num_channels(x), 3, activation=tf.nn.relu)
            logits.append(attention_logits("out", x))
    return logits


def c_branch(x, width):
    """Logits ``[N, h, w]`` of C: 3x3 conv (``width``) + ReLU, 1x1 conv to one channel."""
    with tf.variable_scope("spg_c"):
        return attention_logits("out", Conv2D("conv", x, width, 3, activation=tf.nn.relu))


def spg_losses(cam_features, cam_weights, label, branch_logits, thresholds, size):
    """The three attention BCEs (dict ``b2``, ``b1``, ``c``) of ``branch_logits`` (``b1``,
    ``b2``, ``c``: ``[N, h, w]``) against the masks of ``thresholds`` at input size ``size``."""
    (h1, l1), (h2, l2), (h3, l3) = thresholds
    up = {name: upsample(logits, size) for name, logits in branch_logits.items()}
    attention = minmax_normalise(upsample(class_maps(cam_features, cam_weights, label), size))
    b1_prob, b2_prob = tf.sigmoid(up["b1"]), tf.sigmoid(up["b2"])
    guides = {"b2": (attention, h1, l1), "b1": (b2_prob, h2, l2), "c": ((b1_prob + b2_prob) / 2.0, h3, l3)}
    losses = {}
    for name, (guide, high, low) in guides.items():
        target, valid = spg_mask(tf.stop_gradient(guide), high, low)
        losses[name] = tf.identity(masked_bce(up[name], target, valid), name=f"spg_loss_{name}")
    return losses


def spg_heads(x, b1_input, b2_input, spec):
    """(``{"3x3": (features, logits, FC weights)}``, branch logits ``{b1, b2, c}``) from the
    backbone's last map ``x`` and the maps B1 and B2 read.

    VGG16-GAP: two new 3x3 convolutions (``spg_a3_1``, ``spg_a3_2``, 512) before the head and C;
    ResNet50-SE: the head and C on group3's map."""
    width = spec.channels(HIDDEN_WIDTH)
    with argscope(Conv2D, kernel_initializer=tf.glorot_uniform_initializer()):
        if spec.arch == "vgg_gap":
            for i in (1, 2):
                x = Conv2D(f"spg_a3_{i}", x, width, 3, activation=tf.nn.relu)
        b1, b2 = b_branches(b1_input, b2_input)
        branches = {"b1": b1, "b2": b2, "c": c_branch(x, width)}
    heads = {"3x3": (x,) + classifier(FC_NAMES[spec.arch], x, spec.num_classes)}
    return heads, branches
