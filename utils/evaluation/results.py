"""Where evaluation results go: one new folder per evaluation, never overwriting an earlier one.

``<log_dir>/result/<NNN>-<checkpoint name>/`` (``001-min-val-error-top1``,
``002-model-640``, ...): the number grows with each evaluation of the run; the folder is
created with ``os.mkdir`` (exclusive), so two evaluations running at once get different
folders.  ``<log_dir>/result/latest`` is a symlink to the newest *finished* one (replaced
atomically when an evaluation has written everything).  Tools read results through
``latest_result_dir``; a run evaluated before this layout (``result/metrics.json`` directly)
still reads.  TensorFlow-free.
"""
import contextlib
import os
import re
import shutil

from utils.atomic import OutputError, make_folder, temp_folder_beside

RESULT_ROOT = "result"
LATEST = "latest"
_NUMBERED = re.compile(r"^(\d{3,})-")


def _numbers(root):
    names = os.listdir(root) if os.path.isdir(root) else []
    return [int(m.group(1)) for m in map(_NUMBERED.match, names) if m]


def new_result_dir(log_dir, checkpoint):
    """Create and return a fresh ``result/<NNN>-<checkpoint name>`` folder."""
    root = os.path.join(log_dir, RESULT_ROOT)
    make_folder(root)
    name = os.path.basename(os.path.normpath(checkpoint)) or "checkpoint"
    number = max(_numbers(root), default=0) + 1
    while True:
        path = os.path.join(root, f"{number:03d}-{name}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            number += 1
        except OSError as error:
            raise OutputError(f"cannot create the result folder {path}: {error.strerror}") from None


@contextlib.contextmanager
def building(result_dir):
    """Yield a temporary folder beside the (empty, reserved) ``result_dir`` to write the result
    in; when the block completes it is renamed to ``result_dir``.  A failure removes both, so a
    result folder is always complete or absent."""
    temp = temp_folder_beside(result_dir)
    try:
        yield temp
        os.rename(temp, result_dir)          # over the empty reserved folder
    except BaseException as error:
        shutil.rmtree(temp, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(result_dir)
        if isinstance(error, OutputError):   # name the result folder, not its temporary name
            raise OutputError(str(error).replace(temp, result_dir)) from None
        if isinstance(error, OSError):
            raise OutputError(f"cannot write the result folder {result_dir}: {error.strerror or error}") from None
        raise


def mark_latest(result_dir):
    """Point ``result/latest`` at ``result_dir`` (atomic replace of the symlink)."""
    root = os.path.dirname(os.path.abspath(result_dir))
    temp = os.path.join(root, f".{LATEST}.{os.getpid()}")
    if os.path.lexists(temp):
        os.remove(temp)
    os.symlink(os.path.basename(result_dir), temp)
    os.replace(temp, os.path.join(root, LATEST))


def latest_result_dir(log_dir):
    """The newest finished result folder of a run: ``result/latest``, else the highest-numbered
    folder holding a metrics.json, else ``result/`` itself (the layout before numbering)."""
    root = os.path.join(log_dir, RESULT_ROOT)
    latest = os.path.join(root, LATEST)
    if os.path.isfile(os.path.join(latest, "metrics.json")):
        return os.path.realpath(latest)
    for number in sorted(_numbers(root), reverse=True):
        for name in os.listdir(root):
            path = os.path.join(root, name)
            if name.startswith(f"{number:03d}-") and os.path.isfile(os.path.join(path, "metrics.json")):
                return path
    return root
