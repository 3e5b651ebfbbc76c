"""What the evaluation pass does with each image's CAM (numpy only, no TensorFlow).

``utils.evaluation.evaluate`` streams one ``ImageCam`` per image of a list (the crop, its
GT-class CAM at crop size, GT boxes, label, top-5) through ``run_consumers``: first into
``Scores`` (wsolevaluation's accumulate / compute: ``WSOLEvaluator`` plus the object masks),
whose ``add`` returns the image's record (reference box at τ, IoU, hits), then into each
consumer's ``add(image, record)``.  At the end ``Scores.finish()`` returns the metrics and each
consumer's ``finish(metrics)`` adds to them or writes its files:

* ``PartAnalysis``: where the CAM region above τ falls (``utils.evaluation.parts``) on the
  part masks (SYNTH's ``parts/``);
* ``CamWriter``: every CAM as ``<dir>/<image without extension>.npy`` plus the GT boxes in the
  crop frame as ``<dir>/labels.txt`` (the standalone scorer's input);
* ``ExamplePanels``: the first examples as readable panels and arrays (``save`` writes them).

Masks are read in the crop frame (``MaskFolder.eval_mask``), so every consumer gets the
inputs resolved once by the caller, never the run configuration.
"""
import os
from dataclasses import dataclass

import numpy as np

from utils.atomic import make_folder, write_npy, write_npz
from utils.data.labels import LabelEntry, write_label_list
from utils.data.masks import MaskError, object_pixels
from utils.evaluation.localization import normalize_cam
from utils.evaluation.metrics import WSOLEvaluator
from utils.evaluation.parts import PartAnalyzer
from utils.evaluation.pxap import NoForegroundError
from utils.evaluation.scorer import cam_file_name, write_frame
from utils.evaluation.visualization import readable_example, save_examples

SAVED_CAMS_LABELS = "labels.txt"


@dataclass(frozen=True)
class ImageCam:
    """One image of the pass: ``path`` (as in the list), ``image`` the uint8 crop, ``cam`` its
    GT-class CAM at crop size, ``gt_boxes`` [n, 4] in the crop frame, ``label``, ``top5``, and
    ``image_size`` (height, width) of the original image (to map masks into the crop)."""
    path: str
    image: np.ndarray
    cam: np.ndarray
    gt_boxes: np.ndarray
    label: int
    top5: np.ndarray
    image_size: tuple


def sweep_thresholds(intervals):
    """The ``intervals`` CAM thresholds 0, 1/intervals, ... of the threshold sweep."""
    return np.round(np.arange(intervals) / float(intervals), 6)


def run_consumers(images, scores, consumers=()):
    """Feed every ``ImageCam`` to ``scores`` and then, with its record, to each consumer;
    returns the metrics after every consumer has finished."""
    for image in images:
        record = scores.add(image)
        for consumer in consumers:
            consumer.add(image, record)
    metrics = scores.finish()
    for consumer in consumers:
        consumer.finish(metrics)
    return metrics


class Scores:
    """Every metric of the pass (``WSOLEvaluator``; PxAP with ``masks``, a ``MaskFolder``) and
    the per-image records (``records``, each with its ``image`` path)."""

    def __init__(self, cam_threshold, sweep, masks, final_size, label_file, classifies=True):
        self.evaluator = WSOLEvaluator(cam_threshold, sweep)
        self.masks, self.final_size, self.label_file = masks, final_size, label_file
        self.classifies = classifies    # False: a method without a classifier (FSL) has no classification metrics
        self.records = []

    def add(self, image):
        mask = None
        if self.masks is not None:
            stored = self.masks.eval_mask(image.path, image.image_size, self.final_size)
            mask = None if stored is None else object_pixels(stored)
        label, top5 = (image.label, image.top5) if self.classifies else (None, None)
        record = self.evaluator.add(image.cam, image.gt_boxes, label, top5, mask=mask)
        record["image"] = image.path
        self.records.append(record)
        return record

    def finish(self):
        try:
            metrics = self.evaluator.compute()
        except NoForegroundError as error:
            raise MaskError(f"{self.masks.mask_dir}: {error} for the images of {self.label_file}") from None
        if self.masks is not None:
            metrics["mask_dir"] = self.masks.mask_dir
        return metrics


