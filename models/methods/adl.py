"""ADL (Choe & Shim, CVPR 2019): what the method adds -- attention-based dropout at the
insertion positions, in training only (the layer: ``models/adl.py``)."""
from models.methods.base import RELEASED_POSITIONS, Method
from utils.flag import UNIT, Flag


def _dropout(spec, position, x):
    from models.adl import attention_based_dropout
    return attention_based_dropout(f"adl_{position}", x, spec.adl_threshold, spec.adl_keep_prob)


METHOD = Method(
    "ADL", "attention-based dropout at the insertion positions (training only)",
    flags=(Flag("adl_threshold", "model", type=float, default=0.5, range=UNIT, spec="adl_threshold",
                help="ADL drop threshold gamma (released default)"),
           Flag("adl_keep_prob", "model", type=float, default=0.25, range=UNIT, spec="adl_keep_prob",
                help="ADL: probability of using the importance map instead of the drop mask")),
    positions=RELEASED_POSITIONS, position_op=_dropout)
