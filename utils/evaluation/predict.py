"""``predict.py``: classes, CAM and box of a trained run on any images.

The run's ``config.json`` gives the model (architecture, method, heads, MAE rule,
width, classes, input size, CAM fusion); its ``words.txt`` the class names.  Each
image (any size, JPEG/PNG/..., grayscale or colour; decoded as BGR) is shown to the
network in one of two views:

``resize``       (default) the whole image resized to ``final_size`` squared, aspect
                 ratio not kept: an object anywhere in the image is seen;
``centre_crop``  the WSOL evaluation view: resized to ``final_size + 32`` squared and
                 the centre ``final_size`` crop taken (objects near the border are cut).

Per image: the top-5 classes with softmax scores, the fused CAM of the top-1 class
(or of ``--class``), the reference-protocol box at ``--cam_threshold`` in the view
(``reference_box``) and that box mapped back to the ORIGINAL image's pixels
(``x -> (x + offset) * W / resize``, rounded half up to integers; offset 0 and resize =
``final_size`` for the ``resize`` view).  Written to ``--out``: ``predictions.jsonl``,
``predictions.csv``, ``overlays/<n>_<name>.png`` (heat map over the part of the image
the network saw, box in red, label underneath) and, for unreadable files,
``skipped.tsv`` (path, reason); ``--save_cams`` adds ``cams/<n>_<name>.npy`` (the CAM
in the view's frame).
"""
from utils import compat  # noqa: F401  (first: TensorFlow set-up)
import argparse
import csv
import glob
import json
import os
import sys

import cv2
import numpy as np
from tensorpack.utils import logger
from tensorpack.utils.utils import get_tqdm

from utils.atomic import atomic_folder, write_image, write_npy
from utils.config import resolve_log_dir, run_config
from utils.flags import flag
from utils.data.labels import read_class_names
from utils.data.paths import run_class_names_file
from utils.data.transforms import centre_crop_view, crop_boxes_to_original, decode_image
from utils.errors import UserError, exit_on_user_error
from utils.flags import out_of_range
from utils.evaluation.cam import fuse_heads, fusion_rule
from utils.evaluation.evaluate import make_predictor
from models.methods.registry import method
from utils.evaluation.localization import normalize_cam, reference_box, resize_cam
from utils.evaluation.report import METRICS_FILE, read_metrics
from utils.evaluation.visualization import prediction_overlay
from utils.training.checkpoints import checkpoint_to_evaluate
from utils.training.precision import check_run

VIEWS = ("resize", "centre_crop")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
LIST_EXTENSIONS = (".txt", ".tsv", ".lst")
TOP_K = 5


class PredictError(UserError, ValueError):
    """A bad predict.py input (one line naming the file or value)."""


# --------------------------------------------------------------------------- the run

def class_names_of(args):
    """Class names of a run (``run_class_names_file``: its own ``words.txt``, else its data
    set's), else ``None``.  A model with more outputs than names (ResNet50-SE on CUB has 1000, as
    released) names the extra classes by their index, with a warning."""
    path = run_class_names_file(args)
    if path is None:
        return None
    names = read_class_names(path)
    if len(names) > args.number_of_class:
        raise PredictError(f"{path}: {len(names)} class names for a {args.number_of_class}-class model")
    if len(names) < args.number_of_class:
        logger.warn(f"{path} names {len(names)} of the model's {args.number_of_class} classes; "
                    f"classes {len(names)}-{args.number_of_class - 1} are named by their index")
    return names + [str(i) for i in range(len(names), args.number_of_class)]


