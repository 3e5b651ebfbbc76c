"""The tensorpack ``ModelDesc`` of every method: inputs, preprocessing, backbone with
MAE / ADL at the chosen positions, the localization heads, loss, exported tensors
for evaluation, and the optimizer of the released recipe.

Exported tensors (names usable by ``OfflinePredictor``):
``logits`` (sum of the heads; ACoL: branch A's; FSL: zeros), ``logits_<head>``, ``features_<head>`` (NHWC),
``fc_weights_<head>`` ([C, K]), ``top5`` (indices, best first), ``wrong-top1``,
``wrong-top5``; the heads are listed by ``WSOLModel.head_names``.
"""
from utils.compat import tf  # first: TensorFlow set-up
from tensorpack import AvgPooling, BatchNorm, Conv2D, GlobalAvgPooling, MaxPooling, ModelDesc
from tensorpack.models import regularize_cost
from tensorpack.tfutils import gradproc, optimizer
from tensorpack.tfutils.argscope import argscope
from tensorpack.tfutils.summary import add_moving_summary
from tensorpack.tfutils.tower import get_current_tower_context

from models import acol, cutmix, fsl, has, resnet, spg, vgg
from models.adl import attention_based_dropout
from models.layers import to_nhwc
from models.mae import maxout_attention_excitation
from models.method import CAM_PATH
from models.ose import resnet_heads, vgg_heads
from models.spec import PRETRAINED_REGEXES

# ImageNet statistics in BGR order (images enter as BGR uint8, as released).
IMAGE_MEAN_BGR = (0.406, 0.456, 0.485)
IMAGE_STD_BGR = (0.225, 0.224, 0.229)

# The wsolevaluation baselines: each a module whose METHOD overrides CAM's hooks (models/method.py).
BASELINES = {module.METHOD.name: module.METHOD for module in (has, cutmix, acol, spg, fsl)}

BACKBONES = {
    "vgg_gap": (vgg.vgg16_gap, vgg.insertion_points, vgg_heads),
    "resnet": (resnet.resnet50_se, resnet.insertion_points, resnet_heads),
}


def preprocess(image_bgr_uint8):
    """uint8 BGR -> float, /255, ImageNet mean/std (BGR order)."""
    x = tf.cast(image_bgr_uint8, tf.float32) / 255.0
    return (x - tf.constant(IMAGE_MEAN_BGR)) / tf.constant(IMAGE_STD_BGR)


class WSOLModel(ModelDesc):
    """One graph for CAM, ADL, MAE, OSE, E2Net and the baselines HaS, CutMix, ACoL, SPG and FSL
    on VGG16-GAP or ResNet50-SE."""

    def __init__(self, spec):
        self.spec = spec.validate()
        self.method = BASELINES.get(spec.method, CAM_PATH)
        self._backbone, points, self._heads = BACKBONES[spec.arch]
        unknown = [p for p in spec.positions if p not in points()]
        if unknown:
            raise ValueError(f"{spec.arch} has no insertion position {unknown}; valid: {' '.join(points())}")
        self._taps = {}

    @property
    def head_names(self):
        return self.method.head_names(self.spec)

    def inputs(self):
        size = self.spec.image_size
        return [tf.TensorSpec([None, size, size, 3], tf.uint8, "input"),
                tf.TensorSpec([None], tf.int32, "label"),
                tf.TensorSpec([None, 2, 2], tf.float32, "bbox")] + self.method.extra_inputs(self.spec)

    def _at_position(self, position, x):
        spec = self.spec
        if position in self.method.taps.get(spec.arch, ()):
            self._taps[position] = x
        if position not in spec.positions:
            return x
        if spec.uses_mae:
            return maxout_attention_excitation(f"aware_{position}", x, spec.mae_threshold, spec.mae_mask)
        if spec.uses_adl:
            return attention_based_dropout(f"adl_{position}", x, spec.adl_threshold, spec.adl_keep_prob)
        return x

    def default_heads(self, features):
        """The backbone's own heads (the 3x3 head, or OSE's)."""
        return self._heads(features, self.spec)

    def build_heads(self, image, label=None, state=None):
        """Forward pass from uint8 images to {head: (features, logits, fc_weights)}; ``label``
        and ``state`` (the method hooks' dict) in training."""
        state = {} if state is None else state
        ctx = get_current_tower_context()
        x = self.method.transform_input(preprocess(image), label, self.spec, state)
        fmt = self.spec.data_format
        if fmt == "NCHW":
            x = tf.transpose(x, [0, 3, 1, 2])
        with argscope([Conv2D, MaxPooling, AvgPooling, GlobalAvgPooling, BatchNorm], data_format=fmt):
            self._taps = {}
            features = self._backbone(x, self.spec, self._at_position)
            heads = self.method.heads(self, features, self._taps, label, bool(ctx and ctx.is_training), state)
            for name, (head_features, head_logits, weights) in heads.items():
                tf.identity(to_nhwc(head_features), name=f"features_{name}")
                tf.identity(head_logits, name=f"logits_{name}")
                tf.identity(weights, name=f"fc_weights_{name}")
        return heads

    def build_graph(self, image, label, bbox, *extra):
        state = {}
        heads = self.build_heads(image, label, state)
        logits = tf.identity(self.method.classification_logits(heads), name="logits")
        tf.identity(tf.nn.top_k(logits, k=min(5, self.spec.num_classes)).indices, name="top5")
        wrong1 = tf.cast(tf.logical_not(tf.nn.in_top_k(logits, label, 1)), tf.float32, name="wrong-top1")
        wrong5 = tf.cast(tf.logical_not(tf.nn.in_top_k(logits, label, 5)), tf.float32, name="wrong-top5")

        extra = {spec.name: tensor for spec, tensor in zip(self.method.extra_inputs(self.spec), extra)}
        xentropy = self.method.xentropy(self.spec, heads, logits, label, extra, state)
        weight_decay = self.spec.weight_decay
        wd_cost = regularize_cost(".*/W", lambda w: weight_decay * tf.nn.l2_loss(w), name="wd_cost")
        cost = tf.add(xentropy, wd_cost, name="cost")
        add_moving_summary(xentropy, wd_cost, cost,
                           tf.reduce_mean(wrong1, name="train-error-top1"),
                           tf.reduce_mean(wrong5, name="train-error-top5"))
        return cost

    def optimizer(self):
        lr = tf.get_variable("learning_rate", initializer=self.spec.base_lr, trainable=False)
        tf.summary.scalar("learning_rate-summary", lr)
        opt = tf.train.MomentumOptimizer(lr, 0.9, use_nesterov=True)
        processors = self.gradient_processors()
        return optimizer.apply_grad_processors(opt, processors) if processors else opt

    def gradient_processors(self):
        """The released gradient rule (x pretrained_grad_scale on PRETRAINED_REGEXES), then clipping."""
        processors = []
        if self.spec.pretrained_grad_scale != 1.0:
            multipliers = [(regex, self.spec.pretrained_grad_scale) for regex in PRETRAINED_REGEXES[self.spec.arch]]
            processors.append(gradproc.ScaleGradient(multipliers, verbose=False))
        if self.spec.gradient_clip_norm:
            processors.append(gradproc.GlobalNormClip(self.spec.gradient_clip_norm))
        return processors
