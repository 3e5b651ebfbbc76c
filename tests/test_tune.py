"""The fair protocol (utils/tune.py): reproducible draws, the choice of the best trial, trials that
never read the test list, final runs evaluated on it with τ from train_fullsup, reuse on rerun."""
import json
import os

import pytest

from utils import tune

pytestmark = pytest.mark.duration(35)


def test_draws_are_reproducible_extend_the_same_sequence_and_stay_in_their_ranges():
    first = tune.draw_trials("E2Net", 5, search_seed=3)
    assert first == tune.draw_trials("E2Net", 5, search_seed=3)
    assert tune.draw_trials("E2Net", 3, search_seed=3) == first[:3]        # more trials keep the first ones
    assert tune.draw_trials("E2Net", 5, search_seed=4) != first
    assert tune.draw_trials("MAE", 5, search_seed=3) != [{k: t[k] for k in ("base_lr", "aae_threshold", "mae_mask")}
                                                         for t in first]   # each method its own stream
    for trial in first:
        assert list(trial) == ["base_lr", "aae_threshold", "mae_mask", "ose_heads"]
        assert 1e-4 <= trial["base_lr"] <= 1e-1
        assert 0.0 <= trial["aae_threshold"] <= 1.0
        assert trial["mae_mask"] in ("sum", "max")
        assert tuple(trial["ose_heads"]) in tune.OSE_HEAD_SETS
    assert [list(t) for t in tune.draw_trials("CAM", 2, 0)] == [["base_lr"], ["base_lr"]]


def test_spg_threshold_pairs_are_high_then_low():
    for trial in tune.draw_trials("SPG", 20, search_seed=0):
        values = trial["spg_thresholds"]
        assert len(values) == 6
        for high, low in zip(values[0::2], values[1::2]):
            assert 0.0 <= low <= high <= 1.0


def test_the_chosen_trial_has_the_best_score_ties_go_to_the_earlier_and_failures_are_never_chosen():
    assert tune.choose_best([{"score": 10.0}, {"score": None}, {"score": 30.0}, {"score": 30.0}]) == 2
    assert tune.choose_best([{"score": None}, {"score": 5.0}]) == 1
    assert tune.choose_best([{"score": None}, {"score": None}]) is None
    assert tune.choose_best([]) is None


class RecordingLauncher:
    """Stands in for train_and_evaluate: records each call and returns designed metrics whose
    train_fullsup score is a known function of the drawn learning rate."""

    def __init__(self):
        self.calls = []

    def __call__(self, log_dir, options, execution=None, log_stem=None, what="run", on_stage=None, evaluation=None):
        self.calls.append({"log_dir": log_dir, "options": dict(options), "evaluation": evaluation})
        score = 100.0 * options["base_lr"]                        # the largest lr scores best
        metrics = {"maxboxacc_v2": score, "top1_cls": 50.0, "pixel": {"pxap": score / 2},
                   "held_out_tau": {"maxboxacc_v2": score, "reference": {"gt_known_loc": score},
                                    "box_accuracy": {str(iou): {"value": score} for iou in (30, 50, 70)}}}
        return os.path.join(log_dir, "metrics.json"), metrics, False


def test_protocol_trials_on_train_fullsup_final_runs_on_val_with_held_out_tau(tmp_path, monkeypatch):
    launcher = RecordingLauncher()
    monkeypatch.setattr(tune, "train_and_evaluate", launcher)
    monkeypatch.setattr(tune.study, "ensure_data", lambda args, variant: str(tmp_path / "data"))
    monkeypatch.setattr(tune, "centred_box_row", lambda args, root: {"maxboxacc_v2": 1.0})
    assert tune.main(["--tiny", "--methods", "CAM", "ADL", "--trials", "3", "--seeds", "0", "1", "--no_fsl",
                      "--out", str(tmp_path / "out")]) == 0
    trials = [c for c in launcher.calls if "/trials/" in c["log_dir"]]
    finals = [c for c in launcher.calls if "/final/" in c["log_dir"]]
    assert len(trials) == 2 * 3 and len(finals) == 2 * 2
    assert all(c["options"]["val_split"] == "train_fullsup" and c["evaluation"] is None for c in trials)
    assert all(c["options"]["seed"] == 0 for c in trials)                 # every trial: the first seed
    assert launcher.calls.index(finals[0]) > launcher.calls.index(trials[-1])   # val only after every trial
    assert all(c["options"]["val_split"] == "train_fullsup" and
               c["evaluation"] == {"val_split": "val", "tau_split": "train_fullsup"} for c in finals)
    summary = json.loads((tmp_path / "out" / "tune.json").read_text())
    for method in ("CAM", "ADL"):
        drawn = tune.draw_trials(method, 3, search_seed=0)
        best = max(range(3), key=lambda i: drawn[i]["base_lr"])
        assert summary["chosen"][method] == drawn[best]
        assert [c["options"]["base_lr"] for c in finals if f"/final/{method}/" in c["log_dir"]] == [drawn[best]["base_lr"]] * 2
        assert [t["score"] for t in summary["trials"][method]] == pytest.approx([100 * t["base_lr"] for t in drawn])
    assert summary["search_seed"] == 0 and summary["search_space"]["ADL"]["adl_threshold"] == "Uniform[0.0, 1.0]"
    markdown = (tmp_path / "out" / "tune.md").read_text()
    assert "MaxBoxAccV2 (τ from train_fullsup)" in markdown and "Against CAM" in markdown
    assert (tmp_path / "out" / "tune.png").stat().st_size > 0


