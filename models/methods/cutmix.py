"""CutMix (Yun et al., ICCV 2019), as wsolevaluation defines it: what the method adds -- a box of
another training image pasted into each, the cross-entropy mixed by the pasted area (the op:
``models/cutmix.py``); the CAM graph otherwise."""
from models.methods.base import Method
from utils.flag import UNIT, Flag, Range


def _mix(spec, image, label):
    from models.cutmix import cutmix, draw_cutmix
    from utils.compat import tf
    draws = draw_cutmix(tf.shape(image)[0], int(image.shape[1]), int(image.shape[2]),
                        spec.option("cutmix_beta"), spec.option("cutmix_prob"))
    image, permutation, pasted = cutmix(image, draws)
    ones = tf.ones_like(label, tf.float32)
    return image, [(label, (1.0 - pasted) * ones), (tf.gather(label, permutation), pasted * ones)]


METHOD = Method(
    "CutMix", "CutMix: a box of another image pasted, labels mixed by its area (wsolevaluation)",
    flags=(Flag("cutmix_beta", "model", type=float, default=1.0, range=Range(0, note="0 = no mixing"),
                help="CutMix: lambda ~ Beta(beta, beta)"),
           Flag("cutmix_prob", "model", type=float, default=1.0, range=UNIT,
                help="CutMix: probability of mixing a batch")),
    input_transform=_mix)
