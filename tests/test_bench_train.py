"""bench/train_throughput.py --quick trains through the project's path and the bare loop,
at --precision bf16 against a bare fp32 loop, and writes its JSON with finite, positive numbers."""
import json
import math
import os
import statistics
import subprocess
import sys

import pytest

pytestmark = pytest.mark.duration(20)  # seconds, for the scheduler (conftest.py)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP_KEYS = ("matmul_gflops_ceiling", "machine", "configs")
MACHINE_KEYS = ("cpu_count", "platform")
CONFIG_KEYS = ("arch", "method", "image_size", "width_multiplier", "batch")
POSITIVE_KEYS = ("images_per_s_project", "images_per_s_bare", "ratio_project_to_bare",
                 "gflops_per_image_forward", "gflops_per_image_train", "achieved_gflops",
                 "fraction_of_ceiling")


def positive_finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_quick_benchmark(tmp_path):
    out = tmp_path / "train_throughput.json"
    # grappler on (the suite turns it off, conftest.py): the bf16 rewrite is one of its passes;
    # the CPU check is the real one (this machine's CPU has native bf16; elsewhere it is allowed)
    env = dict(os.environ, E2NET_GRAPH_OPTIMIZER="on")
    result = subprocess.run([sys.executable, os.path.join("bench", "train_throughput.py"), "--quick",
                             "--precision", "bf16", "--allow_slow_precision", "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "img/s project" in result.stdout and "bf16/fp32 (bare, paired)" in result.stdout
    assert "load average at the start" in result.stdout and "load average at the end" in result.stdout
    written = json.loads(out.read_text())
    for key in TOP_KEYS:
        assert key in written, key
    assert positive_finite(written["matmul_gflops_ceiling"])
    for key in MACHINE_KEYS:
        assert key in written["machine"], key
    assert written["machine"]["cpu_count"] >= 1
    assert written["configs"], "no configuration measured"
    for config in written["configs"]:
        for key in CONFIG_KEYS:
            assert key in config, key
        assert config["arch"] in ("vgg_gap", "resnet") and config["method"] in ("CAM", "E2Net")
        assert config["image_size"] == 32 and config["batch"] == 4
        for key in POSITIVE_KEYS:
            assert positive_finite(config[key]), (key, config[key])
        assert config["gflops_per_image_train"] >= 2.9 * config["gflops_per_image_forward"]
        assert config["gflops_per_image_train_profiled"] > config["gflops_per_image_forward"]
        assert math.isclose(config["ratio_project_to_bare"],
                            config["images_per_s_project"] / config["images_per_s_bare"])
        assert math.isclose(config["fraction_of_ceiling"],
                            config["achieved_gflops"] / written["matmul_gflops_ceiling"])
        assert len(config["samples_project"]) == len(config["samples_bare"]) >= 3
        assert all(positive_finite(rate) for rate in config["samples_project"] + config["samples_bare"])
        assert config["precision"] == "bf16" and len(config["samples_bare_fp32"]) == len(config["samples_bare"])
        for key in ("images_per_s_bare_fp32", "ratio_precision_to_fp32_bare_paired", "ratio_project_to_fp32_bare_paired"):
            assert positive_finite(config[key]), (key, config[key])
        assert math.isclose(config["ratio_precision_to_fp32_bare_paired"], statistics.median(
            b / f for b, f in zip(config["samples_bare"], config["samples_bare_fp32"])))
        assert len(config["loadavg"]) == 3
