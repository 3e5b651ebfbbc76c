"""WSOL metrics accumulated image by image (numpy only).

``WSOLEvaluator`` takes one CAM (at the resolution of the image/crop its GT boxes
are given in) per image and keeps only per-threshold counters, so memory does not
grow with the number of images.  It reports

* at ``cam_threshold`` with the reference protocol (IoU >= 0.5 with the first GT
  box): GT-known Loc, Top-1 Loc, Top-5 Loc, and Top-1 / Top-5 Cls.  Top-k Loc =
  the GT class is among the top k predictions AND the GT-class CAM's box hits;
* the same localization metrics over a threshold sweep, with the best threshold
  (chosen by GT-known Loc; the first one on ties);
* wsolevaluation's BoxAcc curves: MaxBoxAcc (IoU 0.5, largest contour, as
  defined by Choe et al.) and MaxBoxAccV2 (mean over ``iou_thresholds`` of the
  best-over-threshold accuracy, boxes from all contours when ``multi_contour``;
  an image counts when any box matches any GT box);
* with object masks (``mask=`` of ``add``): PxAP, the pixel precision / recall / IoU
  curves over the same sweep and PIoU (``utils.evaluation.pxap``), under ``pxap``,
  ``piou`` and ``pixel`` (which also counts the images added without a mask).

Classification metrics need a label and the top-5 predictions for every image;
without them only the GT-known style metrics are reported.

Non-finite CAMs: a CAM with any NaN or +-inf pixel is scored as an all-zero map (no box
at any threshold, so a miss), extending wsolevaluation's rule for NaN maps
(``normalize_scoremap`` returns zeros when the map holds a NaN) to infinities, which it
does not handle.  Such CAMs are counted: ``metrics["nonfinite_cams"]``.

The standalone scorer of CAM files is ``utils.evaluation.scorer``.
"""
import numpy as np

from utils.boxes import box_iou
from utils.evaluation.localization import normalize_cam, reference_boxes, wsol_boxes_at
from utils.evaluation.pxap import PxAPAccumulator

DEFAULT_CAM_THRESHOLD = 0.2
DEFAULT_SWEEP_THRESHOLDS = np.round(np.arange(0, 1, 0.01), 2)
DEFAULT_IOU_THRESHOLDS = (30, 50, 70)
LOC_IOU = 0.5
LOC_METRICS = ("gt_known_loc", "top1_loc", "top5_loc")


