"""The demo's reference rows and picture grid, against hand-computed values (no training)."""
import numpy as np
import pytest

from utils.demo import box_guess_row
from utils.evaluation.visualization import GRID_CELL, comparison_grid, comparison_row


def test_box_guess_row_counts_hits_per_iou_level():
    gt = [np.array([[0, 0, 9, 9]], np.float32)] * 4
    # IoU (+1 pixel convention) with the GT box: 1.0, 0.64, 0.4, 0.0
    guesses = [[0, 0, 9, 9], [0, 0, 7, 7], [0, 0, 9, 3], [20, 20, 29, 29]]
    row = box_guess_row(guesses, gt)
    assert (row["iou30"], row["iou50"], row["iou70"]) == (75.0, 50.0, 25.0)
    assert row["gt_known_loc"] == row["gt_known_best"] == 50.0
    assert row["maxboxacc_v2"] == pytest.approx(50.0)


def test_comparison_grid_upsamples_cells_and_draws_boxes_and_legend():
    image = np.full((96, 96, 3), 40, np.uint8)
    cam = np.zeros((6, 6), np.float32)
    cam[1:3, 1:3] = 1.0
    methods = {"CAM": (cam, [10, 10, 40, 40], 0.25), "E2Net": (cam, [10, 10, 80, 80], 0.8)}
    row = comparison_row(image, [10, 10, 80, 80], methods, "class 0: 000.disc_h000")
    assert row.shape[1] == 3 * GRID_CELL and row.shape[0] > GRID_CELL
    gt_cell = row[-GRID_CELL:, :GRID_CELL]
    green = (gt_cell[..., 1] == 255) & (gt_cell[..., 0] == 0) & (gt_cell[..., 2] == 0)
    ys, xs = np.nonzero(green)  # the GT box, scaled by 2.5: pixel 10 -> 26, pixel 80 -> 201
    assert abs(xs.min() - 26) <= 2 and abs(xs.max() - 201) <= 2 and abs(ys.max() - 201) <= 2
    grid = comparison_grid([row, row], ["CAM", "E2Net"])
    assert grid.shape[1] == row.shape[1] and grid.shape[0] > 2 * row.shape[0]
    legend = grid[:grid.shape[0] - 2 * row.shape[0]]
    assert (legend[..., 1] == 255).any() and legend.std() > 10  # colour patches and text
