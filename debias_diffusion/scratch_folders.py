"""Scratch folders of atomic writes: claimed by their writer, recovered after a killed one.

An atomic write of ``DEST`` builds ``.DEST.partial-TAG/`` beside it and, when it replaces an existing
``DEST``, parks the old one in ``.DEST.old-TAG/previous`` between two renames. Each scratch folder is
claimed with the output lock (:func:`~debias_diffusion.output_lock.locked_output`) *before* it is
created, so whether its writer is still alive is the kernel's answer, not a guess from pids.

:func:`recover_interrupted_writes` (run by every atomic write before it starts, and callable on its
own) cleans up after writers that died: their ``.partial-*`` folders are removed, and a parked
``previous`` is put back as ``DEST`` when ``DEST`` is missing (a kill between the two renames leaves
it the only copy), otherwise removed. Folders of live writers are left alone. Single files are written
through ``.NAME.HOST-PID-TAG.tmp`` (:func:`temporary_file_prefix`); recovery removes those whose writer
was on this machine and no longer runs.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .errors import OutputLockedError
from .output_lock import locked_output

__all__ = [
    "PARTIAL",
    "RETIRED",
    "Recovery",
    "claimed_scratch",
    "recover_interrupted_writes",
    "remove_atomically",
    "temporary_file_prefix",
]

PARTIAL = "partial"
"""Kind of the folder a new output is built in."""
RETIRED = "old"
"""Kind of the folder an overwritten output waits in (as ``previous``) until the new one is in place."""
PREVIOUS = "previous"
_SCRATCH = re.compile(rf"\.(?P<name>.+)\.(?P<kind>{PARTIAL}|{RETIRED})-(?P<tag>[A-Za-z0-9_]+)")
_SCRATCH_LOCK = re.compile(rf"\.(?P<scratch>{_SCRATCH.pattern})\.lock")
_TEMPORARY_FILE = re.compile(r"\.(?P<name>.+)\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp")
_HOST = hashlib.blake2b(socket.gethostname().encode(), digest_size=4).hexdigest()


@dataclass
class Recovery:
    """What :func:`recover_interrupted_writes` found."""

    removed: list[Path] = field(default_factory=list)
    """Scratch folders and temporary files of dead writers, deleted."""
    restored: list[Path] = field(default_factory=list)
    """Destinations put back from a dead writer's parked ``previous`` copy."""
    in_use: list[Path] = field(default_factory=list)
    """Scratch a live writer (or one on another machine) still holds: left alone."""


def temporary_file_prefix(path: str | Path) -> str:
    """The name prefix of the temporary file a single-file write of ``path`` goes through (then ``.tmp``):
    it names this machine and process, so recovery can tell a dead writer's file from a live one's."""
    return f".{Path(path).name}.{_HOST}-{os.getpid()}-"


@contextmanager
def claimed_scratch(destination: str | Path, kind: str) -> Iterator[Path]:
    """Create ``.NAME.KIND-TAG/`` beside ``destination`` under its writer's lock; yield it.

    The folder is made with ``os.mkdir`` (mode ``0o777`` less the umask, like any folder the user
    makes). It is not removed on exit: that is the caller's job (rename it or delete it).
    """
    destination = Path(destination)
    scratch = destination.parent / f".{destination.name}.{kind}-{secrets.token_hex(6)}"
    with locked_output(scratch):
        scratch.mkdir()
        yield scratch


def remove_atomically(path: str | Path) -> None:
    """Delete the folder ``path``: renamed into a claimed ``.NAME.partial-*`` folder first, so a kill half-way
    leaves scratch that recovery removes, never a half-deleted ``path``."""
    path = Path(path)
    with claimed_scratch(path, PARTIAL) as scratch:
        os.replace(path, scratch / PREVIOUS)
        shutil.rmtree(scratch, ignore_errors=True)


def recover_interrupted_writes(folder: str | Path, name: str | None = None) -> Recovery:
    """Clean up the scratch that killed atomic writes left in ``folder``.

    Args:
        folder: the folder the outputs are written in.
        name: only recover writes of ``folder/name``; ``None`` recovers every output in ``folder``
            (e.g. all ``step-N`` checkpoints of a run).

    Returns:
        A :class:`Recovery` listing what was removed, restored and left to live writers.
    """
    folder = Path(folder)
    recovery = Recovery()
    if not folder.is_dir():
        return recovery
    found: dict[Path, re.Match] = {}
    for entry in os.scandir(folder):
        temporary = _TEMPORARY_FILE.fullmatch(entry.name)
        if temporary and name in (None, temporary.group("name")):
            _recover_temporary_file(folder / entry.name, temporary, recovery)
            continue
        lock = _SCRATCH_LOCK.fullmatch(entry.name)
        match = _SCRATCH.fullmatch(lock.group("scratch")) if lock else _SCRATCH.fullmatch(entry.name)
        if match and name in (None, match.group("name")):
            found[folder / match.group(0)] = match
    retired_first = sorted(found, key=lambda path: (found[path].group("kind") != RETIRED, -_mtime(path)))
    for scratch in retired_first:
        try:
            with locked_output(scratch):
                _recover_one(scratch, found[scratch], recovery)
        except OutputLockedError:
            recovery.in_use.append(scratch)
    return recovery


def _recover_one(scratch: Path, match: re.Match, recovery: Recovery) -> None:
    if not scratch.exists():  # only a lock file was left (killed between the lock and the mkdir)
        return
    previous, destination = scratch / PREVIOUS, scratch.parent / match.group("name")
    if match.group("kind") == RETIRED and previous.exists() and not destination.exists():
        os.replace(previous, destination)
        recovery.restored.append(destination)
    shutil.rmtree(scratch, ignore_errors=True)
    recovery.removed.append(scratch)


def _recover_temporary_file(path: Path, match: re.Match, recovery: Recovery) -> None:
    if match.group("host") == _HOST and not _alive(int(match.group("pid"))):
        path.unlink(missing_ok=True)
        recovery.removed.append(path)
    else:  # a live writer, or another machine's (its pids mean nothing here)
        recovery.in_use.append(path)


def _alive(pid: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - os.kill would terminate the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
