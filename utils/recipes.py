"""The CPU training recipes on SYNTH, one per regime and backbone, shared by the demo
(``utils/demo.py``) and the ablation study (``utils/study.py``).

Two regimes (``REGIMES``):

* ``pretrained`` (the published regime, the default): the backbone starts from the project's own
  model zoo (``models/synthetic_zoo``, written by ``python -m utils.pretrain``: a synthetic stand-in
  for ImageNet pretraining) and is fine-tuned with the released recipe: ``--pretrained FILE``
  (gradients x0.1 on the pretrained layers), base lr 0.01, the release's schedule (x0.1 at 30, 60,
  90 of 100 epochs) scaled to the run by train.py (``lr_decay_epochs`` None).  Fine-tuning lengths:
  docs/pretraining.md.
* ``scratch``: no pretrained weights.  ResNet50-SE (BatchNorm) learns at the released base lr
  0.01: 3 epochs, x0.1 for the last, keep the demo within its time budget (docs/demo.md: 4 epochs
  cost about 70 s more for +10 points of CAM Top-1 Cls and the same localization; the study passes
  ``--epochs 4 --lr_decay_epochs 3``).  The earlier 10-epoch recipe used the release's schedule
  scaled to the run (x0.1 at epochs 3, 6, 9), which spent most steps at lr <= 0.001.  Plain
  VGG16-GAP needs gradient clipping and a long stretch at the base lr to leave chance level.
"""
import os

from models.methods.registry import owners
from utils.errors import UserError
from utils.pretrain import zoo_file

REGIMES = ("pretrained", "scratch")
RECIPES = {
    "pretrained": {
        "resnet": {"epochs": 3, "base_lr": 0.01, "clip_gradients": 0.0, "lr_decay_epochs": None},
        "vgg_gap": {"epochs": 3, "base_lr": 0.01, "clip_gradients": 0.0, "lr_decay_epochs": None},
    },
    "scratch": {
        "resnet": {"epochs": 3, "base_lr": 0.01, "clip_gradients": 0.0, "lr_decay_epochs": [2]},
        "vgg_gap": {"epochs": 30, "base_lr": 0.01, "clip_gradients": 5.0, "lr_decay_epochs": [24]},
    },
}
ARCHS = tuple(RECIPES["scratch"])

class MissingPretrainedFileError(UserError, FileNotFoundError):
    """The pretrained regime needs a model-zoo file of the backbone and width that is not there."""


def recipe(arch, regime):
    """{epochs, base_lr, clip_gradients, lr_decay_epochs} of a backbone in a regime."""
    return RECIPES[regime][arch]


def backbone_options(arch, method_name):
    """train.py options a method needs on a backbone beyond the recipe ({"use_bn": 1} or {}):
    on ResNet50-SE, BN in the OSE convolutions of the methods that have them, as in the released
    ResNet script."""
    return {"use_bn": 1} if arch == "resnet" and method_name in owners("use_bn") else {}


def regime_options(arch, regime, width):
    """train.py options of a regime: ``{"pretrained": <the synthetic-zoo file>}`` or {} from scratch.
    A missing file is a MissingPretrainedFileError naming it and the command that writes it."""
    if regime == "scratch":
        return {}
    path = zoo_file(arch, width)
    if not os.path.isfile(path):
        raise MissingPretrainedFileError(
            f"{path}: no pretrained {arch} backbone of width {width:g} in the project's model zoo; write it with "
            f"'python -m utils.pretrain --arch {arch} --width {width:g}' or train from scratch")
    return {"pretrained": path}


def recipe_defaults(key):
    """``"pretrained: resnet 3, vgg_gap 3; scratch: resnet 3, vgg_gap 30"``: one option's
    defaults per regime and backbone, for help texts (None = the release's schedule, scaled)."""
    def shown(value):
        return "released, scaled" if value is None else value
    return "; ".join(f"{regime}: " + ", ".join(f"{arch} {shown(r[key])}" for arch, r in RECIPES[regime].items())
                     for regime in REGIMES)
