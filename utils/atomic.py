"""Every file the project writes is written whole or not at all (numpy/OpenCV, no TensorFlow).

Files: ``atomic_open(path)`` writes to a temporary name in the same folder
(``.<name>.<random>.tmp``), flushes and fsyncs it, then renames it over ``path``; on any
failure the temporary file is removed and ``path`` keeps what it held before.  The helpers
``write_text``, ``write_json``, ``write_bytes``, ``write_image``, ``write_npy``,
``write_npz`` and ``write_figure`` are this for one kind of content each.

Folders: ``atomic_folder(path)`` yields a temporary folder beside ``path``
(``.<name>.tmp-<pid>-<random>``) to build in, and renames it to ``path`` when the block
completes; a failure removes the temporary folder, so nothing is left at ``path`` and a
rerun is not refused.  ``publish_folder(temp, path, replace=...)`` is the rename itself.

An operating-system failure (a regular file in the way, a read-only folder, a full disk)
is an ``OutputError``: one line naming the path and the system's reason.
"""
import contextlib
import io
import json
import os
import shutil
import tempfile

from utils.errors import UserError

TEMP_SUFFIX = ".tmp"
_fdopen = os.fdopen   # (tests replace it by a file object that fills the disk)


class OutputError(UserError, OSError):
    """An output that could not be written (the message names the path and the reason)."""


def _reason(error):
    return error.strerror or str(error) if isinstance(error, OSError) else str(error)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()
_FOLDER_MODE = 0o777 & ~_umask()


def _parent(path):
    return os.path.dirname(os.path.abspath(path))


def make_folder(path):
    """``os.makedirs(path, exist_ok=True)``, a failure as an ``OutputError`` naming ``path``."""
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputError(f"cannot create the folder {path}: {_file_in_the_way(path)}") from None
    except OSError as error:
        raise OutputError(f"cannot create the folder {path}: {_reason(error)}") from None
    if not os.path.isdir(path):
        raise OutputError(f"cannot create the folder {path}: {_file_in_the_way(path)}")


def _file_in_the_way(path):
    """``"a file of that name is in the way"``, or ``"the file <ancestor> is in the way"``."""
    blocker = os.path.abspath(path)
    while not os.path.lexists(blocker) and os.path.dirname(blocker) != blocker:
        blocker = os.path.dirname(blocker)
    if blocker == os.path.abspath(path):
        return "a file of that name is in the way"
    return f"the file {blocker} is in the way"


def _remove(path):
    with contextlib.suppress(OSError):
        os.remove(path)


@contextlib.contextmanager
def atomic_open(path, mode="w", newline=None, encoding="utf-8", sync=True):
    """A file object writing to a temporary name beside ``path``, renamed to ``path`` on success
    (after an fsync; ``sync=False`` for bulk files whose set a later synced file marks complete)."""
    folder = _parent(path)
    make_folder(folder)
    if os.path.isdir(path):
        raise OutputError(f"cannot write {path}: a folder of that name is in the way")
    try:
        handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=TEMP_SUFFIX)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {_reason(error)}") from None
    try:
        os.fchmod(handle, _FILE_MODE)
        binary = "b" in mode
        with _fdopen(handle, "wb" if binary else "w", **({} if binary else
                                                          {"newline": newline, "encoding": encoding})) as f:
            yield f
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException as error:
        _remove(temp)
        if isinstance(error, OSError) and not isinstance(error, UserError):
            raise OutputError(f"cannot write {path}: {_reason(error)}") from None
        raise


def write_text(path, text, newline=None):
    with atomic_open(path, "w", newline=newline) as f:
        f.write(text)


def write_bytes(path, data, sync=True):
    with atomic_open(path, "wb", sync=sync) as f:
        f.write(bytes(data))


def write_json(path, value, **dump_options):
    """``value`` as JSON (``json.dump`` options, e.g. ``indent``, ``default``) and a final newline."""
    text = json.dumps(value, **dump_options) + "\n"   # serialised first: a bad value writes nothing
    write_text(path, text)


def write_image(path, image, params=(), sync=True):
    """An image encoded by OpenCV in the format of ``path``'s extension (``params``: cv2.imencode's)."""
    import cv2
    ok, data = cv2.imencode(os.path.splitext(path)[1] or ".png", image, list(params))
    if not ok:
        raise OutputError(f"cannot write {path}: OpenCV cannot encode this image")
    write_bytes(path, data.tobytes(), sync)


def write_npy(path, array):
    import numpy as np
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    write_bytes(path, buffer.getvalue())


def write_npz(path, **arrays):
    import numpy as np
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes(path, buffer.getvalue())


def write_figure(path, figure, format="png"):
    """A matplotlib ``Figure`` saved as ``format``."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=format)
    write_bytes(path, buffer.getvalue())


def temp_folder_beside(path):
    """A new empty folder ``.<name>.tmp-<pid>-<random>`` in ``path``'s parent (created)."""
    parent = _parent(path)
    make_folder(parent)
    try:
        return tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(os.path.normpath(path))}.tmp-{os.getpid()}-")
    except OSError as error:
        raise OutputError(f"cannot create a folder beside {path}: {_reason(error)}") from None


def publish_folder(temp, path, replace=False):
    """Rename the finished folder ``temp`` to ``path``.  With ``replace`` an existing ``path``
    is swapped out first and removed after; without it an existing ``path`` is refused."""
    os.chmod(temp, _FOLDER_MODE)
    old = None
    try:
        if os.path.lexists(path):
            if not replace:
                raise OutputError(f"{path} exists; it is never written over")
            old = temp + ".old"
            os.rename(path, old)
        os.rename(temp, path)
    except OSError as error:
        if old is not None and not os.path.lexists(path):
            os.rename(old, path)
        raise OutputError(f"cannot write {path}: {_reason(error)}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(path, replace=False):
    """Build a folder under a temporary name (yielded) and rename it to ``path`` when complete;
    on failure the temporary folder is removed and ``path`` is untouched."""
    if os.path.lexists(path) and not replace:
        raise OutputError(f"{path} exists; it is never written over")
    temp = temp_folder_beside(path)
    try:
        yield temp
        publish_folder(temp, path, replace)
    except BaseException as error:
        shutil.rmtree(temp, ignore_errors=True)
        if isinstance(error, OutputError):   # name the folder, not its temporary name
            raise OutputError(str(error).replace(temp, os.path.abspath(path))) from None
        if isinstance(error, OSError) and not isinstance(error, UserError):
            raise OutputError(f"cannot write {path}: {_reason(error)}") from None
        raise
