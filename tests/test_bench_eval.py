"""bench/eval_throughput.py --quick runs, writes its JSON and finds the fast path exact."""
import json
import os
import subprocess
import sys

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
