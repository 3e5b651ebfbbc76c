"""Pictures of CAMs and boxes (BGR uint8 images, OpenCV drawing, no TensorFlow).

An example panel is one row of tiles: the image, one heat-map overlay per CAM,
and the image with the GT boxes (green) and the predicted boxes (red, then blue,
magenta, ... for further methods), each labelled with its name.
"""
import os
import re

import cv2
import numpy as np

from utils.atomic import make_folder, write_image
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


def _text_strip(width, lines, line_height, scale, colours=None):
    """A black strip ``width`` wide holding one text line per entry, ``line_height`` pixels
    each (``colours``: {line index: BGR}; white otherwise)."""
    strip = np.zeros((line_height * len(lines), width, 3), np.uint8)
    for row, line in enumerate(lines):
        cv2.putText(strip, line, (6, line_height * (row + 1) - 6), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (colours or {}).get(row, (255, 255, 255)), 1, cv2.LINE_AA)
    return strip


def _titled(tile, title):
    """The tile under a black strip holding ``title``."""
    return np.vstack([_text_strip(tile.shape[1], [title], TITLE_HEIGHT, 0.45), tile])


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
    make_folder(out_dir)
    paths = []
    for name, panel in panels.items():
        path = os.path.join(out_dir, re.sub(r"[^\w.-]", "_", str(name)) + ".png")
        write_image(path, panel)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- readable pictures

MIN_CELL = 224                 # an upsampled crop is at least this many pixels wide
CAPTION_LINE = 22              # caption line height (pixels) of readable pictures
CAPTION_SCALE = 0.55


def _caption_width(lines):
    """Pixels needed to show every line of a caption."""
    return max(cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, CAPTION_SCALE, 1)[0][0] for line in lines) + 12


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
    return np.vstack([row, _text_strip(row.shape[1], lines, CAPTION_LINE, CAPTION_SCALE, {3: (200, 255, 200)})])


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
    return np.vstack([canvas, _text_strip(width, label_lines, CAPTION_LINE, CAPTION_SCALE)])


# ----------------------------------------------------------------------------- method comparison grid

GRID_CELL = 240               # pixels of one grid cell: small crops are upsampled to this
GRID_FONT = cv2.FONT_HERSHEY_SIMPLEX
GRID_TEXT_HEIGHT = 26


def upsampled(image, cell=GRID_CELL):
    """``image`` scaled (nearest neighbour, so pixels stay visible) to ``cell`` pixels wide."""
    scale = cell / float(image.shape[1])
    return cv2.resize(image, (cell, int(round(image.shape[0] * scale))), interpolation=cv2.INTER_NEAREST), scale


def _scaled_box(box, scale):
    return [(v + 0.5) * scale - 0.5 for v in np.asarray(box, np.float64).reshape(4)]


def _labelled_box(canvas, box, colour, text):
    """A thick box with ``text`` on a filled label just inside its top-left corner."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
    (tw, th), _ = cv2.getTextSize(text, GRID_FONT, 0.5, 1)
    tx = int(np.clip(x1, 0, canvas.shape[1] - tw - 4))
    ty = int(np.clip(y1 + th + 4, th + 4, canvas.shape[0] - 2))
    cv2.rectangle(canvas, (tx, ty - th - 4), (tx + tw + 4, ty + 2), colour, -1)
    cv2.putText(canvas, text, (tx + 2, ty - 2), GRID_FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)


def comparison_row(image, gt_box, methods, class_name, cell=GRID_CELL):
    """One grid row: the image with its GT box (green) and class name, then per method
    ``name -> (cam, pred_box, iou)`` its heat map with its box (its colour) and IoU."""
    base, scale = upsampled(image, cell)
    gt = _scaled_box(gt_box, scale)
    first = base.copy()
    _labelled_box(first, gt, GT_COLOR, "GT")
    tiles = [np.vstack([_text_strip(cell, [class_name], GRID_TEXT_HEIGHT, 0.5), first])]
    for index, (name, (cam, box, iou)) in enumerate(methods.items()):
        colour = PANEL_PRED_COLORS[index % len(PANEL_PRED_COLORS)]
        tile = heatmap_overlay(base, resize_cam(np.asarray(cam), image.shape[:2]))
        cv2.rectangle(tile, *[tuple(int(round(v)) for v in pair) for pair in (gt[:2], gt[2:])], GT_COLOR, 1)
        _labelled_box(tile, _scaled_box(box, scale), colour, f"IoU {iou:.2f}")
        tiles.append(np.vstack([_text_strip(cell, [f"{name} heat map + box"], GRID_TEXT_HEIGHT, 0.5, {0: colour}),
                                tile]))
    return np.hstack(tiles)


def colour_legend(width, method_names):
    """A legend strip: box colours (GT, each method) and the heat-map scale (low .. high)."""
    legend = np.zeros((2 * GRID_TEXT_HEIGHT, width, 3), np.uint8)
    x = 6
    for name, colour in [("GT box (whole object)", GT_COLOR)] + [
            (f"{name} box", PANEL_PRED_COLORS[i % len(PANEL_PRED_COLORS)]) for i, name in enumerate(method_names)]:
        cv2.rectangle(legend, (x, 8), (x + 18, 20), colour, -1)
        cv2.putText(legend, name, (x + 24, 19), GRID_FONT, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        x += 24 + cv2.getTextSize(name, GRID_FONT, 0.5, 1)[0][0] + 18
    bar_width = max(40, min(240, width - 200))
    ramp = np.tile(np.linspace(0, 255, bar_width).astype(np.uint8), (12, 1))
    y = GRID_TEXT_HEIGHT + 6
    cv2.putText(legend, "heat map: low", (6, y + 10), GRID_FONT, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    legend[y:y + 12, 130:130 + bar_width] = cv2.applyColorMap(ramp, cv2.COLORMAP_JET)
    cv2.putText(legend, "high (CAM, min-max normalised)", (136 + bar_width, y + 10), GRID_FONT, 0.5,
                (255, 255, 255), 1, cv2.LINE_AA)
    return legend


def comparison_grid(rows, method_names):
    """Rows of ``comparison_row`` stacked under one colour legend (BGR uint8)."""
    width = max(row.shape[1] for row in rows)
    return np.vstack([colour_legend(width, method_names)] + list(rows))
