"""bench/eval_throughput.py --quick runs, writes its JSON and finds the fast path exact."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.duration(15)  # seconds, for the scheduler (conftest.py)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = ("images_per_s_reference_single", "images_per_s_fast_sweep", "images_per_s_naive_sweep", "speedup_sweep")


def test_quick_benchmark(tmp_path):
    out = tmp_path / "eval_throughput.json"
    result = subprocess.run([sys.executable, os.path.join("bench", "eval_throughput.py"), "--quick",
                             "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "speed-up" in result.stdout
    written = json.loads(out.read_text())
    assert written["identical"] is True
    for key in KEYS:
        assert isinstance(written[key], float) and written[key] > 0, key
    assert written["pxap_images"] == [4, 32] and "PxAP 8x the images" in result.stdout
    assert written["pxap_time_per_image_ratio"] > 0 and 0 < written["pxap_of_large_run"] < 100
    # the accumulator keeps two fixed histograms: 8x the images must not multiply the peak memory
    assert written["pxap_peak_memory_ratio"] < 2


def test_quick_benchmark_times_the_evaluation_predictor_in_bf16_against_fp32(tmp_path):
    out = tmp_path / "eval_throughput.json"
    env = dict(os.environ, E2NET_GRAPH_OPTIMIZER="on")   # the bf16 rewrite is a grappler pass (conftest turns it off)
    result = subprocess.run([sys.executable, os.path.join("bench", "eval_throughput.py"), "--quick", "--precision",
                             "bf16", "--allow_slow_precision", "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "load average at the start of (e)" in result.stdout
    (record,) = json.loads(out.read_text())["network_pass"]
    assert (record["arch"], record["method"], record["precision"]) == ("vgg_gap", "E2Net", "bf16")
    assert len(record["samples_fp32"]) == len(record["samples_precision"]) == 3
    assert record["images_per_s_fp32"] > 0 and record["images_per_s_precision"] > 0
    assert record["ratio_precision_to_fp32_paired"] > 0 and len(record["loadavg"]) == 3
    assert record["min_cam_correlation"] >= 0.999      # the same checkpoint's CAMs in bf16 and fp32
