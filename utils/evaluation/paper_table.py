"""Gather evaluation runs into the paper's results table, next to published numbers.

    python -m utils.evaluation.paper_table LOG_DIR... [--out FILE.md]

Each run's newest ``metrics.json`` (``LOG_DIR/result/latest/``, written by ``utils.evaluation.report``;
see ``utils.evaluation.results``) gives one row
from its ``config`` (``method``, ``dataset``, ``arch``) and metrics.  Published
reference numbers, with their sources, live in ``utils/evaluation/published_results.json``;
a number without a source is left empty.  Rows are ordered by dataset, backbone
and method, published rows before this project's runs.  The last column marks runs
not at the published setting (width multiplier != 1, input size != 224, a data set
other than CUB / ILSVRC) so that they cannot be mistaken for reproductions.
"""
import argparse
import json
import os
import sys

from tabulate import tabulate

from models.methods.registry import METHODS, canonical_method
from utils.atomic import write_text
from utils.errors import UserError, exit_on_user_error
from utils.evaluation.report import read_metrics
from utils.evaluation.results import complete_results, evaluation_settings, identity_note, latest_result_dir

PUBLISHED_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "published_results.json")
COLUMNS = (("top1_loc", "Top-1 Loc"), ("top5_loc", "Top-5 Loc"), ("gt_known_loc", "GT-known Loc"),
           ("top1_cls", "Top-1 Cls"), ("maxboxacc_v2", "MaxBoxAccV2"), ("pxap", "PxAP"))
DATASETS = ("CUB", "ILSVRC")
ARCH_NAMES = {"vgg_gap": "VGG16-GAP", "resnet": "ResNet50-SE"}
PUBLISHED_WIDTH, PUBLISHED_SIZE = 1.0, 224


def _method_name(name):
    try:
        return canonical_method(name)
    except ValueError:
        return name


def load_published(path=PUBLISHED_RESULTS):
    """Published rows: dicts with method, dataset, arch, source (citation) and metric values."""
    with open(path) as source:
        published = json.load(source)
    return [{**entry, "source": published["sources"][entry["source"]]["citation"], "published": True}
            for entry in published["results"]]


def setting_note(config):
    """"" at the published setting, else ``"NOT the published setting: width 0.125, 32 px, SYNTH"``."""
    width = float(config.get("width_multiplier", PUBLISHED_WIDTH))
    size = int(config.get("final_size", PUBLISHED_SIZE))
    differences = ([f"width {width:g}"] if width != PUBLISHED_WIDTH else []) + \
        ([f"{size} px"] if size != PUBLISHED_SIZE else []) + \
        ([str(config["dataset"])] if config["dataset"] not in DATASETS else [])
    return "NOT the published setting: " + ", ".join(differences) if differences else ""


class RunResultError(UserError, ValueError):
    """A run folder without a readable ``result/metrics.json``."""


def load_run(log_dir):
    """The row of one run from its newest complete evaluation (``results.complete_results``); a
    run with partial evaluations only gives the newest of them, marked as such in its Setting."""
    found = complete_results(log_dir)
    if not found:
        path = os.path.join(latest_result_dir(log_dir), "metrics.json")
        try:
            read_metrics(path)
        except (OSError, ValueError) as error:
            raise RunResultError(f"{path}: cannot read it ({error})") from None
        raise RunResultError(f"{path}: not a metrics.json written by an evaluation")
    path, run = found[0]
    missing = [key for key in ("method", "dataset", "arch") if key not in run.get("config", {})]
    if missing:
        raise RunResultError(f"{path}: config lacks {', '.join(missing)}")
    config, metrics = run["config"], run["metrics"]
    notes = [note for note in (setting_note(config), identity_note(run)) if note]
    return {"method": _method_name(config["method"]), "dataset": config["dataset"], "arch": config["arch"],
            "source": f"this project ({log_dir})", "published": False, "setting": "; ".join(notes),
            "result": path, "evaluation": evaluation_settings(run),
            **{key: metrics.get(key) for key, _ in COLUMNS}}


def _order(row):
    def rank(value, known):
        return (known.index(value), "") if value in known else (len(known), str(value))
    return (rank(row["dataset"], DATASETS), rank(row["arch"], tuple(ARCH_NAMES)),
            rank(row["method"], METHODS), not row["published"])


def format_table(rows):
    """Markdown table of rows (method x dataset x backbone; the paper's columns)."""
    rows = sorted(rows, key=_order)
    body = [[row["method"], row["dataset"], ARCH_NAMES.get(row["arch"], row["arch"]),
             *(row.get(key) for key, _ in COLUMNS), row["source"], row.get("setting", "")] for row in rows]
    headers = ["Method", "Dataset", "Backbone", *(title for _, title in COLUMNS), "Source", "Setting"]
    return tabulate(body, headers, tablefmt="github", floatfmt=".2f", missingval="")


def main(argv=None):
    """The command line; an unreadable run: one ``paper_table: error: ...`` line, exit 2."""
    return exit_on_user_error("paper_table", _main, argv)


def _main(argv=None):
    parser = argparse.ArgumentParser(description="The paper's results table from evaluation runs.")
    parser.add_argument("log_dirs", nargs="+", help="run folders holding result/latest/metrics.json")
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    runs = [load_run(log_dir) for log_dir in args.log_dirs]
    table = format_table(load_published() + runs)
    table += "\n\nEvaluations taken (the newest complete one of each run):\n" + "".join(
        f"\n- {run['source']}: {run['result']} ({run['evaluation']})" for run in runs)
    print(table)
    if args.out:
        write_text(args.out, table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
