"""Command line: the released command lines, aliases and defaults, and runs that take their
model from config.json (evaluation, resume)."""
import json
import os
import shlex

import pytest

from utils.config import ConfigError, config_dict, model_spec, parse_args

RELEASED_HEADS = ["3x3", "1x3", "3x1"]


def released_command_lines(shared_dir):
    with open(os.path.join(shared_dir, "ref", "released_command_lines.txt")) as f:
        return [shlex.split(line)[2:] for line in f if line.startswith("python train.py")]


def test_released_command_lines_parse_to_the_published_configurations(shared_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = released_command_lines(shared_dir)
    assert len(lines) == 4
    for argv in lines:
        args = parse_args(argv, gpu_present=True)
        spec = model_spec(args)
        vgg = "vgg_gap" in argv
        assert (spec.arch, spec.method, spec.ose_heads) == ("vgg_gap" if vgg else "resnet", "E2Net",
                                                            tuple(RELEASED_HEADS))
        assert spec.positions == (("3", "4", "53") if vgg else ("31", "41", "5"))
        assert spec.use_bn is (not vgg)
        cub = args.dataset_name == "CUB"
        assert spec.num_classes == (200 if vgg and cub else 1000)
        assert spec.mae_threshold == 0.5 and spec.mae_mask == "sum"
        assert spec.pretrained_grad_scale == 0.1 and spec.base_lr == 0.01
        assert args.batch_size == 32 and args.evaluate
        assert args.epoch == int(argv[argv.index("--epoch") + 1])
        assert args.log_dir == os.path.join("train_log", argv[argv.index("--log_dir") + 1])


@pytest.mark.parametrize("spelling, arch", [("resnet50_se", "resnet"), ("resnet", "resnet"), ("vgg_gap", "vgg_gap")])
def test_released_arch_spellings(spelling, arch):
    args = parse_args(["--dataset_name", "CUB", "--arch_name", spelling, "--method_name", "CAM", "--log_dir", "/x/y"])
    assert args.arch_name == arch


@pytest.mark.parametrize("spelling, method", [("AAE", "MAE"), ("SAE", "OSE"), ("AAE_SAE", "E2Net"),
                                              ("CAM", "CAM"), ("ADL", "ADL"), ("e2net", "E2Net")])
def test_released_method_spellings(spelling, method):
    args = parse_args(["--dataset_name", "CUB", "--method_name", spelling, "--log_dir", "/x/y"])
    assert args.method_name == method


def test_released_defaults():
    args = parse_args(["--dataset_name", "CUB", "--method_name", "ADL", "--log_dir", "/x/y"])
    assert args.adl_threshold == 0.5 and args.adl_keep_prob == 0.25 and args.aae_threshold == 0.5
    assert model_spec(args).adl_threshold == 0.5


def test_unknown_arch_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--arch_name", "alexnet"])
    assert exit_info.value.code == 2
    assert "unknown backbone 'alexnet'" in capsys.readouterr().err


E2NET_RUN = ["--dataset_name", "SYNTH", "--data_dir", "/data", "--arch_name", "resnet50_se", "--method_name",
             "AAE_SAE", "--mae_mask", "max", "--width_multiplier", "0.25", "--final_size", "96",
             "--number_of_class", "10", "--use_bn", "1", "--ose_heads", "3x3", "1x3", "3x1", "diag"]


@pytest.fixture
def e2net_run(tmp_path):
    log_dir = tmp_path / "run"
    log_dir.mkdir()
    args = parse_args(E2NET_RUN + ["--log_dir", str(log_dir)])
    with open(log_dir / "config.json", "w") as f:
        json.dump(config_dict(args), f, default=str)
    return log_dir, model_spec(args)


def test_evaluate_without_model_flags_takes_them_from_config_json(e2net_run):
    log_dir, trained = e2net_run
    args = parse_args(["--evaluate", "--log_dir", str(log_dir)])
    assert model_spec(args) == trained
    assert (args.dataset_name, args.data_dir) == ("SYNTH", "/data")


def test_a_config_json_from_before_other_methods_flags_existed_still_evaluates(e2net_run):
    """A run recorded before HaS/ACoL/SPG/CutMix brought their flags lacks them: they did not apply
    to it, so they take their unused values; a missing flag of the run's own method is still refused."""
    log_dir, trained = e2net_run
    record = json.loads((log_dir / "config.json").read_text())
    newer = ("has_grid_size", "has_drop_rate", "acol_threshold", "spg_thresholds", "cutmix_beta", "cutmix_prob")
    assert all(name in record for name in newer)
    older = {k: v for k, v in record.items() if k not in newer}
    (log_dir / "config.json").write_text(json.dumps(older))
    assert model_spec(parse_args(["--evaluate", "--log_dir", str(log_dir)])) == trained
    del older["mae_mask"]                                   # E2Net's own flag: its value is unknown
    (log_dir / "config.json").write_text(json.dumps(older))
    with pytest.raises(ConfigError, match="has no 'mae_mask'"):
        parse_args(["--evaluate", "--log_dir", str(log_dir)])


def test_resume_without_model_flags_takes_them_from_config_json(e2net_run):
    log_dir, trained = e2net_run
    assert model_spec(parse_args(["--log_dir", str(log_dir)])) == trained


def test_flags_that_agree_with_config_json_are_accepted_in_any_spelling(e2net_run):
    log_dir, trained = e2net_run
    args = parse_args(["--evaluate", "--log_dir", str(log_dir), "--method_name", "E2Net", "--arch_name", "resnet",
                       "--final_size", "96"])
    assert model_spec(args) == trained


@pytest.mark.parametrize("flag, value, stored", [
    (["--method_name", "CAM"], "--method_name CAM", "method_name = E2Net"),
    (["--final_size", "224"], "--final_size 224", "final_size = 96"),
    (["--mae_mask", "sum"], "--mae_mask sum", "mae_mask = max"),
    (["--ose_heads", "3x3", "1x3", "3x1"], "--ose_heads 3x3 1x3 3x1", "ose_heads = 3x3 1x3 3x1 diag"),
    (["--arch_name", "vgg_gap"], "--arch_name vgg_gap", "arch_name = resnet"),
])
def test_a_model_flag_that_contradicts_config_json_is_a_one_line_error(e2net_run, flag, value, stored):
    log_dir, _ = e2net_run
    with pytest.raises(ConfigError) as error:
        parse_args(["--evaluate", "--log_dir", str(log_dir)] + flag)
    message = str(error.value)
    assert value in message and stored in message and str(log_dir / "config.json") in message
    assert "\n" not in message


def test_evaluating_a_checkpoint_of_another_run_reads_that_runs_config(e2net_run, tmp_path):
    log_dir, trained = e2net_run
    (log_dir / "min-val-error-top1.index").write_bytes(b"")
    args = parse_args(["--evaluate", "--log_dir", str(tmp_path / "elsewhere"),
                       "--load", str(log_dir / "min-val-error-top1")])
    assert model_spec(args) == trained


def test_data_flags_given_for_evaluation_override_config_json(e2net_run, tmp_path):
    log_dir, _ = e2net_run
    args = parse_args(["--evaluate", "--log_dir", str(log_dir), "--data_dir", str(tmp_path)])
    assert args.data_dir == str(tmp_path) and args.dataset_name == "SYNTH"


def test_a_new_run_uses_the_flags_and_defaults(tmp_path):
    args = parse_args(["--dataset_name", "CUB", "--arch_name", "resnet50_se", "--log_dir", str(tmp_path / "new")])
    assert (args.method_name, args.number_of_class, args.gating_position) == ("E2Net", 1000, ["31", "41", "5"])


def test_unreadable_config_json_is_a_one_line_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="config.json: cannot read"):
        parse_args(["--evaluate", "--log_dir", str(tmp_path)])
