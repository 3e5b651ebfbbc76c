"""Held-out threshold selection (numpy only): τ chosen on a fully-annotated held-out split.

``WSOLEvaluator.compute()`` (and ``PxAPAccumulator.compute()``) keep every metric as a
curve over one threshold sweep, so a τ chosen on one split applies to another by
indexing its curves.  ``held_out_selection(held_out, evaluated, split)`` takes the
metrics of the held-out split and of the evaluation split (same sweep) and returns,
for each threshold-dependent metric, the τ that maximises it on the held-out split,
the held-out value there, and the evaluation split's value at that same τ:

* reference protocol: τ of the best GT-known Loc; GT-known / Top-1 / Top-5 Loc at it;
* wsolevaluation: τ of the best BoxAcc at each IoU level (30/50/70), their mean (MaxBoxAccV2
  computed with held-out τ's, as wsolevaluation chooses hyper-parameters on train-fullsup),
  and the largest-contour IoU-50 BoxAcc (MaxBoxAcc);
* pixels (when both splits have masks): τ of the best pixel IoU (PIoU).  PxAP itself
  needs no threshold.

Ties choose the lowest τ, as the sweeps do.
"""
import numpy as np

LOC_KEYS = ("gt_known_loc", "top1_loc", "top5_loc")


class ThresholdMismatchError(ValueError):
    """The two splits were evaluated over different threshold sweeps."""


def _pick(held_out_curve, evaluated_curve, thresholds):
    best = int(np.argmax(held_out_curve))
    return {"tau": thresholds[best], "held_out": held_out_curve[best], "value": evaluated_curve[best]}


def held_out_selection(held_out, evaluated, split):
    """See the module docstring; ``split`` names the held-out list (recorded as ``chosen_on``)."""
    thresholds = evaluated["sweep"]["thresholds"]
    if held_out["sweep"]["thresholds"] != thresholds:
        raise ThresholdMismatchError("the held-out and evaluation splits used different threshold sweeps")
    reference = _pick(held_out["sweep"]["gt_known_loc"], evaluated["sweep"]["gt_known_loc"], thresholds)
    best = thresholds.index(reference["tau"])
    reference.update({key: evaluated["sweep"][key][best] for key in LOC_KEYS if key in evaluated["sweep"]})
    held_boxes, boxes = held_out["box_accuracy"], evaluated["box_accuracy"]
    per_iou = {iou: _pick(held_boxes["iou"][iou]["curve"], entry["curve"], thresholds)
               for iou, entry in boxes["iou"].items()}
    selection = {
        "chosen_on": split, "num_images": held_out["num_images"],
        "reference": reference,
        "box_accuracy": per_iou,
        "maxboxacc_v2": float(np.mean([entry["value"] for entry in per_iou.values()])),
        "maxboxacc": _pick(held_boxes["largest_contour_iou50"]["curve"],
                           boxes["largest_contour_iou50"]["curve"], thresholds),
    }
    if "pixel" in held_out and "pixel" in evaluated:
        selection["piou"] = _pick(held_out["pixel"]["curve"]["iou"], evaluated["pixel"]["curve"]["iou"],
                                  evaluated["pixel"]["curve"]["thresholds"])
    return selection
