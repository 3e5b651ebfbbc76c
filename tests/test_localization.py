"""CAM normalisation and the reference / wsolevaluation box protocols."""
import csv
import os

import cv2
import matplotlib
import numpy as np
import pytest

from utils.evaluation.localization import (normalize_cam, reference_box, reference_boxes, reference_mask,
                                reference_threshold_index, resize_cam, wsol_boxes, wsol_boxes_at, wsol_mask)

THRESHOLDS_TSV = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "..", "shared", "thresholds.tsv")
SWEEP = np.round(np.arange(0, 1, 0.01), 2)


def smooth_random_cam(rng, size=64):
    """A random smooth map with several blobs, some touching the border."""
    return resize_cam(rng.random((7, 7)).astype(np.float32), (size, size))


def rectangle_cam(shape, *rectangles):
    """Zeros with ones in the given (row0, row1, col0, col1) inclusive rectangles."""
    cam = np.zeros(shape)
    for row0, row1, col0, col1 in rectangles:
        cam[row0:row1 + 1, col0:col1 + 1] = 1.0
    return cam


# --------------------------------------------------------------------------- normalisation

def test_normalize_min_max():
    np.testing.assert_allclose(normalize_cam([[1, 3], [5, 9]]), [[0, 0.25], [0.5, 1]])


@pytest.mark.parametrize("cam", [np.full((3, 4), 7.0), [[1.0, np.nan], [2.0, 3.0]],
                                 [[1.0, np.inf], [2.0, 3.0]], [[-np.inf, 0.0], [2.0, 3.0]]])
def test_degenerate_maps_become_zeros(cam):
    normalized = normalize_cam(cam)
    assert normalized.shape == np.shape(cam)
    assert not normalized.any()


def test_resize_is_bilinear_to_height_width():
    cam = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)
    resized = resize_cam(cam, (4, 6))
    assert resized.shape == (4, 6)
    np.testing.assert_allclose(resized, cv2.resize(cam, (6, 4), interpolation=cv2.INTER_LINEAR))
    assert resized[0, 0] == 0.0 and resized[-1, -1] == 3.0


# --------------------------------------------------------------------------- boxes by hand

def test_rectangle_gives_its_box_in_both_protocols():
    cam = rectangle_cam((20, 30), (4, 9, 5, 14))        # rows 4..9, cols 5..14
    np.testing.assert_array_equal(reference_box(cam, 0.2), [5, 4, 15, 10])
    np.testing.assert_array_equal(wsol_boxes(cam, 0.5), [[5, 4, 15, 10]])


def test_right_bottom_edges_clipped_only_by_wsolevaluation():
    cam = rectangle_cam((20, 30), (10, 19, 20, 29))      # touches the right and bottom border
    np.testing.assert_array_equal(reference_box(cam, 0.2), [20, 10, 30, 20])
    np.testing.assert_array_equal(wsol_boxes(cam, 0.2), [[20, 10, 29, 19]])


def test_two_blobs_largest_vs_all_contours():
    cam = rectangle_cam((20, 30), (2, 7, 2, 7), (12, 14, 20, 22))   # 6x6 and 3x3 blobs
    np.testing.assert_array_equal(reference_box(cam, 0.2), [2, 2, 8, 8])
    np.testing.assert_array_equal(wsol_boxes(cam, 0.2), [[2, 2, 8, 8], [20, 12, 23, 15]])
    np.testing.assert_array_equal(wsol_boxes(cam, 0.2, multi_contour=False), [[2, 2, 8, 8]])


def test_wsolevaluation_boxes_include_holes_like_retr_tree():
    cam = rectangle_cam((16, 16), (2, 11, 2, 11))
    cam[5:9, 5:9] = 0                                    # a 4x4 hole
    np.testing.assert_array_equal(wsol_boxes(cam, 0.5), [[2, 2, 12, 12], [4, 4, 10, 10]])
    np.testing.assert_array_equal(reference_box(cam, 0.5), [2, 2, 12, 12])


