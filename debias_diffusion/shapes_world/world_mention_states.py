"""What moves an encoder's states of a mention: its position, or the words before it?

For each unseen (anchor, target) item of the late-detail run, the target's mention after the anchor
sentence ("The picture shows a red square. There is also a blue square.", mention at about token 12)
is the reference. The same target sentence is then placed after other context, and the cosine
between its mention tokens' states and the reference's is averaged over items (the UNet reads these
states; ``late_detail.attention``'s "state similarity"):

- **neutral, same offset**: neutral sentences (the late-detail evaluator's built-in pool) instead of
  the anchor sentence, so the mention lands at about the same offset: the context changes, the
  position hardly does;
- **neutral, offset ~40 / ~110**: the late-detail prompts' own arrangement, the anchor sentence then
  neutral sentences: context and position change;
- **repeated anchor, offset ~40 / ~110**: the anchor sentence repeated until the mention lands there:
  the position changes, the words before the mention hardly do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..late_detail.context import NEUTRAL_CONTEXT
from ..late_detail.prompts import DEFAULT_ANCHOR_SENTENCE, DEFAULT_TARGET_SENTENCE, _sentence
from ..loading import load_text_encoder
from ..tokenization import count_tokens

__all__ = ["PLACEMENTS", "measure_mention_states", "mention_states_markdown", "placement_prompts"]

PLACEMENTS = ("neutral, same offset", "neutral, offset ~40", "repeated anchor, offset ~40", "neutral, offset ~110",
              "repeated anchor, offset ~110")  # fmt: skip


def placement_prompts(tokenizer, anchor: str, target: str) -> dict[str, str]:
    """The reference prompt and one prompt per placement (the target sentence last in each)."""
    first, mention = _sentence(DEFAULT_ANCHOR_SENTENCE, anchor), _sentence(DEFAULT_TARGET_SENTENCE, target)
    placed = {"reference": [first], "neutral, same offset": _fill(tokenizer, count_tokens(tokenizer, first))}
    for offset in (40, 110):
        placed[f"neutral, offset ~{offset}"] = [first, *_fill(tokenizer, offset - 12)]
        placed[f"repeated anchor, offset ~{offset}"] = [first] * (1 + offset // count_tokens(tokenizer, first + " "))
    return {name: " ".join([*context, mention]) for name, context in placed.items()}


def measure_mention_states(encoders: Mapping[str, str | Path], items: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """Per encoder label and placement: mean cosine with the reference mention, items measured, mean offset.

    Args:
        encoders: label -> encoder folder (anything ``load_text_encoder`` reads).
        items: ``{"anchor": ..., "target": ...}`` object phrases (``world_items``).
    """
    results = {}
    for label, folder in encoders.items():
        loaded = load_text_encoder(str(folder), with_projection=False)
        cells: dict[str, list[float]] = {name: [] for name in PLACEMENTS}
        offsets: dict[str, list[int]] = {name: [] for name in PLACEMENTS}
        for item in items:
            placed = placement_prompts(loaded.tokenizer, item["anchor"], item["target"])
            reference, _ = _mention_states(loaded, placed["reference"], item["target"])
            for name in PLACEMENTS:
                found = _mention_states(loaded, placed[name], item["target"])
                if found is None:  # past this encoder's window
                    continue
                states, start = found
                cells[name].append(float(torch.cosine_similarity(states, reference, dim=-1).mean()))
                offsets[name].append(start)
        results[label] = {name: {"similarity": sum(v) / len(v) if v else None, "items": len(v),
                                 "mean_offset": sum(offsets[name]) / len(v) if v else None}
                          for name, v in cells.items()}  # fmt: skip
    return results


def mention_states_markdown(results: Mapping[str, Any]) -> str:
    """A table: one row per encoder, one column per placement (similarity and mean offset)."""
    lines = ["| encoder | " + " | ".join(PLACEMENTS) + " |", "| --- |" + " ---: |" * len(PLACEMENTS)]
    for label, row in results.items():
        cells = [
            "past the window" if c["similarity"] is None else f"{c['similarity']:.2f} (@{c['mean_offset']:.0f})"
            for c in row.values()
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fill(tokenizer, tokens: int) -> list[str]:
    """Neutral sentences, in the pool's order, until they hold at least ``tokens`` tokens."""
    chosen: list[str] = []
    for text in NEUTRAL_CONTEXT:
        if chosen and count_tokens(tokenizer, " ".join(chosen)) >= tokens:
            break
        chosen.append(text)
    return chosen


def _mention_states(loaded, text: str, target: str) -> tuple[torch.Tensor, int] | None:
    """The last mention of ``target``'s tokens in ``text``'s states, and where it starts; ``None`` past the window."""
    tokenizer = loaded.tokenizer
    ids = tokenizer(text, truncation=True, padding="max_length", return_tensors="pt").input_ids
    phrase = tokenizer(target, add_special_tokens=False).input_ids
    row = ids[0].tolist()
    starts = [i for i in range(len(row)) if row[i : i + len(phrase)] == phrase]
    if not starts:
        return None
    with torch.no_grad():
        states = loaded.text_encoder(ids).last_hidden_state[0]
    return states[starts[-1] : starts[-1] + len(phrase)], starts[-1]
