"""Hidden-state drift: how far a fine-tuned text tower's per-token states moved from a reference.

A Stable Diffusion UNet was trained on the original encoder's hidden states, so the drift on the
first 77 positions says how much a swapped-in encoder changes what the UNet reads. Reported
per position (mean cosine over real tokens) and as one number over positions 0-76.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from debias_diffusion.clip_embedding import clip_tokenizer
from debias_diffusion.clip_loading import ModelSource, load_clip_model
from debias_diffusion.loading import load_text_encoder
from debias_diffusion.text_model_layout import get_context_length

from ..file_names import METADATA_FILE
from ..token_states import SD_CONTEXT_LENGTH, hidden_state_drift, real_token_mask

__all__ = ["recorded_source", "text_drift"]


@torch.no_grad()
def text_drift(
    model: ModelSource,
    reference: ModelSource,
    captions: Sequence[str],
    *,
    stretch_to: int | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> dict:
    """Per-position mean cosine between the last hidden states of ``model``'s text tower and ``reference``'s.

    ``model`` is a CLIP source :func:`load_clip_model` reads (or a text tower module);
    ``reference`` a source :func:`debias_diffusion.load_text_encoder` reads (or a text tower
    module), typically the checkpoint training started from. Captions are tokenised at the
    model's length (the real CLIP BPE, cut with EOT kept, as retrieval does); the reference sees
    the positions it has (causal: the same prefix). Only real tokens (SOT through EOT) count.
    """
    if not captions:
        raise ValueError("text_drift needs at least one caption")
    tower = _text_tower(model, stretch_to).to(device).eval()
    ref = _reference_tower(reference).to(device).eval()
    context_length, ref_length = get_context_length(tower), get_context_length(ref)
    tokenizer = clip_tokenizer(context_length)
    sums = counts = None
    for start in range(0, len(captions), batch_size):
        batch = list(captions[start : start + batch_size])
        ids = tokenizer(batch, truncation=True, max_length=context_length, padding="max_length", return_tensors="pt")
        ids = ids["input_ids"].to(device)
        mask = real_token_mask(ids)
        mean = hidden_state_drift(
            tower(input_ids=ids).last_hidden_state, ref(input_ids=ids[:, :ref_length]).last_hidden_state, mask
        )
        count = mask[:, : mean.shape[0]].sum(dim=0).float()
        total = torch.nan_to_num(mean) * count
        sums, counts = (total, count) if sums is None else (sums + total, counts + count)
    per_position = torch.where(counts > 0, sums / counts.clamp(min=1), torch.nan)
    first = per_position[:SD_CONTEXT_LENGTH]
    return {
        "per_position": [None if torch.isnan(value) else round(float(value), 6) for value in per_position],
        f"mean_cosine_first_{SD_CONTEXT_LENGTH}": float(first[~torch.isnan(first)].mean()),
        "captions": len(captions),
    }


def recorded_source(model: ModelSource) -> str | None:
    """The checkpoint a ``train_encoder`` export was trained from (its export metadata), else ``None``."""
    if not isinstance(model, (str, Path)):
        return None
    metadata = Path(model) / METADATA_FILE
    if not metadata.is_file():
        return None
    return json.loads(metadata.read_text(encoding="utf-8")).get("source")


def _text_tower(model: ModelSource, stretch_to: int | None) -> nn.Module:
    if isinstance(model, nn.Module) and not hasattr(model, "text_model"):
        return model
    return load_clip_model(model, stretch_to=stretch_to).model.text_model


def _reference_tower(reference: ModelSource) -> nn.Module:
    if isinstance(reference, nn.Module):
        return getattr(reference, "text_model", reference)
    return load_text_encoder(reference, with_projection=False).text_encoder  # hidden states only
