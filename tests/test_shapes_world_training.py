"""The shapes world's encoders retrain (reduced) with train_encoder and learn: loss falls, retrieval beats chance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from debias_diffusion.clip_loading import load_clip_model
from debias_diffusion.shapes_world import export_dataset
from debias_diffusion.text_model_layout import get_context_length
from train_encoder.evaluation import EvalSet, evaluate


def _eval_set(folder: Path) -> EvalSet:
    rows = [json.loads(line) for line in (folder / "captions.jsonl").read_text().splitlines()]
    return EvalSet("world", tuple(folder / r["image"] for r in rows), tuple(r["caption"] for r in rows),
                   tuple(range(len(rows))))  # fmt: skip


@pytest.mark.usefixtures("single_torch_thread")
def test_reduced_encoder_training_learns(tmp_path, example_script):
    export_dataset(tmp_path / "train", 192, seed=0, progress=False)
    export_dataset(tmp_path / "unseen", 48, seed=1, progress=False)
    trained = example_script("train_encoders").train_world_encoders(
        tmp_path / "train", tmp_path / "models", pretrain_steps=150, finetune_steps=10, batch_size=32
    )
    losses = [
        json.loads(line)["loss"] for line in (tmp_path / "models/clip-77/run/metrics.jsonl").read_text().splitlines()
    ]
    assert losses[-1] < 0.7 * losses[0], losses
    results = evaluate({name: str(path) for name, path in trained.items()}, [_eval_set(tmp_path / "unseen")],
                       ["full"], num_workers=0, progress=False)  # fmt: skip
    recall = {row.model: row.t2i["R@5"] for row in results.rows}
    assert recall["clip-77"] > 3 * 5 / 48, recall  # chance R@5 is 5/48
    for name in ("long-clip-recipe", "debias-recipe", "fix-clip-recipe"):  # same data, same steps
        assert get_context_length(load_clip_model(trained[name]).model) == 248
        assert recall[name] > 5 / 48, (name, recall)  # fine-tuned from clip-77: still above chance
    assert get_context_length(load_clip_model(trained["clip-77"]).model) == 77
