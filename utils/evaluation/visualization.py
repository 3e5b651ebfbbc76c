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


# --------------------------------------------------------------------------- readable pictures

MIN_CELL = 224                 # an upsampled crop is at least this many pixels wide
CAPTION_LINE = 22              # caption line height (pixels) of readable pictures
CAPTION_SCALE = 0.55


def _caption_width(lines):
    """Pixels needed to show every line of a caption."""
    return max(cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, CAPTION_SCALE, 1)[0][0] for line in lines) + 12


def _caption(lines, width, colors=None):
    """A black strip ``width`` wide holding one text line per entry (colours per line, BGR)."""
    strip = np.zeros((CAPTION_LINE * len(lines) + 6, width, 3), np.uint8)
    for row, line in enumerate(lines):
        color = (colors or {}).get(row, (255, 255, 255))
        cv2.putText(strip, line, (6, CAPTION_LINE * (row + 1) - 4), cv2.FONT_HERSHEY_SIMPLEX, CAPTION_SCALE,
                    color, 1, cv2.LINE_AA)
    return strip


def upsample_factor(size, min_cell=MIN_CELL):
    """Smallest integer factor that makes ``size`` pixels at least ``min_cell``."""
    return max(1, -(-int(min_cell) // max(1, int(size))))


def readable_example(image, cam, gt_boxes, pred_box, class_name, predicted_name, iou, cam_threshold,
                     min_cell=MIN_CELL):
    """One evaluation example a person can read: "image | heat map | boxes", each cell the
    crop upsampled (nearest) by an integer factor to at least ``min_cell`` pixels, with the
    GT class, the predicted class, the IoU and a colour legend underneath."""
    factor = upsample_factor(max(image.shape[:2]), min_cell)
    big = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
    heat = heatmap_overlay(big, resize_cam(cam, big.shape[:2]))
    boxes = big.copy()
    for box in np.asarray(gt_boxes).reshape(-1, 4):
        _draw_box(boxes, np.asarray(box, np.float64) * factor, GT_COLOR)
    _draw_box(boxes, np.asarray(pred_box, np.float64) * factor, PRED_COLOR)
    row = np.hstack([_titled(big, "image"), _titled(heat, "CAM (blue low - red high)"), _titled(boxes, "boxes")])
    lines = [f"GT class: {class_name}", f"predicted: {predicted_name}",
             f"IoU {iou:.2f} at tau {cam_threshold:.2f}", "green: GT box   red: predicted box"]
    return np.vstack([row, _caption(lines, row.shape[1], {3: (200, 255, 200)})])


def prediction_overlay(image, cam, cam_region, box, label_lines, alpha=0.5):
    """The heat map of ``cam`` blended into ``image`` over ``cam_region = (x1, y1, x2, y2)``
    (the part of the image the network saw), the box ``[x1, y1, x2, y2]`` in red at its
    pixels, and ``label_lines`` in a strip under the image; an image too narrow for the
    text is padded with black on the right (image pixels keep their place)."""
    canvas = image.copy()
    x1, y1, x2, y2 = (int(round(v)) for v in cam_region)
    x1, y1 = max(0, x1), max(0, y1)
    x2, y2 = min(image.shape[1], x2), min(image.shape[0], y2)
    if x2 > x1 and y2 > y1:
        canvas[y1:y2, x1:x2] = heatmap_overlay(canvas[y1:y2, x1:x2], cam, alpha)
    _draw_box(canvas, box, PRED_COLOR)
    width = max(canvas.shape[1], _caption_width(label_lines))
    canvas = cv2.copyMakeBorder(canvas, 0, 0, 0, width - canvas.shape[1], cv2.BORDER_CONSTANT, value=0)
    return np.vstack([canvas, _caption(label_lines, width)])
