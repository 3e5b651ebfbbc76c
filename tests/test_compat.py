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


SESSION_CONFIG = ("from tensorpack.tfutils.sesscreate import NewSessionCreator; "
                  "print(NewSessionCreator().config.graph_options.rewrite_options.disable_meta_optimizer)")


def test_tensorflow_objects_are_frozen_and_the_collector_left_as_found_and_the_optimizer_on_by_default():
    """compat freezes TensorFlow's import-time objects out of the cyclic collector (process
    start-up and exit time) and restores the collector's on/off state; without
    E2NET_GRAPH_OPTIMIZER tensorpack's sessions keep TensorFlow's graph optimizer."""
    import gc
    assert gc.isenabled() and gc.get_freeze_count() > 100_000   # this process: enabled before
    code = ("import gc; gc.disable(); import utils.compat; print(gc.isenabled(), gc.get_freeze_count() > 100000); "
            + SESSION_CONFIG)
    env = {k: v for k, v in os.environ.items() if k != compat.GRAPH_OPTIMIZER_ENV}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "True", "False"]


def test_the_test_suite_runs_tensorpack_sessions_without_the_graph_optimizer():
    assert os.environ[compat.GRAPH_OPTIMIZER_ENV] == "off"      # tests/conftest.py
    from tensorpack.tfutils.sesscreate import NewSessionCreator
    assert NewSessionCreator().config.graph_options.rewrite_options.disable_meta_optimizer
    from tensorpack.tfutils.common import get_default_sess_config
    assert get_default_sess_config().allow_soft_placement     # tensorpack's own settings kept


def test_a_misspelt_graph_optimizer_setting_is_one_line_before_tensorflow_loads():
    env = dict(os.environ, **{compat.GRAPH_OPTIMIZER_ENV: "of"})
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import utils.compat; print('imported')"],
                            cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2 and result.stdout == ""
    imports = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    others = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert others == ["-c: error: E2NET_GRAPH_OPTIMIZER='of' must be 'on' or 'off'"]
    assert imports[-1].endswith("| utils.compat") and not any(line.endswith("| tensorflow") for line in imports)
