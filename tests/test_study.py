"""The ablation study: aggregation by hand, finished-run detection, tiny end-to-end run and reuse."""
import json
import os
import statistics
import subprocess
import sys

import pytest

from conftest import REPO
from utils.pretrain import zoo_file
from utils.recipes import RECIPES
from utils.study import (BASELINES, METHODS, StudyError, aggregate, build_parser, compare, comparisons,
                         main, resolve, run_options, run_values, study_tables)
from utils.training.launch import RunError, check_same_experiment, finished_metrics, train_command

pytestmark = pytest.mark.duration(45)  # seconds, for the scheduler (conftest.py)


def fake_metrics(top1, best, v2, ious, pxap=None, body=None, background=None):
    """A metrics dict shaped like WSOLEvaluator.compute() (+ PxAP and part analysis when given)."""
    metrics = {"top1_cls": top1, "gt_known_loc": 1.0, "sweep": {"best": {"gt_known_loc": best}},
               "maxboxacc_v2": v2, "box_accuracy": {"iou": {str(k): {"max": v} for k, v in zip((30, 50, 70), ious)}}}
    if pxap is not None:
        metrics["pixel"] = {"pxap": pxap}
    if body is not None:
        entry = {"body_coverage": body, "background_fraction": background, "part_fraction": 10.0,
                 "body_fraction": 20.0, "object_coverage": 30.0}
        metrics["parts"] = {"at": {"cam_threshold": entry, "best": dict(entry, body_coverage=body + 1)}}
    return metrics


def test_aggregation_by_hand():
    runs = {"CAM": [run_values(fake_metrics(90, 10, 20, (40, 15, 5), pxap=30, body=20, background=50)),
                    run_values(fake_metrics(94, 14, 26, (44, 19, 15), pxap=34, body=22, background=54)),
                    run_values(fake_metrics(92, 12, 23, (42, 17, 10), pxap=32, body=24, background=52))],
            "E2Net-max": [run_values(fake_metrics(93, 20, 30, (60, 25, 5))),
                          run_values(fake_metrics(94, 21, 31, (61, 26, 6)))]}
    stats = aggregate(runs)
    cam = stats["CAM"]
    # mean 92, sample std sqrt(((-2)^2 + 2^2 + 0) / 2) = 2
    assert cam["top1_cls"]["mean"] == pytest.approx(92) and cam["top1_cls"]["std"] == pytest.approx(2)
    assert cam["maxboxacc_v2"]["mean"] == pytest.approx(23) and cam["maxboxacc_v2"]["std"] == pytest.approx(3)
    assert cam["iou70"]["values"] == [5, 15, 10] and cam["iou70"]["std"] == pytest.approx(5)
    assert cam["pxap"]["mean"] == pytest.approx(32) and cam["pxap"]["n"] == 3
    assert cam["parts_cam_threshold_body_coverage"]["mean"] == pytest.approx(22)
    assert cam["parts_best_body_coverage"]["mean"] == pytest.approx(23)
    e2net = stats["E2Net-max"]
    assert e2net["gt_known_best"]["std"] == pytest.approx(0.5 ** 0.5)   # values 20, 21
    assert "pxap" not in e2net and "parts_best_body_coverage" not in e2net

    # E2Net - CAM on best-τ GT-known: 20.5 - 12 = 8.5; 2 SE = 2 sqrt(0.5/2 + 4/3) = 2.517
    versus = comparisons(stats)["E2Net-max"]
    assert versus["gt_known_best"]["difference"] == pytest.approx(8.5)
    assert versus["gt_known_best"]["margin"] == pytest.approx(2 * (0.5 / 2 + 4 / 3) ** 0.5)
    assert versus["gt_known_best"]["verdict"] == "above"
    assert versus["top1_cls"]["difference"] == pytest.approx(1.5)     # 93.5 - 92 < the same 2 SE
    assert versus["top1_cls"]["verdict"] == "within noise"
    assert "pxap" not in versus


def test_noise_rule_edges():
    one = {"mean": 50.0, "std": None, "n": 1}
    two = {"mean": 40.0, "std": 1.0, "n": 2}
    assert compare(one, two)["verdict"].startswith("n/a")
    assert compare({"mean": 30.0, "std": 1.0, "n": 2}, two)["verdict"] == "below"   # -10 < -2 sqrt(1)
    assert compare({"mean": 41.0, "std": 1.0, "n": 2}, two)["verdict"] == "within noise"


def test_tables_show_mean_and_sample_std():
    stats = aggregate({"CAM": [{"top1_cls": 90.0, "maxboxacc_v2": 20.0}, {"top1_cls": 94.0, "maxboxacc_v2": 22.0}]})
    main_table, part_table = study_tables(stats)
    header, _, row = main_table.splitlines()
    assert [c.strip() for c in header.split("|")[1:-1]] == ["method", "seeds", "Top-1 Cls", "MaxBoxAccV2"]
    assert [c.strip() for c in row.split("|")[1:-1]] == ["CAM", "2", "92.0 ± 2.8", "21.0 ± 1.4"]
    assert part_table is None


