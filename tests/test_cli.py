"""The debias-diffusion console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from clip_builders import tiny_openai_clip

from debias_diffusion.cli import main


def test_convert_prints_what_it_wrote(tmp_path, capsys):
    torch.save(tiny_openai_clip(77).state_dict(), tmp_path / "clip.pt")
    code = main(
        [
            "convert",
            str(tmp_path / "clip.pt"),
            str(tmp_path / "hf"),
            "--stretch",
            "248",
            "--text-only",
            "--num-heads",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "wrote text encoder (CLIPTextModelWithProjection)" in out
    assert "stretched 77 -> 248 positions" in out
    assert "max |difference| vs open_clip forward" in out
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (tmp_path / "hf").iterdir()}


def test_count_tokens_reads_files_and_reports_truncation(tmp_path, capsys):
    (tmp_path / "p.txt").write_text("A cat sleeps. " * 30)
    assert main(["count-tokens", f"@{tmp_path / 'p.txt'}", "--context-length", "77"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("120 tokens (limit 75 + SOT/EOT)")
    assert "dropped" in out
    assert main(["count-tokens", f"@{tmp_path / 'missing.txt'}"]) == 2
    assert "prompt file not found" in capsys.readouterr().err


def test_console_script_entry_point_runs():
    script = Path(sys.executable).with_name("debias-diffusion")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "debias_diffusion.cli"]
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, check=True)
    assert "convert" in result.stdout and "count-tokens" in result.stdout
