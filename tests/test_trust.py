"""Nothing is ever unpickled: every ``np.load`` of the project keeps ``allow_pickle`` off, and
no module imports ``pickle`` (read from the source, so a new call is checked too)."""
import ast
import glob
import os

from conftest import REPO

SOURCES = [path for folder in ("utils", "models", "bench", "labels", "scripts") for path in
           glob.glob(os.path.join(REPO, folder, "**", "*.py"), recursive=True)] + \
    glob.glob(os.path.join(REPO, "*.py"))


def _calls(tree, name):
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == name and isinstance(node.func.value, ast.Name) and node.func.value.id in ("np",
                                                                                                          "numpy")]


def test_no_np_load_allows_pickle_and_nothing_imports_pickle():
    loads = 0
    for path in SOURCES:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for call in _calls(tree, "load"):
            loads += 1
            for keyword in call.keywords:
                assert keyword.arg != "allow_pickle" or (isinstance(keyword.value, ast.Constant)
                                                         and keyword.value.value is False), \
                    f"{path}:{call.lineno}: np.load with allow_pickle other than False"
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) else []
            assert not any((n or "").split(".")[0] in ("pickle", "cPickle", "dill") for n in names), \
                f"{path}:{node.lineno}: imports a pickle module"
    assert loads >= 3   # the scorer's CAMs, the pretrained npz, the demo's example arrays


def test_a_pickled_cam_is_refused_by_the_scorer(tmp_path, capsys):
    import numpy as np
    from utils.evaluation import scorer
    (tmp_path / "cams").mkdir()
    np.save(tmp_path / "cams" / "a.npy", np.array([{"not": "a CAM"}], dtype=object), allow_pickle=True)
    (tmp_path / "labels.txt").write_text("a.jpg\t0\t1\t1\t5\t5\n")
    assert scorer.main(["--cam_dir", str(tmp_path / "cams"), "--label_file", str(tmp_path / "labels.txt"),
                        "--out", str(tmp_path / "m.json")]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("scorer: error: ") and "a.npy: cannot read a .npy array" in line
