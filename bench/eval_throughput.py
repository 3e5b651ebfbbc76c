"""Throughput of CAM -> box -> metrics, and a check that the fast sweep is exact.

    python bench/eval_throughput.py [--quick] [--images N] [--repeats R] [--out FILE]
                                    [--precision bf16 [--windows W]]

Measures images/s of
  (a) the reference protocol at one threshold (normalise, box, IoU);
  (b) ``WSOLEvaluator``: reference sweep + wsolevaluation sweep over 100 thresholds
      (quantise once, one contour search per distinct mask);
  (c) a naive loop written here, as the released evaluation worked: for every
      threshold, colour-map the CAM with the cubehelix LUT, convert it to gray with
      ``cv2.cvtColor``, threshold, find contours — and the same per-threshold loop
      for the wsolevaluation protocol.
and (d) the PxAP accumulator (``utils.evaluation.pxap``) over N and 8N images, each
CAM and mask made on the fly: seconds per image and peak Python memory (tracemalloc)
of the two runs, and their ratios (flat = 1.0).
Inputs are random smooth CAMs (sums of Gaussians on a 14x14 grid, resized to
224x224) with random GT boxes near the blobs.  Prints medians over repeats and the
speed-up of (b) over (c), writes JSON, and exits with 1 unless (b) and (c) give
identical reference boxes at every threshold and identical metrics.

With ``--precision bf16`` (or fp16 on a GPU) it also times (e) the network half of the
evaluation pass: the predictor ``train.py --evaluate`` builds (``utils.evaluation.evaluate.
make_predictor``: top-5, per-head feature maps and FC weights) on one randomly initialised
checkpoint, once at fp32 and once at the precision (``utils.training.precision``), for
VGG16-GAP and ResNet50-SE, CAM and E2Net, at 224 px (full width, batch 8; ``--quick``: 32 px,
width 0.125, VGG16-GAP E2Net).  Windows of the two predictors alternate in one process (the
load average is printed); reported: images/s of each (median over windows), the paired ratio
(median over windows of precision window i / fp32 window i) and the lowest Pearson
correlation of an image's fused GT-class CAM between the two.  Needs TensorFlow and grappler
(``E2NET_GRAPH_OPTIMIZER`` not ``off``).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import cv2  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
from tabulate import tabulate  # noqa: E402

from utils.boxes import box_iou  # noqa: E402
from utils.evaluation.metrics import (DEFAULT_IOU_THRESHOLDS, DEFAULT_SWEEP_THRESHOLDS, LOC_IOU,  # noqa: E402
                              WSOLEvaluator)
from utils.evaluation.localization import normalize_cam, reference_box, reference_boxes, resize_cam  # noqa: E402
from utils.evaluation.pxap import PxAPAccumulator  # noqa: E402
from utils.flags import PRECISIONS  # noqa: E402
from utils.atomic import write_json  # noqa: E402

IMAGE_SIZE = 224
GRID_SIZE = 14
NUM_CLASSES = 10
CAM_THRESHOLD = 0.2
SPEEDUP_TARGET = 10.0
PXAP_FACTOR = 8


# --------------------------------------------------------------------------- inputs

def random_image(rng):
    """(cam 224x224, gt_boxes [n, 4], label, top5) of one synthetic image."""
    grid = np.arange(GRID_SIZE, dtype=np.float64)
    cam = np.zeros((GRID_SIZE, GRID_SIZE))
    centers = rng.uniform(2, GRID_SIZE - 2, size=(rng.integers(1, 4), 2))
    for (cy, cx), sigma, weight in zip(centers, rng.uniform(1, 3, len(centers)), rng.uniform(0.3, 1, len(centers))):
        cam += weight * np.exp(-((grid[:, None] - cy) ** 2 + (grid[None, :] - cx) ** 2) / (2 * sigma ** 2))
    cam = resize_cam(cam.astype(np.float32), (IMAGE_SIZE, IMAGE_SIZE))
    scale = IMAGE_SIZE / GRID_SIZE
    gt_boxes = []
    for cy, cx in centers[: rng.integers(1, len(centers) + 1)]:
        half_w, half_h = rng.uniform(20, 70, size=2)
        gt_boxes.append([max(cx * scale - half_w, 0), max(cy * scale - half_h, 0),
                         min(cx * scale + half_w, IMAGE_SIZE - 1), min(cy * scale + half_h, IMAGE_SIZE - 1)])
    label = int(rng.integers(NUM_CLASSES))
    top5 = [int(c) for c in rng.permutation(NUM_CLASSES)[:5]]
    return cam, np.floor(gt_boxes), label, top5


# --------------------------------------------------------------------------- (a), (b)

def reference_single(images):
    """GT-known Loc at one threshold with the reference protocol."""
    hits = 0
    for cam, gt_boxes, _, _ in images:
        box = reference_box(normalize_cam(cam), CAM_THRESHOLD)
        hits += box_iou(box, gt_boxes[:1])[0, 0] >= LOC_IOU
    return 100.0 * hits / len(images)


def fast_sweep(images):
    evaluator = WSOLEvaluator(cam_threshold=CAM_THRESHOLD)
    records = [evaluator.add(cam, gt_boxes, label, top5) for cam, gt_boxes, label, top5 in images]
    return evaluator.compute(), records


# --------------------------------------------------------------------------- (c) naive loop

def naive_reference_box(cam_norm, tau, cmap):
    """Colour map -> gray -> threshold -> largest contour, recomputed for this threshold."""
    rgb = (cmap(cam_norm)[..., :3].astype(np.float32) * 255.0).astype(np.uint8)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    _, kept = cv2.threshold(gray, int(gray.max() * tau), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(kept, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[-2]
    if not contours:
        return [0, 0, 1, 1]
    x, y, w, h = cv2.boundingRect(max(contours, key=cv2.contourArea))
    return [x, y, x + w, y + h]


def naive_wsol_boxes(cam_norm, tau, largest_only=False):
    """wsolevaluation's per-threshold binarisation and boxes; the largest contour's box first."""
    scores = (cam_norm * 255).astype(np.uint8)
    _, kept = cv2.threshold(scores, int(tau * scores.max()), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(kept, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
    if not contours:
        return [[0, 0, 0, 0]]
    largest = max(contours, key=cv2.contourArea)
    boxes = []
    for contour in [largest] + [c for c in contours if c is not largest]:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append([x, y, min(x + w, kept.shape[1] - 1), min(y + h, kept.shape[0] - 1)])
    return boxes


def naive_sweep(images):
    """Every metric of ``fast_sweep`` by plain loops; also returns every reference box."""
    cmap = matplotlib.colormaps["cubehelix"]
    thresholds = list(DEFAULT_SWEEP_THRESHOLDS) + [CAM_THRESHOLD]
    num_sweep = len(DEFAULT_SWEEP_THRESHOLDS)
    loc_hits = {name: np.zeros(len(thresholds)) for name in ("gt_known_loc", "top1_loc", "top5_loc")}
    box_hits = {iou: np.zeros(num_sweep) for iou in DEFAULT_IOU_THRESHOLDS}
    largest_hits = np.zeros(num_sweep)
    all_boxes = []
    for cam, gt_boxes, label, top5 in images:
        cam = cam.astype(np.float64)
        cam_norm = (cam - cam.min()) / (cam.max() - cam.min())
        boxes = [naive_reference_box(cam_norm, tau, cmap) for tau in thresholds]
        all_boxes.append(boxes)
        for i, box in enumerate(boxes):
            hit = box_iou(box, gt_boxes[:1])[0, 0] >= LOC_IOU
            loc_hits["gt_known_loc"][i] += hit
            loc_hits["top1_loc"][i] += hit and top5[0] == label
            loc_hits["top5_loc"][i] += hit and label in top5
        for i, tau in enumerate(DEFAULT_SWEEP_THRESHOLDS):
            ious = box_iou(naive_wsol_boxes(cam_norm, tau), gt_boxes).max(axis=1)
            for iou in DEFAULT_IOU_THRESHOLDS:
                box_hits[iou][i] += ious.max() >= iou / 100
            largest_hits[i] += ious[0] >= LOC_IOU
    percent = {name: 100.0 * hits / len(images) for name, hits in loc_hits.items()}
    metrics = {"at_threshold": {name: values[-1] for name, values in percent.items()},
               "sweep": {name: values[:num_sweep] for name, values in percent.items()},
               "box_accuracy": {str(iou): 100.0 * hits / len(images) for iou, hits in box_hits.items()},
               "largest_contour_iou50": 100.0 * largest_hits / len(images)}
    return metrics, all_boxes


# --------------------------------------------------------------------------- (d) PxAP scaling

def _cam_and_mask(rng):
    """A random CAM and the object mask of its GT boxes (boxes filled)."""
    cam, gt_boxes, _, _ = random_image(rng)
    mask = np.zeros(cam.shape, bool)
    for x1, y1, x2, y2 in gt_boxes.astype(int):
        mask[y1:y2 + 1, x1:x2 + 1] = True
    return cam, mask


def pxap_run(num_images, seed):
    """``(seconds per image in add(), tracemalloc peak bytes, PxAP)`` over ``num_images``
    images made one at a time (only the accumulator persists)."""
    rng = np.random.default_rng(seed)
    PxAPAccumulator(DEFAULT_SWEEP_THRESHOLDS).add(*_cam_and_mask(np.random.default_rng(seed + 1)))  # warm-up
    accumulator = PxAPAccumulator(DEFAULT_SWEEP_THRESHOLDS)
    seconds = 0.0
    tracemalloc.start()
    for _ in range(num_images):
        cam, mask = _cam_and_mask(rng)
        start = time.perf_counter()
        accumulator.add(cam, mask)
        seconds += time.perf_counter() - start
        del cam, mask
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds / num_images, peak, accumulator.compute()["pxap"]


def pxap_scaling(num_images, factor, seed):
    small_time, small_peak, _ = pxap_run(num_images, seed)
    large_time, large_peak, pxap = pxap_run(num_images * factor, seed)
    return {"pxap_images": [num_images, num_images * factor],
            "pxap_ms_per_image": [1000 * small_time, 1000 * large_time],
            "pxap_peak_bytes": [small_peak, large_peak],
            "pxap_time_per_image_ratio": large_time / small_time,
            "pxap_peak_memory_ratio": large_peak / small_peak, "pxap_of_large_run": pxap}


# --------------------------------------------------------------------------- (e) network pass

NETWORK_CONFIGS = [("vgg_gap", "CAM"), ("vgg_gap", "E2Net"), ("resnet", "CAM"), ("resnet", "E2Net")]
NETWORK_FULL = dict(size=224, width=1.0, batch=8, windows=5)
NETWORK_QUICK = dict(size=32, width=0.125, batch=4, windows=3, configs=[("vgg_gap", "E2Net")])


def network_pass(precision_name, quick, windows=None, allow_slow=False):
    """(e): ``[record]`` of the evaluation predictor at fp32 and at ``precision_name``, alternating."""
    import tempfile
    from utils import compat  # noqa: F401  (first: TensorFlow set-up)
    from utils.compat import tf
    from utils.config import model_spec, parse_args
    from utils.evaluation.cam import fuse_heads, fusion_rule
    from utils.evaluation.evaluate import make_predictor
    from utils.training import precision
    from models.wsol_model import WSOLModel
    from tensorpack.tfutils.tower import TowerContext

    setting = dict(NETWORK_QUICK if quick else NETWORK_FULL)
    windows = windows or setting["windows"]
    note = precision.check(precision_name, precision.running_on_gpu(), allow_slow)
    print(note, flush=True)
    records = []
    for arch, method in setting.get("configs", NETWORK_CONFIGS):
        with tempfile.TemporaryDirectory(prefix="eval_throughput_") as folder:
            argv = ["--dataset_name", "CUB" if not quick else "SYNTH", "--arch_name", arch, "--method_name", method,
                    "--final_size", str(setting["size"]), "--width_multiplier", str(setting["width"]),
                    "--log_dir", os.path.join(folder, "run")] + (["--number_of_class", "4"] if quick else [])
            args = {name: parse_args(argv + ["--precision", name]) for name in ("fp32", precision_name)}
            with tf.Graph().as_default():
                model = WSOLModel(model_spec(args["fp32"]))
                inputs = [tf.placeholder(t.dtype, t.shape, t.name) for t in model.inputs()]
                with TowerContext("", is_training=False):
                    model.build_graph(*inputs)
                with tf.Session() as sess:
                    sess.run(tf.global_variables_initializer())
                    checkpoint = tf.train.Saver().save(sess, os.path.join(folder, "model"), global_step=1)
            predictors = {name: make_predictor(a, checkpoint) for name, a in args.items()}
            rng = np.random.default_rng(0)
            small = rng.integers(0, 256, (setting["batch"], setting["size"] // 8, setting["size"] // 8, 3), np.uint8)
            images = np.stack([cv2.resize(image, (setting["size"],) * 2, interpolation=cv2.INTER_CUBIC)
                               for image in small])
            labels = np.arange(setting["batch"]) % model.spec.num_classes
            rule = fusion_rule("released", arch)
            rates = {name: [] for name in predictors}
            cams = {}
            for name, (predictor, heads) in predictors.items():   # warm-up: grappler's rewrite, first run
                _, *outputs = predictor(images)
                cams[name] = fuse_heads(outputs[:heads], outputs[heads:], labels, rule)
            for _ in range(windows):
                for name, (predictor, _) in predictors.items():
                    start = time.perf_counter()
                    predictor(images)
                    rates[name].append(len(images) / (time.perf_counter() - start))
        correlation = min(np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(cams["fp32"], cams[precision_name]))
        record = {"arch": arch, "method": method, "image_size": setting["size"], "width_multiplier": setting["width"],
                  "batch": setting["batch"], "precision": precision_name,
                  "images_per_s_fp32": statistics.median(rates["fp32"]),
                  "images_per_s_precision": statistics.median(rates[precision_name]),
                  "samples_fp32": rates["fp32"], "samples_precision": rates[precision_name],
                  "ratio_precision_to_fp32_paired": statistics.median(
                      p / f for p, f in zip(rates[precision_name], rates["fp32"])),
                  "min_cam_correlation": float(correlation), "loadavg": os.getloadavg()}
        records.append(record)
        print(f"(e) {arch:8s} {method:6s} {setting['size']}px  fp32 {record['images_per_s_fp32']:8.2f}  "
              f"{precision_name} {record['images_per_s_precision']:8.2f} img/s  paired "
              f"{record['ratio_precision_to_fp32_paired']:.3f}  CAM correlation >= {correlation:.5f}  "
              f"load {record['loadavg'][0]:.2f}", flush=True)
    return records


# --------------------------------------------------------------------------- check and timing

def identical(images, fast_metrics, fast_records, naive_metrics, naive_boxes):
    """True when boxes (every threshold) and every metric of (b) and (c) agree exactly."""
    thresholds = list(DEFAULT_SWEEP_THRESHOLDS) + [CAM_THRESHOLD]
    same_boxes = all(np.array_equal(reference_boxes(normalize_cam(cam), thresholds), boxes)
                     and record["box"] == boxes[-1]
                     for (cam, _, _, _), record, boxes in zip(images, fast_records, naive_boxes))
    same_loc = all(fast_metrics[name] == value for name, value in naive_metrics["at_threshold"].items())
    same_sweep = all(np.array_equal(fast_metrics["sweep"][name], curve)
                     for name, curve in naive_metrics["sweep"].items())
    box_accuracy = fast_metrics["box_accuracy"]
    same_box_accuracy = all(np.array_equal(box_accuracy["iou"][iou]["curve"], curve)
                            for iou, curve in naive_metrics["box_accuracy"].items())
    same_largest = np.array_equal(box_accuracy["largest_contour_iou50"]["curve"],
                                  naive_metrics["largest_contour_iou50"])
    return bool(same_boxes and same_loc and same_sweep and same_box_accuracy and same_largest)


def images_per_second(function, images, repeats):
    """Median images/s over ``repeats`` runs, and the last result."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(images)
        rates.append(len(images) / (time.perf_counter() - start))
    return statistics.median(rates), result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 images, 1 repeat (a few seconds)")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pxap_images", type=int, default=50,
                        help=f"(d): PxAP over this many images and {PXAP_FACTOR} times as many")
    parser.add_argument("--out", default=os.path.join("bench", "results", "eval_throughput.json"))
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="(e): also time the evaluation predictor at this precision against fp32")
    parser.add_argument("--allow_slow_precision", action="store_true",
                        help="--precision bf16 on a CPU without native bf16")
    parser.add_argument("--windows", type=int, default=None, help="(e): alternating windows per predictor")
    args = parser.parse_args(argv)
    num_images, repeats = (4, 1) if args.quick else (args.images, args.repeats)

    rng = np.random.default_rng(args.seed)
    images = [random_image(rng) for _ in range(num_images)]
    rate_single, _ = images_per_second(reference_single, images, repeats)
    rate_fast, (fast_metrics, fast_records) = images_per_second(fast_sweep, images, repeats)
    rate_naive, (naive_metrics, naive_boxes) = images_per_second(naive_sweep, images, repeats)
    result = {
        "images_per_s_reference_single": rate_single,
        "images_per_s_fast_sweep": rate_fast,
        "images_per_s_naive_sweep": rate_naive,
        "speedup_sweep": rate_fast / rate_naive,
        "identical": identical(images, fast_metrics, fast_records, naive_metrics, naive_boxes),
        "num_images": num_images, "repeats": repeats,
        "num_thresholds": len(DEFAULT_SWEEP_THRESHOLDS), "image_size": IMAGE_SIZE,
        **pxap_scaling(*((4, 8) if args.quick else (args.pxap_images, PXAP_FACTOR)), args.seed),
    }
    print(tabulate([["(a) reference, one threshold", rate_single],
                    ["(b) fast sweep, both protocols", rate_fast],
                    ["(c) naive sweep, both protocols", rate_naive]],
                   ["path", "images/s (median)"], tablefmt="github", floatfmt=".1f"))
    target = "meets" if result["speedup_sweep"] >= SPEEDUP_TARGET else "below"
    print(f"speed-up (b)/(c): {result['speedup_sweep']:.1f}x ({target} the {SPEEDUP_TARGET:.0f}x target); "
          f"identical boxes and metrics: {result['identical']}")
    print(tabulate([[f"{n} images", ms, peak / 2 ** 20] for n, ms, peak in
                    zip(result["pxap_images"], result["pxap_ms_per_image"], result["pxap_peak_bytes"])],
                   ["(d) PxAP accumulation", "ms / image", "peak MiB (tracemalloc)"], tablefmt="github",
                   floatfmt=".3f"))
    print(f"PxAP {PXAP_FACTOR if not args.quick else 8}x the images: time per image x"
          f"{result['pxap_time_per_image_ratio']:.2f}, peak memory x{result['pxap_peak_memory_ratio']:.2f} "
          "(flat = 1.00)")
    if args.precision != "fp32":
        print(f"load average at the start of (e) (1, 5, 15 min): {' '.join(f'{v:.2f}' for v in os.getloadavg())} "
              f"on {os.cpu_count()} cores", flush=True)
        result["network_pass"] = network_pass(args.precision, args.quick, args.windows, args.allow_slow_precision)
        print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_json(args.out, result, indent=2)
    print(f"wrote {args.out}")
    if not result["identical"]:
        print("error: the fast sweep and the naive loop disagree", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
