"""An evaluate_prominence run that SIGKILLs itself at a chosen file write (for the kill -9 resume tests).

Usage: ``python prominence_killed_run.py OUTPUT_DIR [PATTERN COUNT WHEN]``: the process kills itself with
SIGKILL at the COUNT-th ``os.replace`` whose destination's path matches the regular expression PATTERN,
``before`` the replace (the temporary file is left behind) or ``after`` it. Without a kill spec it runs to
the end. The run itself is :func:`prominence_resume_setup.run`, the one the tests compare against.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from prominence_resume_setup import run  # noqa: E402


def kill_at(pattern: str, count: int, when: str) -> None:
    real_replace = os.replace
    seen = 0

    def replace(src, dst, *args, **kwargs):
        nonlocal seen
        hit = re.search(pattern, Path(dst).as_posix()) is not None
        if hit:
            seen += 1
        if hit and seen == count and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst, *args, **kwargs)
        if hit and seen == count and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace


if __name__ == "__main__":
    if len(sys.argv) == 5:
        kill_at(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    run(Path(sys.argv[1]))
