"""The registry of WSOL methods: one module per method under ``models/methods/``, named in ``REGISTRY``.

Adding a method is one new module ``models/methods/<name>.py``
that defines ``METHOD = Method(...)`` (``models/methods/base.py``), plus its name in the import
and in ``REGISTRY`` below.  Nothing else changes: the command line (``--method_name``, the
method's flags, their refusal for other methods, the presets), ``ModelSpec`` and ``WSOLModel``
read the record.  A method says only what it adds to the CAM graph (backbone, GAP+FC head,
softmax cross-entropy); every field is optional:

``name``, ``aliases``, ``description``
    ``--method_name`` spellings (any case; aliases are the released names, e.g. ``AAE``).
``flags``
    ``utils.flag.Flag`` declarations of the method's own flags (kind ``model`` when the value
    changes the graph at test time, so ``--evaluate`` inherits it; ``training`` when it acts in
    training only, e.g. ``--cutmix_prob``).  They belong to this method and to every method
    ``combine``-d from it: typed with another method at a value other than the flag's ``unused``
    value (default: its default) they are a one-line ConfigError.  A flag that fills a
    ``ModelSpec`` field names it in ``spec=``; without ``spec`` its value reaches the graph as
    ``spec.option("<flag name>")`` (``ModelSpec.options``), so a new method needs no new field.
``positions`` and ``position_op(spec, position, x) -> x``
    the default ``--gating_position`` per backbone, and the op applied after each chosen
    position (MAE: ``aware_<position>``; ADL: ``adl_<position>``).  A method with an op owns the
    ``--gating_position`` flag.  Insertion points are the backbones' (``insertion_points`` in
    ``models/vgg.py``, ``models/resnet.py``).
``input_transform(spec, image, label) -> (image, targets)``
    training-time transform of the batch, before preprocessing: ``image`` the ``[N, H, W, 3]``
    BGR batch in 0..255 (uint8, or float when transformed), ``label`` ``[N]`` int32; ``targets``
    a list of ``(labels [N] int32, weights [N] float32)`` whose weights sum to 1 per example.
    The cross-entropy becomes ``sum_k mean(weights_k * CE(labels_k))``: HaS hides grid cells and
    returns ``[(label, ones)]``; CutMix pastes a box of a shuffled batch and returns
    ``[(label, lam), (label[perm], 1 - lam)]``.  Not applied at inference or validation.
``taps``
    per backbone, the insertion positions whose maps the method's heads read (SPG's B1 and B2:
    VGG pool4 and conv5_3, ResNet group2/block0 and the end of group2); they reach ``heads`` in
    ``forward.taps``.  Unlike ``positions`` they put no op there.
``heads(spec, features, build, forward) -> {head: (feature map, logits, FC weights)}`` and ``head_names(spec)``
    the method's own heads on the last feature map; ``build(features, spec)`` is the backbone's
    head builder (``models/ose.py``), which builds the heads ``spec.ose_heads`` names (the 3x3
    head alone unless the method owns ``--ose_heads``, as OSE does).  ``forward``
    (``models.methods.base.Forward``) holds the label (training only), the taps, the extra
    inputs and ``aux``, where heads leave what the loss needs.  Every head is exported as
    ``features_<head>``, ``logits_<head>``, ``fc_weights_<head>`` for the CAM.  ACoL: two
    classifier branches; SPG: the classification head (its attention branches in ``aux``);
    FSL: a foreground head.
``logits(spec, heads) -> [N, K]``
    the classification logits (default: the sum of the heads' logits; ACoL: branch A's; FSL: 0).
``loss(spec, heads, logits, label, forward) -> scalar``
    the task loss in place of the softmax cross-entropy of ``logits`` (ACoL: CE(A) + CE(B); SPG:
    CE + the mask losses of its attention branches; FSL: the per-pixel BCE of its foreground
    map); named ``xentropy`` in the moving summaries like the cross-entropy it replaces.  It runs
    outside the graph's layout scope: what depends on the layout (NHWC maps of NCHW features) is
    computed in ``heads`` and left in ``forward.aux``.
``extra_losses(spec, heads, label) -> [scalar tensors]``
    added to the cost; give each a name and add it to the moving summaries.
``cam_fusion``
    the CAM rule as a fixed ``--cam_fusion`` choice (``utils/evaluation/cam.py``; ACoL:
    ``max_normalised``, the element-wise max of both branches' min-max normalised CAMs);
    ``resolve`` sets it and refuses another typed value.  ``None``: the run's ``--cam_fusion``
    over the heads.  A new rule is a numpy fusion in cam.py (and its TensorFlow twin in
    export.py), then named here.
``check(spec)``
    raise ValueError with one line for a ``ModelSpec`` the method cannot build.
``fully_supervised``
    trained on the object masks of the ``train_fullsup`` list instead of the class labels of the
    train list (FSL): the model gets a ``mask`` input (``forward.inputs["mask"]``, float32
    ``[N, S, S]``), the training reads only that list and its masks, and no validation pass
    runs (the newest checkpoint is evaluated).

``combine(name, description, parts, aliases)`` makes a method of others (E2Net = MAE + OSE): the
parts' flags, ops in order, losses and checks; at most one part brings a transform, heads or a
fusion.

No TensorFlow at import (the command line reads the registry); the method modules import their
layer modules (``models/mae.py``, ``models/adl.py`` ...) inside the graph hooks.
"""
from dataclasses import replace

