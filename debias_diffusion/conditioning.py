"""Prompts -> text-encoder hidden states for a diffusion UNet, whatever the prompt's length.

The flow is ``plan_prompt`` (how a prompt fits the encoder: as is, truncated at a sentence, or in
sentence-aligned chunks) -> ``encode_plans`` (one batched encoder pass over every segment) ->
``stack_to_length`` / ``pad_to_length`` (all sequences of a call brought to one length).

Lengths always match. A sequence is lengthened by appending the encoding of the empty prompt:
a whole chunk of it, then its first ``r`` rows for a remainder of ``r`` tokens. CLIP's attention
is causal, so those rows are exactly what the encoder gives for ``""`` padded to ``r`` tokens.
This lets strings, chunked strings and user-made embeddings (e.g. compel's 77-token multiples)
meet in one classifier-free-guidance batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from .errors import EncoderMismatchError, PromptError
from .text_model_layout import get_context_length, text_transformer
from .tokenization import PromptTruncation, count_tokens, encoder_capacity, split_into_chunks, truncate_prompt

logger = logging.getLogger(__name__)

LongPromptPolicy = Literal["truncate", "chunk", "error"]
LONG_PROMPT_POLICIES: tuple[str, ...] = ("truncate", "chunk", "error")


def check_long_prompt_policy(policy: object) -> LongPromptPolicy:
    """Return ``policy`` if it is one of ``LONG_PROMPT_POLICIES``, else raise ``PromptError`` (a ``ValueError``)."""
    if policy not in LONG_PROMPT_POLICIES:
        raise PromptError(f"long_prompt must be one of {', '.join(LONG_PROMPT_POLICIES)}; got {policy!r}")
    return policy  # type: ignore[return-value]


@dataclass(frozen=True)
class PromptPlan:
    """How one prompt is fed to the encoder: one or more segments, each at most one pass long.

    Args:
        prompt: the prompt as given.
        segments: the texts encoded, one pass each (the prompt, its truncation, or its chunks).
        token_count: the prompt's tokens, SOT and EOT excluded.
        capacity: text tokens one pass holds (the context length less SOT and EOT).
        truncation: what the ``truncate`` policy kept and dropped; ``None`` when nothing was cut.
    """

    prompt: str
    segments: tuple[str, ...]
    token_count: int
    capacity: int
    truncation: PromptTruncation | None = None

    @property
    def fits(self) -> bool:
        return self.token_count <= self.capacity


def plan_prompt(prompt: str, tokenizer: PreTrainedTokenizerBase, policy: LongPromptPolicy = "truncate") -> PromptPlan:
    """Decide how ``prompt`` is encoded by an encoder whose context length is ``tokenizer.model_max_length``.

    A prompt that fits is encoded unchanged in one pass. A longer one is, by ``policy``:
    ``truncate``d at a sentence (else word) boundary with a warning naming what was dropped,
    split into sentence-aligned ``chunk``s encoded separately, or refused (``error``).

    Args:
        prompt: the text to encode.
        tokenizer: the encoder's tokenizer (its ``model_max_length``, transformers' name for the context length,
            is the window).
        policy: ``"truncate"``, ``"chunk"`` or ``"error"``.
    """
    if not isinstance(prompt, str):
        raise PromptError(f"a prompt must be a string, got {type(prompt).__name__}")
    policy = check_long_prompt_policy(policy)
    capacity = encoder_capacity(tokenizer)
    if not prompt.strip():
        return PromptPlan(prompt, (prompt,), 0, capacity)
    count = count_tokens(tokenizer, prompt)
    if count <= capacity:
        return PromptPlan(prompt, (prompt,), count, capacity)
    if policy == "error":
        raise PromptError(
            f"the prompt is {count} tokens but the text encoder reads {capacity} (+ start/end tokens); "
            "shorten it, or pass long_prompt='truncate' (keep whole sentences that fit) or 'chunk'"
        )
    if policy == "truncate":
        cut = truncate_prompt(prompt, tokenizer, capacity)
        logger.warning(cut.warning_message())
        return PromptPlan(prompt, (cut.text,), count, capacity, cut)
    return PromptPlan(prompt, tuple(split_into_chunks(prompt, tokenizer, capacity)), count, capacity)


def plan_prompts(
    prompts: Sequence[str], tokenizer: PreTrainedTokenizerBase, policy: LongPromptPolicy = "truncate"
) -> list[PromptPlan]:
    """``plan_prompt`` for each prompt of a batch."""
    return [plan_prompt(prompt, tokenizer, policy) for prompt in prompts]


@dataclass(frozen=True)
class OutputLayer:
    """Which hidden state conditions the UNet.

    ``from_end``: 0 is the last layer (``last_hidden_state``), 1 the penultimate, and so on.
    ``final_norm``: apply the encoder's final LayerNorm to an intermediate layer (SD 1.x/2.x
    ``clip_skip`` does; SDXL uses the raw penultimate layer).
    """

    from_end: int = 0
    final_norm: bool = True

    @classmethod
    def stable_diffusion(cls, clip_skip: int | None) -> OutputLayer:
        """SD 1.x/2.x: last layer, or ``clip_skip`` layers earlier with the final LayerNorm."""
        return cls(_check_clip_skip(clip_skip), final_norm=True)

    @classmethod
    def stable_diffusion_xl(cls, clip_skip: int | None, final_layer: bool = False) -> OutputLayer:
        """SDXL: the raw penultimate layer (``clip_skip`` counts from there), or the final layer."""
        if final_layer:
            if clip_skip:
                raise ValueError(
                    "clip_skip counts back from the penultimate layer; it cannot be used with the final layer"
                )
            return cls(0, final_norm=True)
        return cls(1 + _check_clip_skip(clip_skip), final_norm=False)


def _check_clip_skip(clip_skip: int | None) -> int:
    if clip_skip is None:
        return 0
    if isinstance(clip_skip, bool) or not isinstance(clip_skip, int) or clip_skip < 0:
        raise ValueError(f"clip_skip must be a non-negative int or None, got {clip_skip!r}")
    return clip_skip


@dataclass
class EncodedPrompts:
    """Per-prompt hidden states (``[chunks * L, W]`` each) and pooled embeddings of first chunks."""

    hidden: list[torch.Tensor]
    pooled: torch.Tensor | None


def encode_hidden_states(
    text_encoder: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    device: torch.device | str,
    layer: OutputLayer,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One encoder pass over ``texts`` padded to ``model_max_length``: ``(hidden, pooled)``.

    ``pooled`` is the projected end-of-text embedding of a ``CLIPTextModelWithProjection``, else
    ``None``. Tokenisation and the forward call are the stock diffusers ones, so a prompt that
    fits gives bit-identical states.
    """
    layers = _layer_count(text_encoder)
    if layer.from_end >= layers:
        raise ValueError(
            f"asked for the hidden state {layer.from_end} layers before the last, but the encoder has {layers}"
        )
    inputs = tokenizer(
        list(texts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    )
    use_mask = getattr(text_encoder.config, "use_attention_mask", False)
    attention_mask = inputs.attention_mask.to(device) if use_mask else None
    outputs = text_encoder(
        inputs.input_ids.to(device), attention_mask=attention_mask, output_hidden_states=layer.from_end > 0
    )
    if layer.from_end == 0:
        hidden = outputs.last_hidden_state
    else:
        hidden = outputs.hidden_states[-(layer.from_end + 1)]
        if layer.final_norm:
            hidden = text_transformer(text_encoder).final_layer_norm(hidden)
    return hidden, getattr(outputs, "text_embeds", None)


def _layer_count(text_encoder: nn.Module) -> int:
    return int(text_encoder.config.num_hidden_layers)


def encode_plans(
    text_encoder: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    plans: Sequence[PromptPlan],
    *,
    device: torch.device | str,
    layer: OutputLayer,
) -> EncodedPrompts:
    """Encode every segment of ``plans`` in one batch; group the states back per prompt."""
    _check_tokenizer_matches(text_encoder, tokenizer)
    segments = [segment for plan in plans for segment in plan.segments]
    hidden, pooled = encode_hidden_states(text_encoder, tokenizer, segments, device=device, layer=layer)
    per_prompt, first_chunks, start = [], [], 0
    for plan in plans:
        count = len(plan.segments)
        per_prompt.append(hidden[start : start + count].reshape(-1, hidden.shape[-1]))
        first_chunks.append(start)
        start += count
    return EncodedPrompts(per_prompt, None if pooled is None else pooled[first_chunks])


def _check_tokenizer_matches(text_encoder: nn.Module, tokenizer: PreTrainedTokenizerBase) -> None:
    context_length, length = get_context_length(text_encoder), tokenizer.model_max_length
    if length > context_length:
        raise EncoderMismatchError(
            f"the tokenizer pads to {length} tokens but the text encoder has {context_length} positions; "
            f"set tokenizer.model_max_length = {context_length} (the pipelines do this when they are built)"
        )


def empty_prompt_states(
    text_encoder: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    *,
    device: torch.device | str,
    layer: OutputLayer,
) -> torch.Tensor:
    """Hidden states ``[L, W]`` of the empty prompt: the filler appended to shorter sequences."""
    hidden, _ = encode_hidden_states(text_encoder, tokenizer, [""], device=device, layer=layer)
    return hidden[0]


def filler(empty: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` rows of empty-prompt states: whole chunks of ``empty``, then its first rows."""
    chunk = empty.shape[0]
    whole, rest = divmod(count, chunk)
    return torch.cat([empty] * whole + [empty[:rest]], dim=0)


def stack_to_length(sequences: Sequence[torch.Tensor], length: int, empty: torch.Tensor | None) -> torch.Tensor:
    """Stack ``[n_i, W]`` sequences into ``[B, length, W]``, appending empty-prompt states."""
    rows = []
    for sequence in sequences:
        missing = length - sequence.shape[0]
        if missing < 0:
            raise ValueError(f"a sequence of {sequence.shape[0]} tokens is longer than the target {length}")
        if missing:
            if empty is None:
                raise ValueError("sequences differ in length but no empty-prompt states were given to pad them")
            sequence = torch.cat([sequence, filler(empty, missing).to(sequence)], dim=0)
        rows.append(sequence)
    return torch.stack(rows)


def pad_to_length(embeds: torch.Tensor, length: int, empty: torch.Tensor | None) -> torch.Tensor:
    """``[B, n, W]`` embeddings lengthened to ``[B, length, W]`` with empty-prompt states."""
    if embeds.shape[1] == length:
        return embeds
    return stack_to_length(list(embeds), length, empty)


def check_embeds(name: str, embeds: torch.Tensor, width: int | None = None) -> None:
    """Fail clearly on user-given embeddings of the wrong rank or width."""
    if not isinstance(embeds, torch.Tensor) or embeds.ndim != 3:
        shape = tuple(embeds.shape) if isinstance(embeds, torch.Tensor) else type(embeds).__name__
        raise ValueError(f"`{name}` must be a [batch, tokens, width] tensor, got {shape}")
    if width is not None and embeds.shape[-1] != width:
        raise EncoderMismatchError(
            f"`{name}` is {embeds.shape[-1]} wide but the UNet cross-attends to {width}: "
            "make the embeddings with this pipeline's text encoder(s)"
        )


def common_length(*groups: Sequence[torch.Tensor] | torch.Tensor | None) -> int:
    """Longest sequence among per-prompt lists ``[n_i, W]`` and batched tensors ``[B, n, W]``."""
    lengths = []
    for group in groups:
        if isinstance(group, torch.Tensor):
            lengths.append(group.shape[1])
        elif group is not None:
            lengths.extend(sequence.shape[0] for sequence in group)
    return max(lengths)


def to_length(
    group: Sequence[torch.Tensor] | torch.Tensor, length: int, empty: Callable[[], torch.Tensor]
) -> torch.Tensor:
    """A per-prompt list or a batch brought to ``[B, length, W]``; ``empty()`` is called only if needed."""
    if isinstance(group, torch.Tensor):
        return group if group.shape[1] == length else pad_to_length(group, length, empty())
    needs_filler = any(sequence.shape[0] != length for sequence in group)
    return stack_to_length(group, length, empty() if needs_filler else None)


def negative_prompt_list(negative_prompt: str | list[str] | None, batch_size: int) -> list[str]:
    """The negative prompts of a batch: ``""`` for none, a string for every prompt, or one per prompt."""
    if negative_prompt is None:
        return [""] * batch_size
    if isinstance(negative_prompt, str):
        return [negative_prompt] * batch_size
    if not isinstance(negative_prompt, (list, tuple)) or not all(isinstance(text, str) for text in negative_prompt):
        raise TypeError(
            f"`negative_prompt` must be a string or a list of strings, got {type(negative_prompt).__name__}"
        )
    if len(negative_prompt) != batch_size:
        raise ValueError(
            f"`negative_prompt` has batch size {len(negative_prompt)}, but `prompt` has batch size {batch_size}; "
            "pass one negative prompt per prompt, or a single string"
        )
    return list(negative_prompt)


def repeat_for_images(embeds: torch.Tensor, times: int) -> torch.Tensor:
    """Each prompt's ``[B, n, W]`` or ``[B, D]`` embeddings ``times`` in a row, as stock diffusers does."""
    batch = embeds.shape[0]
    if embeds.ndim == 2:
        return embeds.repeat(1, times).view(batch * times, -1)
    return embeds.repeat(1, times, 1).view(batch * times, embeds.shape[1], -1)
