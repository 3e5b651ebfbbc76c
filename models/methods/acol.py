"""ACoL, Adversarial Complementary Learning (Zhang et al., CVPR 2018), as wsolevaluation defines
it: what the method adds -- two classifier branches, B on the features erased where A's map is
high, CE(A) + CE(B), classification by A, CAM = max of both branches' normalised CAMs (the
layers: ``models/acol.py``)."""
from models.methods.base import Method
from utils.flag import UNIT, Flag


def _heads(spec, features, build, forward):
    from models.acol import acol_heads
    return acol_heads(features, spec, forward.label, spec.option("acol_threshold"))


def _loss(spec, heads, logits, label, forward):
    from models.acol import acol_cross_entropy
    return acol_cross_entropy(heads, label)


METHOD = Method(
    "ACoL", "adversarial complementary learning: branch B learns on what branch A's map erases (wsolevaluation)",
    flags=(Flag("acol_threshold", "model", type=float, default=0.7, range=UNIT,
                help="ACoL: branch B's input is erased where A's min-max normalised map is >= this"),),
    heads=_heads, head_names=lambda spec: ("A", "B"), logits=lambda spec, heads: heads["A"][1],
    loss=_loss, cam_fusion="max_normalised")
