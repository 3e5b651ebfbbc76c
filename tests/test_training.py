"""train.py end to end on a tiny synthetic set: learning, outputs, resume, evaluation."""
import csv
import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO

pytestmark = pytest.mark.duration(90)  # seconds, for the scheduler (conftest.py)

TINY = dict(num_classes=4, num_train=128, num_val=32, size=64, seed=3)


def train_command(data_dir, log_dir, *extra, epochs=8, steps=8, method="CAM", arch="resnet"):
    return [sys.executable, os.path.join(REPO, "train.py"), "--dataset_name", "SYNTH",
            "--data_dir", str(data_dir), "--arch_name", arch, "--method_name", method,
            "--final_size", "32", "--width_multiplier", "0.125", "--batch", "16",
            "--epoch", str(epochs), "--steps_per_epoch", str(steps), "--workers", "0",
            "--seed", "1", "--log_dir", str(log_dir), *extra]


def run(cmd, timeout=300):
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def trained_run(data_dir, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("runs") / "cam"
    run(train_command(data_dir, log_dir, "--number_of_examples", "3"))
    return log_dir


def read_stats(log_dir):
    with open(os.path.join(log_dir, "stats.json")) as f:
        return json.load(f)


def test_short_run_learns_and_writes_outputs(trained_run):
    stats = read_stats(trained_run)
    assert [s["epoch_num"] for s in stats] == list(range(1, 9))
    assert stats[-1]["xentropy"] < stats[0]["xentropy"]
    assert stats[-1]["train-error-top1"] < stats[0]["train-error-top1"]
    assert os.path.isfile(os.path.join(trained_run, "model-64.index"))
    assert os.path.isfile(os.path.join(trained_run, "min-val-error-top1.index"))
    assert glob.glob(os.path.join(trained_run, "events.out.tfevents.*"))
    assert stats[-1]["learning_rate"] < stats[0]["learning_rate"]  # scaled schedule: x0.1 at epochs 2, 5, 7


def test_training_ends_with_the_evaluation_of_the_best_checkpoint(trained_run):
    """As released: train.py without --evaluate trains, then evaluates min-val-error-top1."""
    with open(os.path.join(trained_run, "result", "latest", "metrics.json")) as f:
        metrics = json.load(f)["metrics"]
    assert metrics["checkpoint"].endswith("min-val-error-top1")
    assert metrics["num_images"] == TINY["num_val"]


def test_evaluate_writes_all_outputs_consistent_with_predictions(data_dir, trained_run):
    # no model or data flags: they come from the run's config.json
    result = run([sys.executable, os.path.join(REPO, "train.py"), "--log_dir", str(trained_run), "--evaluate",
                  "--number_of_examples", "3", "--workers", "0"])
    assert "GT-known Loc" in result.stdout and "MaxBoxAccV2" in result.stdout
    result_dir = os.path.join(trained_run, "result", "latest")
    for name in ("metrics.json", "metrics.md", "threshold_curve.png", "predictions.tsv"):
        assert os.path.getsize(os.path.join(result_dir, name)) > 0, name
    assert len(glob.glob(os.path.join(result_dir, "examples", "*.png"))) == 3
    with open(os.path.join(result_dir, "metrics.json")) as f:
        metrics = json.load(f)["metrics"]
    with open(os.path.join(result_dir, "predictions.tsv")) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == metrics["num_images"] == TINY["num_val"]
    for key in ("gt_known", "top1_cls", "top5_cls", "top1_loc", "top5_loc"):
        metric = f"{key}_loc" if key == "gt_known" else key
        assert 100.0 * sum(int(r[key]) for r in rows) / len(rows) == pytest.approx(metrics[metric]), key
    assert 0 <= metrics["maxboxacc_v2"] <= 100 and len(metrics["sweep"]["thresholds"]) == 100
    assert metrics["checkpoint"].endswith("min-val-error-top1")
    from utils.evaluation.paper_table import load_run
    row = load_run(str(trained_run))
    assert (row["method"], row["dataset"], row["arch"]) == ("CAM", "SYNTH", "resnet")


def newest_step(log_dir):
    steps = [int(p.rsplit("-", 1)[1].split(".")[0]) for p in glob.glob(os.path.join(log_dir, "model-*.index"))]
    return max(steps, default=0)


def test_resume_after_sigkill_continues_from_the_checkpoint(data_dir, tmp_path):
    log_dir = tmp_path / "resume"
    cmd = train_command(data_dir, log_dir, epochs=4, steps=6, method="E2Net", arch="vgg_gap")
    cmd += ["--base_lr", "0.001"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 240
        while newest_step(log_dir) == 0 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        first = newest_step(log_dir)
        assert first > 0, "no checkpoint was written before the deadline"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    if first == 24:
        pytest.skip("training finished before it could be killed")
    result = run(cmd)
    log = result.stdout + result.stderr
    assert f"Resuming from {os.path.join(str(log_dir), f'model-{first}')}" in log
    assert f"Start Epoch {first // 6 + 1} " in log and "Start Epoch 1 " not in log
    assert f"(global_step {first + 6}) finished" in log
    assert newest_step(log_dir) == 24
    epochs = [s["epoch_num"] for s in read_stats(log_dir)]
    assert epochs[-1] == 4


def test_released_command_line_matches_new_vocabulary(data_dir):
    from utils.config import model_spec, parse_args
    common = ["--dataset_name", "SYNTH", "--data_dir", str(data_dir), "--final_size", "32",
              "--number_of_class", "4"]
    released = parse_args(common + ["--method_name", "AAE_SAE", "--arch_name", "vgg_gap",
                                    "--gating_position", "3", "4", "53", "--aae_threshold", "0.50",
                                    "--batch", "32", "--is_data_format_nhwc"])
    new = parse_args(common + ["--method_name", "E2Net", "--arch_name", "vgg_gap",
                               "--ose_heads", "3x3", "1x3", "3x1", "--batch_size", "32"])
    assert model_spec(released) == model_spec(new)
    assert released.method_name == "E2Net" and released.batch_size == 32
    assert model_spec(new).positions == ("3", "4", "53")


def test_lr_schedule_released_and_scaled():
    from utils.config import lr_schedule
    released = lr_schedule(0.01, 250)
    assert [e for e, _ in released] == [30, 60, 90, 100, 110]
    np.testing.assert_allclose([lr for _, lr in released], [1e-3, 1e-4, 1e-5, 1e-6, 1e-7])
    assert [e for e, _ in lr_schedule(0.01, 100)] == [30, 60, 90]
    assert [e for e, _ in lr_schedule(0.01, 10)] == [3, 6, 9]
    assert np.isclose(lr_schedule(0.01, 10)[0][1], 1e-3)
    explicit = lr_schedule(0.01, 30, [24, 40, 12])
    assert [e for e, _ in explicit] == [12, 24]
    np.testing.assert_allclose([lr for _, lr in explicit], [1e-3, 1e-4])


def test_schedule_and_clip_flags_reach_the_run(data_dir):
    from utils.config import ConfigError, model_spec, parse_args
    common = ["--dataset_name", "SYNTH", "--data_dir", str(data_dir), "--method_name", "CAM"]
    args = parse_args(common + ["--clip_gradients", "5", "--lr_decay_epochs", "24"], class_list_size=4)
    assert model_spec(args).gradient_clip_norm == 5.0 and args.lr_decay_epochs == [24]
    assert model_spec(parse_args(common, class_list_size=4)).gradient_clip_norm == 0.0  # off, as released
    with pytest.raises(ConfigError, match="--clip_gradients must be >= 0"):
        parse_args(common + ["--clip_gradients", "-1"], class_list_size=4)
    with pytest.raises(ConfigError, match="--lr_decay_epochs"):
        parse_args(common + ["--lr_decay_epochs", "0"], class_list_size=4)


def test_non_finite_loss_stops_with_a_clear_message(data_dir, tmp_path):
    cmd = train_command(data_dir, tmp_path / "nan", "--base_lr", "1e8", epochs=2, steps=6,
                        method="CAM", arch="vgg_gap")
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-6000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: error: training loss became")
    assert "terminate called" not in result.stderr
    saved = sorted(glob.glob(os.path.join(tmp_path / "nan", "model-*.index")), key=os.path.getmtime)
    if saved:   # the message names the newest checkpoint, or says truthfully that none exists
        assert f"The last good checkpoint is {saved[-1][:-len('.index')]}." in last
    else:
        assert f"No checkpoint was saved yet in {tmp_path / 'nan'}." in last
