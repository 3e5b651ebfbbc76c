"""Part analysis against hand-made part masks and CAMs with known answers."""
import numpy as np
import pytest

from utils.evaluation.localization import reference_mask, reference_threshold_index
from utils.evaluation.parts import FIELDS, PartAnalyzer, image_fractions, parts_table


def head_and_body_image():
    """10x10: part (head) rows 0-1 x cols 0-1 (4 px), body rows 0-1 x cols 2-9 (16 px).

    CAM 1.0 on the head and body cols 2-3 (8 px), 0.5 on body cols 4-5 and on background
    row 2 x cols 0-3 (4 + 4 px), 0 elsewhere.
    """
    parts = np.zeros((10, 10), np.uint8)
    parts[0:2, 0:2] = 1
    parts[0:2, 2:10] = 2
    cam = np.zeros((10, 10))
    cam[0:2, 0:4] = 1.0
    cam[0:2, 4:6] = 0.5
    cam[2, 0:4] = 0.5
    return cam, parts


def head_only_image():
    """10x10: head rows 0-1 x cols 0-1, no body; CAM 1.0 on row 0 (2 head + 8 background px)."""
    parts = np.zeros((10, 10), np.uint8)
    parts[0:2, 0:2] = 1
    cam = np.zeros((10, 10))
    cam[0, :] = 1.0
    return cam, parts


HIGH_TAU = 0.8


def test_thresholds_of_the_hand_made_cases():
    # 0.5 is kept at tau 0.2 (floor(256 * 0.5) = 128 >= k) and dropped at HIGH_TAU; 1.0 is kept at both.
    assert reference_threshold_index(0.2) <= 128 < reference_threshold_index(HIGH_TAU) <= 255


def test_one_image_exact_fractions():
    analyzer = PartAnalyzer()
    analyzer.add(*head_and_body_image())
    result = analyzer.compute({"cam_threshold": 0.2, "best": HIGH_TAU})
    low, high = result["at"]["cam_threshold"], result["at"]["best"]
    # tau 0.2: region = 4 head + 8 body + 4 background = 16 px
    assert low["tau"] == 0.2
    assert low["part_fraction"] == pytest.approx(100 * 4 / 16)
    assert low["body_fraction"] == pytest.approx(100 * 8 / 16)
    assert low["background_fraction"] == pytest.approx(100 * 4 / 16)
    assert low["object_coverage"] == pytest.approx(100 * 12 / 20)
    assert low["body_coverage"] == pytest.approx(100 * 8 / 16)
    assert low["part_coverage"] == pytest.approx(100.0)
    assert low["region_size"] == pytest.approx(16.0)
    # high tau: region = 4 head + 4 body px
    assert high["part_fraction"] == pytest.approx(50.0)
    assert high["body_fraction"] == pytest.approx(50.0)
    assert high["background_fraction"] == pytest.approx(0.0)
    assert high["object_coverage"] == pytest.approx(100 * 8 / 20)
    assert high["body_coverage"] == pytest.approx(100 * 4 / 16)
    assert high["region_size"] == pytest.approx(8.0)
    assert result["num_images"] == 1 and high["images"]["body_coverage"] == 1


def test_mean_of_per_image_fractions_and_undefined_fields():
    analyzer = PartAnalyzer()
    analyzer.add(*head_and_body_image())
    analyzer.add(*head_only_image())
    at = analyzer.compute({"cam_threshold": 0.2})["at"]["cam_threshold"]
    # image 2 at tau 0.2: region 10 px = 2 head + 8 background; object (= head) covered 2/4
    assert at["part_fraction"] == pytest.approx((25 + 20) / 2)
    assert at["body_fraction"] == pytest.approx((50 + 0) / 2)
    assert at["background_fraction"] == pytest.approx((25 + 80) / 2)
    assert at["object_coverage"] == pytest.approx((60 + 50) / 2)
    assert at["part_coverage"] == pytest.approx((100 + 50) / 2)
    assert at["region_size"] == pytest.approx((16 + 10) / 2)
    # image 2 has no body: body coverage averages image 1 only, and says so
    assert at["body_coverage"] == pytest.approx(50.0)
    assert at["images"]["body_coverage"] == 1 and at["images"]["object_coverage"] == 2


def test_empty_region_leaves_fractions_undefined():
    _, parts = head_and_body_image()
    analyzer = PartAnalyzer()
    analyzer.add(np.zeros((10, 10)), parts)          # a degenerate (all-zero) normalised map
    at = analyzer.compute({"t": 0.5})["at"]["t"]
    assert at["part_fraction"] is None and at["images"]["part_fraction"] == 0
    assert at["object_coverage"] == 0.0 and at["region_size"] == 0.0


def test_region_is_the_reference_protocol_mask():
    rng = np.random.default_rng(0)
    cam = rng.random((24, 24))
    cam = (cam - cam.min()) / (cam.max() - cam.min())
    parts = rng.integers(0, 3, (24, 24))
    fractions = image_fractions(cam, parts)
    for tau in (0.0, 0.07, 0.2, 0.45, 0.9):
        region = reference_mask(cam, tau)
        k = reference_threshold_index(tau)
        assert fractions["body_fraction"][k] == pytest.approx((region & (parts == 2)).sum() / region.sum())
        assert fractions["part_coverage"][k] == pytest.approx((region & (parts == 1)).sum() / (parts == 1).sum())
        assert fractions["background_fraction"][k] == pytest.approx((region & (parts == 0)).sum() / region.sum())


def test_order_of_images_does_not_matter_and_sums_to_one_hundred():
    images = [head_and_body_image(), head_only_image()]
    results = []
    for order in (images, images[::-1]):
        analyzer = PartAnalyzer()
        for cam, parts in order:
            analyzer.add(cam, parts)
        results.append(analyzer.compute({"a": 0.2, "b": HIGH_TAU}))
    assert results[0] == results[1]
    for entry in results[0]["at"].values():
        assert entry["part_fraction"] + entry["body_fraction"] + entry["background_fraction"] == pytest.approx(100)
    assert set(FIELDS) <= set(results[0]["at"]["a"])


@pytest.mark.parametrize("cam, parts, words", [
    (np.zeros((4, 4)), np.zeros((4, 5)), "same shape"),
    (np.full((4, 4), 2.0), np.zeros((4, 4)), "normalised"),
    (np.zeros((4, 4)), np.full((4, 4), 3), "part mask values"),
])
def test_bad_inputs_are_refused(cam, parts, words):
    with pytest.raises(ValueError, match=words):
        PartAnalyzer().add(cam, parts)


def test_markdown_table_rows():
    analyzer = PartAnalyzer()
    analyzer.add(*head_and_body_image())
    lines = parts_table(analyzer.compute({"cam_threshold": 0.2, "best": HIGH_TAU})).splitlines()
    assert "body covered (%)" in lines[0] and "on background (%)" in lines[0]
    assert lines[2].startswith("| cam_threshold (τ = 0.20)")
    cells = [cell.strip() for cell in lines[2].split("|")[1:-1]]
    assert cells[1:] == ["16.0", "25.0", "50.0", "25.0", "60.0", "50.0", "100.0"]
