"""One run per output folder: an advisory lock file beside the folder, holding the owner's pid.

The lock is taken with the operating system's file locking (``fcntl.flock`` on POSIX,
``msvcrt.locking`` on Windows), so the kernel releases it when the owning process dies: a lock left
by a killed run is taken over by the next run without any guessing from pids. The pid, host and
start time written into the file are only there to tell the second run who holds the folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputLockedError

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def lock_path(folder: str | Path) -> Path:
    """The lock file that guards ``folder``: ``.NAME.lock`` beside it (so it survives a folder swap)."""
    folder = Path(folder).absolute()
    return folder.parent / f".{folder.name}.lock"


def _owner(path: Path) -> str:
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {owner['pid']} on {owner['host']}, since {owner['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _acquire(path: Path) -> int | None:
    """Open and lock ``path``; None if a live process holds it. Retries if the file was swapped."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        if not _try_lock(fd):
            os.close(fd)
            return None
        try:
            same_file = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:  # the previous owner removed it between our open and our lock
            same_file = False
        if same_file:
            return fd
        os.close(fd)


@contextmanager
def locked_output(folder: str | Path, *, wait: float = 0.0, poll: float = 0.25) -> Iterator[Path]:
    """Hold the output lock of ``folder`` while the block runs; yield the lock file's path.

    Args:
        folder: the output folder to guard (it need not exist yet).
        wait: seconds to wait for another run to finish before giving up; 0 refuses at once.
        poll: seconds between attempts while waiting.

    Raises:
        OutputLockedError: another live process holds the folder (the message names its pid).
    """
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + max(wait, 0.0)
    while (fd := _acquire(path)) is None:
        if time.monotonic() >= deadline:
            raise OutputLockedError(
                f"{Path(folder)} is in use by {_owner(path)}: wait for that run to finish, or choose "
                "another output folder (the lock is released automatically when that process ends)"
            )
        time.sleep(poll)
    try:
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(owner) + "\n").encode("utf-8"))
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still locked, so no one else can be holding this inode
        _unlock(fd)
        os.close(fd)
