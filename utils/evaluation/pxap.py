"""PxAP: pixel-level average precision of CAMs against object masks (numpy only).

As wsolevaluation defines it (Choe et al., CVPR 2020, ``MaskEvaluator``):

* each CAM is min-max normalised (``utils.evaluation.localization.normalize_cam``:
  constant or non-finite maps become all zeros) at the resolution of its mask;
* the thresholds are the sweep ``[0, bw, 2bw, ..., 1 - bw]``; the score of every pixel
  falls into one of the bins ``[0, bw), ..., [1 - bw, 1), [1, 2), [2, 3]`` (``np.histogram``
  with those right edges), counted separately for ground-truth foreground and background
  pixels and summed over all images of the split — so memory and time per image do not
  depend on how many images came before;
* a pixel is predicted foreground at threshold ``t`` when its score is ``>= t``; from the
  two histograms, read from the highest bin down, come TP, FP, FN at every threshold
  (plus ``>= 2`` and ``>= 1``), precision ``TP / (TP + FP)`` and recall ``TP / (TP + FN)``;
* PxAP = 100 * sum over consecutive operating points of ``precision_k * (recall_k -
  recall_{k-1})``, skipping points that predict no pixel (wsolevaluation's rectangle
  rule, not an interpolated AP).  Pixels with equal scores enter together (one step).

A perfect CAM gives 100, a constant CAM gives the foreground fraction of the pixels.
Ignored pixels (wsolevaluation's OpenImages "ignore" regions) count neither as
foreground nor as background.

Beyond wsolevaluation, the same histograms give the pixel IoU ``TP / (TP + FP + FN)``
at every threshold and its maximum, **PIoU** (with its threshold), and the value at a
threshold fixed elsewhere (``iou_at``, for a held-out τ).
"""
import numpy as np

from utils.errors import UserError
from utils.evaluation.localization import normalize_cam


class NoForegroundError(UserError, ValueError):
    """The masks of a split hold no object pixel, so precision-recall is undefined."""


class PxAPAccumulator:
    """Streaming foreground/background score histograms; ``compute()`` gives PxAP."""

    def __init__(self, thresholds):
        self.thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
        if (len(self.thresholds) == 0 or self.thresholds[0] != 0 or np.any(np.diff(self.thresholds) <= 0)
                or self.thresholds[-1] >= 1):
            raise ValueError("thresholds must rise from 0 and stay below 1")
        self.edges = np.append(self.thresholds, [1.0, 2.0, 3.0])
        self.foreground = np.zeros(len(self.edges) - 1, np.int64)
        self.background = np.zeros(len(self.edges) - 1, np.int64)
        self.num_images = 0

    def add(self, cam, mask, ignore=None):
        """Add one image: ``cam`` 2-D (any scale), ``mask`` the same shape, true = object;
        ``ignore`` (optional, same shape) marks pixels left out of both counts."""
        cam = np.asarray(cam)
        mask = np.asarray(mask, dtype=bool)
        if cam.ndim != 2 or cam.shape != mask.shape:
            raise ValueError(f"cam {cam.shape} and mask {mask.shape} must be 2-D and of one shape")
        scores = normalize_cam(cam)
        counted = np.ones(mask.shape, bool) if ignore is None else ~np.asarray(ignore, dtype=bool)
        self.foreground += np.histogram(scores[mask & counted], bins=self.edges)[0]
        self.background += np.histogram(scores[~mask & counted], bins=self.edges)[0]
        self.num_images += 1

    def _counts(self):
        """TP, FP and the foreground total at operating points ``>= 2, >= 1, >= t_last, ..., >= 0``."""
        true_positive = self.foreground[::-1].cumsum()
        false_positive = self.background[::-1].cumsum()
        return true_positive, false_positive, int(self.foreground.sum())

    def compute(self):
        """``{"pxap", "piou", "piou_threshold", "num_images", "num_foreground_pixels",
        "num_background_pixels", "curve": {"thresholds", "precision", "recall", "iou"}}``
        (percent; curves in ascending threshold order, ``None`` where nothing is predicted)."""
        if self.num_images == 0:
            raise ValueError("no image was added")
        true_positive, false_positive, num_foreground = self._counts()
        if num_foreground == 0:
            raise NoForegroundError("the masks hold no foreground pixel")
        predicted = true_positive + false_positive
        nonzero = predicted > 0
        precision = np.divide(true_positive, predicted, out=np.zeros(len(predicted)), where=nonzero)
        recall = true_positive / num_foreground
        pxap = 100.0 * float((precision[1:] * np.diff(recall))[nonzero[1:]].sum())
        iou = true_positive / (num_foreground + false_positive)
        # Operating points 2 .. end are the thresholds in descending order.
        by_threshold = slice(None, 1, -1)
        precision_curve = [100.0 * p if n else None for p, n in zip(precision[by_threshold], nonzero[by_threshold])]
        iou_curve = 100.0 * iou[by_threshold]
        best = int(np.argmax(iou_curve))
        return {"pxap": pxap, "piou": float(iou_curve[best]), "piou_threshold": float(self.thresholds[best]),
                "num_images": self.num_images, "num_foreground_pixels": num_foreground,
                "num_background_pixels": int(self.background.sum()),
                "curve": {"thresholds": self.thresholds.tolist(), "precision": precision_curve,
                          "recall": (100.0 * recall[by_threshold]).tolist(), "iou": iou_curve.tolist()}}


def iou_at(pixel_metrics, threshold):
    """Pixel IoU (percent) of ``compute()``'s result at one of its thresholds."""
    thresholds = np.asarray(pixel_metrics["curve"]["thresholds"])
    index = int(np.argmin(np.abs(thresholds - threshold)))
    if not np.isclose(thresholds[index], threshold):
        raise ValueError(f"threshold {threshold} is not one of the sweep's")
    return pixel_metrics["curve"]["iou"][index]
