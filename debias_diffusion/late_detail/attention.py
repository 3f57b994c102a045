"""Why a late mention is (not) drawn: how much cross-attention the UNet gives it, and what the encoder made of it.

The late-detail curves say *whether* a mention at an offset reaches the image. This module says
*where the chain drops it*, for every mention prompt of a late-detail run:

- **Attention ratio** (the UNet's side): the share of the UNet's cross-attention mass that falls on
  the mention's tokens, averaged over every cross-attention layer, head, image position and
  denoising step of the conditional branch, divided by the share uniform attention would give
  (mention tokens / conditioning tokens). 1 means the mention gets an average token's attention;
  near 0, the UNet does not look there, whatever the encoder wrote.
- **State similarity** (the encoder's side): the cosine between the mention tokens' hidden states
  (what the UNet attends to) and the same item's mention states at the run's first offset. Near 1,
  the encoder writes a late mention as it writes an early one.

A mention the encoder never reads (truncated away) has neither: it is reported as not conditioned.
Works with this package's SD 1.x/2.x and SDXL pipelines, with the ``truncate`` and ``chunk`` policies.
The recorder never changes the computation: it measures the attention probabilities beside the
pipeline's own attention processors, which still produce every output.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..atomic_io import atomic_write_text
from ..conditioning import plan_prompt
from ..errors import ProminenceDataError
from ..prominence.jobs import SamplingSettings
from ..prominence.metrics import DEFAULT_RESAMPLES, Estimate
from ..tokenization import count_tokens
from .prompts import LateDetailPrompt, mention_offset

__all__ = [
    "MentionAttention",
    "MentionAttentionSummary",
    "cross_attention_mass",
    "measure_mention_attention",
    "mention_positions",
    "summarize_mention_attention",
    "write_mention_attention",
]


@dataclass(frozen=True)
class MentionAttention:
    """One mention prompt and seed of one condition."""

    condition: str
    item: int
    offset: int
    """The requested offset (the late-detail run's)."""
    seed: int
    mention_offset: int | None
    """Where the mention starts in the conditioning sequence (chunks concatenated); ``None``: not read."""
    mention_tokens: int
    conditioning_tokens: int
    attention_share: float | None
    """Share of the conditional branch's cross-attention mass on the mention's tokens."""
    attention_ratio: float | None
    """``attention_share`` over the uniform share ``mention_tokens / conditioning_tokens``."""
    state_similarity: float | None
    """Mean cosine of the mention tokens' states with the item's first-offset mention states."""


@dataclass(frozen=True)
class MentionAttentionSummary:
    """One condition at one offset: means over items and seeds, 95% bootstrap intervals over items."""

    condition: str
    offset: int
    measured: int
    """Mention prompts x seeds the encoder read (the others are not conditioned)."""
    attention_ratio: Estimate
    state_similarity: Estimate

    def to_dict(self) -> dict:
        return {"condition": self.condition, "offset": self.offset, "measured": self.measured,
                "attention_ratio": self.attention_ratio.to_dict(),
                "state_similarity": self.state_similarity.to_dict()}  # fmt: skip


def mention_positions(prompt: LateDetailPrompt, tokenizer, policy: str) -> range | None:
    """The mention's token positions in the conditioning sequence the pipeline feeds the UNet.

    Each segment of the prompt's plan (one for ``truncate``, several for ``chunk``) fills one window
    of ``tokenizer.model_max_length`` positions (transformers' name for the context length); the
    mention sits in the segment holding the whole target sentence. ``None`` when no segment does.
    """
    if not prompt.mentioned:
        raise ProminenceDataError(f"the control prompt of offset {prompt.offset} mentions no target")
    window = tokenizer.model_max_length
    plan = plan_prompt(prompt.prompt, tokenizer, policy)
    length = count_tokens(tokenizer, prompt.target)
    for index, segment in enumerate(plan.segments):
        if prompt.target_sentence not in segment:
            continue
        sentence_at = segment.index(prompt.target_sentence)
        phrase_at = sentence_at + prompt.target_sentence.lower().index(prompt.target.lower())
        start = index * window + mention_offset(segment, phrase_at, tokenizer)
        return range(start, start + length)
    return None


class _AttentionRecorder:
    """Wraps one attention processor: outputs come from it unchanged; for cross-attention calls, the
    key-position mass of the last ``rows`` batch rows (the conditional branch) is accumulated."""

    def __init__(self, inner, tally: _Tally) -> None:
        self.inner, self.tally = inner, tally

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        if encoder_hidden_states is not None and self.tally.rows:
            with torch.no_grad():
                self.tally.add(_attention_probabilities(attn, hidden_states, encoder_hidden_states, temb))
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)


