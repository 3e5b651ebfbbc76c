"""Initialising a graph from model-zoo npz files or checkpoints, with loud checks.

* ``NpzInit(path, arch)``: loads ``vgg16.npz`` / ``ImageNet-ResNet50-SE.npz`` (or any npz
  whose keys are variable names) by name, prints a table of keys used, skipped and
  new variables; a shape mismatch names the key, a missing file names the path and the
  model-zoo address.  Every backbone variable the model-zoo file of ``arch`` provides
  (``BACKBONE_KEYS``: VGG16-GAP ``conv1_1`` ... ``conv5_3``, 26 keys; ResNet50-SE ``conv0``
  and ``group*/block*`` without MAE, 329 keys) must come from the file: an npz that
  leaves one of them at its random initialisation is an error naming the file and the
  missing keys (the run would otherwise train random layers with the 0.1 gradient scale
  of pretrained ones).
* ``CheckpointInit(path)``: restores a tensorpack checkpoint after checking that every
  variable it shares with the graph has the same shape (a checkpoint of another
  architecture or class count is an error naming the variable).
"""
from utils import compat  # noqa: F401  (first: TensorFlow set-up)
import os
import re

import numpy as np
from tabulate import tabulate
from tensorpack.tfutils.sessinit import SaverRestore, SessionInit
from tensorpack.tfutils.varmanip import get_checkpoint_path, get_savename_from_varname
from tensorpack.utils import logger

from utils.errors import UserError
from utils.compat import tf
from models import resnet, vgg
from models.methods.ose import HEADS

MODEL_ZOO_URL = "http://models.tensorpack.com/"
MODEL_ZOO_FILES = {"vgg_gap": "vgg16.npz", "resnet": "ImageNet-ResNet50-SE.npz"}
MODEL_ZOO_FOLDERS = {"vgg_gap": "Caffe-Converted/", "resnet": "ResNet/"}
# Graph variables a backbone's model-zoo file provides (not the MAE convolutions ``aware_*``).
BACKBONE_KEYS = {"vgg_gap": re.compile(r"conv[1-5]_[1-3]/[Wb]"),
                 "resnet": re.compile(r"(conv0|group\d+/block\d+/(conv[1-3]|convshortcut|fc[12]))/.+")}
KEYS_SHOWN = 8
# The first convolution of each backbone's model-zoo file: 64 output channels at width 1.0.
FIRST_LAYER = {"vgg_gap": "conv1_1/W", "resnet": "conv0/W"}
FIRST_LAYER_CHANNELS = 64


def model_zoo_url(arch):
    """Download address of the model-zoo npz of a backbone."""
    return f"{MODEL_ZOO_URL}{MODEL_ZOO_FOLDERS[arch]}{MODEL_ZOO_FILES[arch]}"


class PretrainedWeightsError(UserError, RuntimeError):
    """A pretrained file or checkpoint does not fit the graph."""


def _graph_variables():
    """{save name: [variables]} of the global variables (towers share a save name)."""
    by_name = {}
    for var in tf.global_variables():
        by_name.setdefault(get_savename_from_varname(var.op.name), []).append(var)
    return by_name


def read_npz(path, arch=None):
    if not os.path.isfile(path):
        where = model_zoo_url(arch) if arch in MODEL_ZOO_FILES else f"{MODEL_ZOO_URL} (see README)"
        raise PretrainedWeightsError(f"pretrained weights file not found: {path} (download {where})")
    try:
        with np.load(path, allow_pickle=False) as npz:   # never unpickle a downloaded file
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, AttributeError) as error:
        raise PretrainedWeightsError(f"{path}: not a readable npz file ({error})") from None


def _names(keys):
    return {k[:-2] if k.endswith(":0") else k for k in keys}


def backbone_variable_names(arch):
    """Save names of the graph's model variables (``model_variable_names``: not the optimizer's
    slots such as ``conv0/W/Momentum``) that the model-zoo file of ``arch`` provides, sorted."""
    return [name for name in model_variable_names() if BACKBONE_KEYS[arch].fullmatch(name)]


