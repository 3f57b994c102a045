"""kill -9 faults during training (steps, a checkpoint write, after the last checkpoint, the export): the
resumed run ends bit-identical to one that never stopped, and no scratch folder is left anywhere."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from kill_switches import child_env
from PIL import Image
from safetensors.torch import load_file
from test_train_loop import _tiny_clip

from train_encoder.config import load_config
from train_encoder.data import CaptionImageDataset, DataError
from train_encoder.trainer import _trim_metrics, train

pytestmark = pytest.mark.usefixtures("single_torch_thread")

ROOT = Path(__file__).parents[1]
COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}
SHADES = ("pale", "light", "dark", "deep")
# 8 steps of batch 4 (4 batches per epoch), a checkpoint every 2 steps, all kept, the model exported.
OPTIONS = dict(max_steps=8, batch_size=4, checkpoint_every=2, keep_checkpoints=0, log_every=1, export_final=True)

# train(config, resume="latest") in a child process that SIGKILLs itself at argv[2]:
#   step:K        after optimizer step K (and its checkpoint, if one is due)
#   checkpoint:K  while checkpoint step-K is half written (inside its scratch folder)
#   export        while the final export is half written
_KILLED_TRAIN = textwrap.dedent(
    """
    import json, sys
    import torch
    from kill_switches import die
    from train_encoder import checkpointing, export
    from train_encoder.config import load_config
    from train_encoder.trainer import _trim_metrics, train

    torch.set_num_threads(1)  # as the test process (single_torch_thread): float sums in the same order
    config = load_config("tiny", json.loads(sys.argv[1]))
    where, _, at = sys.argv[2].partition(":")
    on_step = None
    if where == "step":
        on_step = lambda state: die() if state.step == int(at) else None
    elif where == "checkpoint":
        real_save_config = checkpointing.save_config
        def save_config(cfg, path):
            real_save_config(cfg, path)
            if path.parent.name.startswith(f".step-{at}.partial-"):
                die()
        checkpointing.save_config = save_config
    elif where == "export":
        export.clip_image_processor = die
    train(config, resume="latest", on_step=on_step)
    """
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, str]:
    """A tiny CLIP folder and 16 flat-colour images with three-sentence captions."""
    root = tmp_path_factory.mktemp("kill")
    _tiny_clip().save_pretrained(root / "clip")
    (root / "images").mkdir()
    lines = []
    for (colour, rgb), shade_index in ((c, s) for c in COLOURS.items() for s in range(len(SHADES))):
        shade = SHADES[shade_index]
        tint = tuple(min(255, value + 20 * shade_index) for value in rgb)
        Image.new("RGB", (40, 40), tint).save(root / "images" / f"{shade}-{colour}.png")
        caption = f"A {shade} {colour} square. It fills the whole frame. The {colour} is {shade}."
        lines.append(json.dumps({"image": f"{shade}-{colour}.png", "caption": caption}))
    (root / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return {"model": str(root / "clip"), "train_data": str(root / "captions.jsonl"), "image_root": str(root / "images")}


def _overrides(setup: dict[str, str], output: Path, **extra) -> dict:
    return {**setup, **OPTIONS, "output_dir": str(output), **extra}


def _killed(overrides: dict, at: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_TRAIN, json.dumps(overrides), at], env=child_env(), cwd=ROOT, check=False,
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]


def _scratch(folder: Path) -> list[str]:
    """Scratch folders (and their lock files) anywhere under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".partial-" in p.name or ".old-" in p.name)


def _scratch_folders(folder: Path) -> list[str]:
    """Where the scratch folders under ``folder`` were going to be renamed to."""
    return [name.split(".partial-")[0] for name in _scratch(folder) if (folder / name).is_dir()]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path / "model.safetensors")


def _assert_same_weights(a: Path, b: Path) -> None:
    left, right = _weights(a), _weights(b)
    assert left.keys() == right.keys()
    for key in left:
        assert torch.equal(left[key], right[key]), f"{a} and {b} differ in {key}"


def _losses(output: Path) -> list[tuple[int, float]]:
    lines = (output / "metrics.jsonl").read_text().splitlines()
    return [(record["step"], record["loss"]) for record in map(json.loads, lines)]


def test_repeated_kill_9_then_resume_is_bit_identical_and_leaves_no_scratch(setup, tmp_path):
    whole = train(load_config("tiny", _overrides(setup, tmp_path / "whole")))
    assert whole.state.step == 8
    run = tmp_path / "killed"
    config = _overrides(setup, run)

    _killed(config, "step:3")  # mid-run, one step after checkpoint 2
    _killed(config, "checkpoint:4")  # resumes from 2, dies writing step-4
    assert _scratch_folders(run) == ["checkpoints/.step-4"]
    _killed(config, "step:8")  # resumes from 2; dies right after the last checkpoint, before drift and export
    assert (run / "checkpoints" / "step-8").is_dir() and not (run / "final").exists()
    assert not (run / "drift.json").exists()
    # the newest checkpoint's weights get truncated and a kill tears the last metrics line
    weights = run / "checkpoints" / "step-8" / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with (run / "metrics.jsonl").open("a") as file:
        file.write('{"step": 9, "loss": 0.')
    _killed(config, "export")  # falls back to step-6, redoes 7-8, dies inside the export
    assert _scratch_folders(run) == [".final"]
    (run / "drift.json").unlink()  # written before the export: the last resume must write it again

    resumed = train(load_config("tiny", config), resume="latest")  # no step left: drift + export only
    assert resumed.state == whole.state
    assert _scratch(run) == []
    for folder in ("checkpoints/step-8/model", "final/clip", "final/text_encoder"):
        _assert_same_weights(whole.checkpoint.parents[1] / folder, run / folder)
    assert json.loads((run / "drift.json").read_text()) == json.loads((tmp_path / "whole" / "drift.json").read_text())
    assert _losses(run) == _losses(tmp_path / "whole")


def test_no_readable_image_fails_before_the_first_step(setup, tmp_path):
    config = load_config("tiny", _overrides(setup, tmp_path / "out", image_root=str(tmp_path)))
    with pytest.raises(DataError, match=r"only 0 of 16 training images can be read.*check the image_root"):
        train(config)
    assert not (tmp_path / "out" / "checkpoints").exists() and not (tmp_path / "out" / "final").exists()


def test_a_run_whose_every_batch_is_skipped_exports_nothing(setup, tmp_path, monkeypatch):
    """Images that vanish after the up-front check (or undecodable shards) skip every batch: an error, no export."""
    monkeypatch.setattr(CaptionImageDataset, "check_readable", lambda self, needed: None)
    config = load_config("tiny", _overrides(setup, tmp_path / "out", image_root=str(tmp_path)))
    with pytest.raises(DataError, match=r"trained 0 steps: all 4 batches were skipped \(16 images could not be read\)"):
        train(config.replace(epochs=1))
    assert not (tmp_path / "out" / "checkpoints").exists() and not (tmp_path / "out" / "final").exists()


def test_metrics_repair_drops_only_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "lo')
    _trim_metrics(path, 2)
    assert path.read_text() == '{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n'
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo\n{"step": 3, "loss": 1.0}\n')
    with pytest.raises(DataError, match=r"metrics\.jsonl line 2 is not JSON: repair or delete the file"):
        _trim_metrics(path, 3)
