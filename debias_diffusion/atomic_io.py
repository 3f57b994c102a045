"""Write outputs atomically: readers see the old output or the complete new one, never half."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import OutputExistsError
from .scratch_folders import (
    PARTIAL,
    PREVIOUS,
    RETIRED,
    claimed_scratch,
    recover_interrupted_writes,
    temporary_file_prefix,
)


@contextmanager
def atomic_directory(destination: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a scratch folder beside ``destination``; on success it becomes ``destination``.

    On any exception the scratch folder is removed and ``destination`` is left untouched. Scratch
    left by killed writes to the same destination is recovered first
    (:func:`~debias_diffusion.scratch_folders.recover_interrupted_writes`). The folder's mode follows
    the umask, like any folder the user makes.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted_writes(destination.parent, destination.name)
    if destination.exists() and not overwrite and (destination.is_file() or any(destination.iterdir())):
        raise OutputExistsError(f"{destination} already exists and is not empty; pass overwrite=True / --overwrite")
    with claimed_scratch(destination, PARTIAL) as scratch:
        try:
            yield scratch
            _replace(scratch, destination)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temporary_file_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600 files
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_image(path: str | Path, image: Any, format: str = "PNG") -> None:
    """Save a PIL image to ``path`` atomically."""
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _replace(scratch: Path, destination: Path) -> None:
    if not destination.exists():
        os.replace(scratch, destination)
        return
    with claimed_scratch(destination, RETIRED) as retired:  # a kill in between: recovery restores it
        os.replace(destination, retired / PREVIOUS)
        try:
            os.replace(scratch, destination)
        except BaseException:
            os.replace(retired / PREVIOUS, destination)
            raise
        shutil.rmtree(retired, ignore_errors=True)