def test_a_failed_trial_is_counted_and_never_chosen(tmp_path, monkeypatch):
    launcher = RecordingLauncher()

    def failing_first(log_dir, options, *a, **k):
        if log_dir.endswith("trial00"):
            raise tune.RunError("CAM trial 1/2 (training) failed (exit 2): a designed failure")
        return launcher(log_dir, options, *a, **k)

    monkeypatch.setattr(tune, "train_and_evaluate", failing_first)
    lines = []
    args = tune.resolve(tune.build_parser().parse_args(["--tiny", "--methods", "CAM", "--trials", "2",
                                                        "--out", str(tmp_path)]))
    trials = tune.run_trials(args, str(tmp_path), log=lambda text, **k: lines.append(text))
    assert [t["state"] for t in trials["CAM"]] == ["failed", "trained"]
    assert tune.choose_best(trials["CAM"]) == 1
    assert "a designed failure" in lines[0] and "no trial scored yet" in lines[0]
    assert "running best: trial 2" in lines[1]


@pytest.mark.parametrize("argv, words", [
    (["--methods", "NOPE"], "unknown method 'NOPE'"),
    (["--trials", "0"], "--trials must be >= 1"),
    (["--seeds", "0"], "need >= 2 seeds"),
])
def test_bad_options_are_one_line(argv, words, tmp_path):
    with pytest.raises(tune.TuneError, match=words):
        tune.resolve(tune.build_parser().parse_args(["--tiny", "--out", str(tmp_path)] + argv))


def test_a_real_trial_phase_never_reads_the_test_list_and_a_rerun_reuses_every_trial(tmp_path):
    """Two methods x 1 tiny trial through train.py with val.txt moved away: any read of the test
    list would fail the run; the rerun trains nothing (the wiring of 2 x 3 trials x 2 seeds is
    tested above with a recording launcher)."""
    args = tune.resolve(tune.build_parser().parse_args(["--tiny", "--methods", "CAM", "ADL", "--trials", "1",
                                                        "--out", str(tmp_path / "out")]))
    root = tune.study.ensure_data(args, None)
    val = os.path.join(root, "SYNTH", "val.txt")
    os.rename(val, val + ".hidden")
    first = tune.run_trials(args, root, log=lambda *a, **k: None)
    assert [t["state"] for m in ("CAM", "ADL") for t in first[m]] == ["trained"] * 2, first
    assert all(t["score"] is not None for m in first for t in first[m])
    for record in first["CAM"]:
        with open(record["metrics_file"]) as f:
            result = json.load(f)
        assert result["config"]["val_split"] == "train_fullsup"
        assert result["metrics"]["num_images"] == 4 * 5          # 4 classes x 5 train_fullsup images each
    again = tune.run_trials(args, root, log=lambda *a, **k: None)
    assert [t["state"] for m in again for t in again[m]] == ["reused"] * 2
    assert [t["score"] for m in again for t in again[m]] == [t["score"] for m in first for t in first[m]]
    os.rename(val + ".hidden", val)                        # the final phase reads the test list
    reference = tune.centred_box_row(args, root)           # the final table's no-network row
    assert set(reference) == {"gt_known_held_out", "maxboxacc_v2", "iou30", "iou50", "iou70"}
    assert reference["maxboxacc_v2"] == pytest.approx((reference["iou30"] + reference["iou50"] + reference["iou70"]) / 3)