def evaluated_threshold(log_dir):
    """``(tau, source)`` of the run's evaluations, or ``None`` without any: the τ chosen on a
    held-out list (``--tau_split``) by the newest evaluation that has one, else the newest
    evaluation's ``cam_threshold``; ``source`` names the metrics file (and the held-out list)."""
    paths = sorted(glob.glob(os.path.join(log_dir, "result", "**", METRICS_FILE), recursive=True),
                   key=os.path.getmtime, reverse=True)
    newest = None
    for path in paths:
        try:
            metrics = read_metrics(path)["metrics"]
            held_out = metrics.get("held_out_tau")
            if held_out:
                return float(held_out["reference"]["tau"]), f"{path} (τ chosen on {held_out['chosen_on']})"
            newest = newest or (float(metrics["cam_threshold"]), path)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise PredictError(f"{path}: cannot read the evaluated τ ({error}); give --cam_threshold, "
                               f"or move the broken result folder away") from None
    return newest


class RunPredictor:
    """The network of a run on uint8 BGR crops of its input size (batched, CPU or GPU).

    ``predictor(crops, classes=None)`` returns ``(logits [B, K], cams [B, h, w])``: the
    CAMs at the feature resolution, fused with the run's ``--cam_fusion`` rule, of
    ``classes`` (default: each image's top-1 class).
    """

    def __init__(self, args):
        self.args = args
        self.checkpoint = checkpoint_to_evaluate(args)
        self._predictor, self._num_heads = make_predictor(args, self.checkpoint, extra_outputs=("logits",))
        self.rule = fusion_rule(args.cam_fusion, args.arch_name)
        self.classifies = method(args.method_name).classifies   # False: no top-5 to report (FSL)

    def __call__(self, crops, classes=None):
        _, *outputs = self._predictor(np.asarray(crops, np.uint8))
        heads = self._num_heads
        features, weights, logits = outputs[:heads], outputs[heads:2 * heads], outputs[2 * heads]
        if classes is None:
            classes = np.argmax(logits, axis=1)
        return logits, fuse_heads(features, weights, np.asarray(classes), self.rule)


