"""Resume falls back past a checkpoint whose files are truncated, without half-restoring it."""

from __future__ import annotations

import logging

import pytest
import torch
from accelerate import Accelerator
from transformers import CLIPConfig, CLIPModel

from debias_diffusion.image_preprocessing import ImagePreprocessing
from train_encoder.checkpointing import (
    RunShape,
    TrainState,
    load_newest_readable,
    save_checkpoint,
)
from train_encoder.config import load_config
from train_encoder.errors import UnreadableCheckpointError

SHAPE = RunShape(world_size=1, batch_size=4, gradient_accumulation_steps=1, batches_per_epoch=4, num_workers=0)


def _model() -> CLIPModel:
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=16, patch_size=8),
        projection_dim=8,
    )  # fmt: skip
    return CLIPModel(config)


@pytest.fixture
def run(tmp_path):
    """A run folder with checkpoints at steps 1 and 2 (different weights), and fresh objects to restore into."""
    accelerator = Accelerator(cpu=True)
    config = load_config(
        "tiny", {"output_dir": str(tmp_path), "keep_checkpoints": 0, "model": "m", "train_data": "d.jsonl"}
    )
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    saved = {}
    for step in (1, 2):
        model.text_projection.weight.data.fill_(float(step))
        model(input_ids=torch.tensor([[1, 2]]), pixel_values=torch.zeros(1, 3, 16, 16)).logits_per_text.sum().backward()
        optimizer.step()
        saved[step] = {k: v.clone() for k, v in model.state_dict().items()}
        save_checkpoint(accelerator, tmp_path, model=model, optimizer=optimizer, state=TrainState(step=step),
                        config=config, shape=SHAPE, preprocessing=ImagePreprocessing(16), source="test")  # fmt: skip
    fresh = _model()
    restore = dict(model=fresh, optimizer=torch.optim.AdamW(fresh.parameters(), lr=0.1), shape=SHAPE)
    return tmp_path, accelerator, saved, restore


def _truncate(path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("broken", ["model/model.safetensors", "optimizer.pt", "rng.pt", "trainer_state.json"])
def test_latest_falls_back_past_an_unreadable_checkpoint(run, broken, caplog):
    folder, accelerator, saved, restore = run
    _truncate(folder / "checkpoints" / "step-2" / broken)
    with caplog.at_level(logging.WARNING, logger="train_encoder.checkpointing"):
        checkpoint, state = load_newest_readable("latest", folder, accelerator, **restore)
    assert checkpoint.name == "step-1" and state.step == 1
    assert "skipping checkpoint" in caplog.text and "step-2" in caplog.text
    restored = restore["model"].state_dict()
    assert all(torch.equal(restored[key], saved[state.step][key]) for key in saved[1])


def test_a_named_unreadable_checkpoint_fails_and_changes_nothing(run):
    folder, accelerator, _, restore = run
    _truncate(folder / "checkpoints" / "step-2" / "optimizer.pt")
    before = {k: v.clone() for k, v in restore["model"].state_dict().items()}
    with pytest.raises(UnreadableCheckpointError, match=r"cannot read .*optimizer\.pt \(weights_only=True\)"):
        load_newest_readable(folder / "checkpoints" / "step-2", folder, accelerator, **restore)
    after = restore["model"].state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)  # read everything before restoring


def test_every_checkpoint_unreadable_is_an_error(run):
    folder, accelerator, _, restore = run
    for step in (1, 2):
        _truncate(folder / "checkpoints" / f"step-{step}" / "model" / "model.safetensors")
    with pytest.raises(UnreadableCheckpointError, match=r"step-1/model/model\.safetensors"):
        load_newest_readable("latest", folder, accelerator, **restore)
