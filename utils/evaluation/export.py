"""Export a trained run as a TensorFlow SavedModel that plain TensorFlow (or TF Serving) loads.

    python -m utils.evaluation.export (--log_dir RUN | --load CKPT) --out DIR

The graph is the run's own (``WSOLModel.build_heads`` in an inference
``TowerContext``, model configuration from the run's ``config.json``), always NHWC so it
runs on any CPU and GPU, with the CAM fusion of the run's ``--cam_fusion`` rule written
in TensorFlow ops (``fused_cam``, equal to ``utils.evaluation.cam.fuse_heads``).  It lives
next to ``predict`` and ``cam`` because it serves the same outputs as the predictor.

Signatures (input ``image``: uint8 ``[N, S, S, 3]`` **RGB**, ``S`` the run's input size;
resize or crop images to ``S`` first, as ``predict.py`` does):

``serving_default``  -> ``logits [N, K]``, ``probabilities [N, K]`` (softmax),
                        ``top5_classes [N, 5]`` int32, ``top5_scores [N, 5]``,
                        ``top5_names [N, 5]`` string, ``cam [N, h, w]`` (the fused CAM of
                        the top-1 class at the feature resolution; no ReLU, not normalised);
``cam_of_class``     (inputs ``image`` and ``class_index [N]`` int32) -> ``cam``, ``logits``.

``DIR/assets.extra/class_names.txt`` holds the class names (one a line, index order) and
``DIR/assets.extra/export.json`` the run's configuration, the checkpoint and the fusion rule.

Precision: the SavedModel's variables and graph are float32 whatever ``--precision`` the run
trained with (``utils.training.precision``: the bf16 / fp16 rewrites are session options, not
part of a graph), so the exported graph computes in float32 unless the process serving it
turns a rewrite on in its own session config; export.json says so (``computes_in``).
"""
from utils import compat  # noqa: F401  (first: TensorFlow set-up)
import argparse
import os
import sys

from tensorpack.tfutils.tower import TowerContext

from models.layers import class_maps, minmax_normalise, to_nhwc
from models.wsol_model import WSOLModel
from utils.atomic import atomic_folder, write_json, write_text
from utils.compat import tf
from utils.config import config_dict, model_spec, resolve_log_dir, run_config
from utils.errors import UserError, exit_on_user_error
from utils.evaluation.cam import fusion_rule
from utils.evaluation.predict import class_names_of
from utils.training.checkpoints import checkpoint_to_evaluate
from utils.training.pretrained import CheckpointInit

TOP_K = 5
EXTRA_DIR = "assets.extra"


class ExportError(UserError, ValueError):
    """An export that cannot be written (one line naming the folder or rule)."""


def fused_cam(head_features, head_weights, classes, rule):
    """TensorFlow twin of ``utils.evaluation.cam.fuse_heads`` for a batch (NHWC features)."""
    if len(head_features) == 1:
        return class_maps(head_features[0], head_weights[0], classes)
    if rule == "mean_weights_max_maps":
        return class_maps(tf.reduce_max(tf.stack(head_features), axis=0),
                          tf.reduce_mean(tf.stack(head_weights), axis=0), classes)
    if rule == "mean_weights_first_max":   # released ResNet rule (main, issue 16): max(mean(W)·F_3x3, W_1x3·F_1x3, ...)
        head_weights = [tf.reduce_mean(tf.stack(head_weights), axis=0)] + list(head_weights[1:])
        rule = "max"
    cams = tf.stack([class_maps(f, w, classes) for f, w in zip(head_features, head_weights)])
    if rule == "max":
        return tf.reduce_max(cams, axis=0)
    if rule == "mean":
        return tf.reduce_mean(cams, axis=0)
    if rule == "max_normalised":
        return tf.reduce_max(tf.stack([minmax_normalise(cam) for cam in tf.unstack(cams)]), axis=0)
    raise ExportError(f"CAM fusion rule {rule!r} has no TensorFlow version in utils/evaluation/export.py")


