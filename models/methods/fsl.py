"""FSL, the few-shot fully supervised baseline of wsolevaluation (Choe et al., CVPR 2020): what the
method adds -- a foreground head (1x1 convolution to one channel, sigmoid) trained with a per-pixel
BCE on the object masks of the small ``train_fullsup`` list only (the layers: ``models/fsl.py``).
Its foreground probability map is the CAM of every class; it has no classifier (logits 0)."""
from models.methods.base import Method


def _heads(spec, features, build, forward):
    from models.fsl import foreground_head
    head, forward.aux["foreground_logits"] = foreground_head(features, spec.num_classes)
    return {"3x3": head}


def _loss(spec, heads, logits, label, forward):
    from models.fsl import pixel_bce
    return pixel_bce(forward.aux["foreground_logits"], forward.inputs["mask"])


METHOD = Method(
    "FSL", "few-shot fully supervised baseline: a foreground map trained on the train_fullsup masks",
    heads=_heads, loss=_loss, fully_supervised=True, classifies=False)