def check_backbone_loaded(path, arch, used):
    """Raise PretrainedWeightsError naming ``path`` unless it fills at least one variable
    and (for a known ``arch``) every backbone model variable of the graph."""
    url = model_zoo_url(arch) if arch in MODEL_ZOO_FILES else MODEL_ZOO_URL
    if not used:
        raise PretrainedWeightsError(f"{path}: none of its keys names a variable of this graph "
                                     f"(the model-zoo file of --arch_name {arch} is {url})")
    if arch not in BACKBONE_KEYS:
        return
    backbone = set(backbone_variable_names(arch))
    missing = sorted(backbone - _names(used))
    if missing:
        shown = " ".join(missing[:KEYS_SHOWN]) + (" ..." if len(missing) > KEYS_SHOWN else "")
        raise PretrainedWeightsError(
            f"{path} lacks {len(missing)} of the {len(backbone)} backbone weights of --arch_name {arch}: "
            f"{shown} (the model-zoo file is {url})")


def npz_backbone(arrays):
    """(backbone, width multiplier) of a model-zoo-format file, from its first convolution
    (``FIRST_LAYER``) and that layer's output channels; (None, None) when it has neither."""
    for arch, key in FIRST_LAYER.items():
        if key in arrays:
            return arch, arrays[key].shape[-1] / FIRST_LAYER_CHANNELS
    return None, None


def check_backbone_fits(path, arch, arrays, variables_by_name):
    """One PretrainedWeightsError line naming both backbones, or both widths, when the file's
    backbone (``npz_backbone``) is not the graph's ``arch`` or was trained at another width."""
    file_arch, file_width = npz_backbone(arrays)
    if arch not in FIRST_LAYER or file_arch is None:
        return
    if file_arch != arch:
        raise PretrainedWeightsError(f"{path} holds a {file_arch} backbone ({FIRST_LAYER[file_arch]}), but the graph "
                                     f"is --arch_name {arch}; use the {arch} file")
    graph_channels = variables_by_name[FIRST_LAYER[arch]][0].shape.as_list()[-1]
    graph_width = graph_channels / FIRST_LAYER_CHANNELS
    if graph_channels != arrays[FIRST_LAYER[arch]].shape[-1]:
        raise PretrainedWeightsError(
            f"{path} holds a {arch} backbone of width {file_width:g} ({FIRST_LAYER[arch]}: "
            f"{arrays[FIRST_LAYER[arch]].shape[-1]} channels), but the graph has --width_multiplier {graph_width:g} "
            f"({graph_channels} channels); use a file of width {graph_width:g} or --width_multiplier {file_width:g}")


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
                f"but the graph's variable has shape {want} (model-zoo files fit --width_multiplier 1.0 only)")
        used.append(key)
    used_names = _names(used)
    new = sorted(n for n in variables_by_name if n not in used_names and n != "global_step")
    return used, skipped, new


def loading_table(used, skipped, new):
    """Human-readable summary of what an npz load did."""
    rows = [["used", len(used), ""],
            ["skipped (not in graph)", len(skipped), " ".join(skipped[:12]) + (" ..." if len(skipped) > 12 else "")],
            ["new (not in file)", len(new), " ".join(new[:12]) + (" ..." if len(new) > 12 else "")]]
    return tabulate(rows, headers=["keys", "count", "names"], tablefmt="github")


class NpzInit(SessionInit):
    """Load an npz by variable name, checking shapes and (given ``arch``) that it fills
    every backbone variable; logs the loading table."""

    def __init__(self, path, arch=None):
        self.path = path
        self.arch = arch
        self.arrays = read_npz(path, arch)
        self.report = None

    def _setup_graph(self):
        by_name = _graph_variables()
        check_backbone_fits(self.path, self.arch, self.arrays, by_name)
        used, skipped, new = match_npz(self.arrays, by_name, self.path)
        check_backbone_loaded(self.path, self.arch, used)
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


_FC_SCOPE = re.compile(r"^(?:linearnew|linear)(?:_(\w+))?/W$|^(\w+)_linear/W$")
_MAE_SCOPE = re.compile(r"(?:^|/)aware_(\w+)/W$")


