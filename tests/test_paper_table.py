"""The paper's table from run folders, next to the published ADL numbers."""
import json

from utils.evaluation.paper_table import main


def fake_run(root, name, config, metrics):
    result = root / name / "result"
    result.mkdir(parents=True)
    (result / "metrics.json").write_text(json.dumps({"config": config, "metrics": metrics}))
    return str(root / name)


def table_lines(output):
    return [line for line in output.splitlines() if line.startswith("| ")]


def test_table_rows_and_published_numbers(tmp_path, capsys):
    e2net = fake_run(tmp_path, "e2net_vgg_cub", {"method": "e2net", "dataset": "CUB", "arch": "vgg_gap"},
                     {"top1_loc": 61.234, "top5_loc": 70.5, "gt_known_loc": 80.25, "top1_cls": 75.0,
                      "maxboxacc_v2": 64.444, "pxap": 58.125})
    cam = fake_run(tmp_path, "cam_resnet_ilsvrc", {"method": "CAM", "dataset": "ILSVRC", "arch": "resnet"},
                   {"gt_known_loc": 60.0})
    out = tmp_path / "table.md"
    assert main([e2net, cam, "--out", str(out)]) == 0
    lines = table_lines(capsys.readouterr().out)
    cells = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines]
    assert cells[0] == ["Method", "Dataset", "Backbone", "Top-1 Loc", "Top-5 Loc", "GT-known Loc", "Top-1 Cls",
                        "MaxBoxAccV2", "PxAP", "Source", "Setting"]
    cells = cells[1:]
    rows = {(c[0], c[1], c[2], c[-2].split(" (")[0]): c[3:7] for c in cells}
    adl = "Choe & Shim, CVPR 2019"
    assert rows[("ADL", "CUB", "VGG16-GAP", adl)] == ["52.36", "", "75.41", ""]
    assert rows[("ADL", "CUB", "ResNet50-SE", adl)] == ["62.29", "", "", ""]
    assert rows[("ADL", "ILSVRC", "VGG16-GAP", adl)] == ["44.92", "", "", ""]
    assert rows[("ADL", "ILSVRC", "ResNet50-SE", adl)] == ["48.53", "", "", ""]
    assert rows[("E2Net", "CUB", "VGG16-GAP", "this project")] == ["61.23", "70.50", "80.25", "75.00"]
    assert rows[("CAM", "ILSVRC", "ResNet50-SE", "this project")] == ["", "", "60.00", ""]
    new_columns = {(c[0], c[1], c[2]): c[7:9] for c in cells if c[-2].startswith("this project")}
    assert new_columns == {("E2Net", "CUB", "VGG16-GAP"): ["64.44", "58.12"], ("CAM", "ILSVRC", "ResNet50-SE"): ["", ""]}
    order = [(c[1], c[2], c[0]) for c in cells]
    assert order.index(("CUB", "VGG16-GAP", "ADL")) < order.index(("CUB", "VGG16-GAP", "E2Net"))
    assert order.index(("CUB", "ResNet50-SE", "ADL")) < order.index(("ILSVRC", "VGG16-GAP", "ADL"))
    assert table_lines(out.read_text()) == lines


def test_missing_metrics_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path / "nothing")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("paper_table: error: ") and "nothing/result/metrics.json" in error


def test_runs_off_the_published_setting_are_marked(tmp_path, capsys):
    metrics = {"top1_loc": 10.0}
    published = fake_run(tmp_path, "full", {"method": "E2Net", "dataset": "CUB", "arch": "vgg_gap",
                                            "width_multiplier": 1.0, "final_size": 224}, metrics)
    small = fake_run(tmp_path, "small", {"method": "E2Net", "dataset": "SYNTH", "arch": "vgg_gap",
                                         "width_multiplier": 0.125, "final_size": 32}, metrics)
    narrow = fake_run(tmp_path, "narrow", {"method": "CAM", "dataset": "ILSVRC", "arch": "resnet",
                                           "width_multiplier": 0.25, "final_size": 224}, metrics)
    assert main([published, small, narrow]) == 0
    cells = [[cell.strip() for cell in line.split("|")[1:-1]] for line in table_lines(capsys.readouterr().out)]
    setting = {c[-2].split(" (")[1].rstrip(")"): c[-1] for c in cells[1:] if c[-2].startswith("this project")}
    assert setting == {published: "", small: "NOT the published setting: width 0.125, 32 px, SYNTH",
                       narrow: "NOT the published setting: width 0.25"}
