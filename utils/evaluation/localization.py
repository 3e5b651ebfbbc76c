"""From a CAM to boxes: normalisation, resizing and the two box protocols.

Both protocols work on the min-max normalised CAM ``t`` in [0, 1] and boxes
``[x1, y1, x2, y2]`` built from ``cv2.boundingRect`` as ``[x, y, x + w, y + h]``;
IoU always uses the +1 (inclusive pixel) convention of ``utils.boxes.box_iou``.

``reference``  (reproduces the released E2Net / ADL numbers) — the released code
    colour-maps ``t`` with matplotlib's 256-entry cubehelix LUT (entry
    ``min(floor(256 t), 255)``), turns the colours into uint8, converts them to
    gray with OpenCV's RGB->GRAY weights and keeps pixels whose gray value is
    above ``int(max_gray * tau)``.  The gray LUT is monotone, so this keeps
    exactly the pixels with ``floor(256 t) >= k(tau)``
    (``reference_threshold_index``; tabulated in ``../shared/thresholds.tsv`` beside the checkout,
    which tests/test_localization.py checks it against).
    Box: the bounding rectangle of the largest contour (``cv2.contourArea``),
    not clipped; no contour -> ``[0, 0, 1, 1]``.

``wsolevaluation``  (Choe et al., CVPR 2020, as in their released evaluation) —
    ``t`` is quantised to ``floor(255 t)`` (uint8) and pixels strictly above
    ``int(255 tau)`` are kept (``int(tau * max)`` with the normalised max 255).
    Boxes come from all contours (``multi_contour=True``, MaxBoxAccV2) or the
    largest one only (MaxBoxAcc); contours are retrieved with ``RETR_TREE`` as
    in the released evaluation, so the holes of a region give boxes too.  The
    right/bottom edges are clipped to ``W - 1`` / ``H - 1``; no contour ->
    ``[0, 0, 0, 0]``.  Box lists always hold the largest contour's box first.

Every per-threshold function has a multi-threshold twin (``reference_boxes``,
``wsol_boxes_at``) that quantises the map once and derives each threshold's mask
from the quantised levels; masks are nested, so thresholds keeping the same
number of pixels share one contour search.  Both give identical boxes.
"""
import functools

import cv2
import numpy as np

REFERENCE_NO_BOX = (0, 0, 1, 1)
WSOL_NO_BOX = (0, 0, 0, 0)
NUM_LEVELS = 256          # quantisation levels of both protocols (0..255)


# --------------------------------------------------------------------------- CAM maps

def normalize_cam(cam):
    """Min-max normalise a CAM to float64 values in [0, 1].

    Degenerate maps — constant, empty, or with any NaN / +-inf value — become
    all zeros (as wsolevaluation does for NaN maps), so they yield no box.
    """
    cam = np.asarray(cam, dtype=np.float64)
    if cam.size == 0:
        return np.zeros_like(cam)
    low, high = cam.min(), cam.max()   # NaN anywhere makes both NaN
    if not (np.isfinite(low) and np.isfinite(high) and high > low):
        return np.zeros_like(cam)
    return (cam - low) / (high - low)


def resize_cam(cam, size):
    """Bilinear (``cv2.INTER_LINEAR``) resize of a 2-D CAM to ``size = (height, width)``."""
    cam = np.asarray(cam)
    if cam.dtype not in (np.float32, np.float64):
        cam = cam.astype(np.float32)
    height, width = size
    return cv2.resize(cam, (int(width), int(height)), interpolation=cv2.INTER_LINEAR)


# --------------------------------------------------------------------------- contours

def find_contours(mask, retrieval=cv2.RETR_EXTERNAL, offset=(0, 0)):
    """Contours of a 0/1 mask (points shifted by ``offset = (x, y)``).

    Hides the OpenCV 3 (3 values) / 4 (2 values) difference of ``cv2.findContours``.
    """
    mask = np.ascontiguousarray(mask).view(np.uint8) if mask.dtype == bool else mask
    return cv2.findContours(mask, retrieval, cv2.CHAIN_APPROX_SIMPLE, offset=tuple(offset))[-2]


