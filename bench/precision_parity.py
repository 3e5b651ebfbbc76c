"""Parity of two precisions on the demo recipe: two study folders, one table.

    python -m utils.study --methods CAM E2Net-sum --seeds 0 1 2 --precision fp32 --out OUT/fp32
    python -m utils.study --methods CAM E2Net-sum --seeds 0 1 2 --precision bf16 --out OUT/bf16
    python bench/precision_parity.py OUT/fp32 OUT/bf16 [--out FILE]

For every method both studies ran and each of Top-1 Cls, GT-known Loc (best τ) and MaxBoxAccV2:
mean ± sample std over the seeds in each precision, and the difference (second - first) against
the study's own seed-noise rule (``utils.study.compare``: |difference| > 2 x its standard error
is beyond noise).  Parity holds when every row is "within noise".  Each study's precision is
read from its study.json (``config.precision``), never assumed.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402

from tabulate import tabulate  # noqa: E402

from utils.atomic import write_json  # noqa: E402
from utils.study import COLUMNS, NOISE_RULE, compare  # noqa: E402

PARITY_COLUMNS = ("top1_cls", "gt_known_best", "maxboxacc_v2")
TITLES = {key: title for key, title, _ in COLUMNS}


def read_study(folder):
    path = os.path.join(folder, "study.json")
    with open(path) as f:
        study = json.load(f)
    return study["config"].get("precision", "fp32"), study["methods"]


def parity(first, second):
    """Rows ``[method, column, first mean ± std, second mean ± std, difference, margin, verdict, seeds]``."""
    (name_a, methods_a), (name_b, methods_b) = first, second
    rows = []
    for method in [m for m in methods_a if m in methods_b]:
        for key in PARITY_COLUMNS:
            a, b = methods_a[method]["stats"][key], methods_b[method]["stats"][key]
            verdict = compare(b, a)
            seeds = (sorted(r["seed"] for r in methods_a[method]["runs"]),
                     sorted(r["seed"] for r in methods_b[method]["runs"]))
            rows.append({"method": method, "column": key, name_a: a, name_b: b, **verdict,
                         "seeds": {name_a: seeds[0], name_b: seeds[1]}})
    return rows


def cell(summary):
    return f"{summary['mean']:.2f} ± {summary['std']:.2f}" if summary["std"] is not None else f"{summary['mean']:.2f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", help="study folder (e.g. the fp32 one)")
    parser.add_argument("second", help="study folder (e.g. the bf16 one)")
    parser.add_argument("--out", default=os.path.join("bench", "results", "precision_parity.json"))
    args = parser.parse_args(argv)
    first, second = read_study(args.first), read_study(args.second)
    name_a, name_b = first[0], second[0]
    rows = parity(first, second)
    print(tabulate([[r["method"], TITLES[r["column"]], cell(r[name_a]), cell(r[name_b]),
                     f"{r['difference']:+.2f}", "n/a" if r["margin"] is None else f"{r['margin']:.2f}",
                     r["verdict"]] for r in rows],
                   ["method", "column", name_a, name_b, f"{name_b} - {name_a}", "2 x SE", "verdict"],
                   tablefmt="github"))
    held = all(r["verdict"] == "within noise" for r in rows)
    print(f"{NOISE_RULE}\nparity {'holds' if held else 'does not hold'} ({name_b} against {name_a}, "
          f"seeds {rows[0]['seeds'] if rows else '-'})")
    write_json(args.out, {"first": args.first, "second": args.second, "rows": rows, "parity": held,
                          "rule": NOISE_RULE}, indent=2)
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