class WSOLEvaluator:
    """Streaming WSOL metrics; see the module docstring."""

    def __init__(self, cam_threshold=DEFAULT_CAM_THRESHOLD, sweep_thresholds=DEFAULT_SWEEP_THRESHOLDS,
                 iou_thresholds=DEFAULT_IOU_THRESHOLDS, multi_contour=True):
        self.cam_threshold = float(cam_threshold)
        self.sweep_thresholds = np.array(sweep_thresholds, dtype=np.float64).reshape(-1)
        if len(self.sweep_thresholds) == 0:
            raise ValueError("sweep_thresholds must not be empty")
        self.iou_thresholds = tuple(int(iou) for iou in iou_thresholds)
        self.multi_contour = bool(multi_contour)
        # Reference boxes are computed at every sweep threshold plus cam_threshold (last).
        self._reference_thresholds = np.append(self.sweep_thresholds, self.cam_threshold)
        self.num_images = 0
        self.num_nonfinite_cams = 0
        self._with_classes = None
        self._loc_hits = {name: np.zeros(len(self._reference_thresholds), np.int64) for name in LOC_METRICS}
        self._cls_hits = {"top1_cls": 0, "top5_cls": 0}
        self._box_hits = np.zeros((len(self.iou_thresholds), len(self.sweep_thresholds)), np.int64)
        self._largest_box_hits = np.zeros(len(self.sweep_thresholds), np.int64)
        self._pixels = None                 # PxAPAccumulator, made at the first mask
        self._images_without_mask = 0

    def add(self, cam, gt_boxes, label=None, top5=None, mask=None):
        """Score one image; returns its record (reference box at ``cam_threshold`` etc.).

        ``cam`` is 2-D, in the pixel frame of ``gt_boxes`` ``[n, 4]``; ``label`` the GT
        class, ``top5`` the predicted classes, best first; ``mask`` (optional, the CAM's
        shape) is true on object pixels.
        """
        cam = np.asarray(cam)
        if cam.ndim != 2:
            raise ValueError(f"cam must be 2-D, got shape {cam.shape}")
        gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
        if len(gt_boxes) == 0:
            raise ValueError("an image needs at least one GT box")
        with_classes = label is not None and top5 is not None
        if self._with_classes not in (None, with_classes):
            raise ValueError("give label and top5 for every image or for none")

        self.num_nonfinite_cams += not np.all(np.isfinite(cam))
        cam_norm = normalize_cam(cam)
        boxes = reference_boxes(cam_norm, self._reference_thresholds)
        ious = box_iou(boxes, gt_boxes[:1])[:, 0]
        hits = ious >= LOC_IOU
        self._loc_hits["gt_known_loc"] += hits
        record = {"label": None if label is None else int(label),
                  "top5": None if top5 is None else [int(c) for c in top5][:5],
                  "box": [int(v) for v in boxes[-1]], "iou": float(ious[-1]), "gt_known": bool(hits[-1]),
                  "top1_cls": None, "top5_cls": None, "top1_loc": None, "top5_loc": None}
        if with_classes:
            top1_cls = record["top5"][0] == record["label"]
            top5_cls = record["label"] in record["top5"]
            record.update(top1_cls=top1_cls, top5_cls=top5_cls,
                          top1_loc=record["gt_known"] and top1_cls, top5_loc=record["gt_known"] and top5_cls)
            self._cls_hits["top1_cls"] += top1_cls
            self._cls_hits["top5_cls"] += top5_cls
            self._loc_hits["top1_loc"] += hits & top1_cls
            self._loc_hits["top5_loc"] += hits & top5_cls
        self._add_box_accuracy(cam_norm, gt_boxes)
        if mask is None:
            self._images_without_mask += 1
        else:
            if self._pixels is None:
                self._pixels = PxAPAccumulator(self.sweep_thresholds)
            self._pixels.add(cam, mask)
        self._with_classes = with_classes
        self.num_images += 1
        return record

    def _add_box_accuracy(self, cam_norm, gt_boxes):
        """wsolevaluation: best IoU over (boxes x GT boxes) at each sweep threshold."""
        boxes, num_boxes = wsol_boxes_at(cam_norm, self.sweep_thresholds, self.multi_contour)
        starts = np.cumsum(num_boxes) - num_boxes
        best_iou_per_box = box_iou(boxes, gt_boxes).max(axis=1)
        best_iou = np.maximum.reduceat(best_iou_per_box, starts)
        self._box_hits += best_iou[None, :] >= np.array(self.iou_thresholds)[:, None] / 100
        self._largest_box_hits += best_iou_per_box[starts] >= LOC_IOU

    def compute(self):
        """All metrics as a JSON-serialisable dict (accuracies in percent)."""
        if self.num_images == 0:
            raise ValueError("no image was added")
        loc_names = LOC_METRICS if self._with_classes else LOC_METRICS[:1]
        metrics = {"num_images": self.num_images, "cam_threshold": self.cam_threshold,
                   "nonfinite_cams": self.num_nonfinite_cams}
        if self._with_classes:
            metrics.update({name: self._percent(hits) for name, hits in self._cls_hits.items()})
        metrics.update({name: self._percent(self._loc_hits[name][-1]) for name in loc_names})

        curves = {name: self._percent(self._loc_hits[name][:-1]) for name in loc_names}
        best = int(np.argmax(curves["gt_known_loc"]))
        metrics["sweep"] = {"thresholds": self.sweep_thresholds.tolist(), **curves,
                            "best_threshold": float(self.sweep_thresholds[best]),
                            "best": {name: curve[best] for name, curve in curves.items()}}

        per_iou = {str(iou): self._best_over_thresholds(hits)
                   for iou, hits in zip(self.iou_thresholds, self._box_hits)}
        largest_50 = self._best_over_thresholds(self._largest_box_hits)
        metrics["maxboxacc"] = largest_50["max"]
        metrics["maxboxacc_v2"] = float(np.mean([entry["max"] for entry in per_iou.values()]))
        metrics["box_accuracy"] = {"thresholds": self.sweep_thresholds.tolist(),
                                   "multi_contour": self.multi_contour,
                                   "iou": per_iou, "largest_contour_iou50": largest_50}
        if self._pixels is not None:
            pixel = self._pixels.compute()
            pixel["images_without_mask"] = self._images_without_mask
            metrics.update(pxap=pixel["pxap"], piou=pixel["piou"], pixel=pixel)
        return metrics

    def _percent(self, hits):
        values = 100.0 * np.asarray(hits, dtype=np.float64) / self.num_images
        return values.tolist() if values.ndim else float(values)

    def _best_over_thresholds(self, hits):
        curve = self._percent(hits)
        best = int(np.argmax(curve))
        return {"curve": curve, "max": curve[best], "best_threshold": float(self.sweep_thresholds[best])}
