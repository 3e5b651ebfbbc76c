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
                     {"top1_loc": 61.234, "top5_loc": 70.5, "gt_known_loc": 80.25, "top1_cls": 75.0})
    cam = fake_run(tmp_path, "cam_resnet_ilsvrc", {"method": "CAM", "dataset": "ILSVRC", "arch": "resnet"},
                   {"gt_known_loc": 60.0})
    out = tmp_path / "table.md"
    assert main([e2net, cam, "--out", str(out)]) == 0
    lines = table_lines(capsys.readouterr().out)
    cells = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines]
    assert cells[0] == ["Method", "Dataset", "Backbone", "Top-1 Loc", "Top-5 Loc", "GT-known Loc", "Top-1 Cls",
                        "Source"]
    cells = cells[1:]
    rows = {(c[0], c[1], c[2], c[-1].split(" (")[0]): c[3:7] for c in cells}
    adl = "Choe & Shim, CVPR 2019"
    assert rows[("ADL", "CUB", "VGG16-GAP", adl)] == ["52.36", "", "75.41", ""]
    assert rows[("ADL", "CUB", "ResNet50-SE", adl)] == ["62.29", "", "", ""]
    assert rows[("ADL", "ILSVRC", "VGG16-GAP", adl)] == ["44.92", "", "", ""]
    assert rows[("ADL", "ILSVRC", "ResNet50-SE", adl)] == ["48.53", "", "", ""]
    assert rows[("E2Net", "CUB", "VGG16-GAP", "this project")] == ["61.23", "70.50", "80.25", "75.00"]
    assert rows[("CAM", "ILSVRC", "ResNet50-SE", "this project")] == ["", "", "60.00", ""]
    order = [(c[1], c[2], c[0]) for c in cells]
    assert order.index(("CUB", "VGG16-GAP", "ADL")) < order.index(("CUB", "VGG16-GAP", "E2Net"))
    assert order.index(("CUB", "ResNet50-SE", "ADL")) < order.index(("ILSVRC", "VGG16-GAP", "ADL"))
    assert table_lines(out.read_text()) == lines


def test_missing_metrics_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path / "nothing")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("paper_table: error: ") and "nothing/result/metrics.json" in error
