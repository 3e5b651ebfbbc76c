"""Standalone scorer: metrics of a folder of CAM files against a label list (numpy only).

Usage::

    python -m utils.evaluation.scorer --cam_dir DIR --label_file FILE \\
        [--protocol reference|wsolevaluation] [--cam_threshold T] [--single_contour] [--mask_dir M]
        [--out metrics.json]

``FILE`` has one GT box a line, ``name class x1 y1 x2 y2`` (whitespace separated;
several lines with one name = several GT boxes, the first is the reference box;
blank lines are skipped; parsed by ``utils.data.labels``).  The CAM of ``name`` is the
2-D float array ``DIR/<name without its extension>.npy`` (sub-folders of ``name``
included); boxes are in the CAM's own pixel frame.  ``--protocol`` picks the table
printed; the JSON (``{"config", "metrics"}``, default ``./metrics.json``) holds every
metric.  ``--single_contour`` makes the wsolevaluation boxes come from the largest
contour only.  ``--mask_dir M`` adds PxAP and PIoU (``utils.evaluation.pxap``) against
the masks ``M/<name without its extension>.png`` (nonzero = object; a mask of another
size than its CAM is mapped into the CAM's frame and counted: into the evaluation crop as
``--evaluate`` does when ``DIR/frame.json`` says the CAMs are crops (``--save_cams`` writes
it), else resized to the CAM with nearest-neighbour interpolation as wsolevaluation does;
images without a mask are counted and left out of PxAP).  Bad input (a missing ``.npy``, an
``.npy`` not in the list, an array that is not 2-D, a malformed line, a label file that is not
UTF-8) exits with code 2 and a one-line error naming the file (and line).

Non-finite CAMs: a CAM with any NaN or +-inf value is scored as an all-zero map — no box
at any threshold, so a miss in every metric.  This is wsolevaluation's rule for NaN maps
(its ``normalize_scoremap`` returns zeros when the map holds a NaN), applied to
infinities too.  Such CAMs are never silent: their number is printed under the table
and written to the JSON (``metrics.nonfinite_cams``, and the first file names in
``metrics.nonfinite_cam_files``).  Boxes extending past their CAM (``x1 < 0``, ``y1 < 0``,
``x2 > width``, ``y2 > height``) are counted likewise (``metrics.boxes_outside_cam``) but
never refused: boxes in a crop's frame legitimately extend past it (``--save_cams``);
suspicious boxes of the list (``x2 <= x1``, negative coordinates) are reported when it is
read, and a list where most boxes are wrong is refused (``utils.data.labels``).
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np

from utils.data.labels import LabelListError, OutOfImageBoxes, read_label_list
from utils.atomic import write_json
from utils.data.masks import MaskError, load_mask, mask_file, mask_in_crop, object_pixels
from utils.evaluation import report
from utils.errors import UserError, exit_on_user_error
from utils.flags import out_of_range
from utils.evaluation.metrics import DEFAULT_CAM_THRESHOLD, WSOLEvaluator
from utils.evaluation.pxap import NoForegroundError


NAMES_SHOWN = 5
FRAME_FILE = "frame.json"   # written by --evaluate --save_cams: the CAMs are in the evaluation crop


def write_frame(cam_dir, final_size):
    """Record in ``cam_dir`` that its CAMs are in the evaluation crop of ``final_size``
    (``utils.data.masks.mask_in_crop``), so that the scorer maps whole-image masks into it."""
    write_json(os.path.join(cam_dir, FRAME_FILE), {"frame": "evaluation_crop", "final_size": int(final_size)},
               indent=2)


def read_frame(cam_dir):
    """The crop size of ``cam_dir``'s CAMs from its frame file, or ``None`` without one."""
    path = os.path.join(cam_dir, FRAME_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            frame = json.load(f)
        if frame["frame"] != "evaluation_crop":
            raise ValueError(f"unknown frame {frame['frame']!r}")
        return int(frame["final_size"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise EvaluationInputError(f"{path}: cannot read the CAMs' frame ({error})") from None


class EvaluationInputError(UserError, ValueError):
    """Bad scorer input; the message names the offending file."""


def entries_by_name(path):
    """``{name: LabelEntry}`` of a label list (``utils.data.labels`` format: several lines with
    one name = several GT boxes), in file order, each with at least one box."""
    try:
        entries = read_label_list(path)
    except LabelListError as error:
        raise EvaluationInputError(str(error)) from None
    except OSError as error:
        raise EvaluationInputError(f"{path}: cannot read the label file ({error.strerror or error})") from None
    if not len(entries):
        raise EvaluationInputError(f"{path}: the label file lists no image")
    for entry in entries:
        if len(entry.boxes) == 0:
            raise EvaluationInputError(f"{path}: {entry.path!r} has no box")
    return {entry.path: entry for entry in entries}


def cam_file_name(name):
    """Relative ``.npy`` path of the CAM of list entry ``name`` (its extension replaced)."""
    return os.path.normpath(os.path.splitext(name)[0] + ".npy")


def load_cam(path):
    """A 2-D CAM from ``path``, or EvaluationInputError naming the file."""
    try:
        cam = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise EvaluationInputError(f"{path}: cannot read a .npy array ({error})") from None
    if cam.ndim != 2:
        raise EvaluationInputError(f"{path}: expected a 2-D CAM, got shape {cam.shape}")
    if cam.size == 0:
        raise EvaluationInputError(f"{path}: an empty CAM ({cam.shape[1]}x{cam.shape[0]} WxH)")
    if not np.issubdtype(cam.dtype, np.number) or np.issubdtype(cam.dtype, np.complexfloating):
        raise EvaluationInputError(f"{path}: expected a real-valued CAM, got dtype {cam.dtype}")
    return cam


def load_mask_for(mask_dir, name, cam_shape, crop_size=None):
    """``(object pixels in the CAM's frame or None, resized?)`` for list entry ``name``: the mask
    ``mask_dir/<name>.png``; one of another size than the CAM is mapped into the evaluation crop
    as ``--evaluate`` does when the CAMs are crops (``crop_size``, from the folder's frame file),
    else resized (nearest) to the CAM's size, as wsolevaluation resizes masks to its score maps."""
    path = mask_file(mask_dir, name)
    if not os.path.isfile(path):
        return None, False
    try:
        mask = load_mask(path)
    except MaskError as error:
        raise EvaluationInputError(str(error)) from None
    resized = mask.shape != tuple(cam_shape)
    if resized and crop_size is not None:
        if tuple(cam_shape) != (crop_size, crop_size):
            raise EvaluationInputError(f"{path}: the CAMs are {crop_size}x{crop_size} evaluation crops, but this "
                                       f"one is {cam_shape[1]}x{cam_shape[0]}")
        mask = mask_in_crop(mask, crop_size)
    elif resized:
        mask = cv2.resize(mask, (cam_shape[1], cam_shape[0]), interpolation=cv2.INTER_NEAREST)
    return object_pixels(mask), resized


def evaluate_cam_dir(cam_dir, label_file, cam_threshold=DEFAULT_CAM_THRESHOLD, multi_contour=True, mask_dir=None):
    """Metrics of the CAMs ``cam_dir/<name>.npy`` against the boxes of ``label_file`` (and,
    with ``mask_dir``, PxAP against the masks ``mask_dir/<name>.png``)."""
    if not os.path.isdir(cam_dir):
        raise EvaluationInputError(f"CAM folder {cam_dir} not found")
    if mask_dir is not None and not os.path.isdir(mask_dir):
        raise EvaluationInputError(f"mask folder {mask_dir} not found")
    crop_size = read_frame(cam_dir)
    box_list = entries_by_name(label_file)
    expected = {cam_file_name(name): name for name in box_list}
    found = {os.path.relpath(os.path.join(root, file), cam_dir)
             for root, _, files in os.walk(cam_dir) for file in files if file.endswith(".npy")}
    unknown = sorted(found - expected.keys())
    if unknown:
        raise EvaluationInputError(f"{os.path.join(cam_dir, unknown[0])}: no such image in {label_file}")
    missing = sorted(expected.keys() - found)
    if missing:
        raise EvaluationInputError(f"{os.path.join(cam_dir, missing[0])}: missing CAM for "
                                   f"{expected[missing[0]]!r} ({len(missing)} missing)")
    evaluator = WSOLEvaluator(cam_threshold=cam_threshold, multi_contour=multi_contour)
    outside = OutOfImageBoxes(label_file, sum(len(entry.boxes) for entry in box_list.values()), refuse=False)
    nonfinite, masks_resized = [], 0
    for file_name, name in expected.items():
        entry = box_list[name]
        cam = load_cam(os.path.join(cam_dir, file_name))
        try:
            outside.add(entry, cam.shape)
        except LabelListError as error:
            raise EvaluationInputError(str(error)) from None
        if not np.all(np.isfinite(cam)):
            nonfinite.append(file_name)
        mask, resized = load_mask_for(mask_dir, name, cam.shape, crop_size) if mask_dir else (None, False)
        masks_resized += resized
        evaluator.add(cam, entry.boxes.astype(np.float64), label=entry.label, mask=mask)
    try:
        metrics = evaluator.compute()
    except NoForegroundError as error:
        raise EvaluationInputError(f"{mask_dir}: {error}") from None
    metrics["nonfinite_cam_files"] = nonfinite[:NAMES_SHOWN]
    metrics["boxes_outside_cam"] = outside.summary()
    if "pixel" in metrics:
        metrics["mask_dir"] = mask_dir
        metrics["pixel"]["masks_resized_to_the_cam"] = masks_resized
        metrics["pixel"]["mask_mapping"] = ("into the evaluation crop (as --evaluate)" if crop_size else
                                            "resized to the CAM (wsolevaluation)")
    elif mask_dir:
        raise EvaluationInputError(f"{mask_dir}: no mask for any image of {label_file} "
                                   f"(expected e.g. {mask_file(mask_dir, next(iter(box_list)))})")
    return metrics


def warnings_text(metrics):
    """Lines saying what was scored specially (non-finite CAMs, boxes past the CAM)."""
    lines = []
    if metrics["nonfinite_cams"]:
        shown = ", ".join(metrics["nonfinite_cam_files"])
        lines.append(f"warning: {metrics['nonfinite_cams']} of {metrics['num_images']} CAMs hold NaN or inf values "
                     f"({shown}{', ...' if metrics['nonfinite_cams'] > len(metrics['nonfinite_cam_files']) else ''})"
                     f"; scored as all-zero maps (no box: a miss), as wsolevaluation does for NaN")
    outside = metrics["boxes_outside_cam"]
    if outside["outside"]:
        lines.append(f"warning: {outside['outside']} of {outside['checked']} boxes extend past their CAM "
                     f"(lines {', '.join(str(n) for n in outside['lines'])}); scored as given")
    return lines


def main(argv=None):
    """The command line; bad input: one ``scorer: error: ...`` line on stderr, exit 2."""
    return exit_on_user_error("scorer", _main, argv)


def _main(argv=None):
    parser = argparse.ArgumentParser(description="Score a directory of CAMs (.npy) against GT boxes.")
    parser.add_argument("--cam_dir", required=True, help="folder of <name>.npy 2-D CAMs")
    parser.add_argument("--label_file", required=True, help="lines 'name class x1 y1 x2 y2'")
    parser.add_argument("--protocol", choices=("reference", "wsolevaluation"), default="reference",
                        help="which metrics table to print (the JSON holds both)")
    parser.add_argument("--cam_threshold", type=float, default=DEFAULT_CAM_THRESHOLD)
    parser.add_argument("--single_contour", action="store_true",
                        help="wsolevaluation boxes from the largest contour only")
    parser.add_argument("--mask_dir", default=None,
                        help="object masks <mask_dir>/<name>.png (nonzero = object): adds PxAP and PIoU")
    parser.add_argument("--out", default="metrics.json", help="metrics JSON to write")
    args = parser.parse_args(argv)
    problem = out_of_range("cam_threshold", args.cam_threshold)
    if problem:
        raise EvaluationInputError(problem)
    metrics = evaluate_cam_dir(args.cam_dir, args.label_file, args.cam_threshold,
                               multi_contour=not args.single_contour, mask_dir=args.mask_dir)
    table = report.reference_table if args.protocol == "reference" else report.box_accuracy_table
    print(table(metrics))
    if "pixel" in metrics:
        print(report.pixel_table(metrics))
    for line in warnings_text(metrics):
        print(line)
    config = {key: getattr(args, key)
              for key in ("cam_dir", "label_file", "protocol", "cam_threshold", "single_contour", "mask_dir")}
    report.write_metrics_json(args.out, metrics, config)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
