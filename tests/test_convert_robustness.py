"""convert: the written dtype is checked, a NaN tolerance is refused, and kill -9 leaves no scratch."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from clip_builders import long_clip_state_dict
from kill_switches import child_env

from debias_diffusion.cli import main
from debias_diffusion.conversion import convert_to_hf
from debias_diffusion.errors import CheckpointError, UsageError

# convert_to_hf of argv[1] into argv[2] (overwriting), killed with SIGKILL at argv[3]:
# "saving" (inside the scratch folder, after the weights) or "between-renames" (old output parked).
_KILLED_CONVERT = textwrap.dedent(
    """
    import sys
    from kill_switches import die, die_between_renames
    from debias_diffusion.conversion import convert as convert_module

    source, destination, when = sys.argv[1:4]
    if when == "between-renames":
        die_between_renames()
    else:
        convert_module._image_processor = die
    convert_module.convert_to_hf(source, destination, num_heads=2, overwrite=True)
    """
)


@pytest.fixture(scope="module")
def long_clip_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "longclip.pt"
    state, _ = long_clip_state_dict()
    torch.save(state, path)
    return path


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _leftovers(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if ".partial-" in name or ".old-" in name or name.endswith(".lock")]


def test_nan_or_negative_tolerance_is_refused(long_clip_file, tmp_path, capsys):
    for tolerance in (float("nan"), float("inf"), -1.0):
        with pytest.raises(UsageError, match="tolerance must be a finite number >= 0.*--no-verify"):
            convert_to_hf(long_clip_file, tmp_path / "out", num_heads=2, tolerance=tolerance)
    for text in ("nan", "-1"):  # the command line refuses it while parsing, with the same exit status
        with pytest.raises(SystemExit) as exit_info:
            main(["convert", str(long_clip_file), str(tmp_path / "out"), "--num-heads", "2", "--tolerance", text])
        assert exit_info.value.code == 2 and "argument --tolerance" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_float16_overflow_is_refused_and_nothing_is_written(tmp_path):
    state, _ = long_clip_state_dict()
    state["text_projection"][0, 0] = 1e5  # fine in float32, inf in float16
    torch.save(state, tmp_path / "big.pt")
    options = dict(num_heads=2, text_only=True, verify=False)  # checked whether or not the forward is
    with pytest.raises(CheckpointError, match=r"writing float16 overflows to inf in text_projection\.weight"):
        convert_to_hf(tmp_path / "big.pt", tmp_path / "out", dtype=torch.float16, **options)
    assert sorted(os.listdir(tmp_path)) == ["big.pt"]
    convert_to_hf(tmp_path / "big.pt", tmp_path / "out", dtype=torch.bfloat16, **options)


def test_float16_that_flushes_a_tensor_to_zero_is_refused(tmp_path):
    state, _ = long_clip_state_dict()
    state["ln_final.bias"] = torch.full_like(state["ln_final.bias"], 3e-8)  # below float16's subnormals' reach
    torch.save(state, tmp_path / "tiny.pt")
    with pytest.raises(CheckpointError, match=r"loses the small values of text_model\.final_layer_norm\.bias"):
        convert_to_hf(tmp_path / "tiny.pt", tmp_path / "out", num_heads=2, text_only=True, dtype=torch.float16)


@pytest.mark.parametrize("when", ["saving", "between-renames"])
def test_kill_9_during_convert_then_rerun_equals_an_uninterrupted_run(long_clip_file, tmp_path, when):
    convert_to_hf(long_clip_file, tmp_path / "whole", num_heads=2)
    convert_to_hf(long_clip_file, tmp_path / "out", num_heads=2)  # an earlier output the kills try to replace
    for _ in range(2):
        killed = subprocess.run([sys.executable, "-c", _KILLED_CONVERT, str(long_clip_file), str(tmp_path / "out"),
                                 when], env=child_env(), check=False)  # fmt: skip
        assert killed.returncode == -9
        assert _leftovers(tmp_path)  # the killed run's scratch is there ...
    convert_to_hf(long_clip_file, tmp_path / "out", num_heads=2, overwrite=True)
    assert _leftovers(tmp_path) == []  # ... and the next run removed it
    assert _digests(tmp_path / "out") == _digests(tmp_path / "whole")
