"""HaS, Hide-and-Seek (Singh & Lee, ICCV 2017), as wsolevaluation defines it; training only.

The input image is cut into square cells of ``grid_size`` x ``grid_size`` **pixels**
(wsolevaluation's ``--has_grid_size`` is the cell side, not the number of cells; border cells
are cut short when the size is not a multiple), and each cell of each image is hidden
independently with probability ``drop_rate``.  wsolevaluation sets hidden cells to 0 of the
normalised image, i.e. the ImageNet mean colour; here, before the normalisation, they are set to
that colour (``fill``).  ``grid_size`` 0 hides nothing.  The method applies it in training only.
"""
from utils.compat import tf  # first: TensorFlow set-up


def num_cells(size, grid_size):
    """Cells along an axis of ``size`` pixels (the last one may be cut short)."""
    return -(-size // grid_size)


def draw_hidden_cells(batch, cells_h, cells_w, drop_rate):
    """bool ``[batch, cells_h, cells_w]``: True where a cell is hidden (uniform <= drop_rate)."""
    return tf.random_uniform(tf.stack([batch, cells_h, cells_w])) <= drop_rate


def cell_keep_mask(hidden, grid_size, height, width):
    """float ``[N, height, width, 1]``: 0 on the pixels of hidden cells, 1 elsewhere."""
    keep = 1.0 - tf.cast(hidden, tf.float32)
    keep = tf.repeat(tf.repeat(keep, grid_size, axis=1), grid_size, axis=2)
    return keep[:, :height, :width, None]


def hide_and_seek(image, grid_size, drop_rate, fill, hidden=None):
    """HaS on an NHWC image batch: float32, the hidden cells' pixels set to ``fill`` (a colour of
    the image's channels).  ``hidden`` (bool ``[N, cells_h, cells_w]``) overrides the random draw (tests)."""
    image = tf.cast(image, tf.float32)
    if grid_size == 0:
        return image
    height, width = int(image.shape[1]), int(image.shape[2])
    with tf.name_scope("has"):
        if hidden is None:
            hidden = draw_hidden_cells(tf.shape(image)[0], num_cells(height, grid_size),
                                       num_cells(width, grid_size), drop_rate)
        keep = cell_keep_mask(hidden, grid_size, height, width)
        return tf.add(image * keep, tf.constant(fill, tf.float32) * (1.0 - keep), name="output")