def test_options_tiny_preset_flags_override_and_run_identity():
    args = resolve(build_parser().parse_args(["--tiny", "--seeds", "5", "--out", "x"]))
    assert (args.methods, args.seeds, args.size, args.width, args.epochs) == (["CAM", "ADL"], [5], 32, 0.125, 1)
    assert args.arch == "resnet" and args.base_lr == RECIPES["scratch"]["resnet"]["base_lr"] and os.path.isabs(args.out)
    assert args.regime == "scratch" and "pretrained" not in run_options(args, "CAM", 0, "/d")
    pretrained = resolve(build_parser().parse_args([]))
    assert pretrained.regime == "pretrained" and pretrained.out.endswith("study_pretrained")
    assert (pretrained.epochs, pretrained.lr_decay_epochs) == (RECIPES["pretrained"]["resnet"]["epochs"], None)
    assert run_options(pretrained, "E2Net-max", 0, "/d")["pretrained"] == zoo_file("resnet", 0.25)
    full = resolve(build_parser().parse_args(["--regime", "scratch"]))
    assert full.methods == [m for m in METHODS if m not in BASELINES] and full.seeds == [0, 1, 2]
    assert "FSL" in METHODS and "FSL" not in full.methods
    assert (full.epochs, full.lr_decay_epochs) == (RECIPES["scratch"]["resnet"]["epochs"],
                                                   RECIPES["scratch"]["resnet"]["lr_decay_epochs"])
    assert full.steps_per_epoch == 2000 // 32 and (full.size, full.width) == (96, 0.25)
    options = run_options(full, "OSE-5", 1, "/d")
    assert options["method_name"] == "OSE" and options["use_bn"] == 1 and len(options["ose_heads"]) == 5
    assert run_options(full, "MAE-max", 0, "/d")["mae_mask"] == "max"
    assert "use_bn" not in run_options(full, "CAM", 0, "/d")
    baselines = resolve(build_parser().parse_args(["--methods", "CAM", *BASELINES]))
    assert [run_options(baselines, m, 0, "/d")["method_name"] for m in BASELINES] == list(BASELINES)
    with pytest.raises(StudyError, match="unknown method 'SAE'"):
        resolve(build_parser().parse_args(["--methods", "CAM", "SAE"]))


