"""One training run per log folder: an exclusive ``fcntl.flock`` on ``<log_dir>/train.lock``.

The lock belongs to the open file, so the kernel releases it when its process ends in any
way (exit, crash, ``kill -9``): a lock file left by a killed run never blocks the resume.
The file holds the holder's pid, host and start time, which a refused second trainer
prints.  (``flock`` is local to a machine; on NFS, Linux emulates it with POSIX locks,
which the server arbitrates.)

Who takes it: every process that trains into a log folder (one GPU, several towers, each
distributed worker in its own folder).  Not taken: parameter servers (they write nothing)
and ``--evaluate`` (it only reads checkpoints and writes a fresh result folder of its own,
``utils.evaluation.results``), so a finished or running training can be evaluated at any time.
"""
import fcntl
import os
import socket
import time

from utils.errors import UserError

LOCK_FILE = "train.lock"


class LogDirError(UserError, RuntimeError):
    """The log folder cannot be created or written."""


class RunLockedError(LogDirError):
    """Another process is training into the same log folder."""


class RunLock:
    """``with RunLock(log_dir):`` holds the folder's training lock (or raises ``RunLockedError``)."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.path = os.path.join(log_dir, LOCK_FILE)
        self._file = None

    def acquire(self):
        try:
            os.makedirs(self.log_dir, exist_ok=True)
            handle = open(self.path, "a+")
        except OSError as e:
            raise LogDirError(f"cannot use --log_dir {self.log_dir}: {e.strerror} ({e.filename})") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunLockedError(f"{self.log_dir} is in use by another training ({holder}); wait for it to end, "
                                 f"stop it, or pass another --log_dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n")
        handle.flush()
        self._file = handle
        return self

    def release(self):
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
