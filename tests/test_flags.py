"""The single flag declaration (utils/flags.py): a flag declared once is parsed, range-checked,
written to config.json, inherited by --evaluate and refused for a method that does not use it."""
import json
from dataclasses import fields

import pytest

from models.spec import ModelSpec
from utils import flags
from utils.config import ConfigError, config_dict, model_spec, parse_args
from utils.flags import Flag, Range

NEW_RUN = ["--dataset_name", "SYNTH", "--number_of_class", "10", "--arch_name", "vgg_gap"]


@pytest.fixture
def declare(monkeypatch):
    """Register extra flags on a copy of the declaration table, for one test."""
    def register(*extra):
        monkeypatch.setattr(flags, "FLAGS", flags.FLAGS + extra)
    return register


def write_run(args):
    with open(f"{args.log_dir}/config.json", "w") as f:
        json.dump(config_dict(args), f, default=str)


def test_a_model_flag_declared_once_is_parsed_checked_recorded_and_inherited(declare, tmp_path):
    declare(Flag("toy_gain", "model", type=float, default=1.0, range=Range(0, 2), help="a throw-away model flag"))
    run = tmp_path / "run"
    run.mkdir()
    assert "a throw-away model flag" in flags.build_parser().format_help()
    assert "toy_gain" in flags.flags_of_kind("model")

    with pytest.raises(ConfigError, match=r"^--toy_gain must be in \[0, 2\], got 2.5$"):
        parse_args(NEW_RUN + ["--log_dir", str(run), "--toy_gain", "2.5"])
    args = parse_args(NEW_RUN + ["--log_dir", str(run), "--toy_gain", "1.5"])
    assert args.toy_gain == 1.5
    write_run(args)
    assert json.loads((run / "config.json").read_text())["toy_gain"] == 1.5

    evaluated = parse_args(["--evaluate", "--log_dir", str(run)])
    assert evaluated.toy_gain == 1.5 and evaluated.dataset_name == "SYNTH"
    assert parse_args(["--evaluate", "--log_dir", str(run), "--toy_gain", "1.50"]).toy_gain == 1.5
    with pytest.raises(ConfigError) as error:
        parse_args(["--evaluate", "--log_dir", str(run), "--toy_gain", "0.5"])
    assert str(error.value) == (f"--toy_gain 0.5 contradicts the run's {run / 'config.json'} (toy_gain = 1.5); "
                                f"drop the flag, or use another --log_dir")


def test_a_flag_of_another_method_is_refused_unless_at_its_unused_value(declare, tmp_path):
    declare(Flag("toy_drop", "model", type=float, default=0.3, range=Range(0, 1), methods=("ADL",), help="ADL only"))
    log = ["--log_dir", str(tmp_path / "run")]
    with pytest.raises(ConfigError, match=r"^--toy_drop needs --method_name ADL \(got CAM\); drop --toy_drop 0.4$"):
        parse_args(NEW_RUN + log + ["--method_name", "CAM", "--toy_drop", "0.4"])
    assert parse_args(NEW_RUN + log + ["--method_name", "CAM", "--toy_drop", "0.3"]).toy_drop == 0.3
    assert parse_args(NEW_RUN + log + ["--method_name", "ADL", "--toy_drop", "0.4"]).toy_drop == 0.4


@pytest.mark.parametrize("argv, message", [
    (["--method_name", "CAM", "--aae_threshold", "0.7"], "--aae_threshold needs --method_name MAE or E2Net (got CAM)"),
    (["--method_name", "OSE", "--mae_mask", "max"], "--mae_mask needs --method_name MAE or E2Net (got OSE)"),
    (["--method_name", "MAE", "--adl_keep_prob", "0.5"], "--adl_keep_prob needs --method_name ADL (got MAE)"),
    (["--method_name", "OSE", "--gating_position", "3"],
     "--gating_position needs --method_name ADL, MAE or E2Net (got OSE)"),
    (["--method_name", "CAM", "--arch_name", "resnet", "--use_bn", "1"],
     "--use_bn needs --method_name OSE or E2Net (got CAM)"),
    (["--method_name", "E2Net", "--use_bn", "1"], "--use_bn 1 applies to --arch_name resnet only (got vgg_gap)"),
])
def test_method_flags_typed_for_another_method_are_one_line_errors(argv, message, tmp_path):
    with pytest.raises(ConfigError) as error:
        parse_args(NEW_RUN + ["--log_dir", str(tmp_path / "run")] + argv)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_released_defaults_typed_for_a_method_that_ignores_them_are_accepted(tmp_path):
    args = parse_args(NEW_RUN + ["--log_dir", str(tmp_path / "run"), "--method_name", "CAM", "--aae_threshold", "0.50",
                                 "--use_bn", "0", "--ose_heads", "3x3", "--adl_threshold", "0.5"])
    assert model_spec(args).method == "CAM"


def test_every_spec_field_but_the_derived_ones_comes_from_one_flag():
    filled = [f.spec for f in flags.FLAGS if f.spec is not None]
    assert len(filled) == len(set(filled))
    assert set(filled) | {"weight_decay", "pretrained_grad_scale", "options"} == {field.name for field in fields(ModelSpec)}


def test_kinds_are_queryable_and_cover_every_flag():
    training = set(flags.flags_of_kind("training"))
    assert {"epoch", "batch_size", "base_lr", "lr_decay_epochs", "clip_gradients"} <= training
    assert {"dataset_name", "data_dir", "label_dir", "cam_fusion"} <= set(flags.flags_of_kind("run"))
    assert "method_name" in flags.flags_of_kind("model") and "gpu" in flags.flags_of_kind("placement")
    assert sum(len(flags.flags_of_kind(kind)) for kind in flags.KINDS) == len(flags.FLAGS)
    with pytest.raises(ValueError):
        flags.flags_of_kind("modle")


@pytest.mark.parametrize("allowed, inside, outside, words", [
    (Range(0, 1), (0, 1, 0.5), (-0.1, 1.1, float("nan")), "in [0, 1]"),
    (Range(0, lo_open=True, hi_open=True), (1e-9, 5), (0, float("inf"), float("nan")), "> 0"),
    (Range(1), (1, 10 ** 9), (0, -1), ">= 1"),
    (Range(0, hi_open=True, note="0 = off"), (0, 3.5), (-1, float("inf")), ">= 0 (0 = off)"),
])
def test_range_membership_and_words(allowed, inside, outside, words):
    assert all(v in allowed for v in inside) and not any(v in allowed for v in outside)
    assert allowed.words == words
