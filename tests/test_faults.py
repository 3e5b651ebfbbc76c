"""Faults must not lose work: verified checkpoints and resume fallback, failed saves, the
log-folder lock, kept evaluation results, Ctrl-C and a clean process exit."""
import errno
import glob
import os
import shutil
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO, new_session
from test_training import train_command

pytestmark = pytest.mark.duration(110)  # seconds, for the scheduler (conftest.py)

TINY = dict(num_classes=4, num_train=64, num_val=16, size=64, seed=5)
EPOCHS, STEPS = 3, 2   # checkpoints model-2, model-4, model-6


def run_train(cmd, timeout=300):
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def no_traceback(result):
    return "Traceback" not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def trained_run(data_dir, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("runs") / "cam"
    result = run_train(train_command(data_dir, log_dir, epochs=EPOCHS, steps=STEPS, arch="vgg_gap"))
    assert result.returncode == 0, result.stderr[-3000:]
    return log_dir


def copy_run(run, dest):
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("result", "train.lock"))
    return dest


def data_file(prefix):
    (path,) = glob.glob(f"{prefix}.data-*")
    return path


def truncate(path, keep=0.5):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(int(size * keep))


# ----------------------------------------------------------------------------- verification

def test_verify_checkpoint_names_each_fault(trained_run, tmp_path):
    from utils.training.checkpoints import CheckpointError, verify_checkpoint
    run = copy_run(trained_run, tmp_path / "run")
    assert verify_checkpoint(str(run / "model-6.index")) == str(run / "model-6")
    truncate(data_file(run / "model-6"))
    with pytest.raises(CheckpointError, match=r"model-6 is unusable: Read less bytes than requested"):
        verify_checkpoint(str(run / "model-6"))
    os.remove(run / "model-4.index")
    with pytest.raises(CheckpointError, match=r"model-4 is unusable: its index file .*model-4.index is missing"):
        verify_checkpoint(str(run / "model-4"))
    os.remove(data_file(run / "model-2"))
    with pytest.raises(CheckpointError, match=r"model-2 is unusable: no data file"):
        verify_checkpoint(str(run / "model-2"))
    with open(data_file(run / "min-val-error-top1"), "r+b") as f:   # same size, one flipped byte
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(CheckpointError, match=r"min-val-error-top1 is unusable: .*Checksum does not match"):
        verify_checkpoint(str(run / "min-val-error-top1"))


def test_which_checkpoint_each_use_takes(trained_run, tmp_path):
    """Resume: the newest that restores; evaluation: --load, else the best, else the last saved."""
    from types import SimpleNamespace
    from utils.training.checkpoints import (CheckpointError, checkpoint_to_evaluate, last_saved_checkpoint,
                                            newest_restorable_checkpoint)
    run = copy_run(trained_run, tmp_path / "run")
    args = SimpleNamespace(load=None, log_dir=str(run))
    assert checkpoint_to_evaluate(args) == str(run / "min-val-error-top1")
    assert checkpoint_to_evaluate(SimpleNamespace(load="x/model-2", log_dir=str(run))) == "x/model-2"
    for path in glob.glob(str(run / "min-val-error-top1.*")):
        os.remove(path)
    truncate(data_file(run / "model-6"))
    assert last_saved_checkpoint(str(run)) == str(run / "model-6") == checkpoint_to_evaluate(args)
    assert newest_restorable_checkpoint(str(run)) == (str(run / "model-4"), 4)
    empty = SimpleNamespace(load=None, log_dir=str(tmp_path / "empty"))
    assert last_saved_checkpoint(empty.log_dir) is None and newest_restorable_checkpoint(empty.log_dir) is None
    with pytest.raises(CheckpointError, match="no checkpoint to evaluate in .*empty"):
        checkpoint_to_evaluate(empty)


def test_resume_falls_back_to_the_newest_checkpoint_that_restores(data_dir, trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path / "run")
    truncate(data_file(run / "model-6"))          # a save cut short by a full disk
    os.remove(run / "model-4.index")              # an index lost
    result = run_train(train_command(data_dir, run, epochs=EPOCHS, steps=STEPS, arch="vgg_gap"))
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "skipping model-6 for resume: checkpoint" in log and "model-6 is unusable: Read less bytes than requested" in log
    assert "skipping model-4 for resume: checkpoint" in log and "model-4.index is missing" in log
    assert f"Resuming from {run / 'model-2'} (global step 2)" in log
    assert "Start Epoch 2 " in log and "Start Epoch 1 " not in log
    from utils.training.checkpoints import verify_checkpoint
    verify_checkpoint(str(run / "model-6"))       # rewritten, and good this time