class PartAnalysis:
    """The part analysis on ``parts`` (a ``MaskFolder`` of 0 background / 1 part / 2 body
    masks) at τ = ``cam_threshold`` and at the sweep's best τ: ``metrics["parts"]``, when any
    image has a part mask."""

    def __init__(self, parts, final_size, cam_threshold):
        self.parts, self.final_size, self.cam_threshold = parts, final_size, cam_threshold
        self.analyzer = PartAnalyzer()

    def add(self, image, record):
        part_mask = self.parts.eval_mask(image.path, image.image_size, self.final_size)
        if part_mask is not None:
            self.analyzer.add(normalize_cam(image.cam), part_mask)

    def finish(self, metrics):
        if self.analyzer.num_images:
            metrics["parts"] = self.analyzer.compute({"cam_threshold": self.cam_threshold,
                                                      "best": metrics["sweep"]["best_threshold"]})


class CamWriter:
    """Every CAM as ``cam_dir/<image without extension>.npy`` (float32, crop frame of
    ``final_size``) and, at the end, the frame (``utils.evaluation.scorer.write_frame``) and the
    GT boxes in that frame as ``cam_dir/labels.txt``.  The folder is made at once, so an
    unwritable one fails before the pass, not after."""

    def __init__(self, cam_dir, final_size):
        self.cam_dir, self.final_size, self.entries = cam_dir, final_size, []
        self.labels_file = os.path.join(cam_dir, SAVED_CAMS_LABELS)
        make_folder(cam_dir)

    def add(self, image, record):
        write_npy(os.path.join(self.cam_dir, cam_file_name(image.path)), np.asarray(image.cam, np.float32))
        self.entries.append(LabelEntry(image.path, image.label, image.gt_boxes))

    def finish(self, metrics):
        write_frame(self.cam_dir, self.final_size)
        write_label_list(self.labels_file, self.entries)


def class_name(class_names, index):
    """``"<index> <name>"`` (or the index alone without class names)."""
    return f"{index} {class_names[index]}" if class_names and 0 <= index < len(class_names) else str(index)


NO_CLASSIFIER = "none (no classifier)"   # the predicted class of a method without one (FSL)


class ExamplePanels:
    """The first ``count`` images as readable panels (image | heat map | boxes) and as arrays
    (crop, CAM, GT and predicted box: for comparison figures across runs); ``save`` writes them."""

    def __init__(self, count, class_names, cam_threshold):
        self.count, self.class_names, self.cam_threshold = count, class_names, cam_threshold
        self.panels, self.arrays = {}, {}

    def add(self, image, record):
        if len(self.panels) >= self.count:
            return
        name = f"{len(self.panels):03d}_{os.path.splitext(os.path.basename(image.path))[0]}"
        self.panels[name] = readable_example(
            image.image, image.cam, image.gt_boxes, record["box"], class_name(self.class_names, image.label),
            NO_CLASSIFIER if record["top5"] is None else class_name(self.class_names, record["top5"][0]),
            record["iou"], self.cam_threshold)
        self.arrays[name] = (image.image, image.cam, image.gt_boxes, np.array(record["box"]))

    def finish(self, metrics):
        pass  # nothing to add to the metrics; the result folder is made after them (``save``)

    def save(self, folder):
        """``folder/<name>.png`` for each panel and ``folder/cams.npz`` with the arrays."""
        save_examples(folder, self.panels)
        names = sorted(self.arrays)
        if not names:
            return
        write_npz(os.path.join(folder, "cams.npz"), names=np.array(names),
                  images=np.stack([self.arrays[n][0] for n in names]),
                  cams=np.stack([self.arrays[n][1] for n in names]),
                  pred_boxes=np.stack([self.arrays[n][3] for n in names]),
                  gt_boxes=np.array([self.arrays[n][2][0] for n in names]))
