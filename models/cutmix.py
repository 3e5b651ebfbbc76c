"""CutMix (Yun et al., ICCV 2019), as wsolevaluation defines it (the method applies it in training only).

With probability ``prob`` per batch (and ``beta > 0``): lambda ~ Beta(beta, beta), a box of
side ``floor(size * sqrt(1 - lambda))`` along each axis around a uniform integer centre,
its ends ``centre -+ side // 2`` clipped to the image, is pasted from the image of a random
permutation of the batch.  The loss is ``(1 - w) CE(label) + w CE(label[perm])`` with ``w``
the area of the **clipped** box over the image area (wsolevaluation recomputes lambda from
the pasted box): the method's targets ``[(label, 1 - w), (label[perm], w)]``.  Without mixing
``w = 0`` and the images are unchanged.
"""
from utils.compat import tf  # first: TensorFlow set-up


def sample_beta(beta):
    """lambda ~ Beta(beta, beta) (a scalar), from two Gamma(beta) draws."""
    first, second = tf.random_gamma([], beta), tf.random_gamma([], beta)
    return first / (first + second)


def draw_cutmix(batch, height, width, beta, prob):
    """The random draws of one step: dict of ``apply`` (bool), ``lam``, ``permutation`` [N],
    ``centre`` (int32 [2], row and column)."""
    apply = tf.logical_and(tf.random_uniform([]) < prob, beta > 0)
    lam = sample_beta(beta) if beta > 0 else tf.constant(1.0)
    centre = tf.stack([tf.random_uniform([], 0, height, tf.int32), tf.random_uniform([], 0, width, tf.int32)])
    return {"apply": apply, "lam": lam, "permutation": tf.random_shuffle(tf.range(batch)), "centre": centre}


def cutmix_box(height, width, lam, centre):
    """int32 ``[4]`` = (row1, col1, row2, col2), end-exclusive, of the clipped box."""
    sizes = tf.constant([height, width], tf.int32)
    side = tf.cast(tf.floor(tf.cast(sizes, tf.float32) * tf.sqrt(1.0 - lam)), tf.int32)
    low = tf.clip_by_value(centre - side // 2, 0, sizes)
    high = tf.clip_by_value(centre + side // 2, 0, sizes)
    return tf.concat([low, high], axis=0)


def box_mask(box, height, width):
    """float ``[height, width, 1]``: 1 inside the box (row1 <= r < row2, col1 <= c < col2)."""
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    inside = (rows >= box[0]) & (rows < box[2]) & (cols >= box[1]) & (cols < box[3])
    return tf.cast(inside, tf.float32)[:, :, None]


def cutmix(image, draws):
    """(mixed NHWC image, float32; permutation; weight of the permuted labels) for ``draws``
    (``draw_cutmix`` or fixed values in tests)."""
    image = tf.cast(image, tf.float32)
    height, width = int(image.shape[1]), int(image.shape[2])
    with tf.name_scope("cutmix"):
        box = cutmix_box(height, width, draws["lam"], draws["centre"])
        inside = box_mask(box, height, width) * tf.cast(draws["apply"], tf.float32)
        pasted = tf.gather(image, draws["permutation"])
        mixed = tf.add(image * (1.0 - inside), pasted * inside, name="output")
        weight = tf.identity(tf.reduce_sum(inside) / float(height * width), name="pasted_fraction")
        return mixed, draws["permutation"], weight