# ----------------------------------------------------------------------------- failed saves

def test_a_failed_copy_leaves_the_previous_best_checkpoint_intact(trained_run, tmp_path, monkeypatch):
    """A disk that fills up half-way through MinSaver's copy: the old best stays, no debris."""
    from utils.compat import tf
    from utils.training import checkpoints
    run = copy_run(trained_run, tmp_path / "run")
    best = run / "min-val-error-top1"
    before = {p: open(p, "rb").read() for p in checkpoints.checkpoint_files(str(best))}

    def full_disk_copy(src, dst, overwrite=False):
        data = open(src, "rb").read()
        with open(dst, "wb") as f:
            f.write(data[:len(data) // 2])
        raise tf.errors.ResourceExhaustedError(None, None, f"{dst}; No space left on device")

    monkeypatch.setattr(tf.io.gfile, "copy", full_disk_copy)
    (run / ".min-val-error-top1.tmp-1.index").write_text("left by a killed run")
    saver = checkpoints.VerifiedMinSaver("val-error-top1", str(run))
    saver.best = (4, 0.5)
    with pytest.raises(checkpoints.CheckpointSaveError) as error:
        saver._save()
    message = str(error.value)
    assert "could not save the best checkpoint" in message and "No space left on device" in message
    assert f"the previous best {best} is intact" in message and "\n" not in message
    assert {p: open(p, "rb").read() for p in checkpoints.checkpoint_files(str(best))} == before
    checkpoints.verify_checkpoint(str(best))
    assert not glob.glob(str(run / ".min-val-error-top1*"))


def test_a_copy_that_reads_back_wrong_is_not_published(trained_run, tmp_path, monkeypatch):
    """A copy that 'succeeds' but is truncated (a lying disk) fails the check before the rename."""
    from utils.compat import tf
    from utils.training import checkpoints
    run = copy_run(trained_run, tmp_path / "run")
    best = run / "min-val-error-top1"
    before = open(data_file(best), "rb").read()
    real_copy = tf.io.gfile.copy

    def truncating_copy(src, dst, overwrite=False):
        real_copy(src, dst, overwrite)
        if ".data-" in dst:
            truncate(dst)

    monkeypatch.setattr(tf.io.gfile, "copy", truncating_copy)
    saver = checkpoints.VerifiedMinSaver("val-error-top1", str(run))
    saver.best = (4, 0.5)
    with pytest.raises(checkpoints.CheckpointSaveError, match="is unusable"):
        saver._save()
    assert open(data_file(best), "rb").read() == before
    monkeypatch.setattr(tf.io.gfile, "copy", real_copy)
    saver._save()                                     # the same save on a healthy disk publishes
    assert open(data_file(best), "rb").read() == open(data_file(run / "model-4"), "rb").read()
    assert not glob.glob(str(run / ".min-val-error-top1*"))


def test_a_failed_model_save_keeps_the_checkpoint_index_on_the_previous_one(tmp_path, monkeypatch):
    from utils.compat import tf
    from utils.training import checkpoints
    with tf.Graph().as_default():
        tf.get_variable("w", [1000])
        step = tf.train.get_or_create_global_step()
        saver = checkpoints.VerifiedModelSaver(max_to_keep=3, checkpoint_dir=str(tmp_path))
        saver._setup_graph()
        with new_session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(step.assign(3))
            saver._trigger()
            assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "model-3")
            real_save = saver.saver.save

            def save_cut_short(*args, **kwargs):   # the data file ends early: a full disk
                path = real_save(*args, **kwargs)
                truncate(data_file(path))
                return path

            monkeypatch.setattr(saver.saver, "save", save_cut_short)
            sess.run(step.assign(7))
            with pytest.raises(checkpoints.CheckpointSaveError) as error:
                saver._trigger()
    message = str(error.value)
    assert f"could not save checkpoint {tmp_path / 'model-7'}" in message
    assert f"the previous checkpoint {tmp_path / 'model-3'} is intact" in message
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "model-3")
    assert not glob.glob(str(tmp_path / "model-7*"))
    checkpoints.verify_checkpoint(str(tmp_path / "model-3"))


