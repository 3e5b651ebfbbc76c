"""HaS, Hide-and-Seek (Singh & Lee, ICCV 2017), as wsolevaluation defines it: what the method adds --
hidden grid cells of the training images (the op: ``models/has.py``); the CAM graph otherwise."""
from models.methods.base import Method
from utils.flag import UNIT, Flag, Range


def _hide(spec, image, label):
    from models.has import hide_and_seek
    from models.layers import IMAGE_MEAN_BGR
    from utils.compat import tf
    mean_colour = [255.0 * v for v in IMAGE_MEAN_BGR]      # 0 after the normalisation, as wsolevaluation
    image = hide_and_seek(image, spec.option("has_grid_size"), spec.option("has_drop_rate"), mean_colour)
    return image, [(label, tf.ones_like(label, tf.float32))]


METHOD = Method(
    "HaS", "Hide-and-Seek: random grid cells of the training images hidden (wsolevaluation)",
    flags=(Flag("has_grid_size", "model", type=int, default=4, range=Range(0, note="0 = hide nothing"),
                help="HaS: side of the hidden square cells in pixels (wsolevaluation's meaning)"),
           Flag("has_drop_rate", "model", type=float, default=0.5, range=UNIT,
                help="HaS: probability of hiding each cell")),
    input_transform=_hide)
