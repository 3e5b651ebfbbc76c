"""``train.py --evaluate``: one pass of a checkpoint over the val list, then every metric.

``evaluate(args)`` reads the run configuration once, at the top: ``evaluation_inputs(args)``
resolves the label list, image root, object masks, part masks, held-out τ list and class
names into one ``EvaluationInputs`` record.  Then ``cam_stream`` runs the network once per
image; from its outputs (top-5, per-head feature maps and FC weights) the GT-class CAM of each
head is computed without gradients, the heads are fused and the CAM is resized to the crop.
Each image's CAM goes through the consumers of ``utils.evaluation.consumers`` (numpy only):
the scores (``WSOLEvaluator``: every threshold of both box protocols at once, and PxAP against
the object mask mapped into the crop when a mask folder exists), the part analysis, the CAM
writer and the example panels.  With ``--tau_split`` a first pass over that held-out list
chooses the thresholds (``utils.evaluation.held_out``) that are then applied to the
evaluation list.

The checkpoint (``checkpoint_to_evaluate``) is verified first.  Results land in a new folder
``<log_dir>/result/<NNN>-<checkpoint name>/`` (metrics.json, metrics.md,
threshold_curve.png, predictions.tsv, examples/); ``result/latest`` points to the newest
(``utils.evaluation.results``).  ``--save_cams DIR`` also writes every scored CAM of the
evaluation list as ``DIR/<image path without extension>.npy`` (float32, crop frame) and
the GT boxes in that frame as ``DIR/labels.txt``: the input of ``python -m utils.evaluation.scorer``.
"""
from utils import compat  # noqa: F401  (first: TensorFlow set-up)
import os
from dataclasses import dataclass

from tensorpack import OfflinePredictor, PredictConfig
from tensorpack.utils import logger
from tensorpack.utils.utils import get_tqdm

from models.wsol_model import WSOLModel
from models.methods.registry import method
from utils.config import config_dict, model_spec
from utils.data.dataflow import get_eval_dataflow
from utils.data.labels import read_class_names
from utils.data.masks import MaskFolder, default_mask_dir, part_mask_dir
from utils.data.paths import run_class_names_file, split_paths
from utils.evaluation.cam import fuse_heads, fusion_rule
from utils.evaluation.consumers import (CamWriter, ExamplePanels, ImageCam, PartAnalysis, Scores, run_consumers,
                                        sweep_thresholds)
from utils.evaluation.held_out import held_out_selection
from utils.evaluation.localization import resize_cam
from utils.evaluation.report import MARKDOWN_FILE, write_report
from utils.evaluation.results import building, mark_latest, new_result_dir
from utils.training import precision
from utils.training.checkpoints import checkpoint_to_evaluate, verify_checkpoint
from utils.training.pretrained import CheckpointInit


@dataclass(frozen=True)
class EvaluationInputs:
    """What an evaluation reads besides the checkpoint, resolved once from the configuration:
    the evaluated list and its image root, the object masks (``MaskFolder`` or None: no PxAP),
    the part masks (or None), the held-out τ list ``(name, label file)`` (or None) and the
    class names (or None)."""
    label_file: str
    image_root: str
    masks: object
    parts: object
    tau_split: tuple
    class_names: list


def evaluation_inputs(args):
    """``EvaluationInputs`` of a resolved configuration (``--mask_dir``, else
    ``<data_dir>/<NAME>/masks`` when it exists; ``<data_dir>/<NAME>/parts`` when it exists;
    ``--tau_split`` as a path, else as a split name resolved like ``val``; the run's class names,
    ``run_class_names_file``)."""
    label_file, image_root = split_paths(args, args.val_split)
    default_masks = default_mask_dir(args.data_dir, args.dataset_name)
    if args.mask_dir or os.path.isdir(default_masks):
        masks = MaskFolder(args.mask_dir or default_masks)
    else:
        masks = None
        logger.info(f"No mask folder {default_masks}: PxAP not computed (give one with --mask_dir)")
    parts_dir = part_mask_dir(args.data_dir, args.dataset_name)
    tau_split = None
    if args.tau_split:
        tau_file = args.tau_split if os.path.exists(args.tau_split) else split_paths(args, args.tau_split)[0]
        tau_split = (args.tau_split, tau_file)
    names_file = run_class_names_file(args)
    return EvaluationInputs(label_file, image_root, masks, MaskFolder(parts_dir) if os.path.isdir(parts_dir) else None,
                            tau_split, read_class_names(names_file) if names_file else None)


def make_predictor(args, checkpoint, extra_outputs=()):
    """``(OfflinePredictor, number of heads)``; the predictor maps uint8 BGR crops to
    ``top5, features_<head>..., fc_weights_<head>..., *extra_outputs``."""
    model = WSOLModel(model_spec(args))
    heads = model.head_names
    outputs = ["top5"] + [f"features_{h}" for h in heads] + [f"fc_weights_{h}" for h in heads] + list(extra_outputs)
    config = PredictConfig(model=model, session_init=CheckpointInit(checkpoint),
                           session_creator=precision.session_creator(args.precision, precision.running_on_gpu()),
                           input_names=["input"], output_names=outputs)
    return OfflinePredictor(config), len(heads)


