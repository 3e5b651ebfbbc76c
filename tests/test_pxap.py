"""PxAP / PIoU (utils.evaluation.pxap) against hand-computed values."""
import numpy as np
import pytest

from utils.evaluation.pxap import PxAPAccumulator, iou_at

THRESHOLDS = np.round(np.arange(100) / 100.0, 6)


def pxap(pairs, thresholds=THRESHOLDS):
    accumulator = PxAPAccumulator(thresholds)
    for cam, mask, *ignore in pairs:
        accumulator.add(cam, mask, *ignore)
    return accumulator.compute()


def test_perfect_cam_gives_100_and_piou_100():
    mask = np.zeros((8, 8), bool)
    mask[2:5, 1:7] = True
    result = pxap([(mask.astype(np.float32) * 3.0 + 1.0, mask)])   # any scale: min-max normalised
    assert result["pxap"] == pytest.approx(100.0)
    assert result["piou"] == pytest.approx(100.0)
    assert result["num_foreground_pixels"] == 18 and result["num_background_pixels"] == 46


def test_constant_cam_gives_the_foreground_fraction():
    mask = np.zeros((10, 10), bool)
    mask[:3, :7] = True                                  # 21 of 100 pixels
    result = pxap([(np.full((10, 10), 0.4), mask)])
    assert result["pxap"] == pytest.approx(21.0)
    # every pixel is predicted at threshold 0 only: IoU 21/100 there, nothing above
    assert result["piou"] == pytest.approx(21.0) and result["piou_threshold"] == 0.0
    assert result["curve"]["precision"][0] == pytest.approx(21.0)
    assert result["curve"]["precision"][1] is None


def test_ties_enter_as_one_step():
    # scores 1 (object), 0.5 (object), 0.5 (background), 0 (background), thresholds 0, 0.5:
    # >= 1: P 1, R 1/2; >= 0.5: TP 2, FP 1 -> P 2/3, R 1; >= 0: P 1/2, R 1
    # AP = 1 * 1/2 + 2/3 * 1/2 + 1/2 * 0 = 5/6
    cam = np.array([[1.0, 0.5, 0.5, 0.0]])
    mask = np.array([[1, 1, 0, 0]], bool)
    result = pxap([(cam, mask)], thresholds=[0.0, 0.5])
    assert result["pxap"] == pytest.approx(100 * 5 / 6)
    assert result["curve"]["precision"] == pytest.approx([50.0, 100 * 2 / 3])
    assert result["curve"]["recall"] == pytest.approx([100.0, 100.0])
    # IoU: >= 0.5 -> 2 / (2 + 1 + 0); >= 0 -> 2 / 4
    assert result["curve"]["iou"] == pytest.approx([50.0, 100 * 2 / 3])
    assert result["piou_threshold"] == 0.5 and iou_at(result, 0.5) == pytest.approx(100 * 2 / 3)


def test_a_tie_between_object_and_background_is_not_split():
    # one object and one background pixel share the top score: AP = 1/2 (not 1 as a split tie would give)
    cam = np.array([[1.0, 1.0, 0.0]])
    mask = np.array([[1, 0, 0]], bool)
    assert pxap([(cam, mask)])["pxap"] == pytest.approx(50.0)


def test_split_level_accumulation_and_image_order():
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(6):
        cam = rng.random((12, 9))
        mask = cam + 0.5 * rng.random((12, 9)) > 0.9
        pairs.append((cam, mask))
    forward = pxap(pairs)
    backward = pxap(pairs[::-1])
    assert forward["pxap"] == backward["pxap"] and forward["curve"] == backward["curve"]
    # pooled over pixels, not averaged over images
    per_image = [pxap([pair])["pxap"] for pair in pairs]
    assert forward["pxap"] != pytest.approx(np.mean(per_image))
    assert 0 < forward["pxap"] < 100


def test_ignored_pixels_count_nowhere():
    cam = np.array([[1.0, 1.0, 0.0]])
    mask = np.array([[1, 0, 0]], bool)
    ignore = np.array([[0, 1, 0]], bool)
    assert pxap([(cam, mask, ignore)])["pxap"] == pytest.approx(100.0)
    assert pxap([(cam, mask)])["pxap"] == pytest.approx(50.0)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        pxap([(np.zeros((3, 3)), np.zeros((3, 4), bool))])
    with pytest.raises(ValueError, match="no foreground"):
        pxap([(np.zeros((3, 3)), np.zeros((3, 3), bool))])
    with pytest.raises(ValueError, match="rise from 0"):
        PxAPAccumulator([0.1, 0.2])


def test_scorer_adds_pxap_from_a_mask_folder(tmp_path, capsys):
    from utils.data.masks import write_mask
    from utils.evaluation.scorer import main

    cam_a = np.zeros((20, 20))
    cam_a[2:8, 2:8] = 1.0
    cam_b = np.zeros((20, 20))
    cam_b[10:15, 4:9] = 1.0
    (tmp_path / "cams" / "sub").mkdir(parents=True)
    np.save(tmp_path / "cams" / "a.npy", cam_a)
    np.save(tmp_path / "cams" / "sub" / "b.npy", cam_b)
    np.save(tmp_path / "cams" / "c.npy", cam_b)
    (tmp_path / "labels.txt").write_text("a.jpg 0 2 2 7 7\nsub/b.jpg 1 4 10 8 14\nc.jpg 1 4 10 8 14\n")
    write_mask(str(tmp_path / "masks" / "a.png"), (cam_a * 255).astype(np.uint8))
    # b's mask at twice the CAM's size: resized (nearest) back to 20x20, it is the CAM's support again
    write_mask(str(tmp_path / "masks" / "sub" / "b.png"), np.kron(cam_b * 255, np.ones((2, 2))).astype(np.uint8))
    out = tmp_path / "metrics.json"
    assert main(["--cam_dir", str(tmp_path / "cams"), "--label_file", str(tmp_path / "labels.txt"),
                 "--mask_dir", str(tmp_path / "masks"), "--out", str(out)]) == 0
    assert "PxAP" in capsys.readouterr().out
    import json
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["pxap"] == pytest.approx(100.0) and metrics["piou"] == pytest.approx(100.0)
    assert metrics["pixel"]["num_images"] == 2 and metrics["pixel"]["images_without_mask"] == 1
    assert metrics["pixel"]["masks_resized_to_the_cam"] == 1
    assert metrics["pixel"]["num_foreground_pixels"] == 36 + 25
    assert main(["--cam_dir", str(tmp_path / "cams"), "--label_file", str(tmp_path / "labels.txt"),
                 "--mask_dir", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "mask folder" in capsys.readouterr().err
