"""bench/data_throughput.py --quick writes the documented JSON."""
import importlib.util
import json
import math
import os
import subprocess
import sys

from tests.conftest import REPO

BENCHMARK = os.path.join(REPO, "bench", "data_throughput.py")


def load_benchmark():
    """bench/data_throughput.py as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("data_throughput", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_benchmark_writes_documented_json(tmp_path):
    out = tmp_path / "data_throughput.json"
    result = subprocess.run([sys.executable, BENCHMARK, "--quick",
                             "--workers", "2", "--consumer_rate", "100", "--out", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["workers"] == 2 and report["final_size"] == 224
    assert report["images_per_s_1_worker"] > 0 and report["images_per_s_all_workers"] > 0
    assert report["ratio_to_consumer"] == report["images_per_s_all_workers"] / 100
    assert report["workers_needed"] == math.ceil(100 / report["images_per_s_1_worker"])
    assert "images/s" in result.stdout and str(out) in result.stdout


def test_benchmark_without_consumer_rate_omits_the_comparison(tmp_path):
    out = tmp_path / "nested" / "result.json"
    load_benchmark().main(["--quick", "--workers", "1", "--out", str(out)])
    report = json.loads(out.read_text())
    assert {"images_per_s_1_worker", "images_per_s_all_workers", "workers", "final_size"} <= set(report)
    assert "ratio_to_consumer" not in report and "workers_needed" not in report
