"""What a method adds to the shared graph (``models.wsol_model.WSOLModel``), as hooks.

``Method`` is CAM's path: one GAP+FC head (or the OSE heads), classification on the sum of the
heads' logits, softmax cross-entropy.  A baseline module (HaS, CutMix, ACoL, SPG, FSL) overrides
only the hooks it needs and ends with its ``METHOD`` instance.  ``state`` is a dict that lives for
one ``build_graph`` call, where a hook leaves what a later hook needs (CutMix's permutation, SPG's
branch logits).
"""
from utils.compat import tf  # first: TensorFlow set-up


def softmax_cross_entropy(logits, label, name="xentropy"):
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=label, logits=logits), name=name)


class Method:
    name = "CAM"
    flags = ()                      # the method's own flags (spec field names)
    taps = {}                       # arch -> backbone positions whose maps ``heads`` reads
    fully_supervised = False        # trained on the masks of train_fullsup (no WSOL labels, no val pass)

    def head_names(self, spec):
        return tuple(spec.ose_heads)

    def extra_inputs(self, spec):
        """Inputs beyond image, label and bbox (training only)."""
        return []

    def transform_input(self, x, label, spec, state):
        """The normalised NHWC image the backbone sees (training-time input operations)."""
        return x

    def heads(self, model, features, taps, label, is_training, state):
        """{head: (features, logits, FC weights)} on the backbone's last map."""
        return model.default_heads(features)

    def classification_logits(self, heads):
        return tf.add_n([logits for _, logits, _ in heads.values()])

    def xentropy(self, spec, heads, logits, label, extra, state):
        """The task loss (weight decay is added by the model)."""
        return softmax_cross_entropy(logits, label)


CAM_PATH = Method()
