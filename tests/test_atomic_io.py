"""Atomic folder writes: folder modes follow the umask; scratch of killed writers is recovered."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from kill_switches import child_env

from debias_diffusion.atomic_io import atomic_directory
from debias_diffusion.errors import OutputExistsError
from debias_diffusion.scratch_folders import (
    PARTIAL,
    claimed_scratch,
    recover_interrupted_writes,
    remove_atomically,
    temporary_file_prefix,
)

# A writer that is killed (SIGKILL, no cleanup) at a chosen point of an atomic overwrite of argv[1]:
# "writing" while the scratch is being filled, "between-renames" after the old folder was parked.
_KILLED_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from kill_switches import die, die_between_renames
    from debias_diffusion import atomic_io

    destination, when = Path(sys.argv[1]), sys.argv[2]
    if when == "between-renames":
        die_between_renames()
    with atomic_io.atomic_directory(destination, overwrite=True) as scratch:
        (scratch / "data.txt").write_text("new")
        if when == "writing":
            die()
    """
)


def _write(destination: Path, text: str, overwrite: bool = True) -> None:
    with atomic_directory(destination, overwrite=overwrite) as scratch:
        (scratch / "data.txt").write_text(text)


def _kill_writer(destination: Path, when: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(destination), when], env=child_env(), check=False
    )
    assert result.returncode == -9


def _scratch(folder: Path) -> list[str]:
    """Scratch folders and their lock files."""
    return sorted(name for name in os.listdir(folder) if ".partial-" in name or ".old-" in name)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_folder_mode_follows_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        _write(tmp_path / "out", "a")
        _write(tmp_path / "out", "b")  # the overwrite path too
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~umask


def test_killed_writer_leaves_scratch_that_the_next_write_removes(tmp_path):
    destination = tmp_path / "out"
    _write(destination, "old")
    for _ in range(3):  # each write first removes what the writer before it left
        _kill_writer(destination, "writing")
        assert len([name for name in _scratch(tmp_path) if (tmp_path / name).is_dir()]) == 1
    assert (destination / "data.txt").read_text() == "old"  # untouched by the killed writers
    _write(destination, "new")
    assert _scratch(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no lock files left either
    assert (destination / "data.txt").read_text() == "new"


def test_kill_between_the_renames_keeps_the_previous_copy(tmp_path):
    destination = tmp_path / "out"
    _write(destination, "old")
    _kill_writer(destination, "between-renames")
    assert not destination.exists()  # the only copy is parked in .out.old-*/previous
    recovery = recover_interrupted_writes(tmp_path, "out")
    assert recovery.restored == [destination]
    assert (destination / "data.txt").read_text() == "old"
    assert _scratch(tmp_path) == []


def test_a_non_overwriting_write_restores_before_refusing(tmp_path):
    destination = tmp_path / "out"
    _write(destination, "old")
    _kill_writer(destination, "between-renames")
    with pytest.raises(OutputExistsError):
        _write(destination, "new", overwrite=False)
    assert (destination / "data.txt").read_text() == "old"


def test_recovery_leaves_live_writers_alone(tmp_path):
    destination = tmp_path / "out"
    with claimed_scratch(destination, PARTIAL) as live:
        recovery = recover_interrupted_writes(tmp_path)
        assert recovery.in_use == [live] and recovery.removed == []
        assert live.is_dir()
        _write(destination, "other writer")  # another destination's write does not touch it either
        assert live.is_dir()
    assert recover_interrupted_writes(tmp_path).removed == [live]


def test_recovery_by_name_keeps_other_outputs_scratch(tmp_path):
    for name in ("a", "b"):
        _write(tmp_path / name, name)
        _kill_writer(tmp_path / name, "writing")
    assert [path.name.split(".")[1] for path in recover_interrupted_writes(tmp_path, "a").removed] == ["a"]
    assert _scratch(tmp_path)[-1].startswith(".b.partial-")
    assert len(recover_interrupted_writes(tmp_path).removed) == 1
    assert _scratch(tmp_path) == []


def test_a_killed_removal_leaves_scratch_never_a_half_deleted_output(tmp_path):
    _write(tmp_path / "old-output", "x")
    script = textwrap.dedent(
        """
        import sys
        from kill_switches import die
        from debias_diffusion import scratch_folders
        scratch_folders.shutil.rmtree = die
        scratch_folders.remove_atomically(sys.argv[1])
        """
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "old-output")], env=child_env(), check=False)
    assert result.returncode == -9
    assert not (tmp_path / "old-output").exists()  # gone at once: only scratch remains
    recovery = recover_interrupted_writes(tmp_path)
    assert recovery.restored == [] and len(recovery.removed) == 1  # a removal is not undone
    assert os.listdir(tmp_path) == []
    _write(tmp_path / "kept", "y")
    remove_atomically(tmp_path / "kept")
    assert os.listdir(tmp_path) == []


def test_a_killed_file_writes_temporary_file_is_removed_a_live_ones_kept(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        from kill_switches import die
        from debias_diffusion import atomic_io
        atomic_io.os.replace = die
        atomic_io.atomic_write_text(sys.argv[1], "never in place")
        """
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "a.json")], env=child_env(), check=False)
    assert result.returncode == -9
    (dead,) = tmp_path.glob(".a.json.*.tmp")
    live = tmp_path / f"{temporary_file_prefix(tmp_path / 'b.json')}x.tmp"  # this process is alive
    live.write_text("being written")
    recovery = recover_interrupted_writes(tmp_path)
    assert recovery.removed == [dead] and recovery.in_use == [live]
    assert sorted(os.listdir(tmp_path)) == [live.name]