def contour_boxes(contours):
    """Boxes ``(x, y, x + w, y + h)`` of the contours, the largest contour (by area) first.

    Ties keep the first contour in OpenCV's order (like ``max(..., key=contourArea)``).
    """
    rects = [cv2.boundingRect(c) for c in contours]
    if len(rects) > 1:
        areas = [cv2.contourArea(c) for c in contours]
        largest = max(range(len(areas)), key=areas.__getitem__)
        rects[0], rects[largest] = rects[largest], rects[0]
    return [(x, y, x + w, y + h) for x, y, w, h in rects]


def _first_and_end(kept):
    """Per row of a bool matrix: index of the first True and one past the last True."""
    return kept.argmax(axis=1).tolist(), (kept.shape[1] - kept[:, ::-1].argmax(axis=1)).tolist()


def _sweep_contours(levels, cuts, retrieval, boxes_of_contours):
    """``boxes_of_contours(contours of levels >= cut)`` for each cut (ints in [0, 256]).

    The masks are nested, so cuts keeping the same number of pixels keep the same
    pixels and share one contour search; each search runs on the bounding region
    of its mask only (contours shifted back to image coordinates).
    """
    cuts = np.minimum(np.asarray(cuts, dtype=np.int64), NUM_LEVELS)
    histogram = np.bincount(levels.ravel(), minlength=NUM_LEVELS)
    kept_from = np.append(np.cumsum(histogram[::-1])[::-1], 0)   # [257]: #pixels >= cut
    top, bottom = _first_and_end(levels.max(axis=1)[None, :] >= cuts[:, None])
    left, right = _first_and_end(levels.max(axis=0)[None, :] >= cuts[:, None])
    boxes_by_count = {}
    results = []
    for i, (cut, count) in enumerate(zip(cuts.tolist(), kept_from[cuts].tolist())):
        if count not in boxes_by_count:
            contours = ()
            if count:
                region = levels[top[i]:bottom[i], left[i]:right[i]]
                mask = cv2.threshold(region, cut - 1, 1, cv2.THRESH_BINARY)[1]   # levels >= cut
                contours = find_contours(mask, retrieval, offset=(left[i], top[i]))
            boxes_by_count[count] = boxes_of_contours(contours)
        results.append(boxes_by_count[count])
    return results


# --------------------------------------------------------------------------- reference protocol

@functools.lru_cache(maxsize=1)
def cubehelix_gray_lut():
    """Gray value (uint8 ``[256]``) of each cubehelix LUT entry, as the released code got it.

    matplotlib colours -> float32 * 255 -> uint8 RGB -> ``cv2.COLOR_RGB2GRAY``.
    """
    import matplotlib
    cmap = matplotlib.colormaps["cubehelix"].resampled(NUM_LEVELS)
    rgb = (cmap(np.arange(NUM_LEVELS))[:, :3].astype(np.float32) * 255.0).astype(np.uint8)
    return cv2.cvtColor(rgb[None], cv2.COLOR_RGB2GRAY)[0]


@functools.lru_cache(maxsize=None)
def reference_threshold_index(tau):
    """Smallest LUT index ``k`` the released evaluation keeps at CAM threshold ``tau``.

    The released rule keeps gray values above ``int(max_gray * tau)``; ``max_gray``
    is the gray of the top LUT entry (255), which every normalised map attains.
    Returns 256 (nothing kept) when no entry passes.
    """
    gray = cubehelix_gray_lut().astype(np.int64)
    gray_threshold = int(gray.max() * float(tau))
    kept = np.flatnonzero(gray > gray_threshold)
    if len(kept) and not np.array_equal(kept, np.arange(kept[0], NUM_LEVELS)):
        raise RuntimeError("cubehelix gray LUT is not monotone: no single cut index")
    return int(kept[0]) if len(kept) else NUM_LEVELS


