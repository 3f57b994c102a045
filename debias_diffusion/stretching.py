"""Knowledge-preserved stretching (KPS) of CLIP's learned position embeddings.

Long-CLIP stretches CLIP's 77 positions to 248 without retraining the early ones: the first
``keep`` rows are copied, the rest are linearly interpolated ``ratio`` times more densely, and
the last row is extrapolated. ``keep=20, ratio=4`` turns 77 rows into 4*77 - 3*20 = 248, the
length every published long-context checkpoint (Long-CLIP, DeBias-CLIP) uses.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .clip_constants import LONG_CLIP_CONTEXT_LENGTH as LONG_CLIP_CONTEXT_LENGTH  # imported from here too
from .errors import EncoderMismatchError
from .renamed import renamed_attributes, renamed_keywords
from .text_model_layout import get_context_length, text_embeddings, text_transformer

LONG_CLIP_KEEP = 20
LONG_CLIP_RATIO = 4


@renamed_keywords(num_positions="context_length")
def stretched_length(context_length: int, keep: int = LONG_CLIP_KEEP, ratio: int = LONG_CLIP_RATIO) -> int:
    """The context length (position-table rows) after stretching ``context_length`` rows with (keep, ratio).

    Args:
        context_length: rows before stretching (``num_positions=`` is a deprecated spelling).
        keep: leading rows kept as they are.
        ratio: rows each later row becomes.
    """
    _check_stretch_args(context_length, keep, ratio)
    return keep + ratio * (context_length - keep)


@renamed_keywords(num_positions="context_length")
def stretch_ratio(context_length: int, target: int, keep: int = LONG_CLIP_KEEP) -> int:
    """The integer ratio that stretches ``context_length`` rows to exactly ``target`` (77 -> 248: 4)."""
    ratio, remainder = divmod(target - keep, context_length - keep) if context_length > keep else (0, 1)
    if remainder or ratio < 2:
        raise EncoderMismatchError(
            f"cannot stretch a {context_length}-position text tower to {target} positions with "
            f"keep={keep}: KPS gives keep + ratio*({context_length} - keep) rows for an integer "
            f"ratio >= 2 (e.g. 77 -> {keep + 4 * (77 - keep)} with ratio 4)"
        )
    return ratio


def stretch_position_table(
    table: torch.Tensor, keep: int = LONG_CLIP_KEEP, ratio: int = LONG_CLIP_RATIO
) -> torch.Tensor:
    """Return the KPS-stretched copy of a ``[positions, width]`` table (computed in float64).

    ``new[keep + ratio*i + k] = (1 - k/ratio) * old[keep + i] + (k/ratio) * old[keep + i + 1]``
    for the interior rows, and the last ``ratio`` rows extrapolate the final old step.

    Args:
        table: the ``[positions, width]`` position embeddings.
        keep: leading rows kept as they are (20, as Long-CLIP).
        ratio: rows each later row becomes (4: 77 -> 248).
    """
    if table.ndim != 2:
        raise EncoderMismatchError(f"a position table must be 2-D [positions, width]; got shape {tuple(table.shape)}")
    n = int(table.shape[0])
    _check_stretch_args(n, keep, ratio)
    old = table.detach().to(torch.float64)
    frac = torch.arange(ratio, dtype=torch.float64).div(ratio).view(1, ratio, 1)
    start, end = old[keep:-1].unsqueeze(1), old[keep + 1 :].unsqueeze(1)
    interior = ((1 - frac) * start + frac * end).reshape(-1, old.shape[1])
    tail = old[-1] + frac.view(ratio, 1) * (old[-1] - old[-2])
    stretched = torch.cat([old[:keep], interior, tail], dim=0)
    return stretched.to(table.dtype)


def stretch_text_encoder(
    model: nn.Module,
    tokenizer: Any | None = None,
    *,
    keep: int = LONG_CLIP_KEEP,
    ratio: int = LONG_CLIP_RATIO,
) -> nn.Module:
    """Stretch a transformers CLIP text model in place and return it.

    Works on ``CLIPTextModel`` (flattened or not), ``CLIPTextModelWithProjection`` and
    ``CLIPModel``. Resizes, together: the position-embedding table, the non-persistent
    ``position_ids`` buffer and the context length in the configs and, when given, the tokenizer.

    Args:
        model: the model to stretch (changed in place).
        tokenizer: a transformers tokenizer whose context length (``model_max_length``) follows, or ``None``.
        keep, ratio: as :func:`stretch_position_table`.
    """
    embeddings = text_embeddings(model)
    old = embeddings.position_embedding
    new_table = stretch_position_table(old.weight.data, keep, ratio)
    new_len = int(new_table.shape[0])
    replacement = nn.Embedding(new_len, new_table.shape[1], device=old.weight.device, dtype=old.weight.dtype)
    replacement.weight.data.copy_(new_table)
    replacement.weight.requires_grad_(old.weight.requires_grad)
    embeddings.position_embedding = replacement
    set_context_length(model, new_len)
    if tokenizer is not None:
        tokenizer.model_max_length = new_len  # transformers' name for the tokenizer's context length
    return model


@renamed_keywords(positions="context_length")
def stretch_to_context_length(
    model: nn.Module, context_length: int | None, tokenizer: Any | None = None, *, keep: int = LONG_CLIP_KEEP
) -> bool:
    """Stretch ``model`` in place to exactly ``context_length`` rows (KPS) when its table is shorter; True if it did.

    ``context_length=None`` or a table already that long leaves ``model`` as it is. The ratio is the one that gives
    ``context_length`` rows (:func:`stretch_ratio`, which refuses lengths KPS cannot reach); ``tokenizer`` follows.
    Earlier name: ``stretch_to_positions(model, positions)``, deprecated.
    """
    have = get_context_length(model)
    if context_length is None or have >= context_length:
        return False
    stretch_text_encoder(model, tokenizer, keep=keep, ratio=stretch_ratio(have, context_length, keep))
    return True


@renamed_keywords(num_positions="context_length")
def set_context_length(model: nn.Module, context_length: int) -> None:
    """Re-register ``position_ids`` and update every config that records the context length."""
    embeddings = text_embeddings(model)
    device = embeddings.position_embedding.weight.device
    ids = torch.arange(context_length, device=device).unsqueeze(0)
    embeddings.register_buffer("position_ids", ids, persistent=False)
    for config in _text_configs(model):
        config.max_position_embeddings = context_length  # transformers' configs: max_position_embeddings


def _text_configs(model: nn.Module) -> list[Any]:
    configs = []
    for owner in (model, text_transformer(model)):
        config = getattr(owner, "config", None)
        config = getattr(config, "text_config", config)
        if config is not None and all(config is not c for c in configs):
            configs.append(config)
    return configs


def _check_stretch_args(context_length: int, keep: int, ratio: int) -> None:
    if not isinstance(ratio, int) or ratio < 1:
        raise EncoderMismatchError(f"stretch ratio must be a positive integer; got {ratio!r}")
    if not isinstance(keep, int) or keep < 0 or keep > context_length - 2:
        raise EncoderMismatchError(
            f"stretch keep must be an integer in [0, {context_length - 2}] for a table of "
            f"{context_length} rows (the stretched part needs at least two rows); got {keep!r}"
        )


__getattr__ = renamed_attributes(
    __name__,
    {
        "LONG_CLIP_POSITIONS": "LONG_CLIP_CONTEXT_LENGTH",
        "set_position_count": "set_context_length",
        "stretch_to_positions": "stretch_to_context_length",
    },
    globals(),
)
