"""Pictures of CAMs and boxes (BGR uint8 images, OpenCV drawing, no TensorFlow).

An example panel is one row of tiles: the image, one heat-map overlay per CAM,
and the image with the GT boxes (green) and the predicted boxes (red, then blue,
magenta, ... for further methods), each labelled with its name.
"""
import os
import re

import cv2
import numpy as np

from utils.evaluation.localization import normalize_cam, resize_cam

GT_COLOR = (0, 255, 0)        # BGR green
PRED_COLOR = (0, 0, 255)      # BGR red
# Predicted boxes of the methods of one panel, in order: red, blue, magenta, orange.
PANEL_PRED_COLORS = (PRED_COLOR, (255, 64, 0), (255, 0, 255), (0, 128, 255))
TITLE_HEIGHT = 20


def heatmap_overlay(image_bgr, cam, alpha=0.5):
    """Blend the JET-coloured, min-max normalised CAM (resized to the image) over the image."""
    height, width = image_bgr.shape[:2]
    cam = np.asarray(cam)
    if cam.shape != (height, width):
        cam = resize_cam(cam, (height, width))
    heat = cv2.applyColorMap((normalize_cam(cam) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(heat, alpha, image_bgr, 1.0 - alpha, 0.0)


def _draw_box(image, box, color, text=None):
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    cv2.rectangle(image, (x1, y1), (x2, y2), color, 2)
    if text:
        cv2.putText(image, text, (x1 + 2, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1,
                    cv2.LINE_AA)


def draw_boxes(image, gt_boxes, pred_box, pred_label=None):
    """A copy of ``image`` with the GT boxes ``[n, 4]`` in green and ``pred_box`` in red."""
    canvas = image.copy()
    for box in np.asarray(gt_boxes).reshape(-1, 4):
        _draw_box(canvas, box, GT_COLOR)
    if pred_box is not None:
        _draw_box(canvas, pred_box, PRED_COLOR, pred_label)
    return canvas


def _titled(tile, title):
    """The tile under a black strip holding ``title``."""
    strip = np.zeros((TITLE_HEIGHT, tile.shape[1], 3), np.uint8)
    cv2.putText(strip, title, (4, TITLE_HEIGHT - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                cv2.LINE_AA)
    return np.vstack([strip, tile])


def example_panel(image, cams, gt_boxes, pred_boxes):
    """One picture "image | heat map per CAM | boxes".

    ``cams`` maps a name to a CAM (any resolution); ``pred_boxes`` maps a name to a
    predicted box, each drawn in its colour of PANEL_PRED_COLORS with its name (GT boxes in green).
    """
    tiles = [_titled(image, "image")]
    tiles += [_titled(heatmap_overlay(image, cam), name) for name, cam in cams.items()]
    boxes = draw_boxes(image, gt_boxes, None)
    for index, (name, box) in enumerate(pred_boxes.items()):
        _draw_box(boxes, box, PANEL_PRED_COLORS[index % len(PANEL_PRED_COLORS)], name)
    tiles.append(_titled(boxes, "GT: green"))
    return np.hstack(tiles)


def save_examples(out_dir, panels):
    """Write each ``name -> panel`` of the mapping as ``out_dir/<name>.png``; returns the paths.

    Characters other than letters, digits, ``.``, ``_`` and ``-`` in a name become ``_``.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name, panel in panels.items():
        path = os.path.join(out_dir, re.sub(r"[^\w.-]", "_", str(name)) + ".png")
        if not cv2.imwrite(path, panel):
            raise OSError(f"could not write {path}")
        paths.append(path)
    return paths
