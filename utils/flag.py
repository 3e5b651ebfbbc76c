"""One flag's declaration: the ``Flag`` and ``Range`` types of the table in ``utils/flags.py``
(kept apart so that the method modules under ``models/methods/`` can declare their flags
without importing the table that collects them).  No TensorFlow, no project imports.
"""
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

KINDS = ("run", "model", "training", "start", "evaluation", "placement")
HELP_GROUPS = {
    "run": "data and run defaults (taken from the run's config.json unless given)",
    "model": "model (decides the graph; --evaluate and resume take these from the run's config.json)",
    "training": "training recipe",
    "start": "start of this process",
    "evaluation": "evaluation",
    "placement": "placement (devices, trainers, cluster, data layout, run folder)",
}


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric flag: lo <= v (lo < v if lo_open), v <= hi (v < hi if hi_open).
    NaN is outside every range."""
    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False
    note: str = ""

    def __contains__(self, value):
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return above and below

    @property
    def words(self):
        if math.isinf(self.hi):
            text = f"{'>' if self.lo_open else '>='} {self.lo:g}"
        else:
            text = f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        return f"{text} ({self.note})" if self.note else text


UNIT = Range(0, 1)
POSITIVE = Range(0, lo_open=True, hi_open=True)
AT_LEAST_1 = Range(1)
AT_LEAST_0 = Range(0)


_UNSET = object()


@dataclass(frozen=True)
class Flag:
    """One flag of train.py (the kinds, ``methods`` and ``unused``: ``utils/flags.py``).

    A flag declared by a method module leaves ``methods`` empty: the registry
    (``models/methods/__init__.py``) fills in the methods that include it."""
    name: str                                  # --name, and the attribute / config.json key
    kind: str
    help: str
    type: Optional[Callable] = str             # argparse type of one value (None: store_true)
    default: Any = None
    aliases: Tuple[str, ...] = ()              # released spellings, e.g. ("--batch",)
    choices: Optional[Tuple] = None
    nargs: Optional[str] = None
    metavar: Optional[str] = None
    range: Optional[Range] = None
    canonical: Optional[Callable] = None       # value -> project vocabulary (after parsing and on comparison)
    methods: Optional[Tuple[str, ...]] = None  # the methods the flag belongs to (None: every method)
    arch: Optional[str] = None                 # the backbone the flag belongs to (None: every backbone)
    unused: Any = _UNSET                       # value for a method that does not use it (default: default)
    preset: Optional[Callable] = None          # (args, env) -> value when the value is still None
    spec: Optional[str] = None                 # ModelSpec field the flag fills

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"flag --{self.name}: kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def unused_value(self):
        return self.default if self.unused is _UNSET else self.unused

    def normalize(self, value):
        """The value as ``resolve`` stores it, for comparing a typed value with config.json's."""
        if value is None:
            return None
        if self.canonical is not None:
            return self.canonical(value)
        if self.nargs is not None:
            return [self.type(v) for v in value]
        if self.type is None:
            return bool(value)
        return self.type(value)

    def add_to(self, group):
        options = dict(default=self.default, help=self.help)
        if self.type is None:
            options["action"] = "store_true"
        else:
            options["type"] = self.type
            for key in ("choices", "nargs", "metavar"):
                if getattr(self, key) is not None:
                    options[key] = getattr(self, key)
        group.add_argument(f"--{self.name}", *self.aliases, dest=self.name, **options)


