"""The ``Method`` record every module of ``models/methods/`` fills in, and ``combine`` for
methods made of others (E2Net = MAE + OSE).  The interface is described in the registry's
docstring (``models/methods/__init__.py``).

No TensorFlow at import: the command line reads these records.  The graph hooks import their
layer modules (``models/mae.py``, ``models/adl.py`` ...) when they are called.
"""
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from utils.flag import Flag

# Released insertion points (--gating_position) per backbone, of every method with an op at positions.
RELEASED_POSITIONS = {"vgg_gap": ("3", "4", "53"), "resnet": ("31", "41", "5")}


@dataclass(frozen=True)
class Method:
    """What a WSOL method adds to the CAM graph (every field but ``name`` and ``description``
    is optional; ``None`` = the method adds nothing there)."""
    name: str                                              # canonical name (--method_name)
    description: str
    aliases: Tuple[str, ...] = ()                          # released names (upper case)
    flags: Tuple[Flag, ...] = ()                           # the flags that belong to the method
    positions: Optional[Mapping[str, Tuple[str, ...]]] = None  # default --gating_position per backbone
    position_op: Optional[Callable] = None                 # (spec, position, x) -> x
    input_transform: Optional[Callable] = None             # (spec, image, label) -> (image, targets)
    taps: Optional[Mapping[str, Tuple[str, ...]]] = None   # backbone positions whose maps ``heads`` reads
    heads: Optional[Callable] = None                       # (spec, features, build, forward) -> {head: (F, logits, W)}
    head_names: Optional[Callable] = None                  # (spec) -> names of the heads ``heads`` builds
    logits: Optional[Callable] = None                      # (spec, heads) -> classification logits
    loss: Optional[Callable] = None                        # (spec, heads, logits, label, forward) -> task loss
    extra_losses: Optional[Callable] = None                # (spec, heads, label) -> [scalar tensors]
    cam_fusion: Optional[str] = None                       # a fixed --cam_fusion choice
    check: Optional[Callable] = None                       # (spec) -> None, ValueError for a bad spec
    fully_supervised: bool = False                         # trained on train_fullsup's object masks
    classifies: bool = True                                # False: no classifier (no classification metrics)

    @property
    def flag_names(self):
        return tuple(f.name for f in self.flags)


@dataclass
class Forward:
    """What the graph hooks of one forward pass see besides the features: ``label`` ([N] int32 in
    training, None at inference and validation), ``taps`` (position -> backbone map, of the
    method's ``taps``), ``inputs`` (extra model inputs by name, e.g. FSL's ``mask``) and ``aux``
    (what ``heads`` leaves for ``loss``, e.g. SPG's branch logits)."""
    label: Any = None
    taps: Dict[str, Any] = field(default_factory=dict)
    inputs: Dict[str, Any] = field(default_factory=dict)
    aux: Dict[str, Any] = field(default_factory=dict)


def _chain(hooks, combine_results):
    hooks = [h for h in hooks if h is not None]
    if not hooks:
        return None
    if len(hooks) == 1:
        return hooks[0]
    return lambda *args: combine_results(hooks, *args)


def _one(parts, field):
    given = []
    for part in parts:
        value = getattr(part, field)
        if value is not None and value not in given:
            given.append(value)
    if len(given) > 1:
        raise ValueError(f"parts {[p.name for p in parts]} disagree on {field}")
    return given[0] if given else None


def _apply_in_order(hooks, spec, position, x):
    for hook in hooks:
        x = hook(spec, position, x)
    return x


def _all_losses(hooks, spec, heads, label):
    return [loss for hook in hooks for loss in hook(spec, heads, label)]


def _all_checks(hooks, spec):
    for hook in hooks:
        hook(spec)


def combine(name, description, parts, aliases=()):
    """A method made of ``parts``: their flags, their ops at the positions (in order), their
    losses and checks; at most one part may bring an input transform, taps, heads, logits, a task
    loss or a CAM fusion."""
    flags = {}
    for part in parts:
        for f in part.flags:
            flags.setdefault(f.name, f)
    return Method(
        name=name, description=description, aliases=aliases, flags=tuple(flags.values()),
        positions=_one(parts, "positions"),
        position_op=_chain([p.position_op for p in parts], _apply_in_order),
        input_transform=_one(parts, "input_transform"), taps=_one(parts, "taps"), heads=_one(parts, "heads"),
        head_names=_one(parts, "head_names"), logits=_one(parts, "logits"), loss=_one(parts, "loss"),
        extra_losses=_chain([p.extra_losses for p in parts], _all_losses),
        cam_fusion=_one(parts, "cam_fusion"),
        check=_chain([p.check for p in parts], _all_checks),
        fully_supervised=any(p.fully_supervised for p in parts),
        classifies=all(p.classifies for p in parts))
