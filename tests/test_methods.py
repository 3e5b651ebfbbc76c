"""The method registry (models/methods/): the released methods' records, and a throw-away method
registered as the next method would be -- its flag, input transform, extra loss and CAM fusion
reach the command line and the graph without any other change."""
import numpy as np
import pytest

from conftest import build_model_graph, new_session
from models.methods import base, registry
from models.methods.base import Method
from models.spec import ModelSpec
from utils import flags
from utils.compat import tf
from utils.config import ConfigError, model_spec, parse_args
from utils.flag import Flag, Range

pytestmark = pytest.mark.duration(10)  # seconds, for the scheduler (conftest.py)

NEW_RUN = ["--dataset_name", "SYNTH", "--number_of_class", "4", "--arch_name", "vgg_gap", "--final_size", "32",
           "--width_multiplier", "0.125"]


def test_the_released_methods_and_their_names():
    assert registry.METHODS == ("CAM", "ADL", "MAE", "OSE", "E2Net", "HaS", "ACoL", "SPG", "CutMix", "FSL")
    for spelling, name in [("AAE", "MAE"), ("sae", "OSE"), ("AAE_SAE", "E2Net"), ("e2net", "E2Net"), ("cam", "CAM")]:
        assert registry.canonical_method(spelling) == name
    with pytest.raises(ValueError, match="unknown method 'DANet'; expected one of CAM, ADL, MAE, OSE, E2Net, HaS, "
                                         "ACoL, SPG, CutMix, FSL, AAE"):
        registry.canonical_method("DANet")


def test_e2net_is_mae_plus_ose():
    e2net, mae, ose = (registry.method(n) for n in ("E2Net", "MAE", "OSE"))
    assert e2net.flag_names == mae.flag_names + ose.flag_names == ("aae_threshold", "mae_mask", "ose_heads", "use_bn")
    assert e2net.position_op is mae.position_op and e2net.positions == mae.positions
    assert registry.owners("use_bn") == ("OSE", "E2Net") and registry.position_methods() == ("ADL", "MAE", "E2Net")


def test_combining_parts_that_both_bring_heads_is_refused():
    one = Method("A", "a", heads=lambda spec, features, build, forward: {})
    other = Method("B", "b", heads=lambda spec, features, build, forward: {})
    with pytest.raises(ValueError, match="disagree on heads"):
        base.combine("AB", "a + b", (one, other))


def test_method_checks_of_a_spec():
    with pytest.raises(ValueError, match="MAE needs at least one insertion position"):
        ModelSpec(method="MAE", positions=()).validate()
    with pytest.raises(ValueError, match="mae_mask must be one of"):
        ModelSpec(method="MAE", positions=("3",), mae_mask="min").validate()
    with pytest.raises(ValueError, match="method must be one of"):
        ModelSpec(method="DANet").validate()


def _blank_images(spec, image, label):
    """Replaces every training image by zeros, the label kept with two halves of its weight."""
    half = tf.fill(tf.shape(label), 0.5)
    return tf.zeros_like(image), [(label, half), (label, half)]


def _toy_loss(spec, heads, label):
    return [tf.constant(float(spec.option("toy_weight")), name="toy_loss")]


TOY = Method("Toy", "a throw-away method", aliases=("TOY_RELEASED",),
             flags=(Flag("toy_weight", "model", type=float, default=1.0, range=Range(0, 10), help="toy loss"),),
             input_transform=_blank_images, extra_losses=_toy_loss, cam_fusion="max")


@pytest.fixture
def toy_registered(monkeypatch):
    """Toy registered as a new method module would be: one more entry in REGISTRY."""
    monkeypatch.setattr(registry, "REGISTRY", registry.REGISTRY + (TOY,))
    monkeypatch.setattr(registry, "METHODS", registry.METHODS + ("Toy",))
    monkeypatch.setattr(flags, "FLAGS", flags.COMMON_FLAGS + registry.method_flags())


def test_a_new_method_reaches_the_command_line(toy_registered, tmp_path):
    log = ["--log_dir", str(tmp_path / "run")]
    args = parse_args(NEW_RUN + log + ["--method_name", "toy_released", "--toy_weight", "2.5"])
    spec = model_spec(args)
    assert (spec.method, spec.option("toy_weight"), args.cam_fusion) == ("Toy", 2.5, "max")
    assert spec.positions == () and spec.ose_heads == ("3x3",)
    with pytest.raises(ConfigError, match=r"^--toy_weight needs --method_name Toy \(got CAM\)"):
        parse_args(NEW_RUN + log + ["--method_name", "CAM", "--toy_weight", "2.5"])
    with pytest.raises(ConfigError, match=r"^--toy_weight must be in \[0, 10\], got 11.0$"):
        parse_args(NEW_RUN + log + ["--method_name", "Toy", "--toy_weight", "11"])
    with pytest.raises(ConfigError, match="Toy fuses its CAMs with --cam_fusion max"):
        parse_args(NEW_RUN + log + ["--method_name", "Toy", "--cam_fusion", "mean"])
    assert model_spec(parse_args(NEW_RUN + log + ["--method_name", "CAM"])).options == ()


def test_a_new_methods_transform_and_loss_reach_the_training_graph(toy_registered, tmp_path):
    spec = model_spec(parse_args(NEW_RUN + ["--log_dir", str(tmp_path / "run"), "--method_name", "Toy",
                                            "--toy_weight", "2.5"]))
    graph, _, inputs, cost = build_model_graph(spec, is_training=True)
    rng = np.random.RandomState(0)
    labels = np.array([1, 3], np.int32)
    with graph.as_default(), new_session(graph) as sess:
        sess.run(tf.global_variables_initializer())
        parts = [graph.get_tensor_by_name(n) for n in ("cost:0", "xentropy:0", "wd_cost:0")]
        results = []
        for _ in range(2):   # two different batches: the transform blanks both
            feed = {inputs[0]: rng.randint(0, 256, (2, 32, 32, 3)).astype(np.uint8), inputs[1]: labels,
                    inputs[2]: np.zeros((2, 2, 2), np.float32)}
            results.append(sess.run(parts, feed))
    (cost_a, xent_a, wd_a), (cost_b, xent_b, wd_b) = results
    assert cost_a == pytest.approx(xent_a + wd_a + 2.5, rel=1e-6)
    assert xent_a == pytest.approx(xent_b, rel=1e-6) and cost_a == pytest.approx(cost_b, rel=1e-6)
