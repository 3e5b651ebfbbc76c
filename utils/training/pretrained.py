"""Initialising a graph from model-zoo npz files or checkpoints, with loud checks.

* ``NpzInit(path)``: loads ``vgg16.npz`` / ``ImageNet-ResNet50-SE.npz`` (or any npz
  whose keys are variable names) by name, prints a table of keys used, skipped and
  new variables; a shape mismatch names the key, a missing file names the path.
* ``CheckpointInit(path)``: restores a tensorpack checkpoint after checking that every
  variable it shares with the graph has the same shape (a checkpoint of another
  architecture or class count is an error naming the variable).
"""
from utils import compat  # noqa: F401  (first: TensorFlow set-up)
import os

import numpy as np
from tabulate import tabulate
from tensorpack.tfutils.sessinit import SaverRestore, SessionInit
from tensorpack.tfutils.varmanip import get_checkpoint_path, get_savename_from_varname
from tensorpack.utils import logger

from utils.errors import UserError
from utils.compat import tf

MODEL_ZOO_URL = "http://models.tensorpack.com/"
MODEL_ZOO_FILES = {"vgg_gap": "vgg16.npz", "resnet": "ImageNet-ResNet50-SE.npz"}


class PretrainedWeightsError(UserError, RuntimeError):
    """A pretrained file or checkpoint does not fit the graph."""


def _graph_variables():
    """{save name: [variables]} of the global variables (towers share a save name)."""
    by_name = {}
    for var in tf.global_variables():
        by_name.setdefault(get_savename_from_varname(var.op.name), []).append(var)
    return by_name


def read_npz(path):
    if not os.path.isfile(path):
        raise PretrainedWeightsError(
            f"pretrained weights file not found: {path} (download from {MODEL_ZOO_URL})")
    with np.load(path) as npz:
        return {key: npz[key] for key in npz.files}


def match_npz(arrays, variables_by_name, path="<npz>"):
    """Pair npz arrays with graph variables; returns (used keys, skipped keys, new names).

    Raises PretrainedWeightsError naming the first key whose shape differs."""
    used, skipped = [], []
    for key in sorted(arrays):
        name = key[:-2] if key.endswith(":0") else key
        variables = variables_by_name.get(name)
        if variables is None:
            skipped.append(key)
            continue
        want = tuple(variables[0].shape.as_list())
        if tuple(arrays[key].shape) != want:
            raise PretrainedWeightsError(
                f"{path}: key {key!r} has shape {tuple(arrays[key].shape)}, "
                f"but the graph's variable has shape {want}")
        used.append(key)
    used_names = {k[:-2] if k.endswith(":0") else k for k in used}
    new = sorted(n for n in variables_by_name if n not in used_names and n != "global_step")
    return used, skipped, new


def loading_table(used, skipped, new):
    """Human-readable summary of what an npz load did."""
    rows = [["used", len(used), ""],
            ["skipped (not in graph)", len(skipped), " ".join(skipped[:12]) + (" ..." if len(skipped) > 12 else "")],
            ["new (not in file)", len(new), " ".join(new[:12]) + (" ..." if len(new) > 12 else "")]]
    return tabulate(rows, headers=["keys", "count", "names"], tablefmt="github")


class NpzInit(SessionInit):
    """Load an npz by variable name, checking shapes; logs the loading table."""

    def __init__(self, path):
        self.path = path
        self.arrays = read_npz(path)
        self.report = None

    def _setup_graph(self):
        by_name = _graph_variables()
        used, skipped, new = match_npz(self.arrays, by_name, self.path)
        self.report = (used, skipped, new)
        self._assignments = [(var, self.arrays[key]) for key in used
                             for var in by_name[key[:-2] if key.endswith(":0") else key]]
        logger.info(f"Loading {self.path}:\n" + loading_table(used, skipped, new))

    def _run_init(self, sess):
        """All assignments in one run: feed each variable's initializer its value."""
        feeds = {var.initializer.inputs[1]: value.astype(var.dtype.base_dtype.as_numpy_dtype)
                 for var, value in self._assignments}
        sess.run([var.initializer for var, _ in self._assignments], feed_dict=feeds)


def checkpoint_shapes(path):
    reader = tf.train.NewCheckpointReader(get_checkpoint_path(path))
    return reader.get_variable_to_shape_map()


class CheckpointInit(SaverRestore):
    """``SaverRestore`` that refuses a checkpoint whose shared variables differ in shape."""

    def __init__(self, path, ignore=()):
        self.resolved_path = get_checkpoint_path(path)
        if not os.path.isfile(self.resolved_path + ".index"):
            raise PretrainedWeightsError(f"checkpoint not found: {path}")
        super().__init__(self.resolved_path, ignore=list(ignore))

    def _setup_graph(self):
        saved = checkpoint_shapes(self.resolved_path)
        for name, variables in _graph_variables().items():
            if name in saved and list(saved[name]) != variables[0].shape.as_list():
                raise PretrainedWeightsError(
                    f"{self.resolved_path}: variable {name!r} has shape {saved[name]} in the checkpoint "
                    f"but {variables[0].shape.as_list()} in this graph (another architecture or class count?)")
        if not any(name in saved for name in _graph_variables()):
            raise PretrainedWeightsError(
                f"{self.resolved_path}: none of this graph's variables are in the checkpoint")
        super()._setup_graph()
