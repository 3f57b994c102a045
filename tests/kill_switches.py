"""Points where a child process kills itself with SIGKILL (no cleanup runs), for the kill -9 tests.

Child scripts import this module (tests/ on their ``PYTHONPATH``, see :func:`child_env`).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def die(*args, **kwargs) -> None:
    """SIGKILL this process (usable in place of any function)."""
    os.kill(os.getpid(), signal.SIGKILL)


def die_between_renames() -> None:
    """Make atomic overwrites die after parking the old output and before renaming the new one in."""
    from debias_diffusion import atomic_io

    real_replace, renames = os.replace, []

    def replace(source, target):
        renames.append(target)
        if len(renames) == 2:
            die()
        real_replace(source, target)

    atomic_io.os.replace = replace


def child_env() -> dict[str, str]:
    """The environment for a child script that imports this module."""
    tests = str(Path(__file__).parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))}
