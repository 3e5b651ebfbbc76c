"""MAE, maxout-attention excitation (``AAE`` in the released code): what the method adds -- the
excitation block at the insertion positions, in training and at test time (the layer:
``models/mae.py``), and its threshold and mask rule."""
from models.methods.base import RELEASED_POSITIONS, Method
from utils.flag import UNIT, Flag

MASKS = ("sum", "max")   # 'sum' = released rule, 'max' = paper reading


def _excite(spec, position, x):
    from models.mae import maxout_attention_excitation
    return maxout_attention_excitation(f"aware_{position}", x, spec.mae_threshold, spec.mae_mask)


def _check(spec):
    if spec.mae_mask not in MASKS:
        raise ValueError(f"mae_mask must be one of {MASKS}, got {spec.mae_mask!r}")


METHOD = Method(
    "MAE", "maxout-attention excitation at the insertion positions (train and test)", aliases=("AAE",),
    flags=(Flag("aae_threshold", "model", type=float, default=0.5, range=UNIT, spec="mae_threshold",
                help="MAE threshold theta"),
           Flag("mae_mask", "model", default="sum", choices=MASKS, spec="mae_mask",
                help="MAE mask: 'sum' = released (A/sum A < theta), 'max' = paper reading (A < theta max A)")),
    positions=RELEASED_POSITIONS, position_op=_excite, check=_check)
