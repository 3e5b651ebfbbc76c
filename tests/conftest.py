"""Shared fixtures: repository paths and small graph builders."""
import functools
import os

import pytest

# Before any test module imports utils.compat, and inherited by every train.py / predict.py the
# tests start: no graph optimizer (grappler) pass before a session's first run (3-4 s a session,
# for steps at most 15% faster, which few-step runs never earn back; bench/session_startup.py).
# test_compat trains a step with the default ("on") and compares.
os.environ.setdefault("E2NET_GRAPH_OPTIMIZER", "off")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared")


@pytest.fixture
def shared_dir():
    if not os.path.isdir(SHARED):
        pytest.skip(f"{SHARED} (the project's shared/ folder) is not beside the checkout")
    return SHARED


def new_session(graph=None):
    """``tf.Session`` with tensorpack's session config, as train.py's sessions: under the suite
    without the graph optimizer (see E2NET_GRAPH_OPTIMIZER above)."""
    from utils.compat import tf
    from tensorpack.tfutils.common import get_default_sess_config
    return tf.Session(graph=graph, config=get_default_sess_config())


def build_model_graph(spec, is_training):
    """(graph, model, input placeholders, cost) for a ModelSpec, outside any trainer."""
    from utils.compat import tf
    from tensorpack.tfutils.tower import TowerContext
    from models.wsol_model import WSOLModel

    graph = tf.Graph()
    with graph.as_default():
        model = WSOLModel(spec)
        inputs = [tf.placeholder(s.dtype, s.shape, s.name) for s in model.inputs()]
        with TowerContext("", is_training=is_training):
            cost = model.build_graph(*inputs)
    return graph, model, inputs, cost


@functools.lru_cache(maxsize=None)
def shared_model_graph(spec, is_training=True):
    """The graph of ``build_model_graph``, built once per test process and spec, for tests that
    only read it or open their own sessions on it (adding ops such as savers, never variables):
    graph building is most of the time of the graph tests."""
    return build_model_graph(spec, is_training)[0]


@functools.lru_cache(maxsize=None)
def shared_training_graph(spec):
    """``shared_model_graph`` with the model's optimizer applied to the cost, so the graph also
    holds the optimizer's slot variables (``.../W/Momentum``) and the learning rate, as a
    training run's graph does; built once per test process and spec."""
    from utils.compat import tf
    graph, model, _, cost = build_model_graph(spec, is_training=True)
    with graph.as_default():
        opt = model.get_optimizer()
        opt.apply_gradients(opt.compute_gradients(cost))
    return graph


@pytest.fixture(scope="module")
def data_dir(request, tmp_path_factory):
    """A SYNTH set generated once per module, with the module's ``TINY`` generator parameters."""
    from utils.data.synthetic import ensure_synthetic
    root = tmp_path_factory.mktemp("data")
    ensure_synthetic(str(root / "SYNTH"), workers=1, **request.module.TINY)
    return root


@pytest.fixture
def model_graph():
    return build_model_graph


def file_duration(item):
    """The ``duration`` mark of an item's file (``pytestmark = pytest.mark.duration(s)``), else 0."""
    marker = item.get_closest_marker("duration")
    return marker.args[0] if marker else 0


def pytest_collection_modifyitems(config, items):
    """Longest files first (stable otherwise): pytest-xdist (``--dist loadfile``) hands out
    whole files in this order, so a long file never starts last while the other process idles."""
    items.sort(key=file_duration, reverse=True)


def write_designed_checkpoint(run_dir, name="min-val-error-top1"):
    """Replace a trained run's ``name`` checkpoint by weights built for the purpose, so that tests
    of predict / export / evaluation never rest on what a tiny training happened to learn: every
    convolution (and 1x1 MAE excitation) passes the mean of its input channels through its
    centre tap, biases are 0, and the FC weight of class k is ``(k + 1) / (C K)``.  Features are
    then a ReLU'd, pooled brightness map (above the ImageNet mean), the CAM of every class
    peaks on the bright parts of an image, and the logits grow with the class index (top-1 =
    the last class, no ties).  Returns the checkpoint prefix."""
    import numpy as np
    from utils.compat import tf
    from utils.config import model_spec, run_config
    graph, _, _, _ = build_model_graph(model_spec(run_config(str(run_dir))), is_training=False)
    prefix = os.path.join(str(run_dir), name)
    with graph.as_default(), new_session(graph) as sess:
        for variable in tf.global_variables():
            shape = variable.shape.as_list()
            value = np.zeros(shape, np.float32)
            if len(shape) == 4:                                   # conv kernel [kh, kw, in, out]
                value[shape[0] // 2, shape[1] // 2] = 1.0 / shape[2]
            elif len(shape) == 2:                                 # FC [C, K]
                value[:] = (np.arange(shape[1]) + 1) / (shape[0] * shape[1])
            elif variable.op.name.endswith(("/gamma", "/variance/EMA")):
                value[:] = 1.0
            variable.load(value, sess)
        tf.train.Saver(tf.global_variables()).save(sess, prefix, write_meta_graph=False, write_state=False)
    return prefix


def bright_square(image, box):
    """``image`` (uint8, copied) dimmed to a quarter with a white rectangle ``x1 y1 x2 y2``: the
    region a designed checkpoint's CAM marks."""
    out = (image // 4).copy()
    x1, y1, x2, y2 = box
    out[y1:y2, x1:x2] = 255
    return out
