"""What a graph is made of: the plain-data description every model file reads.

Kept free of TensorFlow so the command line, presets and tests can build and
compare model descriptions without a graph.
"""
from dataclasses import dataclass, replace
from typing import Tuple

ARCHS = ("vgg_gap", "resnet")
ARCH_ALIASES = {"resnet50_se": "resnet"}      # released name -> project vocabulary
METHODS = ("CAM", "ADL", "MAE", "OSE", "E2Net", "HaS", "ACoL", "SPG", "CutMix", "FSL")
# Methods with one localization head (the 3x3 / original head).
SINGLE_HEAD_METHODS = ("CAM", "ADL", "MAE", "HaS", "SPG", "CutMix", "FSL")
# Released names (E2Net code: AAE = MAE, SAE = OSE) -> project vocabulary.
METHOD_ALIASES = {"AAE": "MAE", "SAE": "OSE", "AAE_SAE": "E2Net", "E2NET": "E2Net"}
OSE_HEADS = ("3x3", "1x3", "3x1", "diag", "antidiag")
RELEASED_OSE_HEADS = ("3x3", "1x3", "3x1")
MAE_MASKS = ("sum", "max")
SPG_THRESHOLDS = (0.7, 0.01, 0.5, 0.05, 0.7, 0.1)   # wsolevaluation's (high, low) of B2, B1, C: h1 l1 h2 l2 h3 l3

# Variables initialised from the model zoo, whose gradients the released recipe scales.
# (The VGG regex also catches the new OSE convolutions conv1x3/conv3x1, as released.)
PRETRAINED_REGEXES = {"vgg_gap": ("conv.*", "fc.*"), "resnet": ("conv0.*", "group[0-2].*")}

# Released default insertion points (--gating_position) per backbone.
DEFAULT_POSITIONS = {"vgg_gap": ("3", "4", "53"), "resnet": ("31", "41", "5")}


def canonical_method(name):
    """Map a method name (project or released vocabulary, any case) to one of METHODS."""
    for method in METHODS:
        if name.lower() == method.lower():
            return method
    alias = METHOD_ALIASES.get(name.upper())
    if alias is None:
        known = ", ".join(METHODS + tuple(METHOD_ALIASES))
        raise ValueError(f"unknown method {name!r}; expected one of {known}")
    return alias


@dataclass(frozen=True)
class ModelSpec:
    """Everything that decides the variables and the forward pass of a model."""
    arch: str = "vgg_gap"
    method: str = "E2Net"
    num_classes: int = 200
    image_size: int = 224
    width_multiplier: float = 1.0
    data_format: str = "NHWC"
    positions: Tuple[str, ...] = ()          # MAE / ADL insertion points
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
    # The wsolevaluation baselines (their defaults, wsolevaluation's config.py; ranges in utils/flags.py).
    has_grid_size: int = 4                   # HaS cell side in pixels (0 = hide nothing)
    has_drop_rate: float = 0.5
    acol_threshold: float = 0.7
    spg_thresholds: Tuple[float, ...] = SPG_THRESHOLDS
    cutmix_beta: float = 1.0
    cutmix_prob: float = 1.0

    @property
    def uses_mae(self):
        return self.method in ("MAE", "E2Net")

    @property
    def uses_adl(self):
        return self.method == "ADL"

    @property
    def spg_threshold_pairs(self):
        """((h1, l1), (h2, l2), (h3, l3)) of ``spg_thresholds``."""
        values = tuple(self.spg_thresholds)
        return tuple(zip(values[0::2], values[1::2]))

    def channels(self, full_width):
        """Channel count of a layer whose published width is ``full_width``."""
        return max(1, int(round(full_width * self.width_multiplier)))

    def validate(self):
        """Raise ValueError with one clear line for an impossible combination."""
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.image_size % 16 or self.image_size < 32:
            raise ValueError(f"image size must be a multiple of 16 and >= 32, got {self.image_size}")
        if self.data_format not in ("NHWC", "NCHW"):
            raise ValueError(f"data_format must be NHWC or NCHW, got {self.data_format!r}")
        if self.mae_mask not in MAE_MASKS:
            raise ValueError(f"mae_mask must be one of {MAE_MASKS}, got {self.mae_mask!r}")
        if not self.ose_heads or any(h not in OSE_HEADS for h in self.ose_heads):
            raise ValueError(f"ose_heads must be a non-empty subset of {OSE_HEADS}, got {self.ose_heads}")
        if len(set(self.ose_heads)) != len(self.ose_heads):
            raise ValueError(f"ose_heads lists a head twice: {self.ose_heads}")
        if self.method in SINGLE_HEAD_METHODS and len(self.ose_heads) != 1:
            raise ValueError(f"{self.method} has a single localization head; use OSE or E2Net for {self.ose_heads}")
        if (self.uses_mae or self.uses_adl) and not self.positions:
            raise ValueError(f"{self.method} needs at least one insertion position (--gating_position)")
        if self.use_bn and self.arch != "resnet":
            raise ValueError("--use_bn applies to the ResNet50-SE OSE convolutions only")
        if self.gradient_clip_norm < 0:
            raise ValueError(f"gradient clip norm must be >= 0 (0 = off), got {self.gradient_clip_norm}")
        if len(self.spg_thresholds) != 6 or not all(0.0 <= t <= 1.0 for t in self.spg_thresholds):
            raise ValueError(f"spg_thresholds must be six values h1 l1 h2 l2 h3 l3 in [0, 1], got "
                             f"{' '.join(map(str, self.spg_thresholds))}")
        if any(low > high for high, low in self.spg_threshold_pairs):
            raise ValueError(f"spg_thresholds: each low threshold must be <= its high one, got "
                             f"{' '.join(map(str, self.spg_thresholds))}")
        if not 0.0 < self.width_multiplier <= 4.0:
            raise ValueError(f"width_multiplier must be in (0, 4], got {self.width_multiplier}")
        return self

    def with_(self, **changes):
        return replace(self, **changes)
