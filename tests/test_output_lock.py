"""The output-folder lock: one live run per folder, a dead run's lock taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from debias_diffusion.errors import OutputLockedError
from debias_diffusion.output_lock import lock_path, locked_output

HOLDER = textwrap.dedent(
    """
    import sys, time
    from debias_diffusion.output_lock import locked_output
    with locked_output(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


def _start_holder(folder, seconds: float) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "locked"
    return process


def test_second_run_refused_with_owner_pid(tmp_path):
    folder = tmp_path / "out"
    holder = _start_holder(folder, 30)
    try:
        with pytest.raises(OutputLockedError, match=f"pid {holder.pid}"), locked_output(folder):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_lock_of_killed_run_is_taken_over(tmp_path):
    folder = tmp_path / "out"
    holder = _start_holder(folder, 30)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert lock_path(folder).exists()  # the dead run's file is still there ...
    with locked_output(folder) as path:  # ... and is taken over at once
        assert f'"pid": {os.getpid()}' in path.read_text()
    assert not lock_path(folder).exists()


def test_wait_gets_the_lock_when_the_other_run_ends(tmp_path):
    folder = tmp_path / "out"
    holder = _start_holder(folder, 1.0)
    start = time.monotonic()
    with locked_output(folder, wait=20, poll=0.05):
        waited = time.monotonic() - start
    assert 0.8 <= waited < 20  # only once the holder's 1 s were over
    holder.wait()


def test_lock_released_on_exception_and_reentrant_after(tmp_path):
    folder = tmp_path / "out"
    with pytest.raises(RuntimeError), locked_output(folder):
        raise RuntimeError("boom")
    with locked_output(folder):
        pass
    assert not lock_path(folder).exists()