def softmax(logits):
    shifted = np.asarray(logits, np.float64) - np.max(logits, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


# --------------------------------------------------------------------------- images

def list_line_path(line, root):
    """The image path of an image-list line: its first TAB-separated field when it has a TAB
    (paths may hold spaces), else the whole line when that names a file, else its first
    whitespace-separated field; relative to ``root``.  ``None`` for a blank line."""
    text = line.strip()
    if not text:
        return None
    if "\t" in text:
        field = text.split("\t")[0].strip()
    elif os.path.isfile(text if os.path.isabs(text) else os.path.join(root, text)):
        field = text
    else:
        field = text.split()[0]
    return field if os.path.isabs(field) else os.path.join(root, field)


def collect_images(inputs, image_root=None):
    """Image paths from files, folders (searched recursively for image extensions, sorted)
    and lists (``.txt``/``.tsv``/``.lst``: the path of each line as ``list_line_path``,
    relative to ``image_root`` or else to the list's folder)."""
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(os.path.join(root, name) for root, _, names in os.walk(item) for name in names
                           if name.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise PredictError(f"{item}: no image file ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
            paths += found
        elif item.lower().endswith(LIST_EXTENSIONS):
            root = image_root if image_root is not None else os.path.dirname(item)
            try:
                with open(item, encoding="utf-8") as f:
                    lines = list(f)
            except (OSError, UnicodeDecodeError) as error:
                raise PredictError(f"{item}: cannot read the image list ({error})") from None
            paths += [path for path in (list_line_path(line, root) for line in lines) if path]
        else:
            paths.append(item)   # missing or unreadable files are reported and skipped later
    if not paths:
        raise PredictError("no image given")
    return paths


def network_view(image, final_size, view):
    """``(crop, resize, offset)``: the network's input and the transform that made it."""
    if view == "centre_crop":
        return centre_crop_view(image, final_size)
    return cv2.resize(image, (final_size, final_size), interpolation=cv2.INTER_LINEAR), final_size, 0


# --------------------------------------------------------------------------- outputs

def resolve_class(choice, class_names, num_classes):
    """``--class`` as an index: a number, or a class name (exact, else case-insensitive)."""
    if choice is None:
        return None
    if choice.lstrip("-").isdigit():
        index = int(choice)
    else:
        names = class_names or []
        matches = [i for i, name in enumerate(names) if name == choice] or \
                  [i for i, name in enumerate(names) if name.lower() == choice.lower()]
        if len(matches) != 1:
            raise PredictError(f"--class {choice!r}: {'no' if not matches else 'more than one'} class of that "
                               f"name{'' if names else ' (the run has no words.txt)'}")
        index = matches[0]
    if not 0 <= index < num_classes:
        raise PredictError(f"--class {choice}: outside [0, {num_classes})")
    return index


def name_of(class_names, index):
    return class_names[index] if class_names else str(index)


def overlay_name(number, path):
    stem = os.path.splitext(os.path.basename(path))[0]
    return f"{number:05d}_{''.join(c if c.isalnum() or c in '._-' else '_' for c in stem)}"


CSV_COLUMNS = ("image", "width", "height", "top1", "top1_name", "top1_score", "top5", "top5_scores",
               "cam_class", "cam_class_name", "cam_threshold", "view", "x1", "y1", "x2", "y2", "overlay")


def csv_row(record):
    top5 = record["top5"]
    top1 = top5[0] if top5 else {"class": "", "name": "", "score": None}   # [] without a classifier (FSL)
    return {"image": record["image"], "width": record["width"], "height": record["height"],
            "top1": top1["class"], "top1_name": top1["name"],
            "top1_score": "" if top1["score"] is None else f"{top1['score']:.6f}",
            "top5": " ".join(str(t["class"]) for t in top5),
            "top5_scores": " ".join(f"{t['score']:.6f}" for t in top5),
            "cam_class": record["cam_class"], "cam_class_name": record["cam_class_name"],
            "cam_threshold": record["cam_threshold"], "view": record["view"],
            **dict(zip(("x1", "y1", "x2", "y2"), record["box"])), "overlay": record["overlay"]}


OUTPUT_ENTRIES = frozenset({"predictions.jsonl", "predictions.csv", "skipped.tsv", "overlays", "cams"})


def earlier_output(out_dir):
    """What ``--out`` holds: ``None`` (nothing: absent), ``"empty"`` (an empty folder) or
    ``"predictions"`` (an earlier predict.py output); both are replaced whole.  A folder with
    other files, or a file, is refused."""
    if not os.path.lexists(out_dir):
        return None
    if not os.path.isdir(out_dir):
        raise PredictError(f"--out {out_dir} is a file, not a folder")
    entries = set(os.listdir(out_dir))
    if not entries:
        return "empty"
    if "predictions.jsonl" not in entries or entries - OUTPUT_ENTRIES:
        raise PredictError(f"--out {out_dir} holds files that are not a predict.py output "
                           f"({', '.join(sorted(entries - OUTPUT_ENTRIES) or sorted(entries))}); give a new folder")
    return "predictions"


def predict_images(args, paths, out_dir, cam_class=None, cam_threshold=None, view="resize", batch_size=32,
                   save_cams=False):
    """Predict ``paths`` with the run configuration ``args``; returns ``(records, skipped)``.
    ``out_dir`` is written whole (built under a temporary name, then renamed); an earlier
    predict.py output there is replaced as a whole, so no file of it stays beside the new one."""
    if view not in VIEWS:
        raise PredictError(f"--view must be one of {VIEWS}, got {view!r}")
    earlier = earlier_output(out_dir)
    class_names = class_names_of(args)
    cam_class = resolve_class(cam_class, class_names, args.number_of_class)
    tau_source = "--cam_threshold"
    if cam_threshold is None:
        evaluated = evaluated_threshold(args.log_dir)
        cam_threshold, tau_source = evaluated if evaluated else (args.cam_threshold, "released default")
    predictor = RunPredictor(args)
    with atomic_folder(out_dir, replace=earlier is not None) as folder:
        records, skipped = _predict_into(folder, predictor, paths, cam_class, cam_threshold, tau_source, class_names,
                                         view, batch_size, save_cams)
    if earlier == "predictions":
        print(f"predict.py: replaced the earlier predictions in {out_dir} (none of their files is kept)",
              file=sys.stderr)
    return records, skipped


def _predict_into(out_dir, predictor, paths, cam_class, cam_threshold, tau_source, class_names, view, batch_size,
                  save_cams):
    size = predictor.args.final_size
    os.makedirs(os.path.join(out_dir, "overlays"))
    if save_cams:
        os.makedirs(os.path.join(out_dir, "cams"))
    records, skipped = [], []
    # plain writes: out_dir is a temporary folder, published whole by predict_images
    with open(os.path.join(out_dir, "predictions.jsonl"), "w") as jsonl, \
            open(os.path.join(out_dir, "predictions.csv"), "w", newline="") as table, \
            get_tqdm(total=len(paths), desc="predict") as progress:
        writer = csv.DictWriter(table, CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for start in range(0, len(paths), batch_size):
            batch = read_batch(paths[start:start + batch_size], size, view, skipped)
            if batch:
                logits, cams = predictor([crop for _, _, crop, _ in batch],
                                         None if cam_class is None else [cam_class] * len(batch))
                for (path, image, _, transform), row_logits, cam in zip(batch, logits, cams):
                    shown = cam_class if cam_class is not None else int(np.argmax(row_logits))
                    record = predict_record(path, image, softmax(row_logits), cam, shown, transform, size,
                                            cam_threshold, class_names, view, predictor.classifies)
                    record["cam_threshold_source"] = tau_source
                    write_picture_and_cam(out_dir, overlay_name(len(records), path), image, record, save_cams)
                    records.append(record)
                    jsonl.write(json.dumps(record) + "\n")
                    writer.writerow(csv_row(record))
            progress.update(len(paths[start:start + batch_size]))
    if skipped:
        with open(os.path.join(out_dir, "skipped.tsv"), "w") as f:
            f.write("path\treason\n" + "".join(f"{path}\t{reason}\n" for path, reason in skipped))
    if not records:
        raise PredictError(f"none of the {len(paths)} images could be read (first: {skipped[0][0]}: "
                           f"{skipped[0][1]}); nothing written")
    return records, skipped


def read_batch(paths, size, view, skipped):
    """``[(path, image, crop, (resize, offset))]`` of the readable ``paths``; the others are
    named on stderr and appended to ``skipped`` as ``(path, reason)``."""
    batch = []
    for path in paths:
        image, reason = decode_image(path)
        if image is None:
            skipped.append((path, reason))
            print(f"predict.py: skipped {path}: {reason}", file=sys.stderr)
        else:
            crop, resize, offset = network_view(image, size, view)
            batch.append((path, image, crop, (resize, offset)))
    return batch


def predict_record(path, image, scores, cam, cam_class, transform, size, cam_threshold, class_names, view,
                   classifies=True):
    """The record of one image (its CAM in the view's frame under ``_cam_view``); a method without a
    classifier (``classifies`` False: FSL) has no top-5 (``[]``), its map is the same for every class."""
    resize, offset = transform
    order = np.argsort(-scores, kind="stable")[:TOP_K] if classifies else []
    height, width = image.shape[:2]
    cam_view = resize_cam(cam, (size, size))
    box_view = reference_box(normalize_cam(cam_view), cam_threshold)
    box = np.floor(crop_boxes_to_original(box_view, (height, width), resize, offset)[0] + 0.5).astype(int)
    region = crop_boxes_to_original([0, 0, size, size], (height, width), resize, offset)[0]
    return {"image": path, "width": width, "height": height,
            "top5": [{"class": int(c), "name": name_of(class_names, int(c)), "score": float(scores[c])}
                     for c in order],
            "cam_class": cam_class, "cam_class_name": name_of(class_names, cam_class),
            "cam_threshold": float(cam_threshold), "view": view,
            "box": [int(v) for v in box], "box_in_view": [int(v) for v in box_view],
            "view_region": [round(float(v), 3) for v in region], "_cam_view": cam_view}


def write_picture_and_cam(out_dir, name, image, record, save_cams):
    """``overlays/<name>.png`` (and ``cams/<name>.npy``) of a record, which gets their paths
    (relative to ``out_dir``) and loses its in-memory CAM."""
    cam_view = record.pop("_cam_view")
    top1 = record["top5"][0] if record["top5"] else None
    lines = [f"top-1: {top1['name']} ({top1['score']:.2f})" if top1 else "top-1: none (no classifier)",
             f"box: CAM of {record['cam_class_name']}, tau {record['cam_threshold']:.2f}"]
    picture = prediction_overlay(image, cam_view, record["view_region"], record["box"], lines)
    record["overlay"] = os.path.join("overlays", name + ".png")
    write_image(os.path.join(out_dir, record["overlay"]), picture, sync=False)   # the folder is published whole
    if save_cams:
        record["cam"] = os.path.join("cams", name + ".npy")
        write_npy(os.path.join(out_dir, record["cam"]), cam_view.astype(np.float32))


def build_parser():
    p = argparse.ArgumentParser(
        prog="predict.py", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Top-5 classes, CAM and box of a trained run on any images (model and class names "
                    "from the run's config.json and words.txt).")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--log_dir", help="run folder (its min-val-error-top1, else newest checkpoint); a bare "
                        "name goes under train_log/, as in train.py")
    source.add_argument("--load", help="a checkpoint inside a run folder")
    p.add_argument("images", nargs="+", help="image files, folders (recursive) or lists (.txt/.tsv/.lst)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--class", dest="cam_class", default=None,
                   help="CAM and box of this class (index or name) instead of the top-1 class")
    p.add_argument("--cam_threshold", type=float, default=None,
                   help="box threshold tau (default: a held-out tau of the run's evaluations (--tau_split), else the newest evaluation's cam_threshold, else the released default)")
    p.add_argument("--view", choices=VIEWS, default="resize",
                   help="resize: the whole image to the input size; centre_crop: the WSOL evaluation view")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--image_root", default=None, help="folder the paths of a list are relative to "
                                                      "(default: the list's folder)")
    p.add_argument("--save_cams", action="store_true", help="also write each CAM as cams/<name>.npy")
    for name in ("precision", "allow_slow_precision"):   # train.py's declarations (any run predicts in any precision)
        flag(name).add_to(p)
    return p


def _main(argv=None):
    args = build_parser().parse_args(argv)
    if args.batch_size < 1:
        raise PredictError("--batch_size must be positive")
    problem = out_of_range("cam_threshold", args.cam_threshold)
    if problem:
        raise PredictError(problem)
    paths = collect_images(args.images, args.image_root)
    run = run_config(args.load or resolve_log_dir(args.log_dir), gpu_present=compat.gpu_available(),
                     flags=["--precision", args.precision] + ["--allow_slow_precision"] * args.allow_slow_precision)
    check_run(run)
    records, skipped = predict_images(run, paths, args.out, args.cam_class, args.cam_threshold, args.view,
                                      args.batch_size, args.save_cams)
    note = f" ({len(skipped)} unreadable, skipped: {os.path.join(args.out, 'skipped.tsv')})" if skipped else ""
    print(f"predict.py: {len(records)} of {len(paths)} images predicted -> {args.out}{note}")
    return 0


def main(argv=None):
    """The command line; a wrong input: one ``predict.py: error: ...`` line on stderr, exit 2."""
    return exit_on_user_error("predict.py", _main, argv)
