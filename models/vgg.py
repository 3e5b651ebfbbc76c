"""VGG16-GAP backbone: conv1_1 ... conv5_3 (3x3, bias, ReLU), max-pool after blocks 1-4,
no pool5; a 224 input gives a 14x14 map.  Variable names are the tensorpack model-zoo
keys of ``vgg16.npz`` (``conv1_1/W``, ``conv1_1/b``, ...).
"""
from utils.compat import tf  # first: TensorFlow set-up
from tensorpack import Conv2D, MaxPooling
from tensorpack.tfutils.argscope import argscope


BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def insertion_points():
    """Position names in network order: 'XY' after convX_Y, 'X' after poolX (X <= 4)."""
    points = []
    for block, widths in enumerate(BLOCKS, start=1):
        points += [f"{block}{i}" for i in range(1, len(widths) + 1)]
        if block <= 4:
            points.append(str(block))
    return tuple(points)


def vgg16_gap(image, spec, at_position):
    """Feature map of the last conv layer.  ``at_position(name, x) -> x`` is called at
    every insertion point so MAE / ADL can be placed there."""
    x = image
    with argscope(Conv2D, kernel_size=3, activation=tf.nn.relu, use_bias=True):
        for block, widths in enumerate(BLOCKS, start=1):
            for i, width in enumerate(widths, start=1):
                x = Conv2D(f"conv{block}_{i}", x, spec.channels(width))
                x = at_position(f"{block}{i}", x)
            if block <= 4:
                x = MaxPooling(f"pool{block}", x, 2)
                x = at_position(str(block), x)
    return x