class _Tally:
    """The summed key-position mass of the conditional rows over every cross-attention call."""

    def __init__(self, rows: int) -> None:
        self.rows, self.total, self.calls = rows, None, 0

    def add(self, probabilities: torch.Tensor) -> None:
        """``probabilities``: ``(batch, heads, queries, keys)``; keeps the mean over heads and queries."""
        mass = probabilities[-self.rows :].float().mean(dim=(1, 2)).cpu()
        self.total = mass if self.total is None else self.total + mass
        self.calls += 1


def _attention_probabilities(attn, hidden_states, encoder_hidden_states, temb) -> torch.Tensor:
    """The attention probabilities diffusers' plain ``AttnProcessor`` computes (no mask: SD's UNets use none)."""
    if attn.spatial_norm is not None:
        hidden_states = attn.spatial_norm(hidden_states, temb)
    if hidden_states.ndim == 4:
        batch, channels, height, width = hidden_states.shape
        hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
    if attn.group_norm is not None:
        hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
    if attn.norm_cross:
        encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
    query = attn.head_to_batch_dim(attn.to_q(hidden_states))
    key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
    probabilities = attn.get_attention_scores(query, key, None)
    return probabilities.view(encoder_hidden_states.shape[0], attn.heads, *probabilities.shape[1:])


def cross_attention_mass(unet: nn.Module, run, rows: int) -> torch.Tensor:
    """Run ``run()`` with ``unet``'s cross-attention recorded; the mean mass per key position, ``(rows, keys)``.

    Args:
        unet: a diffusers UNet (its processors are restored afterwards, also on error).
        run: a zero-argument callable that calls the pipeline.
        rows: conditional rows per UNet call: the last ``rows`` of each batch (diffusers puts the
            unconditional half first under classifier-free guidance).
    """
    originals = unet.attn_processors
    tally = _Tally(rows)
    unet.set_attn_processor({name: _AttentionRecorder(processor, tally) for name, processor in originals.items()})
    try:
        run()
    finally:
        unet.set_attn_processor(originals)
    if not tally.calls:
        raise ProminenceDataError("the UNet made no cross-attention call: nothing was measured")
    return tally.total / tally.calls


def measure_mention_attention(
    pipe,
    prompts: Sequence[LateDetailPrompt],
    *,
    condition: str,
    policy: str = "truncate",
    seeds: Sequence[int] = (0,),
    generation: SamplingSettings | None = None,
    progress: bool = True,
) -> list[MentionAttention]:
    """Attention ratio and state similarity of every mention prompt (see the module docstring).

    Args:
        pipe: a Stable Diffusion pipeline of this package (``encode_prompt`` with ``long_prompt``).
        prompts: a late-detail run's prompts (``build_prompts``); controls are skipped.
        condition: the label the records carry.
        policy: the long-prompt policy the pipeline conditions with.
        seeds: one denoising run per mention prompt and seed.
        generation: steps, guidance and size (as the late-detail run's).
        progress: a progress bar.
    """
    generation = generation or SamplingSettings()
    mentions = [p for p in prompts if p.mentioned]
    if not mentions or not seeds:
        raise ProminenceDataError("no mention prompts or no seeds: nothing to measure")
    first = min(p.offset for p in mentions)
    device = getattr(pipe, "_execution_device", None) or pipe.device
    states, spans = {}, {}
    for prompt in mentions:
        span = mention_positions(prompt, pipe.tokenizer, policy)
        spans[prompt.item, prompt.offset] = span
        if span is not None:  # keywords: SD's and SDXL's encode_prompt order their arguments differently
            with torch.no_grad():
                encoded = pipe.encode_prompt(prompt=prompt.prompt, device=device, num_images_per_prompt=1,
                                             do_classifier_free_guidance=False, long_prompt=policy)[0][0]  # fmt: skip
            states[prompt.item, prompt.offset] = (encoded[span.start : span.stop].float().cpu(), encoded.shape[0])
    kwargs = dict(num_inference_steps=generation.steps, guidance_scale=generation.guidance_scale,
                  width=generation.width, height=generation.height, output_type="latent",
                  **{**generation.extra, "long_prompt": policy})  # fmt: skip
    records = []
    bar = tqdm(total=len(mentions) * len(seeds), desc=f"attention {condition}", disable=not progress, unit="run")
    for prompt in mentions:
        span, key = spans[prompt.item, prompt.offset], (prompt.item, prompt.offset)
        length = count_tokens(pipe.tokenizer, prompt.target)
        reference = states.get((prompt.item, first))
        for seed in seeds:
            bar.update()
            if span is None:
                records.append(MentionAttention(condition, prompt.item, prompt.offset, seed, None, length,
                                                0, None, None, None))  # fmt: skip
                continue
            generator = torch.Generator(device="cpu").manual_seed(seed)
            call = functools.partial(pipe, prompt=prompt.prompt, generator=generator, **kwargs)
            mass = cross_attention_mass(pipe.unet, call, rows=1)[0]
            share = float(mass[span.start : span.stop].sum())
            mention_states, total = states[key]
            similarity = None
            if reference is not None:
                similarity = float(torch.cosine_similarity(mention_states, reference[0], dim=-1).mean())
            records.append(MentionAttention(condition, prompt.item, prompt.offset, seed, span.start, length, total,
                                            share, share * total / length, similarity))  # fmt: skip
    bar.close()
    return records


