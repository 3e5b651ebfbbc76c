"""``train.py --evaluate``: one pass of a checkpoint over the val list, then every metric.

The network runs once per image; from its outputs (top-5, per-head feature maps and
FC weights) the GT-class CAM of each head is computed without gradients, the heads
are fused, the CAM is resized to the crop and handed to ``WSOLEvaluator``, which
scores every threshold of both box protocols at once, and PxAP against the image's
object mask mapped into the crop (``utils.data.masks``) when a mask folder exists.
With ``--tau_split`` a first pass over that held-out list chooses the thresholds
(``utils.evaluation.held_out``) that are then applied to the evaluation list.

The checkpoint is verified first (``verify_checkpoint``).  Results land in a new folder
``<log_dir>/result/<NNN>-<checkpoint name>/`` (metrics.json, metrics.md,
threshold_curve.png, predictions.tsv, examples/); ``result/latest`` points to the newest
(``utils.evaluation.results``).  ``--save_cams DIR`` also writes every scored CAM of the
evaluation list as ``DIR/<image path without extension>.npy`` (float32, crop frame) and
the GT boxes in that frame as ``DIR/labels.txt``: the input of ``python -m utils.evaluation.scorer``.
"""
from utils import compat  # noqa: F401  (first: TensorFlow set-up)
import os

import numpy as np
from tensorpack import OfflinePredictor, PredictConfig
from tensorpack.utils import logger
from tensorpack.utils.utils import get_tqdm

from models.wsol_model import WSOLModel
from utils.evaluation.cam import fuse_heads, fusion_rule
from utils.compat import tf
from utils.config import config_dict, model_spec
from utils.data.dataflow import get_eval_dataflow
from utils.data.paths import dataset_paths
from utils.evaluation.held_out import held_out_selection
from utils.evaluation.metrics import WSOLEvaluator
from utils.data.masks import MaskError, MaskFolder, default_mask_dir, object_pixels, part_mask_dir
from utils.evaluation.pxap import NoForegroundError
from utils.data.labels import LabelEntry, read_class_names, write_label_list
from utils.evaluation.localization import normalize_cam, resize_cam
from utils.evaluation.parts import PartAnalyzer
from utils.training import precision
from utils.training.checkpoints import verify_checkpoint
from utils.training.pretrained import CheckpointInit, PretrainedWeightsError
from utils.evaluation.report import write_report
from utils.evaluation.results import mark_latest, new_result_dir
from utils.evaluation.scorer import cam_file_name
from utils.evaluation.visualization import readable_example, save_examples

BEST_CHECKPOINT = "min-val-error-top1"
SAVED_CAMS_LABELS = "labels.txt"


def checkpoint_to_evaluate(args):
    """--load, else ``min-val-error-top1`` in the log folder, else its newest checkpoint."""
    if args.load:
        return args.load
    best = os.path.join(args.log_dir, BEST_CHECKPOINT)
    if os.path.isfile(best + ".index"):
        return best
    latest = tf.train.latest_checkpoint(args.log_dir) if os.path.isdir(args.log_dir) else None
    if latest is None:
        raise PretrainedWeightsError(f"no checkpoint to evaluate in {args.log_dir} (train first or pass --load)")
    return latest


def make_predictor(args, checkpoint, extra_outputs=()):
    """``(OfflinePredictor, number of heads)``; the predictor maps uint8 BGR crops to
    ``top5, features_<head>..., fc_weights_<head>..., *extra_outputs``."""
    model = WSOLModel(model_spec(args))
    heads = model.head_names
    outputs = ["top5"] + [f"features_{h}" for h in heads] + [f"fc_weights_{h}" for h in heads] + list(extra_outputs)
    config = PredictConfig(model=model, session_init=CheckpointInit(checkpoint),
                           session_creator=precision.session_creator(args.precision, precision.on_gpu()),
                           input_names=["input"], output_names=outputs)
    return OfflinePredictor(config), len(heads)


def sweep_thresholds(intervals):
    return np.round(np.arange(intervals) / float(intervals), 6)


