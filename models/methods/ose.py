"""OSE, orientation-sensitive expansion (``SAE`` in the released code): what the method adds --
the directional heads beside the 3x3 head, their logits summed.  The backbone's head builder
(``models/ose.py``: ``vgg_heads`` / ``resnet_heads``) builds every head ``spec.ose_heads``
names, so OSE needs no ``heads`` hook: it brings the flag that chooses them, and BN in the
ResNet50-SE head convolutions."""
from models.methods.base import Method
from utils.flag import Flag

HEADS = ("3x3", "1x3", "3x1", "diag", "antidiag")
RELEASED_HEADS = ("3x3", "1x3", "3x1")


METHOD = Method(
    "OSE", "orientation-sensitive heads, their logits summed", aliases=("SAE",),
    flags=(Flag("ose_heads", "model", nargs="+", choices=HEADS, unused=["3x3"],
                preset=lambda args, env: list(RELEASED_HEADS), spec="ose_heads",
                help="OSE heads (default for OSE/E2Net: 3x3 1x3 3x1 as released)"),
           Flag("use_bn", "model", type=int, default=0, choices=(0, 1), arch="resnet", spec="use_bn",
                help="BN in the ResNet OSE convolutions")))