def build_serving_graph(args, class_names):
    """Placeholders and outputs of the serving graph (in the default graph)."""
    spec = model_spec(args).with_(data_format="NHWC")
    model = WSOLModel(spec)
    size = spec.image_size
    image = tf.placeholder(tf.uint8, [None, size, size, 3], name="image")
    class_index = tf.placeholder(tf.int32, [None], name="class_index")
    with TowerContext("", is_training=False):
        heads = model.build_heads(tf.reverse(image, axis=[-1]))              # RGB in, BGR into the net
    features = [to_nhwc(f) for f, _, _ in heads.values()]
    weights = [w for _, _, w in heads.values()]
    logits = model.classification_logits(heads)
    probabilities = tf.nn.softmax(logits)
    top = tf.nn.top_k(probabilities, k=min(TOP_K, spec.num_classes))
    names = tf.constant(class_names or [str(i) for i in range(spec.num_classes)])
    rule = fusion_rule(args.cam_fusion, args.arch_name)
    outputs = {"logits": logits, "probabilities": probabilities, "top5_classes": top.indices,
               "top5_scores": top.values, "top5_names": tf.gather(names, top.indices),
               "cam": fused_cam(features, weights, top.indices[:, 0], rule)}
    return image, class_index, outputs, {"cam": fused_cam(features, weights, class_index, rule), "logits": logits}


def export(args, out_dir):
    """Write the SavedModel of the run configuration ``args`` to ``out_dir``; returns the checkpoint.
    The folder is built under a temporary name and renamed when complete: a failed export
    leaves nothing."""
    if os.path.lexists(out_dir):
        raise ExportError(f"{out_dir} exists; give a new folder (a SavedModel is never written over another)")
    checkpoint = checkpoint_to_evaluate(args)
    class_names = class_names_of(args)
    try:
        with atomic_folder(out_dir) as folder:
            _write_saved_model(args, folder, checkpoint, class_names)
    except tf.errors.OpError as error:   # TensorFlow's own writes (full disk, ...)
        raise ExportError(f"cannot write the SavedModel {out_dir}: {error.message.splitlines()[0]}") from None
    return checkpoint


def _write_saved_model(args, out_dir, checkpoint, class_names):
    signature = tf.saved_model.signature_def_utils.predict_signature_def
    with tf.Graph().as_default():
        image, class_index, outputs, class_outputs = build_serving_graph(args, class_names)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            CheckpointInit(checkpoint).init(sess)
            builder = tf.saved_model.builder.SavedModelBuilder(out_dir)
            builder.add_meta_graph_and_variables(
                sess, [tf.saved_model.tag_constants.SERVING], strip_default_attrs=True,
                signature_def_map={
                    "serving_default": signature({"image": image}, outputs),
                    "cam_of_class": signature({"image": image, "class_index": class_index}, class_outputs)})
            builder.save()
    extra = os.path.join(out_dir, EXTRA_DIR)
    write_text(os.path.join(extra, "class_names.txt"),
               "".join(f"{name}\n" for name in class_names or [str(i) for i in range(args.number_of_class)]))
    write_json(os.path.join(extra, "export.json"),
               {"checkpoint": checkpoint, "input": f"uint8 RGB [N, {args.final_size}, {args.final_size}, 3]",
                "computes_in": "float32 (variables and graph; the run's --precision is not exported)",
                "cam_fusion": fusion_rule(args.cam_fusion, args.arch_name),
                 "config": config_dict(args)},
               indent=2, default=str)


def main(argv=None):
    """The command line; a wrong input: one ``export: error: ...`` line on stderr, exit 2."""
    return exit_on_user_error("export", _main, argv)


def _main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m utils.evaluation.export",
                                     description="Export a trained run as a TensorFlow SavedModel.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--log_dir", help="run folder (its min-val-error-top1, else newest checkpoint); a bare "
                        "name goes under train_log/, as in train.py")
    source.add_argument("--load", help="a checkpoint inside a run folder")
    parser.add_argument("--out", required=True, help="new folder for the SavedModel")
    args = parser.parse_args(argv)
    run = run_config(args.load or resolve_log_dir(args.log_dir))
    checkpoint = export(run, args.out)
    print(f"exported {checkpoint} -> {args.out} (signatures serving_default, cam_of_class)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
