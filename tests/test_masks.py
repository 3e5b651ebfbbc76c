"""utils.data.masks: locating, reading and cropping masks like the evaluation images."""
import os

import numpy as np
import pytest

from utils.data.masks import (MaskError, MaskFolder, default_mask_dir, load_mask, mask_file, mask_in_crop,
                              object_pixels, write_mask)


def test_mask_paths_follow_the_image_paths(tmp_path):
    assert default_mask_dir("data", "CUB") == os.path.join("data", "CUB", "masks")
    assert mask_file("m", "001.Black/bird_1.jpg") == os.path.join("m", "001.Black", "bird_1.png")
    assert mask_file("m", "val/ILSVRC2012_val_1.JPEG") == os.path.join("m", "val", "ILSVRC2012_val_1.png")


def test_part_values_survive_a_round_trip_and_the_crop(tmp_path):
    # 40x40 mask: left half = head (1), right half = body (2); crop 16 of the 48 px resize
    mask = np.full((40, 40), 2, np.uint8)
    mask[:, :20] = 1
    path = str(tmp_path / "parts" / "a" / "x.png")
    write_mask(path, mask)
    loaded = load_mask(path, expected_hw=(40, 40))
    assert loaded.dtype == np.uint8 and np.array_equal(loaded, mask)
    crop = mask_in_crop(loaded, 16)
    assert crop.shape == (16, 16)
    # resized x < 24 comes from source x < 20 (nearest: x_src = floor(x * 40 / 48)); crop starts at 16
    assert np.array_equal(np.unique(crop), [1, 2])
    assert np.all(crop[:, :8] == 1) and np.all(crop[:, 8:] == 2)


def test_crop_matches_the_image_transform_on_a_rectangle():
    # object rows 10..29, cols 0..59 of a 40x60 image; eval at 32: resize 64x64, offset 16
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, :] = 255
    crop = object_pixels(mask_in_crop(mask, 32))
    rows = np.flatnonzero(crop.any(axis=1))
    # resized rows r with floor(r * 40 / 64) in 10..29 -> r in 16..47 -> crop rows 0..31
    assert rows.tolist() == list(range(0, 32)) and crop.all()
    mask[:] = 0
    mask[:5, :5] = 255          # top-left corner falls outside the centre crop
    assert not object_pixels(mask_in_crop(mask, 32)).any()


def test_bad_masks_are_named(tmp_path):
    with pytest.raises(MaskError, match="not found"):
        load_mask(str(tmp_path / "none.png"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(MaskError, match="broken.png: cannot decode"):
        load_mask(str(broken))
    path = str(tmp_path / "small.png")
    write_mask(path, np.zeros((4, 5), np.uint8))
    with pytest.raises(MaskError, match=r"small.png: mask is 5x4 \(WxH\) but its image is 6x4"):
        load_mask(path, expected_hw=(4, 6))
    with pytest.raises(MaskError, match="mask folder"):
        MaskFolder(str(tmp_path / "missing"))


def test_mask_folder_returns_none_for_an_image_without_mask(tmp_path):
    write_mask(str(tmp_path / "a.png"), np.full((8, 8), 255, np.uint8))
    folder = MaskFolder(str(tmp_path))
    assert folder.eval_mask("b.jpg", (8, 8), 16) is None
    assert folder.eval_mask("a.jpg", (8, 8), 16).shape == (16, 16)