def mask_folder(args):
    """``--mask_dir``, else ``<data_dir>/<NAME>/masks`` when it exists, else None (no PxAP)."""
    if args.mask_dir:
        return MaskFolder(args.mask_dir)
    default = default_mask_dir(args.data_dir, args.dataset_name)
    if os.path.isdir(default):
        return MaskFolder(default)
    logger.info(f"No mask folder {default}: PxAP not computed (give one with --mask_dir)")
    return None


def part_folder(args):
    """``<data_dir>/<NAME>/parts`` (head / body masks, written by SYNTH) when it exists, else None."""
    folder = part_mask_dir(args.data_dir, args.dataset_name)
    return MaskFolder(folder) if os.path.isdir(folder) else None


def tau_split_list(args):
    """``(name, label_file)`` of ``--tau_split``: an existing path (label list or metadata
    split folder), else a split name resolved like ``val`` (e.g. ``train_fullsup``)."""
    if os.path.exists(args.tau_split):
        return args.tau_split, args.tau_split
    label_file, _ = dataset_paths(args.dataset_name, args.data_dir, args.label_dir, split=args.tau_split)
    return args.tau_split, label_file


class EvaluationPass:
    """One pass of the network over a list: every metric (``metrics``), per-image records,
    the first ``number_of_examples`` example panels and, with ``save_cams``, every CAM."""

    def __init__(self, predictor, num_heads, args, masks, class_names=None, save_cams=None, parts=None):
        self.predictor, self.num_heads, self.args, self.masks = predictor, num_heads, args, masks
        self.parts = parts   # MaskFolder of part masks (0 background, 1 part, 2 body) or None
        self.class_names, self.save_cams, self.saved_cams = class_names, save_cams, []
        self.rule = fusion_rule(args.cam_fusion, args.arch_name)
        self.records, self.panels, self.example_cams = [], {}, {}

    def run(self, label_file, image_root, number_of_val=None, number_of_examples=0, desc="evaluate"):
        args = self.args
        dataflow = get_eval_dataflow(label_file, image_root, args.final_size, args.batch_size,
                                     workers=args.workers, number_of_val=number_of_val,
                                     num_classes=args.number_of_class)
        evaluator = WSOLEvaluator(args.cam_threshold, sweep_thresholds(args.number_of_cam_curve_interval))
        part_analyzer = PartAnalyzer()
        crop = (args.final_size, args.final_size)
        dataflow.reset_state()
        with get_tqdm(total=len(dataflow.entries), desc=desc) as progress:
            for images, labels, _, indices in dataflow:
                top5, *head_outputs = self.predictor(images)
                features, weights = head_outputs[:self.num_heads], head_outputs[self.num_heads:]
                cams = fuse_heads(features, weights, labels, self.rule)
                for i, index in enumerate(indices):
                    cam = resize_cam(cams[i], crop)
                    gt_boxes = dataflow.gt_boxes_in_crop(index)
                    record = evaluator.add(cam, gt_boxes, int(labels[i]), top5[i],
                                           mask=self._mask(dataflow, index))
                    record["image"] = dataflow.entries[index].path
                    self.records.append(record)
                    part_mask = self._stored_mask(self.parts, dataflow, index)
                    if part_mask is not None:
                        part_analyzer.add(normalize_cam(cam), part_mask)
                    if self.save_cams:
                        save_cam(self.save_cams, record["image"], cam)
                        self.saved_cams.append(LabelEntry(record["image"], record["label"], gt_boxes))
                    if len(self.panels) < number_of_examples:
                        name = f"{len(self.panels):03d}_{os.path.splitext(os.path.basename(record['image']))[0]}"
                        self.panels[name] = readable_example(
                            images[i], cam, gt_boxes, record["box"], class_name(self.class_names, record["label"]),
                            class_name(self.class_names, record["top5"][0]), record["iou"], args.cam_threshold)
                        self.example_cams[name] = (images[i], cam, gt_boxes, np.array(record["box"]))
                progress.update(len(indices))
        try:
            self.metrics = evaluator.compute()
        except NoForegroundError as error:
            raise MaskError(f"{self.masks.mask_dir}: {error} for the images of {label_file}") from None
        self.metrics["bad_images"] = [list(item) for item in dataflow.bad_images]
        self.metrics["boxes_outside_image"] = dataflow.boxes_outside_image.summary()
        if part_analyzer.num_images:
            self.metrics["parts"] = part_analyzer.compute({"cam_threshold": args.cam_threshold,
                                                           "best": self.metrics["sweep"]["best_threshold"]})
        if self.save_cams:
            write_label_list(os.path.join(self.save_cams, SAVED_CAMS_LABELS), self.saved_cams)
            logger.info(f"{len(self.saved_cams)} CAMs written to {self.save_cams}; score them with: python -m "
                        f"utils.evaluation.scorer --cam_dir {self.save_cams} --label_file "
                        f"{os.path.join(self.save_cams, SAVED_CAMS_LABELS)} --cam_threshold {args.cam_threshold}")
        if self.masks is not None:
            self.metrics["mask_dir"] = self.masks.mask_dir
            if "pixel" not in self.metrics:
                logger.warning(f"No mask in {self.masks.mask_dir} for any image of {label_file}: PxAP not computed")
        return self.metrics

    def _mask(self, dataflow, index):
        stored = self._stored_mask(self.masks, dataflow, index)
        return None if stored is None else object_pixels(stored)

    def _stored_mask(self, folder, dataflow, index):
        """The mask of list entry ``index`` from ``folder`` in the crop frame (or None)."""
        if folder is None:
            return None
        return folder.eval_mask(dataflow.entries[index].path, dataflow.image_sizes[index], self.args.final_size)


