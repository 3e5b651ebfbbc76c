"""Small graph helpers shared by the backbones and the methods' layers (and the ImageNet statistics)."""
from utils.compat import tf  # first: TensorFlow set-up
from tensorpack.tfutils.argscope import get_arg_scope

# ImageNet statistics in BGR order (images enter as BGR uint8, as released).
IMAGE_MEAN_BGR = (0.406, 0.456, 0.485)
IMAGE_STD_BGR = (0.225, 0.224, 0.229)


def data_format():
    """The data format set by the enclosing ``argscope`` ('NHWC' or 'NCHW')."""
    fmt = get_arg_scope()["Conv2D"].get("data_format", "NHWC")
    return {"channels_last": "NHWC", "channels_first": "NCHW"}.get(fmt, fmt)


def channel_axis():
    return 1 if data_format() == "NCHW" else 3


def spatial_axes():
    return (2, 3) if data_format() == "NCHW" else (1, 2)


def num_channels(x):
    return x.shape[channel_axis()]


def to_nhwc(x):
    """A feature map in NHWC whatever the graph's layout (for exported tensors)."""
    return tf.transpose(x, [0, 2, 3, 1]) if data_format() == "NCHW" else x


def channel_mean(x):
    """Attention map: mean over channels, keeping a channel axis of 1."""
    return tf.reduce_mean(x, axis=channel_axis(), keepdims=True)


def spatial_max(x):
    """Per-image maximum over the spatial axes (keeps dims for broadcasting)."""
    return tf.reduce_max(x, axis=spatial_axes(), keepdims=True)


def spatial_sum(x):
    return tf.reduce_sum(x, axis=spatial_axes(), keepdims=True)


def class_maps(features, weights, classes):
    """``[N, h, w]``: the CAM of class ``classes[n]`` of each image, ``features [N, h, w, C]``
    (NHWC) times ``weights[:, classes[n]]`` (``weights [C, K]``); no bias, no ReLU."""
    class_weights = tf.transpose(tf.gather(weights, classes, axis=1))          # [N, C]
    return tf.einsum("bhwc,bc->bhw", features, class_weights)


def minmax_normalise(maps):
    """Each ``[h, w]`` map of ``maps [N, h, w]`` scaled to [0, 1]; a flat map becomes all 0."""
    low = tf.reduce_min(maps, axis=[1, 2], keepdims=True)
    high = tf.reduce_max(maps, axis=[1, 2], keepdims=True)
    return tf.math.divide_no_nan(maps - low, high - low)


def expand_to_channels(maps):
    """``[N, h, w]`` -> ``[N, h, w, 1]`` or ``[N, 1, h, w]`` (the graph's layout), to broadcast
    over a feature map's channels."""
    return tf.expand_dims(maps, channel_axis())
