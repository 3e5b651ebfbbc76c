"""The compat module: environment, graph mode and the tensorpack shims."""
import os
import subprocess
import sys

import numpy as np

from conftest import REPO
from utils import compat
from utils.compat import tf


def test_legacy_keras_and_graph_mode():
    assert os.environ["TF_USE_LEGACY_KERAS"] == "1"
    assert not tf.executing_eagerly()
    assert hasattr(tf, "get_variable") and hasattr(tf, "Session")


def test_tensorpack_layers_build_with_legacy_keras():
    from tensorpack import Conv2D
    with tf.Graph().as_default():
        out = Conv2D("conv", tf.zeros([1, 8, 8, 3]), 4, 3)
        assert out.shape.as_list() == [1, 8, 8, 4]


def test_validate_coords_accepts_float32_without_np_float():
    from tensorpack.dataflow import image as tp_image
    tp_image.validate_coords(np.zeros((4, 2), np.float32))


def test_tensorpack_box_augmentation_runs_on_numpy2():
    from tensorpack.dataflow import imgaug
    aug = imgaug.AugmentorList([imgaug.Resize((8, 8)), imgaug.Flip(horiz=True, prob=1.0)])
    image = np.zeros((4, 4, 3), np.uint8)
    tfm = aug.get_transform(image)
    assert tfm.apply_image(image).shape == (8, 8, 3)
    coords = tfm.apply_coords(np.array([[0.0, 0.0], [2.0, 2.0]], np.float32))
    np.testing.assert_allclose(coords, [[8.0, 0.0], [4.0, 4.0]])


def test_gpu_query_does_not_fail():
    assert compat.gpu_available() in (True, False)


def test_tensorflow_objects_are_frozen_and_the_collector_left_as_found():
    """compat freezes TensorFlow's import-time objects out of the cyclic collector (process
    start-up and exit time) and restores the collector's on/off state."""
    import gc
    assert gc.isenabled() and gc.get_freeze_count() > 100_000   # this process: enabled before
    code = "import gc; gc.disable(); import utils.compat; print(gc.isenabled(), gc.get_freeze_count() > 100000)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "True"]
