"""ACoL, Adversarial Complementary Learning (Zhang et al., CVPR 2018), as wsolevaluation defines it.

Two classifier branches A and B on the backbone's map X, each conv 3x3 -> 1024 + ReLU,
conv 3x3 -> 1024 + ReLU, then a class map and global average pooling (here GAP + FC on the
1024-channel map, the same linear map as wsolevaluation's 1x1 convolution before GAP, so the
CAM machinery of the other methods applies unchanged).  B sees X erased where A's min-max
normalised class map (of the label in training, of A's top-1 class at inference, as
wsolevaluation does without labels) is >= ``threshold``.  Loss CE(A) + CE(B); classification
uses A's logits; CAM = element-wise max of the branches' min-max normalised CAMs
(``utils.evaluation.cam``'s ``max_normalised`` rule).

On VGG16-GAP the branches follow wsolevaluation's stride-1 3x3 max-pool and 3x3 average-pool of
conv5_3 (parameter-free, the map stays 14x14); on ResNet50-SE they take group3's map as it is.
"""
from utils.compat import tf  # first: TensorFlow set-up
from tensorpack import AvgPooling, Conv2D, MaxPooling
from tensorpack.tfutils.argscope import argscope

from models.layers import class_maps, expand_to_channels, minmax_normalise, to_nhwc
from models.ose import classifier

BRANCH_WIDTH = 1024
# wsolevaluation's initialisation of the branches: Xavier-uniform on VGG, He (fan-out) on ResNet.
INITIALIZERS = {"vgg_gap": tf.glorot_uniform_initializer(),
                "resnet": tf.variance_scaling_initializer(scale=2.0, mode="fan_out")}


def acol_keep_mask(class_map, threshold):
    """float ``[N, h, w]``: 0 where the min-max normalised ``class_map`` is >= ``threshold``."""
    return 1.0 - tf.cast(minmax_normalise(class_map) >= threshold, class_map.dtype)


def acol_branch(name, x, width, num_classes, initializer):
    """(feature map, logits, FC weights) of one branch in variable scope ``name``."""
    with tf.variable_scope(name), argscope(Conv2D, kernel_initializer=initializer):
        x = Conv2D("conv1", x, width, 3, activation=tf.nn.relu)
        features = Conv2D("conv2", x, width, 3, activation=tf.nn.relu)
        return (features,) + classifier("linear", features, num_classes)


def acol_input(x, arch):
    """The map the branches read: VGG's conv5_3 after the stride-1 3x3 max- and average-pools."""
    if arch == "vgg_gap":
        x = MaxPooling("acol_pool", x, 3, strides=1, padding="SAME")
        x = AvgPooling("acol_avgpool", x, 3, strides=1, padding="SAME")
    return x


def acol_heads(x, spec, label, threshold):
    """{``A``, ``B``: (features, logits, FC weights)}; B's input erased by A's map of ``label``
    (training), or of A's top-1 class when ``label`` is None."""
    x = acol_input(x, spec.arch)
    width = spec.channels(BRANCH_WIDTH)
    branch = {"width": width, "num_classes": spec.num_classes, "initializer": INITIALIZERS[spec.arch]}
    heads = {"A": acol_branch("acol_a", x, **branch)}
    features_a, logits_a, weights_a = heads["A"]
    classes = label if label is not None else tf.argmax(logits_a, axis=1, output_type=tf.int32)
    keep = acol_keep_mask(class_maps(to_nhwc(features_a), weights_a, classes), threshold)
    tf.identity(1.0 - tf.reduce_mean(keep), name="acol_erased_fraction")
    heads["B"] = acol_branch("acol_b", x * expand_to_channels(keep), **branch)
    return heads


def acol_cross_entropy(heads, label):
    """CE(A) + CE(B), each averaged over the batch."""
    return tf.add_n([tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=label, logits=logits))
                     for _, logits, _ in heads.values()])
