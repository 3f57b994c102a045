"""The output-folder check the probes make before loading any model."""

from __future__ import annotations

from pathlib import Path

from ..errors import OutputExistsError

__all__ = ["check_output_dir"]


def check_output_dir(output_dir: str | Path, overwrite: bool) -> None:
    """Fail before hours of encoding, not after: the same check ``atomic_directory`` makes."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not overwrite and (output_dir.is_file() or any(output_dir.iterdir())):
        raise OutputExistsError(f"{output_dir} already exists and is not empty; pass overwrite=True / --overwrite")