def summarize_mention_attention(
    records: Sequence[MentionAttention], *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> list[MentionAttentionSummary]:
    """Per condition and offset: mean attention ratio and state similarity, intervals from a bootstrap over items."""
    groups: dict[tuple[str, int], list[MentionAttention]] = {}
    for record in records:
        groups.setdefault((record.condition, record.offset), []).append(record)
    return [
        MentionAttentionSummary(
            condition,
            offset,
            sum(r.attention_ratio is not None for r in group),
            _item_mean(group, "attention_ratio", n_resamples, seed),
            _item_mean(group, "state_similarity", n_resamples, seed),
        )  # fmt: skip
        for (condition, offset), group in groups.items()
    ]


def _item_mean(group: Sequence[MentionAttention], field: str, n_resamples: int, seed: int) -> Estimate:
    per_item: dict[int, list[float]] = {}
    for record in group:
        value = getattr(record, field)
        if value is not None:
            per_item.setdefault(record.item, []).append(value)
    if not per_item:
        return Estimate(float("nan"), float("nan"), float("nan"))
    means = np.array([np.mean(values) for values in per_item.values()])
    weights = np.array([len(values) for values in per_item.values()], dtype=float)
    value = float(np.average(means, weights=weights))
    rng = np.random.default_rng([seed, len(means)])
    draws = rng.multinomial(len(means), np.full(len(means), 1 / len(means)), size=n_resamples) * weights
    resampled = (draws * means).sum(axis=1) / draws.sum(axis=1)
    low, high = np.quantile(resampled, [0.025, 0.975])
    return Estimate(value, float(low), float(high))


def write_mention_attention(
    records: Sequence[MentionAttention], folder: str | Path, *, caveat: str | None = None
) -> dict[str, Path]:
    """``attention.json`` (records and summaries), ``attention.csv`` (records) and ``attention.md`` (a table),
    each written atomically; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summaries = summarize_mention_attention(records)
    paths = {name: folder / f"attention.{name}" for name in ("json", "csv", "md")}
    data = {"summaries": [s.to_dict() for s in summaries], "records": [asdict(r) for r in records]}
    atomic_write_text(paths["json"], json.dumps(data, indent=2) + "\n")
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(asdict(records[0])), lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(r) for r in records)  # None: an empty cell
    atomic_write_text(paths["csv"], table.getvalue())
    lines = ["# Where a late mention is dropped", ""]
    if caveat:
        lines += [f"> {caveat}", ""]
    lines += [
        "| condition | offset | measured | attention ratio [95% CI] | state similarity [95% CI] |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for s in summaries:
        lines.append(f"| {s.condition} | {s.offset} | {s.measured} | {_cell(s.attention_ratio)} | "
                     f"{_cell(s.state_similarity)} |")  # fmt: skip
    lines += ["", "- **Attention ratio**: the mention tokens' share of the UNet's cross-attention over the share "
              "uniform attention would give (1: an average token's attention).",
              "- **State similarity**: cosine of the mention tokens' states with the same item's mention at the "
              "first offset.", "- **Measured**: mention prompts x seeds whose mention the encoder read (a blank "
              "cell: none was)."]  # fmt: skip
    atomic_write_text(paths["md"], "\n".join(lines) + "\n")
    return paths


def _cell(estimate: Estimate) -> str:
    if estimate.value != estimate.value:  # nan: nothing read
        return ""
    return f"{estimate.value:.2f} [{estimate.low:.2f}, {estimate.high:.2f}]"