class CamStream:
    """The ``ImageCam`` of every image of ``label_file``: the evaluation dataflow (crops, GT
    boxes in the crop frame), the network and the fusion of its heads' GT-class CAMs (``rule``).
    After the iteration ``data_report()`` holds the dataflow's counts (bad images, boxes
    outside their image)."""

    def __init__(self, predictor, num_heads, rule, label_file, image_root, final_size, batch_size, workers,
                 num_classes, number_of_val=None, desc="evaluate"):
        self.predictor, self.num_heads, self.rule, self.desc = predictor, num_heads, rule, desc
        self.crop = (final_size, final_size)
        self.dataflow = get_eval_dataflow(label_file, image_root, final_size, batch_size, workers=workers,
                                          number_of_val=number_of_val, num_classes=num_classes)

    def __iter__(self):
        dataflow = self.dataflow
        dataflow.reset_state()
        with get_tqdm(total=len(dataflow.entries), desc=self.desc) as progress:
            for images, labels, _, indices in dataflow:
                top5, *head_outputs = self.predictor(images)
                features, weights = head_outputs[:self.num_heads], head_outputs[self.num_heads:]
                cams = fuse_heads(features, weights, labels, self.rule)
                for i, index in enumerate(indices):
                    yield ImageCam(dataflow.entries[index].path, images[i], resize_cam(cams[i], self.crop),
                                   dataflow.gt_boxes_in_crop(index), int(labels[i]), top5[i],
                                   dataflow.image_sizes[index])
                progress.update(len(indices))

    def data_report(self):
        return {"bad_images": [list(item) for item in self.dataflow.bad_images],
                "boxes_outside_image": self.dataflow.boxes_outside_image.summary()}


def evaluation_pass(args, predictor, num_heads, label_file, image_root, masks, consumers=(), number_of_val=None,
                    desc="evaluate"):
    """``(metrics, scores)`` of one pass over ``label_file`` through ``consumers``."""
    stream = CamStream(predictor, num_heads, fusion_rule(args.cam_fusion, args.arch_name), label_file, image_root,
                       args.final_size, args.batch_size, args.workers, args.number_of_class, number_of_val, desc)
    scores = Scores(args.cam_threshold, sweep_thresholds(args.number_of_cam_curve_interval), masks,
                    args.final_size, label_file, classifies=method(args.method_name).classifies)
    metrics = run_consumers(stream, scores, consumers)
    metrics.update(stream.data_report())
    if masks is not None and "pixel" not in metrics:
        logger.warning(f"No mask in {masks.mask_dir} for any image of {label_file}: PxAP not computed")
    return metrics, scores


def evaluate(args):
    """Evaluate a resolved configuration's checkpoint; returns the metrics dict."""
    checkpoint = checkpoint_to_evaluate(args)
    verify_checkpoint(checkpoint)
    inputs = evaluation_inputs(args)
    logger.info(f"Evaluating {checkpoint}")
    predictor, num_heads = make_predictor(args, checkpoint)
    held_out = None
    if inputs.tau_split:
        held_out, _ = evaluation_pass(args, predictor, num_heads, inputs.tau_split[1], inputs.image_root,
                                      inputs.masks, desc="held-out τ")
    panels = ExamplePanels(args.number_of_examples, inputs.class_names, args.cam_threshold)
    consumers = [PartAnalysis(inputs.parts, args.final_size, args.cam_threshold)] if inputs.parts else []
    cam_writer = CamWriter(args.save_cams, args.final_size) if args.save_cams else None
    consumers += [cam_writer] if cam_writer else []
    metrics, scores = evaluation_pass(args, predictor, num_heads, inputs.label_file, inputs.image_root, inputs.masks,
                                      consumers + [panels], args.number_of_val)
    if cam_writer:
        logger.info(f"{len(cam_writer.entries)} CAMs written to {args.save_cams}; score them with: python -m "
                    f"utils.evaluation.scorer --cam_dir {args.save_cams} --label_file {cam_writer.labels_file} "
                    f"--cam_threshold {args.cam_threshold}")
    metrics["checkpoint"] = checkpoint
    metrics["precision"] = precision.record(args.precision, precision.running_on_gpu())
    metrics["tau_chosen_on"] = inputs.tau_split[0] if held_out else "the evaluation list (best τ searched on it)"
    if held_out:
        metrics["held_out_tau"] = {"label_file": inputs.tau_split[1], "bad_images": held_out["bad_images"],
                                   **held_out_selection(held_out, metrics, inputs.tau_split[0])}
    result_dir = new_result_dir(args.log_dir, checkpoint)
    with building(result_dir) as folder:
        write_report(folder, metrics, config_dict(args), scores.records, inputs.class_names)
        panels.save(os.path.join(folder, "examples"))
    with open(os.path.join(result_dir, MARKDOWN_FILE)) as f:
        print(f.read())
    mark_latest(result_dir)
    print(f"Results written to {result_dir} (result/latest points to it)", flush=True)
    return metrics
