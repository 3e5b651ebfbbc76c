"""Box arithmetic shared by the data pipeline, the synthetic set and the evaluation.

Boxes are ``[x1, y1, x2, y2]`` in pixels.  ``plus_one=True`` is the released
(inclusive-pixel) convention: a box covers ``x2 - x1 + 1`` columns.
"""
import numpy as np


def box_area(boxes, plus_one=True):
    """Area of each box of an ``[..., 4]`` array (0 for inverted boxes)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    extra = 1.0 if plus_one else 0.0
    w = np.maximum(boxes[..., 2] - boxes[..., 0] + extra, 0.0)
    h = np.maximum(boxes[..., 3] - boxes[..., 1] + extra, 0.0)
    return w * h


def box_iou(boxes_a, boxes_b, plus_one=True):
    """IoU matrix ``[len(a), len(b)]`` of two box arrays ``[n, 4]`` and ``[m, 4]``."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    extra = 1.0 if plus_one else 0.0
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.maximum(x2 - x1 + extra, 0.0) * np.maximum(y2 - y1 + extra, 0.0)
    union = box_area(a, plus_one)[:, None] + box_area(b, plus_one)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return iou