# ----------------------------------------------------------------------------- the lock

def test_a_second_trainer_on_a_locked_log_dir_exits_with_the_lock_message(data_dir, tmp_path):
    import socket
    from utils.training.run_lock import RunLock
    log_dir = tmp_path / "locked"
    with RunLock(str(log_dir)):
        result = run_train(train_command(data_dir, log_dir))
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"train.py: error: {log_dir} is in use by another training "
                           f"(pid {os.getpid()} on {socket.gethostname()}, since ")
    assert no_traceback(result)
    assert not glob.glob(str(log_dir / "model-*")) and not (log_dir / "config.json").exists()


def test_the_lock_of_a_killed_process_does_not_block(tmp_path):
    from utils.training.run_lock import LOCK_FILE, RunLock, RunLockedError
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from utils.training.run_lock import RunLock; "
         f"lock = RunLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); time.sleep(600)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"pid {holder.pid} on "):
            RunLock(str(tmp_path)).acquire()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert f"pid {holder.pid} " in (tmp_path / LOCK_FILE).read_text()   # the stale file stays ...
    with RunLock(str(tmp_path)):                                        # ... and does not block
        assert f"pid {os.getpid()} " in (tmp_path / LOCK_FILE).read_text()


# ----------------------------------------------------------------------------- results

def test_result_folders_are_numbered_and_the_newest_is_found(tmp_path):
    from utils.evaluation.results import latest_result_dir, mark_latest, new_result_dir
    legacy = tmp_path / "result"
    legacy.mkdir()
    (legacy / "metrics.json").write_text("{}")
    assert latest_result_dir(str(tmp_path)) == str(legacy)            # a run evaluated before numbering
    first = new_result_dir(str(tmp_path), str(tmp_path / "min-val-error-top1"))
    second = new_result_dir(str(tmp_path), "/elsewhere/model-40.index".rsplit(".", 1)[0])
    assert (os.path.basename(first), os.path.basename(second)) == ("001-min-val-error-top1", "002-model-40")
    assert latest_result_dir(str(tmp_path)) == str(legacy)            # neither finished yet
    (tmp_path / "result" / "002-model-40" / "metrics.json").write_text("{}")
    assert latest_result_dir(str(tmp_path)) == second                 # numbered, without a link
    (tmp_path / "result" / "001-min-val-error-top1" / "metrics.json").write_text("{}")
    mark_latest(first)
    assert os.readlink(tmp_path / "result" / "latest") == "001-min-val-error-top1"
    assert latest_result_dir(str(tmp_path)) == first                  # the link wins
    assert new_result_dir(str(tmp_path), "model-50").endswith("003-model-50")


def evaluate_in_process(data_dir, run, capfd, *extra):
    """``train.py --evaluate`` in this process (no second TensorFlow start-up): (code, out, err)."""
    import train
    code = train.main(train_command(data_dir, run, "--evaluate", "--number_of_val", "8",
                                    "--number_of_examples", "1", *extra, epochs=EPOCHS, steps=STEPS,
                                    arch="vgg_gap")[2:])
    out, err = capfd.readouterr()
    return code, out, err


def test_evaluating_twice_keeps_both_results(data_dir, trained_run, tmp_path, capfd):
    from utils.evaluation.paper_table import load_run
    from utils.evaluation.results import latest_result_dir
    run = copy_run(trained_run, tmp_path / "run")
    outputs = []
    for load in ([], ["--load", str(run / "model-4")]):
        code, out, err = evaluate_in_process(data_dir, run, capfd, *load)
        assert code == 0, err[-3000:]
        outputs.append(out + err)
    first, second = run / "result" / "001-min-val-error-top1", run / "result" / "002-model-4"
    assert f"Results written to {first} " in outputs[0] and f"Results written to {second} " in outputs[1]
    for folder in (first, second):
        assert (folder / "metrics.json").is_file() and (folder / "predictions.tsv").is_file()
    assert os.readlink(run / "result" / "latest") == "002-model-4"
    assert latest_result_dir(str(run)) == str(second)
    assert load_run(str(run))["method"] == "CAM"


def test_evaluating_a_broken_best_checkpoint_is_one_line(data_dir, trained_run, tmp_path, capfd):
    run = copy_run(trained_run, tmp_path / "run")
    truncate(data_file(run / "min-val-error-top1"))
    code, out, err = evaluate_in_process(data_dir, run, capfd)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith(
        f"train.py: error: checkpoint {run / 'min-val-error-top1'} is unusable: Read less bytes")
    assert "Traceback" not in out + err and not (run / "result").exists()


