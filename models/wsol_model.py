"""The tensorpack ``ModelDesc`` of every method: inputs, preprocessing, backbone with the
method's op (MAE, ADL) at the chosen positions, the localization heads, loss, exported
tensors for evaluation, and the optimizer of the released recipe.  What a method adds (input
transform, op, heads, losses) comes from its record in ``models/methods/registry.py``; this
file has no per-method branch.

Exported tensors (names usable by ``OfflinePredictor``):
``logits`` (sum of the heads, or the method's ``logits``), ``logits_<head>``, ``features_<head>`` (NHWC),
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

from models import resnet, vgg
from models.layers import IMAGE_MEAN_BGR, IMAGE_STD_BGR, to_nhwc
from models.methods.base import Forward
from models.methods.registry import method
from models.ose import resnet_heads, vgg_heads
from models.spec import PRETRAINED_REGEXES

BACKBONES = {
    "vgg_gap": (vgg.vgg16_gap, vgg.insertion_points, vgg_heads),
    "resnet": (resnet.resnet50_se, resnet.insertion_points, resnet_heads),
}


def preprocess(image_bgr_uint8):
    """uint8 BGR -> float, /255, ImageNet mean/std (BGR order)."""
    x = tf.cast(image_bgr_uint8, tf.float32) / 255.0
    return (x - tf.constant(IMAGE_MEAN_BGR)) / tf.constant(IMAGE_STD_BGR)


def cross_entropy(logits, label, targets=None):
    """Mean softmax cross-entropy; with ``targets`` (a method's input transform: pairs of labels
    and per-example weights summing to 1) the weighted sum over the pairs."""
    if targets is None:
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=label, logits=logits),
                              name="xentropy")
    terms = [tf.reduce_mean(weights * tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
             for labels, weights in targets]
    return tf.add_n(terms, name="xentropy")


class WSOLModel(ModelDesc):
    """One graph for every registered method on VGG16-GAP or ResNet50-SE."""

    def __init__(self, spec):
        self.spec = spec.validate()
        self.method = method(spec.method)
        self._backbone, points, self._heads = BACKBONES[spec.arch]
        unknown = [p for p in spec.positions if p not in points()]
        if unknown:
            raise ValueError(f"{spec.arch} has no insertion position {unknown}; valid: {' '.join(points())}")
        self._taps = {}

    @property
    def head_names(self):
        if self.method.head_names is not None:
            return tuple(self.method.head_names(self.spec))
        return tuple(self.spec.ose_heads)

    def inputs(self):
        size = self.spec.image_size
        return [tf.TensorSpec([None, size, size, 3], tf.uint8, "input"),
                tf.TensorSpec([None], tf.int32, "label"),
                tf.TensorSpec([None, 2, 2], tf.float32, "bbox")] + self.extra_inputs()

    def extra_inputs(self):
        """Inputs beyond image, label and bbox: a fully supervised method's object ``mask``."""
        size = self.spec.image_size
        return [tf.TensorSpec([None, size, size], tf.float32, "mask")] if self.method.fully_supervised else []

    def _at_position(self, position, x):
        if position in (self.method.taps or {}).get(self.spec.arch, ()):
            self._taps[position] = x
        if position not in self.spec.positions or self.method.position_op is None:
            return x
        return self.method.position_op(self.spec, position, x)

    def build_heads(self, image, forward=None):
        """Forward pass from uint8 images to {head: (features, logits, fc_weights)}; ``forward``
        (``models.methods.base.Forward``) carries the label, extra inputs and taps in training."""
        forward = Forward() if forward is None else forward
        x = preprocess(image)
        fmt = self.spec.data_format
        if fmt == "NCHW":
            x = tf.transpose(x, [0, 3, 1, 2])
        with argscope([Conv2D, MaxPooling, AvgPooling, GlobalAvgPooling, BatchNorm], data_format=fmt):
            self._taps = forward.taps
            features = self._backbone(x, self.spec, self._at_position)
            if self.method.heads is not None:
                heads = self.method.heads(self.spec, features, self._heads, forward)
            else:
                heads = self._heads(features, self.spec)
            for name, (head_features, head_logits, weights) in heads.items():
                tf.identity(to_nhwc(head_features), name=f"features_{name}")
                tf.identity(head_logits, name=f"logits_{name}")
                tf.identity(weights, name=f"fc_weights_{name}")
        return heads

    def classification_logits(self, heads):
        """The method's ``logits`` of the heads, else the sum of the heads' logits."""
        if self.method.logits is not None:
            return self.method.logits(self.spec, heads)
        return tf.add_n([head_logits for _, head_logits, _ in heads.values()])

    def build_graph(self, image, label, bbox, *extra):
        targets = None
        training = get_current_tower_context().is_training
        if self.method.input_transform is not None and training:
            image, targets = self.method.input_transform(self.spec, image, label)
        forward = Forward(label=label if training else None,
                          inputs={spec.name: tensor for spec, tensor in zip(self.extra_inputs(), extra)})
        heads = self.build_heads(image, forward)
        logits = tf.identity(self.classification_logits(heads), name="logits")
        tf.identity(tf.nn.top_k(logits, k=min(5, self.spec.num_classes)).indices, name="top5")
        wrong1 = tf.cast(tf.logical_not(tf.nn.in_top_k(logits, label, 1)), tf.float32, name="wrong-top1")
        wrong5 = tf.cast(tf.logical_not(tf.nn.in_top_k(logits, label, 5)), tf.float32, name="wrong-top5")

        if self.method.loss is not None:
            xentropy = tf.identity(self.method.loss(self.spec, heads, logits, label, forward), name="xentropy")
        else:
            xentropy = cross_entropy(logits, label, targets)
        weight_decay = self.spec.weight_decay
        wd_cost = regularize_cost(".*/W", lambda w: weight_decay * tf.nn.l2_loss(w), name="wd_cost")
        extra = self.method.extra_losses(self.spec, heads, label) if self.method.extra_losses else []
        cost = tf.add_n([xentropy, wd_cost] + extra, name="cost")
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
