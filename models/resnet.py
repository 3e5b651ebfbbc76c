"""ResNet50-SE backbone as in tensorpack's model zoo (``ImageNet-ResNet50-SE.npz``):
conv0 7x7/2 + BN-ReLU, 3x3/2 max-pool, group0..group3 of [3, 4, 6, 3] SE bottlenecks;
group3 has stride 1 so a 224 input gives a 14x14 map.
"""
from utils.compat import tf  # first: TensorFlow set-up
from tensorpack import BatchNorm, BNReLU, Conv2D, FullyConnected, GlobalAvgPooling, MaxPooling
from tensorpack.tfutils.argscope import argscope

from models.layers import channel_axis, num_channels

GROUPS = {50: (3, 4, 6, 3)}
GROUP_WIDTHS = (64, 128, 256, 512)
GROUP_STRIDES = (1, 2, 2, 1)


def insertion_points(depth=50):
    """Position names: '10(g+1)+k+1' after group g / block k; '5' at the end of group3."""
    points = []
    for g, count in enumerate(GROUPS[depth]):
        points += [str(10 * (g + 1) + k + 1) for k in range(count)]
    return tuple(points) + ("5",)


def batchnorm_zero_gamma(x):
    """BN whose gamma starts at zero (last BN of a residual branch)."""
    return BatchNorm("bn", x, gamma_initializer=tf.zeros_initializer())


def se_bottleneck(x, width, stride, expanded):
    shortcut = x
    x = Conv2D("conv1", x, width, 1, activation=BNReLU)
    x = Conv2D("conv2", x, width, 3, strides=stride, activation=BNReLU)
    x = Conv2D("conv3", x, expanded, 1, activation=batchnorm_zero_gamma)
    squeeze = GlobalAvgPooling("gap", x)
    squeeze = FullyConnected("fc1", squeeze, max(1, width // 4), activation=tf.nn.relu)
    squeeze = FullyConnected("fc2", squeeze, expanded, activation=tf.nn.sigmoid)
    shape = [-1, 1, 1, 1]
    shape[channel_axis()] = expanded
    x = x * tf.reshape(squeeze, shape)
    if num_channels(shortcut) != expanded:
        shortcut = Conv2D("convshortcut", shortcut, expanded, 1, strides=stride,
                          activation=lambda t: BatchNorm("bn", t))
    return tf.nn.relu(x + shortcut)


def resnet50_se(image, spec, at_position, depth=50):
    """The 2048-channel (at width 1.0) map of group3; ``at_position(name, x)`` as in VGG."""
    with argscope(Conv2D, use_bias=False,
                  kernel_initializer=tf.variance_scaling_initializer(scale=2.0, mode="fan_out")):
        x = Conv2D("conv0", image, spec.channels(64), 7, strides=2, activation=BNReLU)
        x = MaxPooling("pool0", x, 3, strides=2, padding="SAME")
        for g, count in enumerate(GROUPS[depth]):
            width = spec.channels(GROUP_WIDTHS[g])
            for k in range(count):
                # As released, a module at a block's position is built inside the block's
                # scope (group2/block0/aware_31); the end-of-network one ("5") is not.
                with tf.variable_scope(f"group{g}/block{k}"):
                    x = se_bottleneck(x, width, GROUP_STRIDES[g] if k == 0 else 1, width * 4)
                    x = at_position(str(10 * (g + 1) + k + 1), x)
        return at_position("5", x)
