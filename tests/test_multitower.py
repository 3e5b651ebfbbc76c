"""Several towers on one machine: ``--cpu_towers 2`` trains two towers (as ``--gpu 0,1`` would; on the CPU, through
soft placement) with SyncMultiGPUTrainerReplicated or, with ``--trainer parameter_server``,
SyncMultiGPUTrainerParameterServer — and counts steps exactly like one tower.

Each run is a ``train.py`` subprocess (tensorpack builds into the process's default graph).
"""
import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO
from utils.data.synthetic import generate_synthetic

pytestmark = pytest.mark.duration(35)  # seconds, for the scheduler (conftest.py)

STEPS, EPOCHS = 2, 2
TIMEOUT_S = 180


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    generate_synthetic(str(root / "SYNTH"), num_classes=4, num_train=64, num_val=16, size=64, workers=1)
    return str(root)


def run_training(data_dir, log_dir, *extra):
    argv = [sys.executable, "train.py", "--dataset_name", "SYNTH", "--data_dir", data_dir,
            "--arch_name", "vgg_gap", "--method_name", "CAM", "--final_size", "32",
            "--width_multiplier", "0.125", "--batch", "8", "--epoch", str(EPOCHS),
            "--steps_per_epoch", str(STEPS), "--number_of_val", "8", "--workers", "0",
            "--seed", "1", "--log_dir", log_dir, *extra]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(log_dir, "log.log")) as f:
        log = f.read()
    return log


def checkpoint_steps(log_dir):
    return sorted(int(m.group(1)) for name in os.listdir(log_dir)
                  for m in [re.fullmatch(r"model-(\d+)\.index", name)] if m)


def final_global_step(log_dir):
    with open(os.path.join(log_dir, "stats.json")) as f:
        return json.load(f)[-1]["global_step"]


@pytest.fixture(scope="module")
def one_tower(synth_dir, tmp_path_factory):
    log_dir = str(tmp_path_factory.mktemp("one_tower"))
    return log_dir, run_training(synth_dir, log_dir)


@pytest.mark.parametrize("trainer, marker", [
    ("replicated", "sync_variables_from_main_tower"),   # only the replicated trainer syncs towers
    ("parameter_server", None),
])
def test_two_towers_count_steps_like_one(synth_dir, one_tower, tmp_path, trainer, marker):
    one_dir, one_log = one_tower
    two_dir = str(tmp_path / "two_towers")
    two_log = run_training(synth_dir, two_dir, "--cpu_towers", "2", "--trainer", trainer)

    assert "Training a model of 2 towers" in two_log
    assert "Building graph for training tower 1" in two_log
    assert "Training a model of 2 towers" not in one_log
    if marker:
        assert marker in two_log
    else:
        assert "sync_variables_from_main_tower" not in two_log
    expected = [STEPS * (e + 1) for e in range(EPOCHS)]
    assert checkpoint_steps(one_dir) == checkpoint_steps(two_dir) == expected
    assert final_global_step(one_dir) == final_global_step(two_dir) == STEPS * EPOCHS
    assert os.path.isfile(os.path.join(two_dir, "min-val-error-top1.index"))