# ----------------------------------------------------------------------------- Ctrl-C and exit

def test_ctrl_c_prints_the_resume_command_and_exits_130(data_dir, tmp_path):
    log_dir = tmp_path / "interrupted"
    cmd = train_command(data_dir, log_dir, epochs=100, steps=STEPS, arch="vgg_gap")
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines = []
    try:
        for line in proc.stdout:             # wait for the event: the first epoch's steps are done
            lines.append(line)
            if "Epoch 1 (global_step 2) finished" in line:
                os.killpg(proc.pid, signal.SIGINT)    # as a terminal does: the whole process group
                break
        lines += proc.stdout.readlines()
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    output = "".join(lines)
    assert code == 130, output[-3000:]
    last = output.strip().splitlines()[-1]
    assert last.startswith("train.py: interrupted (Ctrl-C); to resume from the last checkpoint, run: ")
    assert last.endswith(" ".join(cmd[2:])) and "train.py" in last   # the same flags
    assert f"run: {cmd[0]} " in last                                 # the interpreter that ran it, not "python"
    assert "Traceback" not in output
    assert len(output[output.index("Detected Ctrl-C"):].splitlines()) < 12


def test_a_huge_image_does_not_abort_the_process_at_exit(data_dir, tmp_path):
    """The input thread is decoding a 6000x6000 JPEG (seconds) when training ends: it must be
    stopped before Python finalises, or the process dies with SIGABRT (exit 134)."""
    noise = np.random.RandomState(0).randint(0, 256, (6000, 6000, 3), dtype=np.uint8)   # slow to decode
    assert cv2.imwrite(str(tmp_path / "huge.jpg"), noise, [cv2.IMWRITE_JPEG_QUALITY, 90])
    del noise
    os.replace(tmp_path / "huge.jpg", data_dir / "SYNTH" / "images" / "huge.jpg")
    label_dir = tmp_path / "labels"
    (label_dir / "SYNTH").mkdir(parents=True)
    train_lines = (data_dir / "SYNTH" / "train.txt").read_text().splitlines()[:32]
    (label_dir / "SYNTH" / "train.txt").write_text("\n".join(train_lines + ["huge.jpg\t0\t10\t10\t5000\t5000"]) + "\n")
    for name in ("val.txt", "words.txt"):
        shutil.copy(data_dir / "SYNTH" / name, label_dir / "SYNTH" / name)
    cmd = train_command(data_dir, tmp_path / "huge", "--label_dir", str(label_dir), "--number_of_val", "8",
                        epochs=2, steps=2, arch="vgg_gap")
    cmd[cmd.index("--workers") + 1] = "1"
    try:
        result = run_train(cmd)
    finally:
        os.remove(data_dir / "SYNTH" / "images" / "huge.jpg")   # 32 MB
    assert result.returncode == 0, result.stderr[-3000:]   # not -6 (SIGABRT)
    assert "terminate called" not in result.stderr
    assert "[EnqueueThread] Thread EnqueueThread" in result.stdout + result.stderr   # it left, then we exited


def test_a_log_dir_that_cannot_be_created_is_one_error(tmp_path):
    from utils.training.run_lock import LogDirError, RunLock
    (tmp_path / "file").write_text("")
    with pytest.raises(LogDirError, match=r"cannot use --log_dir .*file/run: Not a directory"):
        RunLock(str(tmp_path / "file" / "run")).acquire()


# ----------------------------------------------------------------------------- whole or nothing

