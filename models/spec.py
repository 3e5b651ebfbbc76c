"""What a graph is made of: the plain-data description every model file reads.

Kept free of TensorFlow so the command line, presets and tests can build and
compare model descriptions without a graph.  The methods (what each adds, their
names and flags) are records in ``models/methods/registry.py``.
"""
from dataclasses import dataclass, replace
from typing import Any, Tuple

from models.methods.ose import HEADS
from models.methods.registry import check_spec, method

ARCHS = ("vgg_gap", "resnet")
ARCH_ALIASES = {"resnet50_se": "resnet"}      # released name -> project vocabulary

# Variables initialised from the model zoo, whose gradients the released recipe scales.
# (The VGG regex also catches the new OSE convolutions conv1x3/conv3x1, as released.)
PRETRAINED_REGEXES = {"vgg_gap": ("conv.*", "fc.*"), "resnet": ("conv0.*", "group[0-2].*")}


@dataclass(frozen=True)
class ModelSpec:
    """Everything that decides the variables and the forward pass of a model."""
    arch: str = "vgg_gap"
    method: str = "E2Net"
    num_classes: int = 200
    image_size: int = 224
    width_multiplier: float = 1.0
    data_format: str = "NHWC"
    positions: Tuple[str, ...] = ()          # insertion points of the method's op (MAE / ADL)
    mae_threshold: float = 0.5
    mae_mask: str = "sum"                    # 'sum' = released rule, 'max' = paper reading
    adl_threshold: float = 0.5
    adl_keep_prob: float = 0.25
    ose_heads: Tuple[str, ...] = ("3x3",)
    use_bn: bool = False                     # BN in the ResNet OSE convolutions
    weight_decay: float = 5e-4
    base_lr: float = 0.01
    pretrained_grad_scale: float = 0.1       # gradient multiplier of pretrained layers
    gradient_clip_norm: float = 0.0          # clip gradients to this global norm (0 = off, as released)
    options: Tuple[Tuple[str, Any], ...] = ()  # (flag, value) of the method's flags without a field

    def channels(self, full_width):
        """Channel count of a layer whose published width is ``full_width``."""
        return max(1, int(round(full_width * self.width_multiplier)))

    def option(self, name):
        """The value of a method flag carried in ``options``; a spec built without it (in code, not
        from the command line) has the flag's declared default."""
        for key, value in self.options:
            if key == name:
                return value
        for declared in method(self.method).flags:
            if declared.name == name:
                return tuple(declared.default) if isinstance(declared.default, list) else declared.default
        raise KeyError(f"{self.method} has no option {name!r}")

    def validate(self):
        """Raise ValueError with one clear line for an impossible combination."""
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.image_size % 16 or self.image_size < 32:
            raise ValueError(f"image size must be a multiple of 16 and >= 32, got {self.image_size}")
        if self.data_format not in ("NHWC", "NCHW"):
            raise ValueError(f"data_format must be NHWC or NCHW, got {self.data_format!r}")
        if not self.ose_heads or any(h not in HEADS for h in self.ose_heads):
            raise ValueError(f"ose_heads must be a non-empty subset of {HEADS}, got {self.ose_heads}")
        if len(set(self.ose_heads)) != len(self.ose_heads):
            raise ValueError(f"ose_heads lists a head twice: {self.ose_heads}")
        check_spec(self)
        if self.use_bn and self.arch != "resnet":
            raise ValueError("--use_bn applies to the ResNet50-SE OSE convolutions only")
        if self.gradient_clip_norm < 0:
            raise ValueError(f"gradient clip norm must be >= 0 (0 = off), got {self.gradient_clip_norm}")
        if not 0.0 < self.width_multiplier <= 4.0:
            raise ValueError(f"width_multiplier must be in (0, 4], got {self.width_multiplier}")
        return self

    def with_(self, **changes):
        return replace(self, **changes)