def reference_levels(cam_norm):
    """LUT index of every pixel: ``min(floor(256 t), 255)`` as uint8."""
    levels = (np.asarray(cam_norm, dtype=np.float64) * NUM_LEVELS).astype(np.int32)   # floor for t >= 0
    return np.clip(levels, 0, NUM_LEVELS - 1).astype(np.uint8)


def reference_mask(cam_norm, tau):
    """Pixels the released evaluation keeps at ``tau``: ``floor(256 t) >= k(tau)``."""
    return reference_levels(cam_norm) >= reference_threshold_index(tau)


def _reference_box_of_contours(contours):
    return contour_boxes(contours)[0] if contours else REFERENCE_NO_BOX


def reference_box(cam_norm, tau):
    """Released box ``[4]`` at ``tau``: bounding rectangle of the largest contour, else ``[0, 0, 1, 1]``."""
    return np.array(_reference_box_of_contours(find_contours(reference_mask(cam_norm, tau))), dtype=np.int64)


def reference_boxes(cam_norm, taus):
    """``[len(taus), 4]`` reference boxes of one normalised map, one per threshold (fast path)."""
    cuts = [reference_threshold_index(tau) for tau in taus]
    boxes = _sweep_contours(reference_levels(cam_norm), cuts, cv2.RETR_EXTERNAL, _reference_box_of_contours)
    return np.array(boxes, dtype=np.int64).reshape(-1, 4)


# --------------------------------------------------------------------------- wsolevaluation protocol

def wsol_levels(cam_norm):
    """The 8-bit score map of wsolevaluation: ``floor(255 t)`` as uint8."""
    return (np.asarray(cam_norm, dtype=np.float64) * 255).astype(np.uint8)


def wsol_threshold_level(tau):
    """Gray level a pixel must exceed at ``tau``: ``int(255 tau)``."""
    return int(float(tau) * 255)


def wsol_mask(cam_norm, tau):
    """Pixels wsolevaluation keeps at ``tau``: ``floor(255 t) > int(255 tau)``."""
    return wsol_levels(cam_norm) > wsol_threshold_level(tau)


def _wsol_boxes_of_contours(contours, image_shape, multi_contour):
    if not contours:
        return [WSOL_NO_BOX]
    boxes = contour_boxes(contours)
    if not multi_contour:
        boxes = boxes[:1]
    height, width = image_shape
    return [(x1, y1, min(x2, width - 1), min(y2, height - 1)) for x1, y1, x2, y2 in boxes]


def wsol_boxes(cam_norm, tau, multi_contour=True):
    """``[n, 4]`` wsolevaluation boxes at ``tau`` (largest contour first)."""
    mask = wsol_mask(cam_norm, tau)
    boxes = _wsol_boxes_of_contours(find_contours(mask, cv2.RETR_TREE), mask.shape, multi_contour)
    return np.array(boxes, dtype=np.int64)


def wsol_boxes_at(cam_norm, taus, multi_contour=True):
    """wsolevaluation boxes at several thresholds (fast path), flattened.

    Returns ``(boxes [N, 4], num_boxes [len(taus)])``: the boxes of threshold ``i``
    are the ``num_boxes[i]`` rows after those of thresholds ``0 .. i-1``, the
    largest contour's box first.
    """
    levels = wsol_levels(cam_norm)
    cuts = [wsol_threshold_level(tau) + 1 for tau in taus]
    boxes_per_cut = _sweep_contours(levels, cuts, cv2.RETR_TREE,
                                    lambda contours: _wsol_boxes_of_contours(contours, levels.shape, multi_contour))
    num_boxes = np.array([len(cut_boxes) for cut_boxes in boxes_per_cut], dtype=np.int64)
    boxes = np.array([box for cut_boxes in boxes_per_cut for box in cut_boxes], dtype=np.int64)
    return boxes.reshape(-1, 4), num_boxes