@pytest.mark.parametrize("cam", [np.zeros((8, 8)), np.full((8, 8), 3.0), np.full((8, 8), np.nan)])
def test_no_contour_boxes(cam):
    cam_norm = normalize_cam(cam)
    for tau in (0.0, 0.2, 0.99):
        np.testing.assert_array_equal(reference_box(cam_norm, tau), [0, 0, 1, 1])
        np.testing.assert_array_equal(wsol_boxes(cam_norm, tau), [[0, 0, 0, 0]])


def test_wsolevaluation_keeps_strictly_above_the_8bit_threshold():
    cam_norm = np.array([[0.0, 0.5, 0.51, 1.0]])
    # floor(255 t) = 0, 127, 130, 255; int(255 * 0.5) = 127 -> keep > 127
    np.testing.assert_array_equal(wsol_mask(cam_norm, 0.5), [[False, False, True, True]])


def test_reference_cut_at_tau_0_2_is_lut_index_52():
    cam_norm = np.array([[51 / 256, 52 / 256, 1.0]])
    np.testing.assert_array_equal(reference_mask(cam_norm, 0.2), [[False, True, True]])


# --------------------------------------------------------------------------- reference thresholds

def released_kept_pixels(cam_norm, tau):
    """The released chain: cubehelix colours -> uint8 -> gray -> keep gray > int(max gray * tau)."""
    colors = matplotlib.colormaps["cubehelix"](cam_norm)[..., :3]
    gray = cv2.cvtColor((colors.astype(np.float32) * 255.0).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    return gray > int(gray.max() * tau)


def test_threshold_index_equals_released_table():
    if not os.path.isfile(THRESHOLDS_TSV):
        pytest.skip(f"{os.path.normpath(THRESHOLDS_TSV)} not found (the shared folder beside the repo)")
    with open(THRESHOLDS_TSV) as table:
        rows = list(csv.DictReader(table, delimiter="\t"))
    assert len(rows) == 100
    for row in rows:
        tau, k = float(row["cam_threshold"]), int(row["min_lut_index_kept"])
        assert int(255 * tau) == int(row["gray_threshold"]), row
        assert reference_threshold_index(tau) == k, row
        assert abs(k / 256 - float(row["equivalent_t"])) < 1e-6, row


def test_reference_mask_equals_released_colour_map_chain_for_every_threshold():
    rng = np.random.default_rng(0)
    for _ in range(3):
        cam_norm = normalize_cam(smooth_random_cam(rng))
        for tau in SWEEP:
            np.testing.assert_array_equal(reference_mask(cam_norm, tau), released_kept_pixels(cam_norm, tau),
                                          err_msg=f"tau={tau}")


# --------------------------------------------------------------------------- fast sweeps

def test_fast_sweeps_equal_per_threshold_paths():
    rng = np.random.default_rng(1)
    cams = [smooth_random_cam(rng) for _ in range(4)] + [rectangle_cam((16, 16), (2, 11, 2, 11)), np.zeros((9, 9))]
    cams[-2][5:9, 5:9] = 0.5
    for cam in cams:
        cam_norm = normalize_cam(cam)
        expected = np.array([reference_box(cam_norm, tau) for tau in SWEEP])
        np.testing.assert_array_equal(reference_boxes(cam_norm, SWEEP), expected)
        for multi_contour in (True, False):
            boxes, num_boxes = wsol_boxes_at(cam_norm, SWEEP, multi_contour)
            assert len(num_boxes) == len(SWEEP) and num_boxes.sum() == len(boxes)
            for tau, got in zip(SWEEP, np.split(boxes, np.cumsum(num_boxes)[:-1])):
                np.testing.assert_array_equal(got, wsol_boxes(cam_norm, tau, multi_contour), err_msg=f"tau={tau}")
