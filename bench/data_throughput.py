"""Throughput of the training input pipeline: JPEG decode + resize + random crop + flip.

Usage: ``python bench/data_throughput.py [--quick] [--consumer_rate IMG_PER_S] [--out FILE]``

Generates its own JPEGs (the synthetic set at a CUB-like size) in a temporary directory,
then runs ``utils.data.dataflow.get_train_dataflow`` in-process (1 worker) and with one decoding
process per core, and reports the median images/s over repeated timed windows.  With
``--consumer_rate`` (images/s a trainer consumes) it also reports the ratio of the
all-core rate to that rate and how many workers that rate needs at the 1-worker speed.
Results are printed as a table and written to JSON (``--out``).
"""
import argparse
import itertools
import math
import os
import statistics
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)  # run as a plain script: make ``utils`` importable

from tabulate import tabulate  # noqa: E402

from utils.data.dataflow import get_train_dataflow, resolve_workers  # noqa: E402
from utils.data.synthetic import generate_synthetic  # noqa: E402
from utils.atomic import write_json  # noqa: E402

# name -> (images generated, image side, batch size, batches per timed window, windows)
SETTINGS = {"full": (384, 400, 32, 8, 5), "quick": (48, 160, 8, 2, 3)}


def endless(dataflow):
    """Iterate a finite dataflow pass after pass."""
    while True:
        yield from dataflow


def measure_images_per_s(label_file, image_root, workers, final_size, batch_size, window, repeats):
    """Median images/s over ``repeats`` windows of ``window`` batches (after one warm-up batch)."""
    dataflow = get_train_dataflow(label_file, image_root, final_size, batch_size, workers=workers, seed=0)
    dataflow.reset_state()
    batches = endless(dataflow)
    next(batches)  # warm-up: worker start-up, first decodes
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        images = sum(len(batch[0]) for batch in itertools.islice(batches, window))
        rates.append(images / (time.perf_counter() - start))
    return statistics.median(rates), rates


def run(quick, final_size, consumer_rate, workers):
    """Generate the images, time both configurations; returns the result dict."""
    num_images, image_side, batch_size, window, repeats = SETTINGS["quick" if quick else "full"]
    with tempfile.TemporaryDirectory(prefix="data_throughput_") as data_dir:
        generate_synthetic(data_dir, num_classes=10, num_train=num_images, num_val=0,
                           size=image_side, seed=0)
        label_file, image_root = os.path.join(data_dir, "train.txt"), os.path.join(data_dir, "images")
        one, one_samples = measure_images_per_s(label_file, image_root, 1, final_size,
                                                batch_size, window, repeats)
        many, many_samples = measure_images_per_s(label_file, image_root, workers, final_size,
                                                  batch_size, window, repeats)
    result = {"images_per_s_1_worker": one, "images_per_s_all_workers": many, "workers": workers,
              "final_size": final_size, "source_image_size": image_side, "batch_size": batch_size,
              "samples_1_worker": one_samples, "samples_all_workers": many_samples, "quick": quick}
    if consumer_rate:
        result["consumer_rate"] = consumer_rate
        result["ratio_to_consumer"] = many / consumer_rate
        result["workers_needed"] = math.ceil(consumer_rate / one)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny run (a few seconds), for tests")
    parser.add_argument("--final_size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=None, help="'all workers' count (default: all cores)")
    parser.add_argument("--consumer_rate", type=float, default=None,
                        help="images/s the trainer consumes, to compare with")
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "bench", "results", "data_throughput.json"))
    args = parser.parse_args(argv)
    result = run(args.quick, args.final_size, args.consumer_rate, resolve_workers(args.workers))

    rows = [["1 worker (in-process)", f"{result['images_per_s_1_worker']:.1f}"],
            [f"{result['workers']} workers", f"{result['images_per_s_all_workers']:.1f}"]]
    print(f"train input pipeline at {args.final_size}px (JPEG {result['source_image_size']}px, "
          f"median of {len(result['samples_1_worker'])} windows)")
    print(tabulate(rows, headers=["configuration", "images/s"]))
    if args.consumer_rate:
        print(f"consumer rate {args.consumer_rate:g} images/s: all-worker pipeline is "
              f"{result['ratio_to_consumer']:.2f}x that rate; {result['workers_needed']} worker(s) "
              f"at the 1-worker speed would keep up")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_json(args.out, result, indent=2, sort_keys=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