def test_unknown_variant_is_one_line_before_any_work(tmp_path, capsys):
    code = main(["--regime", "scratch", "--methods", "CAM-control", "--control_variant", "no_such_variant",
                 "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "does not know the variant 'no_such_variant'" in err and "Traceback" not in err
    assert not (tmp_path / "s" / "data").exists()


def write_metrics(path, config, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"config": config, "metrics": {"top1_cls": value}}, f)


def test_finished_run_needs_a_metrics_file_with_the_expected_config(tmp_path):
    options = {"method_name": "MAE", "mae_mask": "max", "epoch": 3, "lr_decay_epochs": None, "ose_heads": ("3x3",)}
    log_dir = tmp_path / "run"
    assert finished_metrics(log_dir, options) is None
    config = {"method_name": "MAE", "mae_mask": "max", "epoch": 3, "ose_heads": ["3x3"], "workers": 2}
    write_metrics(str(log_dir / "result" / "001-a" / "metrics.json"), dict(config, epoch=2), 1.0)
    assert finished_metrics(log_dir, options) is None                      # another epoch count
    write_metrics(str(log_dir / "result" / "002-b" / "metrics.json"), config, 2.0)
    path, metrics = finished_metrics(log_dir, options)
    assert path.endswith(os.path.join("002-b", "metrics.json")) and metrics == {"top1_cls": 2.0}
    (log_dir / "result" / "003-c").mkdir()
    (log_dir / "result" / "003-c" / "metrics.json").write_text('{"config": ')   # half-written
    assert finished_metrics(log_dir, options)[1] == {"top1_cls": 2.0}
    assert train_command(log_dir, options)[2:] == ["--log_dir", str(log_dir), "--method_name", "MAE", "--mae_mask",
                                                   "max", "--epoch", "3", "--ose_heads", "3x3"]
    (log_dir / "config.json").write_text(json.dumps(dict(config, epoch=5)))
    with pytest.raises(RunError, match=r"config.json: --epoch was 5, this run needs 3"):
        check_same_experiment(log_dir, options)


def study_command(out):
    return [sys.executable, "-m", "utils.study", "--tiny", "--arch", "vgg_gap", "--workers", "0", "--out", str(out)]


def test_tiny_study_aggregates_the_runs_and_reuses_them(tmp_path):
    out = tmp_path / "study"
    first = subprocess.run(study_command(out), cwd=REPO, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "4 run(s) trained, 0 reused" in first.stdout
    with open(out / "study.json") as f:
        summary = json.load(f)
    assert list(summary["methods"]) == ["CAM", "ADL"]
    rows = {}   # the first table (localization); the part-analysis table has rows of the same names
    for line in first.stdout.splitlines():
        if line.startswith("| CAM ") or line.startswith("| ADL "):
            rows.setdefault(line.split("|")[1].strip(), [c.strip() for c in line.split("|")[3:-1]])
    for method, entry in summary["methods"].items():
        assert [run["seed"] for run in entry["runs"]] == [0, 1]
        by_hand = {"top1_cls": [], "gt_known_best": [], "maxboxacc_v2": [], "iou30": []}
        for run in entry["runs"]:
            with open(run["metrics_file"]) as f:
                record = json.load(f)
            assert record["config"]["seed"] == run["seed"] and record["config"]["method_name"] == method
            metrics = record["metrics"]
            by_hand["top1_cls"].append(metrics["top1_cls"])
            by_hand["gt_known_best"].append(metrics["sweep"]["best"]["gt_known_loc"])
            by_hand["maxboxacc_v2"].append(metrics["maxboxacc_v2"])
            by_hand["iou30"].append(metrics["box_accuracy"]["iou"]["30"]["max"])
        for key, values in by_hand.items():
            stats = entry["stats"][key]
            assert stats["mean"] == pytest.approx(statistics.mean(values))
            assert stats["std"] == pytest.approx(statistics.stdev(values))    # sample std
        top1 = entry["stats"]["top1_cls"]
        assert rows[method][0] == f"{top1['mean']:.1f} ± {top1['std']:.1f}"
    assert (out / "study.png").stat().st_size > 0 and "## Against CAM" in (out / "study.md").read_text()

    produced = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*") if p.is_file()}
    logs = sorted(p.name for p in (out / "logs").iterdir())
    second = subprocess.run(study_command(out), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "0 run(s) trained, 4 reused" in second.stdout and ": training (" not in second.stdout
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*") if p.is_file()} == produced
    assert sorted(p.name for p in (out / "logs").iterdir()) == logs
    with open(out / "study.json") as f:
        again = json.load(f)
    assert again["methods"]["CAM"]["stats"] == summary["methods"]["CAM"]["stats"]


def test_known_variant_passes_the_check(monkeypatch):
    from utils import study
    monkeypatch.setattr(study.synthetic, "VARIANTS", {"calibrated": {}, "control": {}}, raising=False)
    assert study.check_variant("control") == "control"
    with pytest.raises(StudyError, match=r"known: calibrated, control"):
        study.check_variant("middle")


def test_paper_table_and_the_study_never_take_a_partial_evaluation_as_the_run_s_result(tmp_path, capsys):
    """A complete evaluation, then a newer one of 5 images (--number_of_val 5): both tools keep
    the complete one; a run with only a partial evaluation is marked as such in the table."""
    import time
    from utils.evaluation import paper_table
    options = {"method_name": "CAM", "epoch": 3}
    config = {"method_name": "CAM", "epoch": 3, "method": "CAM", "dataset": "SYNTH", "arch": "vgg_gap",
              "number_of_val": None, "cam_fusion": "released"}
    full = tmp_path / "run" / "result" / "001-min-val-error-top1" / "metrics.json"
    write_metrics(str(full), config, 74.0)
    time.sleep(0.01)
    write_metrics(str(tmp_path / "run" / "result" / "002-min-val-error-top1" / "metrics.json"),
                  dict(config, number_of_val=5), 80.0)
    time.sleep(0.01)
    write_metrics(str(tmp_path / "run" / "result" / "003-min-val-error-top1" / "metrics.json"),
                  dict(config, cam_fusion="max"), 60.0)                  # complete, at another fusion rule
    assert finished_metrics(tmp_path / "run", options) == (str(full), {"top1_cls": 74.0})
    assert finished_metrics(tmp_path / "run", dict(options, cam_fusion="max"))[1] == {"top1_cls": 60.0}
    assert finished_metrics(tmp_path / "run", dict(options, number_of_val=5))[1] == {"top1_cls": 80.0}
    assert paper_table.main([str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    row = [line for line in printed.splitlines() if "this project" in line and line.startswith("|")][0]
    assert "74.00" in row and "80.00" not in row and "60.00" not in row and "partial" not in row
    assert f"{full} (" in printed                                          # names the evaluation it took
    write_metrics(str(tmp_path / "only" / "result" / "001-model-6" / "metrics.json"), dict(config, number_of_val=5),
                  80.0)
    assert finished_metrics(tmp_path / "only", options) is None            # the study evaluates again
    assert paper_table.main([str(tmp_path / "only")]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if "this project" in line][0]
    assert "80.00" in row and "partial evaluation: the first 5 images (--number_of_val 5)" in row