def describe_variables(shapes):
    """What a set of variables ``{name: shape}`` looks like: backbone, method, MAE positions,
    heads and classes (e.g. 'resnet E2Net (MAE at 31 41 5; heads 3x3 1x3 3x1; 10 classes)')."""
    arch = ("resnet" if "conv0/W" in shapes else "vgg_gap" if "conv1_1/W" in shapes else "unknown backbone")
    network_order = vgg.insertion_points() + resnet.insertion_points()
    positions = sorted((m.group(1) for m in map(_MAE_SCOPE.search, shapes) if m),
                       key=lambda p: network_order.index(p) if p in network_order else len(network_order))
    heads, classes = [], set()
    for name, shape in shapes.items():
        match = _FC_SCOPE.match(name)
        if match:
            heads.append(match.group(1) or match.group(2) or "3x3")
            classes.add(int(shape[-1]))
    heads.sort(key=lambda h: HEADS.index(h) if h in HEADS else len(HEADS))
    method = ("E2Net" if positions and len(heads) > 1 else "MAE" if positions else
              "OSE" if len(heads) > 1 else "CAM or ADL")
    details = [f"MAE at {' '.join(positions)}"] if positions else []
    details += [f"heads {' '.join(heads) or 'none'}",
                f"{'/'.join(str(c) for c in sorted(classes)) or '?'} classes"]
    return f"{arch} {method} ({'; '.join(details)})"


def model_variable_names():
    """Save names of the variables a model needs restored: trainable ones and BN statistics
    (not the optimizer's slots, the learning rate, the global step or summaries).  BN statistics
    are matched by name: tensorpack registers them as model variables only in a training tower."""
    trainable = set(tf.trainable_variables())
    return sorted({get_savename_from_varname(v.op.name) for v in tf.global_variables()
                   if v in trainable or v.op.name.endswith(("/mean/EMA", "/variance/EMA"))})


class CheckpointInit(SaverRestore):
    """``SaverRestore`` that refuses a checkpoint whose shared variables differ in shape, or
    that lacks model variables of the graph (which would stay at random initialisation).

    ``allow_partial=True`` (``--allow_partial_load``) restores what the checkpoint has and
    logs the variables that stay random; ``False`` refuses and names that flag; ``None`` (a
    caller without the flag: evaluation, predict, export) refuses without advising it."""

    def __init__(self, path, ignore=(), allow_partial=None):
        self.resolved_path = get_checkpoint_path(path)
        if not os.path.isfile(self.resolved_path + ".index"):
            raise PretrainedWeightsError(f"checkpoint not found: {path}")
        self.allow_partial = allow_partial
        super().__init__(self.resolved_path, ignore=list(ignore))

    def _setup_graph(self):
        saved = checkpoint_shapes(self.resolved_path)
        graph_variables = _graph_variables()
        for name, variables in graph_variables.items():
            if name in saved and list(saved[name]) != variables[0].shape.as_list():
                raise PretrainedWeightsError(
                    f"{self.resolved_path}: variable {name!r} has shape {saved[name]} in the checkpoint "
                    f"but {variables[0].shape.as_list()} in this graph (another architecture or class count?)")
        if not any(name in saved for name in graph_variables):
            raise PretrainedWeightsError(
                f"{self.resolved_path}: none of this graph's variables are in the checkpoint")
        missing = [name for name in model_variable_names() if name not in saved]
        if missing:
            graph_shapes = {name: variables[0].shape.as_list() for name, variables in graph_variables.items()}
            listed = " ".join(missing[:8]) + (f" ... ({len(missing)} in all)" if len(missing) > 8 else "")
            if not self.allow_partial:
                raise PretrainedWeightsError(
                    f"{self.resolved_path} lacks {len(missing)} variable(s) of this graph: {listed}. The file looks "
                    f"like {describe_variables(saved)}; the graph is {describe_variables(graph_shapes)}"
                    + (". Pass --allow_partial_load to start them from random initialisation"
                       if self.allow_partial is False else " (a checkpoint of another model?)"))
            logger.warning(f"Partial load of {self.resolved_path}: {len(missing)} variable(s) stay at random "
                           f"initialisation: {' '.join(missing)}")
        super()._setup_graph()