from models.methods import acol, adl, cam, cutmix, e2net, fsl, has, mae, ose, spg

REGISTRY = tuple(module.METHOD for module in (cam, adl, mae, ose, e2net, has, acol, spg, cutmix, fsl))
METHODS = tuple(m.name for m in REGISTRY)


def method(name):
    """The ``Method`` of a canonical name (``canonical_method`` first for released spellings)."""
    for m in REGISTRY:
        if m.name == name:
            return m
    raise ValueError(f"method must be one of {METHODS}, got {name!r}")


def canonical_method(name):
    """A method name (project or released vocabulary, any case) in the project's vocabulary."""
    for m in REGISTRY:
        if name.lower() in [m.name.lower()] + [a.lower() for a in m.aliases]:
            return m.name
    known = ", ".join(METHODS + tuple(a for m in REGISTRY for a in m.aliases))
    raise ValueError(f"unknown method {name!r}; expected one of {known}")


def released_names():
    """``"AAE = MAE, SAE = OSE, AAE_SAE = E2Net"``: the released aliases, for help texts."""
    return ", ".join(f"{a} = {m.name}" for m in REGISTRY for a in m.aliases)


def owners(flag_name):
    """Names of the methods a flag belongs to."""
    return tuple(m.name for m in REGISTRY if flag_name in m.flag_names)


def method_flags():
    """Every method's flags, each once, with ``methods`` = the methods it belongs to."""
    flags = {}
    for m in REGISTRY:
        for f in m.flags:
            flags.setdefault(f.name, replace(f, methods=owners(f.name)))
    return tuple(flags.values())


def position_methods():
    """Names of the methods with an op at the insertion positions (they own --gating_position)."""
    return tuple(m.name for m in REGISTRY if m.position_op is not None)


def check_spec(spec):
    """The method-level checks of a ModelSpec (ValueError, one line)."""
    m = method(spec.method)
    if "ose_heads" not in m.flag_names and len(spec.ose_heads) != 1:
        raise ValueError(f"{spec.method} has a single localization head; use "
                         f"{' or '.join(owners('ose_heads'))} for {spec.ose_heads}")
    if m.position_op is not None and not spec.positions:
        raise ValueError(f"{spec.method} needs at least one insertion position (--gating_position)")
    if m.check is not None:
        m.check(spec)
