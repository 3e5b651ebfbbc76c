"""The demo in a reduced mode, end to end: table, JSON, Markdown and picture grid."""
import json
import os
import subprocess
import sys

import cv2
import pytest

from conftest import REPO

pytestmark = pytest.mark.duration(70)  # seconds, for the scheduler (conftest.py)


def test_reduced_demo_writes_table_and_files(tmp_path):
    """The default backbone (ResNet50-SE) end to end, from scratch (the committed pretrained
    backbone has the demo's width only), CAM and E2Net; other backbones, regimes and methods
    differ only in their options, which the next tests follow into the train.py options."""
    arch = "resnet"
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "utils.demo", "--from_scratch", "--methods", "CAM", "E2Net", "--arch", arch, "--epochs", "1", "--num_classes", "4", "--num_train", "64",
           "--num_val", "16", "--image_size", "64", "--size", "32", "--width", "0.125", "--batch", "16",
           "--examples", "2", "--workers", "0", "--data_dir", str(tmp_path / "data"), "--out", str(out)]
    # timeout: a hang guard (about a minute on an idle machine, 12 minutes seen on a saturated one)
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    table_lines = [line for line in result.stdout.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in table_lines[0].split("|")[1:-1]]
    assert header == ["method", "Top-1 Cls", "GT-known Loc (τ 0.2)", "GT-known Loc (best τ)", "MaxBoxAccV2",
                      "IoU 30", "IoU 50", "IoU 70"]
    names = [line.split("|")[1].strip() for line in table_lines[2:]]
    assert names == ["CAM", "E2Net", "trivial: whole image", "trivial: centred mean box", "oracle: head-only box"]
    with open(out / "results.json") as f:
        summary = json.load(f)
    for method in ("CAM", "E2Net"):
        metrics = summary["results"][method]
        assert metrics["num_images"] == 16
        assert 0 <= metrics["gt_known_loc"] <= 100 and 0 <= metrics["maxboxacc_v2"] <= 100
        assert os.path.isfile(os.path.join(summary["runs"], method, "result", "latest", "metrics.json"))
    for name, row in summary["table"].items():
        assert row["maxboxacc_v2"] == pytest.approx((row["iou30"] + row["iou50"] + row["iou70"]) / 3), name
        assert 0 <= row["gt_known_best"] <= 100 and row["iou30"] >= row["iou50"] >= row["iou70"]
        if name in ("CAM", "E2Net"):
            assert row["gt_known_best"] == summary["results"][name]["sweep"]["best"]["gt_known_loc"]
    assert set(summary["timing_seconds"]) == {"synthetic set", "CAM train + evaluate", "E2Net train + evaluate",
                                              "total"}
    grid = cv2.imread(str(out / "comparison.png"))
    assert grid is not None and grid.shape[1] == 3 * 240  # image | CAM | E2Net, upsampled cells
    assert grid.shape[0] > 2 * 240
    assert "wall time" in result.stdout
    assert (out / "results.md").read_text().count("|") > 20
    assert summary["config"]["arch"] == arch
    for method in ("CAM", "E2Net"):      # what each run recorded of how it ran: fp32, from scratch, 1 epoch
        assert summary["run_settings"][method]["precision"] == "fp32"
        assert summary["run_settings"][method]["pretrained"] is None and summary["run_settings"][method]["epoch"] == 1
    assert "CAM: precision fp32" in (out / "results.md").read_text()
    with open(os.path.join(summary["runs"], "E2Net", "config.json")) as f:
        assert json.load(f)["arch_name"] == arch


def test_every_setting_that_changes_data_or_training_keys_the_runs_folder():
    from utils.demo import NOT_IN_RUN_KEY, apply_recipe, build_parser, runs_dir
    base = ["--out", "/o"]
    default = runs_dir(apply_recipe(build_parser().parse_args(base)))
    assert default.startswith("/o/resnet-3ep-seed0-")
    others = {runs_dir(apply_recipe(build_parser().parse_args(base + extra)))
              for extra in (["--epochs", "1"], ["--seed", "1"], ["--arch", "vgg_gap"], ["--variant", "control"],
                            ["--base_lr", "0.5"], ["--num_train", "100"], ["--steps_per_epoch", "7"], ["--size", "64"])}
    assert len(others) == 8 and default not in others
    same = {runs_dir(apply_recipe(build_parser().parse_args(base + extra)))
            for extra in (["--workers", "1"], ["--examples", "2"], ["--methods", "CAM"], ["--data_dir", "/d"])}
    assert same == {default} and set(NOT_IN_RUN_KEY) == {"workers", "data_dir", "out", "examples", "methods"}