class FullDisk:
    """A file object whose first write stops half-way with ENOSPC, as on a full file system."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        self.f.write(data[:len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@pytest.fixture
def full_disk(monkeypatch):
    from utils import atomic
    real = atomic._fdopen
    monkeypatch.setattr(atomic, "_fdopen", lambda *args, **kwargs: FullDisk(real(*args, **kwargs)))


def _writers():
    from matplotlib.figure import Figure
    from utils import atomic
    from utils.data.labels import LabelEntry, write_label_list
    from utils.data.metadata import write_metadata
    from utils.evaluation.report import write_metrics_json
    entries = [LabelEntry(f"a {i}.jpg", i % 2, np.array([[1, 2, 30, 40]], np.float32)) for i in range(200)]
    figure = Figure(figsize=(2, 2))
    figure.add_subplot().plot([0, 1], [1, 0])
    return {
        "text": lambda p: atomic.write_text(p, "x" * 5000),
        "json": lambda p: atomic.write_json(p, {"values": list(range(2000))}),
        "npy": lambda p: atomic.write_npy(p, np.ones((60, 60), np.float32)),
        "png": lambda p: atomic.write_image(p + ".png", np.full((60, 60, 3), 128, np.uint8)),
        "figure": lambda p: atomic.write_figure(p, figure),
        "label-list": lambda p: write_label_list(p, entries),
        "metrics-json": lambda p: write_metrics_json(p, {"gt_known_loc": 50.0, "curve": list(range(500))}, {}),
        "metadata": lambda p: write_metadata(p, entries, {e.path: (64, 64) for e in entries}),
    }


WRITERS = ["text", "json", "npy", "png", "figure", "label-list", "metrics-json", "metadata"]


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("fault", ["full-disk", "file-in-the-way"])
def test_a_failed_write_is_one_line_naming_the_path_and_leaves_nothing_partial(writer, fault, tmp_path, request):
    from utils.atomic import OutputError
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "earlier.txt").write_text("kept")
    target = folder / "target"
    if fault == "full-disk":
        request.getfixturevalue("full_disk")
        words = "No space left on device"
    else:
        (folder / "blocker").write_text("a regular file")
        target = folder / "blocker" / "target"
        words = "is in the way"
    with pytest.raises(OutputError) as error:
        _writers()[writer](str(target))
    message = str(error.value)
    assert "\n" not in message and words in message and str(folder) in message, message
    left = sorted(p.name for p in folder.rglob("*") if p.is_file())
    assert left == (["earlier.txt"] if fault == "full-disk" else ["blocker", "earlier.txt"]), left


@pytest.mark.parametrize("writer", ["text", "json", "label-list"])
def test_a_failed_rewrite_keeps_the_previous_file(writer, tmp_path, full_disk):
    from utils.atomic import OutputError
    target = tmp_path / "target"
    target.write_text("the previous, complete file\n")
    with pytest.raises(OutputError):
        _writers()[writer](str(target))
    assert target.read_text() == "the previous, complete file\n" and os.listdir(tmp_path) == ["target"]


def test_a_folder_is_published_whole_or_not_at_all(tmp_path):
    from utils.atomic import OutputError, atomic_folder, write_text
    out = tmp_path / "published"
    with pytest.raises(RuntimeError):
        with atomic_folder(str(out)) as folder:
            write_text(os.path.join(folder, "a.txt"), "a")
            raise RuntimeError("the export failed half-way")
    assert os.listdir(tmp_path) == []                     # nothing left: a rerun is not refused
    with atomic_folder(str(out)) as folder:
        write_text(os.path.join(folder, "a.txt"), "a")
    assert os.listdir(out) == ["a.txt"] and os.listdir(tmp_path) == ["published"]
    with pytest.raises(OutputError, match="exists; it is never written over"):
        with atomic_folder(str(out)):
            pass


def test_the_graph_file_at_training_start_is_whole_or_absent(tmp_path, full_disk):
    from utils.compat import tf
    from utils.training import checkpoints
    with tf.Graph().as_default() as graph:
        tf.get_variable("w", [10])
        tf.train.get_or_create_global_step()
        saver = checkpoints.VerifiedModelSaver(max_to_keep=3, checkpoint_dir=str(tmp_path))
        saver._setup_graph()
        saver.graph = graph
        with pytest.raises(checkpoints.CheckpointSaveError) as error:
            saver._before_train()
    assert "No space left on device" in str(error.value) and "\n" not in str(error.value)
    assert os.listdir(tmp_path) == []


def test_a_full_disk_during_evaluate_is_one_line_and_leaves_no_result(data_dir, trained_run, tmp_path, capfd,
                                                                      full_disk):
    run = copy_run(trained_run, tmp_path / "run")
    code, out, err = evaluate_in_process(data_dir, run, capfd)
    assert code == 2 and "Traceback" not in out + err
    line = err.strip().splitlines()[-1]
    assert line.startswith("train.py: error: cannot write ") and "No space left on device" in line
    assert str(run / "result" / "001-min-val-error-top1") in line
    assert os.listdir(run / "result") == []              # no partial folder, no temporary one


# ----------------------------------------------------------------------------- the record of a run

def record_bytes(run):
    """config.json and every metrics.json of a run folder, as bytes."""
    files = [run / "config.json"] + sorted(run.glob("result/*/metrics.json"))
    return {str(p.relative_to(run)): p.read_bytes() for p in files}


@pytest.mark.parametrize("flag, value", [("--base_lr", "0.5"), ("--seed", "7"), ("--epoch", "2"),
                                         ("--steps_per_epoch", "5"), ("--batch", "8")])
def test_a_rerun_with_another_training_flag_is_one_line_and_rewrites_nothing(data_dir, trained_run, tmp_path, capfd,
                                                                              flag, value):
    import train
    run = copy_run(trained_run, tmp_path / "run")
    shutil.copytree(trained_run / "result", run / "result", symlinks=True)
    before = record_bytes(run)
    assert len(before) >= 2    # config.json and the evaluation that ended the training
    cmd = train_command(data_dir, run, epochs=EPOCHS, steps=STEPS, arch="vgg_gap")[2:]
    if flag in cmd:
        cmd[cmd.index(flag) + 1] = value
    else:
        cmd += [flag, value]
    assert train.main(cmd) == 2
    out, err = capfd.readouterr()
    line = err.strip().splitlines()[-1]
    assert "Traceback" not in out + err and f"{flag.lstrip('-').replace('batch', 'batch_size')} = " in line
    assert "contradicts the run's" in line and "a run's training flags are fixed at its first step" in line
    assert record_bytes(run) == before


def test_a_bare_rerun_of_a_finished_run_keeps_its_recipe_and_a_larger_epoch_extends_it(data_dir, trained_run,
                                                                                      tmp_path, capfd):
    import json
    run = copy_run(trained_run, tmp_path / "run")
    before = (run / "config.json").read_bytes()
    bare = [sys.executable, "train.py", "--log_dir", str(run), "--data_dir", str(data_dir), "--workers", "0",
            "--number_of_val", "4"]
    result = run_train(bare)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "already holds a finished run (3 epochs); nothing to train" in result.stdout + result.stderr
    assert (run / "config.json").read_bytes() == before           # not a release-length run, nothing rewritten
    result = run_train(bare + ["--epoch", "4"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Start Epoch 4 " in result.stdout + result.stderr and "Start Epoch 3 " not in result.stdout + result.stderr
    record = json.loads((run / "config.json").read_text())
    assert (record["epoch"], record["steps_per_epoch"], record["seed"]) == (4, STEPS, 1)
    # the milestones the 3 epochs were trained with (scaled to 3 epochs: 1, 2), not rescaled to 4
    assert record["lr_decay_epochs"] == [1, 2]


def test_evaluate_records_the_run_s_own_training_settings(data_dir, trained_run, tmp_path, capfd):
    import json
    import train
    run = copy_run(trained_run, tmp_path / "run")
    assert train.main(["--log_dir", str(run), "--evaluate", "--data_dir", str(data_dir), "--workers", "0",
                       "--number_of_val", "4"]) == 0
    capfd.readouterr()
    config = json.loads((run / "result" / "latest" / "metrics.json").read_text())["config"]
    trained = json.loads((run / "config.json").read_text())
    for key in ("epoch", "seed", "steps_per_epoch", "batch_size", "base_lr", "lr_decay_epochs", "arch_name"):
        assert config[key] == trained[key], key
    assert (config["epoch"], config["seed"], config["steps_per_epoch"]) == (EPOCHS, 1, STEPS)


def test_a_run_that_fails_before_its_first_step_records_nothing(data_dir, tmp_path):
    run = tmp_path / "run"
    bad_npz = tmp_path / "other.npz"
    np.savez(bad_npz, **{"fc6/W": np.zeros((2, 2), np.float32)})   # refused when the graph is initialised
    result = run_train(train_command(data_dir, run, "--pretrained", str(bad_npz), epochs=1, steps=1, arch="vgg_gap"))
    assert result.returncode == 2 and "none of its keys names a variable of this graph" in result.stderr
    assert not (run / "config.json").exists()
    result = run_train(train_command(data_dir, run, "--number_of_val", "4", epochs=1, steps=1, arch="resnet"))
    assert result.returncode == 0, result.stderr[-3000:]                 # nothing pinned the first model
