"""Small graph helpers shared by the backbones and the E2Net modules."""
from utils.compat import tf  # first: TensorFlow set-up
from tensorpack.tfutils.argscope import get_arg_scope



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
