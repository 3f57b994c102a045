"""CLIP text embeddings for the probes: projected, L2-normalised pooled outputs, in batches.

Texts are tokenised with the encoder's own tokenizer at the encoder's own context length (77 for
OpenAI CLIP, 248 for Long-CLIP / DeBias-CLIP). A text longer than that is either refused
(``on_long="error"``) or cut to its first tokens with EOT kept, as CLIP's own ``truncate=True`` does
(``on_long="truncate"``); which texts were cut is returned, never silent. Each batch is padded to
its longest text; CLIP's causal mask and EOT pooling make the padding irrelevant to the result.
An encoder without a projection (an SD 1.x ``CLIPTextModel``) gives its pooled EOT state instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import CLIPTextModelWithProjection

from ..errors import PromptError
from ..loading import LoadedTextEncoder

__all__ = ["LONG_TEXT_POLICIES", "LongTextPolicy", "TextEmbeddings", "encode_pooled_texts"]

LongTextPolicy = Literal["truncate", "error"]
LONG_TEXT_POLICIES: tuple[str, ...] = ("truncate", "error")


@dataclass(frozen=True)
class TextEmbeddings:
    """``embeddings[i]`` is text i's unit-norm embedding (float32, CPU)."""

    embeddings: torch.Tensor
    truncated: tuple[int, ...]
    """Indices of the texts cut to fit ``context_length``."""
    token_counts: tuple[int, ...]
    """Tokens per text including SOT/EOT, before any truncation."""
    context_length: int
    projected: bool
    """``True`` when the embeddings went through the encoder's text projection."""


@torch.no_grad()
def encode_pooled_texts(
    encoder: LoadedTextEncoder,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    on_long: LongTextPolicy = "truncate",
    progress: bool = False,
    desc: str = "texts",
) -> TextEmbeddings:
    """Embed ``texts`` with ``encoder`` (from ``load_text_encoder``); see the module docstring."""
    if on_long not in LONG_TEXT_POLICIES:
        raise ValueError(f"on_long must be one of {LONG_TEXT_POLICIES}, got {on_long!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise PromptError(f"text {index} is empty or not a string: {text!r}")
    model, tokenizer, limit = encoder.text_encoder, encoder.tokenizer, encoder.context_length
    counts = [len(ids) for ids in tokenizer(texts, truncation=False, verbose=False)["input_ids"]] if texts else []
    too_long = tuple(i for i, count in enumerate(counts) if count > limit)
    if too_long and on_long == "error":
        first = too_long[0]
        raise PromptError(
            f"{len(too_long)} text(s) exceed the encoder's {limit} tokens (incl. SOT/EOT), e.g. text {first} "
            f"with {counts[first]}: {texts[first][:80]!r}; use a longer encoder, shorter captions or truncation"
        )
    if device is not None:
        model.to(device)
    model_device = next(model.parameters()).device
    projected = isinstance(model, CLIPTextModelWithProjection)
    width = model.config.projection_dim if projected else model.config.hidden_size
    out = torch.empty(len(texts), width)
    starts = range(0, len(texts), batch_size)
    for start in tqdm(starts, desc=desc, disable=not progress, leave=False):
        batch = texts[start : start + batch_size]
        tokens = tokenizer(batch, padding="longest", truncation=True, max_length=limit, return_tensors="pt")
        output = model(input_ids=tokens["input_ids"].to(model_device))
        pooled = output.text_embeds if projected else output.pooler_output
        out[start : start + len(batch)] = F.normalize(pooled.float(), dim=-1).cpu()
    return TextEmbeddings(out, too_long, tuple(counts), limit, projected)
