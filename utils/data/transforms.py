"""Image decoding, the released resize/crop/flip augmentation and the matching box maths.

numpy + OpenCV only (no TensorFlow), so evaluation code can map GT boxes into the crop
frame with ``eval_boxes`` and worker processes stay light.

Conventions (as released)
-------------------------
Images are decoded as BGR uint8 and resized to ``R x R`` with ``R = final_size + 32``,
ignoring the aspect ratio.  Training takes a ``final_size`` crop at a random offset in
``[0, R - final_size]`` and flips horizontally with probability 1/2; evaluation takes the
centre crop (offset ``(R - final_size) // 2``).  A box ``x1 y1 x2 y2`` follows exactly:
x scaled by ``R / W`` and y by ``R / H``, shifted by the crop offset, truncated towards
zero to an integer and *not* clipped to the crop; a flip maps ``x -> final_size - x``
and swaps x1 and x2 so that ``x1 <= x2`` stays true.
"""
import cv2
import numpy as np

RESIZE_MARGIN = 32  # images are resized to (final_size + RESIZE_MARGIN) squared
BAD_IMAGE_TAG = "__bad_image__"


# ----------------------------------------------------------------------------- box maths

def transform_boxes_resize_crop(boxes, orig_hw, resize, crop_xy):
    """Boxes ``[n,4]`` (x1 y1 x2 y2, original image of size ``orig_hw = (H, W)``) in the frame
    of a crop at ``crop_xy = (x, y)`` of the image resized to ``resize x resize``: scaled,
    shifted, truncated towards zero, not clipped.  Returns float32 ``[n,4]``."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    height, width = orig_hw
    scale = np.array([resize / width, resize / height] * 2)
    offset = np.array([crop_xy[0], crop_xy[1]] * 2, np.float64)
    return np.trunc(boxes * scale - offset).astype(np.float32)


def flip_boxes(boxes, width):
    """Mirror boxes ``[n,4]`` in an image ``width`` wide: ``x -> width - x``, x1/x2 swapped."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1)


def centre_crop_offset(resize, final_size):
    """Offset (same for x and y) of the centred ``final_size`` crop of a ``resize`` square."""
    return (resize - final_size) // 2


def eval_boxes(entry_boxes, orig_hw, final_size):
    """All GT boxes ``[n,4]`` of an image in the evaluation frame (resize ``final_size + 32``,
    centre crop ``final_size``), e.g. to score a predicted box against every GT box."""
    resize = final_size + RESIZE_MARGIN
    offset = centre_crop_offset(resize, final_size)
    return transform_boxes_resize_crop(entry_boxes, orig_hw, resize, (offset, offset))


def _datapoint_box(box, orig_hw, resize, crop_xy, final_size, flip):
    """One GT box (or None) as the ``[[x1, y1], [x2, y2]]`` float32 datapoint component
    (zeros when there is no box)."""
    if box is None:
        return np.zeros((2, 2), np.float32)
    boxes = transform_boxes_resize_crop(box, orig_hw, resize, crop_xy)
    if flip:
        boxes = flip_boxes(boxes, final_size)
    return boxes[0].reshape(2, 2)


# ----------------------------------------------------------------------------- images

def decode_image(path):
    """``(BGR uint8 image, None)``, or ``(None, reason)`` when the file is missing, empty,
    unreadable or not a complete image (truncated JPEGs count as bad)."""
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as error:
        return None, error.strerror or str(error)
    if data.size == 0:
        return None, "empty file"
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        return None, "cannot decode image (corrupt or truncated)"
    return image, None


def _resize_and_crop(image, resize, final_size, crop_xy):
    resized = cv2.resize(image, (resize, resize), interpolation=cv2.INTER_LINEAR)
    x, y = crop_xy
    return resized[y:y + final_size, x:x + final_size]


def centre_crop_view(image, final_size):
    """The evaluation view of an image: resized to ``final_size + 32`` squared, centre
    ``final_size`` crop; returns ``(crop, resize, offset)``."""
    resize = final_size + RESIZE_MARGIN
    offset = centre_crop_offset(resize, final_size)
    return _resize_and_crop(image, resize, final_size, (offset, offset)), resize, offset


def crop_boxes_to_original(boxes, orig_hw, resize, offset):
    """Inverse of the box transform: boxes ``[n,4]`` in the frame of a crop at ``(offset, offset)``
    of the image resized to ``resize`` squared, back in the pixels of the original ``orig_hw =
    (H, W)`` image: ``x -> (x + offset) * W / resize``, ``y -> (y + offset) * H / resize``
    (float64, not rounded)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    height, width = orig_hw
    return (boxes + offset) * np.array([width, height] * 2, np.float64) / resize


def is_bad_image_marker(datapoint):
    """True for the ``[BAD_IMAGE_TAG, path, reason]`` the map functions return."""
    return isinstance(datapoint[0], str) and datapoint[0] == BAD_IMAGE_TAG


def map_train_image(datapoint, final_size, decode=decode_image):
    """``[path, label, box|None, crop_x, crop_y, flip]`` -> ``[image, label int32, box [2,2],
    orig_hw]``, or ``[BAD_IMAGE_TAG, path, reason]`` when the image cannot be read.
    ``decode``: a function like ``decode_image`` (e.g. one answering from memory)."""
    path, label, box, crop_x, crop_y, flip = datapoint
    image, reason = decode(path)
    if image is None:
        return [BAD_IMAGE_TAG, path, reason]
    resize = final_size + RESIZE_MARGIN
    crop = _resize_and_crop(image, resize, final_size, (crop_x, crop_y))
    if flip:
        crop = crop[:, ::-1]
    corners = _datapoint_box(box, image.shape[:2], resize, (crop_x, crop_y), final_size, flip)
    return [np.ascontiguousarray(crop), np.int32(label), corners, image.shape[:2]]


def map_eval_image(datapoint, final_size, decode=decode_image):
    """``[index, path, label, box|None]`` -> ``[image, label int32, box [2,2], index int32,
    orig_hw]``, or ``[BAD_IMAGE_TAG, path, reason]`` when the image cannot be read.
    ``decode``: a function like ``decode_image`` (e.g. one answering from memory)."""
    index, path, label, box = datapoint
    image, reason = decode(path)
    if image is None:
        return [BAD_IMAGE_TAG, path, reason]
    resize = final_size + RESIZE_MARGIN
    offset = centre_crop_offset(resize, final_size)
    crop = _resize_and_crop(image, resize, final_size, (offset, offset))
    corners = _datapoint_box(box, image.shape[:2], resize, (offset, offset), final_size, False)
    return [crop, np.int32(label), corners, np.int32(index), image.shape[:2]]
