"""``train.py --evaluate``: one pass of a checkpoint over the val list, then every metric.

The network runs once per image; from its outputs (top-5, per-head feature maps and
FC weights) the GT-class CAM of each head is computed without gradients, the heads
are fused, the CAM is resized to the crop and handed to ``WSOLEvaluator``, which
scores every threshold of both box protocols at once.  Results land in
``<log_dir>/result/`` (metrics.json, metrics.md, threshold_curve.png,
predictions.tsv, examples/).
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
from utils.data.dataflow import dataset_paths, get_eval_dataflow
from utils.evaluation.metrics import WSOLEvaluator
from utils.data.labels import read_class_names
from utils.evaluation.localization import resize_cam
from utils.training.pretrained import CheckpointInit, PretrainedWeightsError
from utils.evaluation.report import write_report
from utils.evaluation.visualization import example_panel, save_examples

BEST_CHECKPOINT = "min-val-error-top1"


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


def make_predictor(args, checkpoint):
    model = WSOLModel(model_spec(args))
    heads = model.head_names
    outputs = ["top5"] + [f"features_{h}" for h in heads] + [f"fc_weights_{h}" for h in heads]
    config = PredictConfig(model=model, session_init=CheckpointInit(checkpoint),
                           input_names=["input"], output_names=outputs)
    return OfflinePredictor(config), len(heads)


def sweep_thresholds(intervals):
    return np.round(np.arange(intervals) / float(intervals), 6)


def evaluate(args):
    """Evaluate a resolved configuration's checkpoint; returns the metrics dict."""
    checkpoint = checkpoint_to_evaluate(args)
    logger.info(f"Evaluating {checkpoint}")
    predictor, num_heads = make_predictor(args, checkpoint)
    label_file, image_root = dataset_paths(args.dataset_name, args.data_dir, args.label_dir, split="val")
    dataflow = get_eval_dataflow(label_file, image_root, args.final_size, args.batch_size,
                                 workers=args.workers, number_of_val=args.number_of_val,
                                 num_classes=args.number_of_class)
    rule = fusion_rule(args.cam_fusion, args.arch_name)
    evaluator = WSOLEvaluator(args.cam_threshold, sweep_thresholds(args.number_of_cam_curve_interval))
    records, panels, example_cams = [], {}, {}
    crop = (args.final_size, args.final_size)
    dataflow.reset_state()
    with get_tqdm(total=len(dataflow.entries), desc="evaluate") as progress:
        for images, labels, _, indices in dataflow:
            top5, *head_outputs = predictor(images)
            features, weights = head_outputs[:num_heads], head_outputs[num_heads:]
            cams = fuse_heads(features, weights, labels, rule)
            for i, index in enumerate(indices):
                cam = resize_cam(cams[i], crop)
                gt_boxes = dataflow.gt_boxes_in_crop(index)
                record = evaluator.add(cam, gt_boxes, int(labels[i]), top5[i])
                record["image"] = dataflow.entries[index].path
                records.append(record)
                if len(panels) < args.number_of_examples:
                    name = f"{len(panels):03d}_{os.path.splitext(os.path.basename(record['image']))[0]}"
                    panels[name] = example_panel(images[i], {"CAM": cam}, gt_boxes, {"pred": record["box"]})
                    example_cams[name] = (images[i], cam, gt_boxes, np.array(record["box"]))
            progress.update(len(indices))
    metrics = evaluator.compute()
    metrics["checkpoint"] = checkpoint
    metrics["bad_images"] = [list(item) for item in dataflow.bad_images]
    metrics["boxes_outside_image"] = dataflow.boxes_outside_image.summary()
    result_dir = os.path.join(args.log_dir, "result")
    class_names_file = os.path.join(os.path.dirname(label_file), "words.txt")
    class_names = read_class_names(class_names_file) if os.path.isfile(class_names_file) else None
    paths = write_report(result_dir, metrics, config_dict(args), records, class_names)
    save_examples(os.path.join(result_dir, "examples"), panels)
    save_example_arrays(os.path.join(result_dir, "examples", "cams.npz"), example_cams)
    with open(paths["metrics.md"]) as f:
        print(f.read())
    logger.info(f"Results written to {result_dir}")
    return metrics


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
