"""OSE, Orientation-Sensitive Expansion (``SAE`` in the released code).

Parallel localization heads on the last feature map; each ends in GAP + FC.
Heads: ``3x3`` (the original head), ``1x3`` (horizontal), ``3x1`` (vertical) as
released, plus ``diag`` and ``antidiag``: 3-tap kernels along a diagonal whose
off-diagonal taps are not variables at all, so they stay exactly zero.
"""
from utils.compat import tf  # first: TensorFlow set-up
import numpy as np
from tensorpack import BNReLU, Conv2D, FullyConnected, GlobalAvgPooling

from models.layers import data_format, num_channels

# Kernel shapes of the directional convolutions.
DIRECTIONAL_KERNELS = {"1x3": (1, 3), "3x1": (3, 1)}
DIAGONAL_HEADS = ("diag", "antidiag")
FC_INITIALIZER = tf.random_normal_initializer(stddev=0.01)


def diagonal_placement(head):
    """[3, 3, 3] one-hot array: tap t of the 3-tap kernel goes to (row, col)."""
    placement = np.zeros((3, 3, 3), np.float32)
    for tap in range(3):
        col = tap if head == "diag" else 2 - tap
        placement[tap, col, tap] = 1.0
    return placement


def diagonal_conv(name, x, head, out_channels, use_bias=True, activation=tf.nn.relu):
    """3x3 convolution whose only free taps lie on a diagonal (``diag``: top-left to
    bottom-right; ``antidiag``: top-right to bottom-left).  Variable ``W`` has shape
    [3, C_in, C_out]; the effective kernel (exported as ``<name>/kernel``) is built from it."""
    in_channels = num_channels(x)
    with tf.variable_scope(name):
        taps = tf.get_variable("W", [3, in_channels, out_channels],
                               initializer=tf.variance_scaling_initializer(2.0))
        kernel = tf.einsum("trc,tio->rcio", tf.constant(diagonal_placement(head)), taps)
        kernel = tf.identity(kernel, name="kernel")
        out = tf.nn.conv2d(x, kernel, strides=[1, 1, 1, 1], padding="SAME", data_format=data_format())
        if use_bias:
            bias = tf.get_variable("b", [out_channels], initializer=tf.zeros_initializer())
            out = tf.nn.bias_add(out, bias, data_format=data_format())
        return out if activation is None else activation(out)


def orientation_conv(name, x, head, out_channels, use_bias=True, activation=tf.nn.relu):
    """The 1x3, 3x1 or diagonal convolution of an OSE head."""
    if head in DIAGONAL_HEADS:
        return diagonal_conv(name, x, head, out_channels, use_bias, activation)
    return Conv2D(name, x, out_channels, DIRECTIONAL_KERNELS[head], use_bias=use_bias,
                  activation=activation)


def classifier(name, features, num_classes):
    """GAP + FC of a head; returns (logits, fc_weight_variable)."""
    pooled = GlobalAvgPooling(name + "_gap", features)
    logits = FullyConnected(name, pooled, num_classes, kernel_initializer=FC_INITIALIZER)
    with tf.variable_scope(name, reuse=True):
        weights = tf.get_variable("W")
    return logits, weights


def conv_name(head):
    """Variable scope of a head's orientation convolution (released: conv1x3, conv3x1)."""
    return "conv" + head if head in DIRECTIONAL_KERNELS else "conv_" + head


def vgg_heads(x, spec):
    """VGG16-GAP heads: name -> (feature map, logits, FC weights).

    ``3x3``: new (3x3 -> 1024) -> linear; others: conv<h> (C -> C) -> new<h> (3x3 -> 1024)
    -> <h>_linear, as released for 1x3 / 3x1.
    """
    width = spec.channels(1024)
    heads = {}
    for head in spec.ose_heads:
        if head == "3x3":
            features = Conv2D("new", x, width, 3, activation=tf.nn.relu)
            fc_name = "linear"
        else:
            branch = orientation_conv(conv_name(head), x, head, num_channels(x))
            features = Conv2D(conv_name(head).replace("conv", "new", 1), branch, width, 3,
                              activation=tf.nn.relu)
            fc_name = f"{head}_linear"
        heads[head] = (features,) + classifier(fc_name, features, spec.num_classes)
    return heads


def resnet_heads(x, spec):
    """ResNet50-SE heads on the 2048-channel map: name -> (feature map, logits, FC weights).

    ``3x3`` is the map itself -> linearnew; others: conv<h> (C -> C, no bias, BN with
    ``use_bn``, ReLU) -> linearnew_<h>.
    """
    heads = {}
    for head in spec.ose_heads:
        if head == "3x3":
            features = x
        else:
            features = orientation_conv(conv_name(head), x, head, num_channels(x), use_bias=False,
                                        activation=BNReLU if spec.use_bn else tf.nn.relu)
        fc_name = "linearnew" if head == "3x3" else f"linearnew_{head}"
        heads[head] = (features,) + classifier(fc_name, features, spec.num_classes)
    return heads