def test_recipe_fills_only_unset_options():
    from utils.demo import apply_recipe, build_parser, train_options
    from utils.pretrain import zoo_file
    from utils.recipes import RECIPES
    default = apply_recipe(build_parser().parse_args([]))
    pretrained = RECIPES["pretrained"]["resnet"]
    assert default.arch == "resnet" and default.epochs == pretrained["epochs"] and default.variant == "calibrated"
    assert default.lr_decay_epochs is None and default.base_lr == 0.01 and default.methods == ["CAM", "ADL", "E2Net"]
    options = train_options(default, "ADL")
    assert options["pretrained"] == zoo_file("resnet", 0.25) and options["lr_decay_epochs"] is None  # released, scaled
    vgg = apply_recipe(build_parser().parse_args(["--arch", "vgg_gap"]))
    assert train_options(vgg, "CAM")["pretrained"] == zoo_file("vgg_gap", 0.25)
    RECIPES = RECIPES["scratch"]
    scratch = apply_recipe(build_parser().parse_args(["--from_scratch"]))
    assert scratch.epochs == 3 and scratch.lr_decay_epochs == [2] and "pretrained" not in train_options(scratch, "CAM")
    vgg = apply_recipe(build_parser().parse_args(["--arch", "vgg_gap", "--from_scratch"]))
    assert vgg.arch == "vgg_gap" and vgg.clip_gradients == RECIPES["vgg_gap"]["clip_gradients"] > 0
    assert vgg.lr_decay_epochs == RECIPES["vgg_gap"]["lr_decay_epochs"]
    resnet = apply_recipe(build_parser().parse_args(["--arch", "resnet", "--epochs", "3", "--clip_gradients", "0",
                                                     "--from_scratch"]))
    assert (resnet.epochs, resnet.clip_gradients, resnet.base_lr) == (3, 0.0, RECIPES["resnet"]["base_lr"])
    assert resnet.lr_decay_epochs == RECIPES["resnet"]["lr_decay_epochs"]
    help_text = " ".join(build_parser().format_help().split())
    assert f"resnet {RECIPES['resnet']['epochs']}, vgg_gap {RECIPES['vgg_gap']['epochs']}" in help_text
    assert "(default: None)" not in help_text


@pytest.mark.parametrize("arch", ["vgg_gap", "resnet"])
def test_each_backbone_recipe_reaches_the_training_options(arch):
    from utils.demo import apply_recipe, build_parser, train_options
    from utils.recipes import RECIPES
    RECIPES = RECIPES["scratch"]
    args = apply_recipe(build_parser().parse_args(["--arch", arch, "--from_scratch"]))
    for method in ("CAM", "E2Net"):
        options = train_options(args, method)
        assert options["arch_name"] == arch and options["method_name"] == method
        assert options["epoch"] == RECIPES[arch]["epochs"] and options["base_lr"] == RECIPES[arch]["base_lr"]
        assert options["lr_decay_epochs"] == RECIPES[arch]["lr_decay_epochs"]
        assert options["clip_gradients"] == RECIPES[arch]["clip_gradients"]
    # BN in the OSE convolutions: E2Net on ResNet only (as released)
    assert train_options(args, "E2Net").get("use_bn") == (1 if arch == "resnet" else None)
    assert "use_bn" not in train_options(args, "CAM")


def test_a_missing_pretrained_file_is_one_line_before_any_work(tmp_path, capsys):
    from utils.demo import main
    from utils.errors import exit_on_user_error
    code = exit_on_user_error("run_demo.sh", main, ["--width", "0.5", "--data_dir", str(tmp_path / "d"),
                                                     "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "resnet50_se_w0.5.npz" in err
    assert "python -m utils.pretrain --arch resnet --width 0.5" in err and not (tmp_path / "d").exists()
