"""The from-scratch CPU training recipes on SYNTH, one per backbone, shared by the demo
(``utils/demo.py``) and the ablation study (``utils/study.py``).

A fresh machine has no model-zoo weights, so both train from scratch.  ResNet50-SE
(BatchNorm) learns at the released base lr 0.01: 3 epochs, x0.1 for the last, keep the demo
within its time budget (docs/demo.md: 4 epochs cost about 70 s more for +10 points of CAM
Top-1 Cls and the same localization; the study passes ``--epochs 4 --lr_decay_epochs 3``).
The earlier 10-epoch recipe used the release's schedule scaled to the run (x0.1 at epochs 3,
6, 9), which spent most steps at lr <= 0.001.  Plain VGG16-GAP needs gradient clipping and a
long stretch at the base lr to leave chance level.
"""
from models.methods.registry import owners

import os

from utils import cpu

RECIPES = {
    "resnet": {"epochs": 3, "base_lr": 0.01, "clip_gradients": 0.0, "lr_decay_epochs": [2]},
    "vgg_gap": {"epochs": 30, "base_lr": 0.01, "clip_gradients": 5.0, "lr_decay_epochs": [24]},
}

def backbone_options(arch, method_name):
    """train.py options a method needs on a backbone beyond the recipe ({"use_bn": 1} or {}):
    on ResNet50-SE, BN in the OSE convolutions of the methods that have them, as in the released
    ResNet script."""
    return {"use_bn": 1} if arch == "resnet" and method_name in owners("use_bn") else {}


def recipe_defaults(key):
    """``"resnet 3, vgg_gap 30"``: one option's per-backbone defaults, for help texts."""
    return ", ".join(f"{arch} {recipe[key]}" for arch, recipe in RECIPES.items())


def default_precision():
    """``(precision, line saying so)`` of the demo's and the study's runs: bf16 on a CPU with native
    bf16 while the graph optimizer runs (fp32 and bf16 agree within seed noise on this recipe,
    3 seeds each: docs/precision.md), else fp32."""
    flags = cpu.cpu_bf16_flags()
    if not flags:
        return "fp32", "precision fp32 (this CPU has no native bf16)"
    if os.environ.get("E2NET_GRAPH_OPTIMIZER", "on") == "off":   # utils.compat.GRAPH_OPTIMIZER_ENV
        return "fp32", "precision fp32 (E2NET_GRAPH_OPTIMIZER=off: the bf16 rewrite is a graph optimizer pass)"
    return "bf16", (f"precision bf16 by default (this CPU has {' and '.join(flags)}; same results as fp32 within "
                    f"seed noise, docs/precision.md); --precision fp32 for the released arithmetic")
