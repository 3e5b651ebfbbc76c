"""The one place where TensorFlow is brought up for this project.

Import this module before anything that imports TensorFlow or tensorpack.  It

* sets ``TF_USE_LEGACY_KERAS=1`` so that tensorpack's ``tf.layers`` come from
  tf-keras (with Keras 3 tensorpack's layers raise "Conv2D is not available");
* switches TensorFlow 2.x into TF1 graph mode (``disable_v2_behavior``);
* exposes ``tf``: the TF1 API (``tf.compat.v1`` on TF 2.x, ``tensorflow`` itself on 1.15);
* installs the shims tensorpack 0.11 needs on current TensorFlow / numpy / OpenCV.

Every TF2-only call of the project lives here, so the rest of the code runs on
TensorFlow 1.15 too.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as _tf_root  # noqa: E402

TF2 = _tf_root.__version__.startswith("2.")
if TF2:
    _tf_root.compat.v1.disable_v2_behavior()
    tf = _tf_root.compat.v1
    tf.logging.set_verbosity(tf.logging.ERROR)
else:  # TensorFlow 1.15
    tf = _tf_root


def _patch_tensorpack_validate_coords():
    """tensorpack 0.11 checks ``np.issubdtype(coords.dtype, np.float)``; numpy 2 removed np.float."""
    from tensorpack.dataflow import image as tp_image

    def validate_coords(coords):
        assert coords.ndim == 2, coords.ndim
        assert coords.shape[1] == 2, coords.shape
        assert np.issubdtype(coords.dtype, np.floating), coords.dtype

    tp_image.validate_coords = validate_coords


def gpu_available():
    """True when TensorFlow sees at least one GPU."""
    if TF2:
        return len(_tf_root.config.list_physical_devices("GPU")) > 0
    from tensorflow.python.client import device_lib
    return any(d.device_type == "GPU" for d in device_lib.list_local_devices())


_patch_tensorpack_validate_coords()
