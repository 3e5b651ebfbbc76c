"""Object and part masks: where a list entry's mask is, reading it, and its evaluation crop.

numpy + OpenCV only (no TensorFlow).

Layout (shared convention)
--------------------------
The mask of list entry ``relative/path.jpg`` is ``<mask_dir>/relative/path.png``: an
8-bit single-channel PNG at the ORIGINAL image's size.  ``mask_dir`` defaults to
``<data_dir>/<NAME>/masks`` (``default_mask_dir``); ``--mask_dir`` gives another folder
with the same relative layout.  Object masks hold 0 = background and nonzero = object
(255 when written here); SYNTH's part masks (``<data_dir>/SYNTH/parts``,
``part_mask_dir``) hold 0 = background, 1 = head (discriminative part), 2 = body.

``load_mask`` keeps the stored values (callers binarise: ``object_pixels`` applies
wsolevaluation's rule, gray value > 0.5, i.e. any nonzero value of an 8-bit mask), and
``mask_in_crop`` maps a mask into the evaluation (or a training) crop exactly like the image
(``utils.data.transforms``: resize to ``final_size + 32`` squared ignoring the aspect
ratio, centre crop ``final_size``) with nearest-neighbour interpolation, so label values
are never blended.
"""
import os

import cv2
import numpy as np

from utils.atomic import write_image
from utils.data.transforms import RESIZE_MARGIN, centre_crop_offset
from utils.errors import UserError

MASKS_FOLDER = "masks"
PARTS_FOLDER = "parts"
MASK_SUFFIX = ".png"


class MaskError(UserError, ValueError):
    """A mask file or folder that cannot be used (the message names it)."""


def default_mask_dir(data_dir, dataset_name):
    """``<data_dir>/<NAME>/masks``."""
    return os.path.join(data_dir, dataset_name, MASKS_FOLDER)


def part_mask_dir(data_dir, dataset_name="SYNTH"):
    """``<data_dir>/<NAME>/parts`` (SYNTH's head/body masks)."""
    return os.path.join(data_dir, dataset_name, PARTS_FOLDER)


def mask_file(mask_dir, image_path):
    """The mask path of a list entry: its relative path with the extension replaced by ``.png``."""
    return os.path.join(mask_dir, os.path.splitext(image_path)[0] + MASK_SUFFIX)


def load_mask(path, expected_hw=None):
    """The stored values of a mask PNG as uint8 ``[H, W]``.

    A 3-channel file whose channels are equal is accepted (its first channel).  Raises
    ``MaskError`` naming the file when it is missing, unreadable, not single-valued per
    pixel, or (with ``expected_hw = (H, W)``) not of the image's size.
    """
    data = np.fromfile(path, np.uint8) if os.path.isfile(path) else None
    if data is None:
        raise MaskError(f"{path}: mask file not found")
    mask = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if mask is None:
        raise MaskError(f"{path}: cannot decode the mask (corrupt or not an image)")
    if mask.ndim == 3:
        if mask.shape[2] not in (3, 4) or np.any(mask[..., 1:3] != mask[..., :1]):
            raise MaskError(f"{path}: expected a single-channel mask, got {mask.shape[2]} different channels")
        mask = mask[..., 0]
    if mask.dtype != np.uint8:
        raise MaskError(f"{path}: expected an 8-bit mask, got {mask.dtype}")
    if expected_hw is not None and tuple(mask.shape) != tuple(expected_hw):
        raise MaskError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image is "
                        f"{expected_hw[1]}x{expected_hw[0]}")
    return mask


def write_mask(path, mask):
    """Write a uint8 mask PNG (parent folders created; written whole or not at all)."""
    write_image(path, np.asarray(mask, np.uint8))


def object_pixels(mask):
    """wsolevaluation's binarisation: a pixel is object when its gray value is > 0.5."""
    return np.asarray(mask) > 0.5


def mask_in_crop(mask, final_size, crop_xy=None, flip=False):
    """A mask in the frame of a crop: nearest-neighbour resize to ``final_size + 32`` squared,
    then the ``final_size`` crop at ``crop_xy = (x, y)`` (default: the centre crop, as
    ``utils.data.transforms.map_eval_image``), mirrored when ``flip`` (as ``map_train_image``)."""
    resize = final_size + RESIZE_MARGIN
    resized = cv2.resize(np.asarray(mask), (resize, resize), interpolation=cv2.INTER_NEAREST)
    if crop_xy is None:
        crop_xy = (centre_crop_offset(resize, final_size),) * 2
    x, y = crop_xy
    crop = resized[y:y + final_size, x:x + final_size]
    return crop[:, ::-1] if flip else crop


class MaskFolder:
    """The masks of one folder, for list entries; a missing file is ``None`` (callers count it)."""

    def __init__(self, mask_dir):
        if not os.path.isdir(mask_dir):
            raise MaskError(f"mask folder {mask_dir} not found")
        self.mask_dir = mask_dir

    def eval_mask(self, image_path, orig_hw, final_size):
        """The stored mask of ``image_path`` in the evaluation crop, or ``None`` when it has no file."""
        path = mask_file(self.mask_dir, image_path)
        if not os.path.isfile(path):
            return None
        return mask_in_crop(load_mask(path, orig_hw), final_size)
