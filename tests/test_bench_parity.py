"""bench/precision_parity.py: two study folders -> the seed-noise verdict of every method and column."""
import json
import math
import os
import subprocess
import sys

from conftest import REPO

SCRIPT = os.path.join(REPO, "bench", "precision_parity.py")


def study(folder, precision, values):
    """A study.json with ``values[method][column] = [per-seed values]`` (seeds 0, 1, 2)."""
    methods = {}
    for method, columns in values.items():
        stats = {}
        for key, column in columns.items():
            mean = sum(column) / len(column)
            std = math.sqrt(sum((v - mean) ** 2 for v in column) / (len(column) - 1))
            stats[key] = {"mean": mean, "std": std, "n": len(column), "values": column}
        methods[method] = {"stats": stats, "runs": [{"seed": s} for s in range(len(next(iter(columns.values()))))]}
    folder.mkdir()
    (folder / "study.json").write_text(json.dumps({"config": {"precision": precision}, "methods": methods}))
    return str(folder)


def test_parity_applies_the_studys_two_standard_error_rule(tmp_path):
    same = {"top1_cls": [80.0, 82.0, 84.0], "gt_known_best": [50.0, 52.0, 54.0], "maxboxacc_v2": [40.0, 41.0, 42.0]}
    fp32 = study(tmp_path / "fp32", "fp32", {"CAM": same, "E2Net-sum": same})
    # CAM: +1 on Top-1 (std 2 each side: 2 x SE = 2 x sqrt(4/3 + 4/3) = 3.27 -> within noise);
    # E2Net-sum: MaxBoxAccV2 +5 with std 1 (2 x SE = 1.63) -> above
    bf16 = study(tmp_path / "bf16", "bf16", {
        "CAM": dict(same, top1_cls=[81.0, 83.0, 85.0]),
        "E2Net-sum": dict(same, maxboxacc_v2=[45.0, 46.0, 47.0]), "ADL": same})
    out = tmp_path / "parity.json"
    result = subprocess.run([sys.executable, SCRIPT, fp32, bf16, "--out", str(out)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    verdicts = {(r["method"], r["column"]): (r["verdict"], round(r["difference"], 6), r["margin"])
                for r in record["rows"]}
    assert set(verdicts) == {(m, c) for m in ("CAM", "E2Net-sum") for c in ("top1_cls", "gt_known_best",
                                                                          "maxboxacc_v2")}   # ADL: bf16 only
    assert verdicts[("CAM", "top1_cls")][:2] == ("within noise", 1.0)
    assert math.isclose(verdicts[("CAM", "top1_cls")][2], 2 * math.sqrt(4 / 3 + 4 / 3))
    assert verdicts[("E2Net-sum", "maxboxacc_v2")][:2] == ("above", 5.0)
    assert verdicts[("E2Net-sum", "top1_cls")][0] == "within noise"
    assert record["parity"] is False and "parity does not hold (bf16 against fp32" in result.stdout