def evaluate(args):
    """Evaluate a resolved configuration's checkpoint; returns the metrics dict."""
    checkpoint = checkpoint_to_evaluate(args)
    verify_checkpoint(checkpoint)
    logger.info(f"Evaluating {checkpoint}")
    predictor, num_heads = make_predictor(args, checkpoint)
    label_file, image_root = dataset_paths(args.dataset_name, args.data_dir, args.label_dir, split="val")
    masks = mask_folder(args)
    held_out, split_name = None, None
    if args.tau_split:
        split_name, tau_file = tau_split_list(args)
        held_out = EvaluationPass(predictor, num_heads, args, masks).run(tau_file, image_root, desc="held-out τ")
    class_names_file = os.path.join(os.path.dirname(label_file), "words.txt")
    class_names = read_class_names(class_names_file) if os.path.isfile(class_names_file) else None
    evaluation = EvaluationPass(predictor, num_heads, args, masks, class_names, args.save_cams, part_folder(args))
    metrics = evaluation.run(label_file, image_root, args.number_of_val, args.number_of_examples)
    metrics["checkpoint"] = checkpoint
    metrics["precision"] = precision.record(args.precision, precision.on_gpu())
    metrics["tau_chosen_on"] = split_name if held_out else "the evaluation list (best τ searched on it)"
    if held_out:
        metrics["held_out_tau"] = {"label_file": tau_file, "bad_images": held_out["bad_images"],
                                   **held_out_selection(held_out, metrics, split_name)}
    result_dir = new_result_dir(args.log_dir, checkpoint)
    paths = write_report(result_dir, metrics, config_dict(args), evaluation.records, class_names)
    save_examples(os.path.join(result_dir, "examples"), evaluation.panels)
    save_example_arrays(os.path.join(result_dir, "examples", "cams.npz"), evaluation.example_cams)
    with open(paths["metrics.md"]) as f:
        print(f.read())
    mark_latest(result_dir)
    print(f"Results written to {result_dir} (result/latest points to it)", flush=True)
    return metrics


def class_name(class_names, index):
    """``"<index> <name>"`` (or the index alone without class names)."""
    return f"{index} {class_names[index]}" if class_names and 0 <= index < len(class_names) else str(index)


def save_cam(cam_dir, image, cam):
    """``cam_dir/<image without extension>.npy`` (the standalone scorer's layout)."""
    path = os.path.join(cam_dir, cam_file_name(image))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, np.asarray(cam, np.float32))


def save_example_arrays(path, example_cams):
    """The example images, CAMs and boxes as arrays (for comparison figures across runs)."""
    names = sorted(example_cams)
    if not names:
        return
    np.savez_compressed(path, names=np.array(names),
                        images=np.stack([example_cams[n][0] for n in names]),
                        cams=np.stack([example_cams[n][1] for n in names]),
                        pred_boxes=np.stack([example_cams[n][3] for n in names]),
                        gt_boxes=np.array([example_cams[n][2][0] for n in names]))
