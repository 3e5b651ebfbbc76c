"""The compat module: environment, graph mode and the tensorpack shims."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import REPO
from utils import compat
from utils.compat import tf

pytestmark = pytest.mark.duration(25)  # seconds, for the scheduler (conftest.py)


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


# In a process started without E2NET_GRAPH_OPTIMIZER: the collector's state, then one training
# step of a narrow VGG16-GAP E2Net in a session with tensorpack's default config (grappler on,
# the production path) and in one with grappler off, from the same initial values.
DEFAULT_PROCESS = textwrap.dedent("""
    import gc
    gc.disable()
    import utils.compat
    print(gc.isenabled(), gc.get_freeze_count() > 100000)
    import sys
    import numpy as np
    sys.path.insert(0, "tests")
    from conftest import build_model_graph
    from models.spec import ModelSpec
    from tensorpack.tfutils.common import get_default_sess_config
    from utils.compat import tf
    spec = ModelSpec(arch="vgg_gap", method="E2Net", num_classes=4, positions=("3", "4", "53"),
                     ose_heads=("3x3", "1x3", "3x1"), width_multiplier=0.125, image_size=32)
    graph, model, inputs, cost = build_model_graph(spec, is_training=True)
    rng = np.random.RandomState(0)
    feed = {inputs[0]: rng.randint(0, 256, (4, 32, 32, 3)).astype(np.uint8),
            inputs[1]: np.arange(4, dtype=np.int32), inputs[2]: np.zeros((4, 2, 2), np.float32)}
    with graph.as_default():
        train_op = model.optimizer().minimize(cost)
        variables = tf.global_variables()
        default = get_default_sess_config()
        print(default.graph_options.rewrite_options.disable_meta_optimizer)
        off = get_default_sess_config()
        off.graph_options.rewrite_options.disable_meta_optimizer = True
        losses, start = [], None
        for config in (default, off):
            with tf.Session(config=config) as sess:
                sess.run(tf.global_variables_initializer())
                if start is None:
                    start = sess.run(variables)
                sess.run([v.initializer for v in variables], {v.initializer.inputs[1]: x for v, x in zip(variables, start)})
                losses.append([sess.run([cost, train_op], feed)[0], sess.run(cost, feed)])
    print(np.allclose(losses[0], losses[1], rtol=1e-4), losses[0][1] != losses[0][0])
""")


def test_the_collector_is_left_as_found_and_the_graph_optimizer_on_by_default_trains_as_without():
    """compat freezes TensorFlow's import-time objects out of the cyclic collector (process
    start-up and exit time) and restores the collector's on/off state; without
    E2NET_GRAPH_OPTIMIZER tensorpack's sessions keep TensorFlow's graph optimizer, and a
    training step through it gives the losses of one without it."""
    import gc
    assert gc.isenabled() and gc.get_freeze_count() > 100_000   # this process: enabled before
    env = {k: v for k, v in os.environ.items() if k != compat.GRAPH_OPTIMIZER_ENV}
    result = subprocess.run([sys.executable, "-c", DEFAULT_PROCESS], cwd=REPO, capture_output=True, text=True,
                            timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if not line.startswith("[")]   # tensorpack's log
    assert lines == ["False True", "False", "True True"]


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
