"""Regional prompts' one-way attention: who may see whom in ``[CLS, patches..., prompts...]``.

Token order per image-encoder layer: CLS (0), the ``side x side`` patches in row-major order
(1..N), then the layer's M prompts (N+1..N+M). Published rule: CLS sees everything; patches do not
see prompts; a prompt sees itself and the patches of its region. Our choices: patches see CLS and
every patch (as in plain CLIP), a prompt does not see CLS or other prompts, regions are a
``grid x grid`` split of the patch grid and prompt ``m`` covers region ``m mod grid²``.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError

__all__ = ["attention_allowed", "attention_bias", "patch_regions", "prompt_regions"]


def patch_regions(side: int, grid: int) -> torch.Tensor:
    """``[side * side]`` region index of each patch (row-major), regions a ``grid x grid`` split."""
    if not 1 <= grid <= side:
        raise ConfigError(
            f"fix_clip.region_grid={grid}: must lie in 1..{side} (the patch grid is {side}x{side}); "
            "lower fix_clip.region_grid"
        )
    band = torch.arange(side) * grid // side
    return (band[:, None] * grid + band[None, :]).flatten()


def prompt_regions(prompts: int, grid: int) -> torch.Tensor:
    """``[prompts]`` region covered by each prompt: ``m mod grid²``."""
    return torch.arange(prompts) % (grid * grid)


def attention_allowed(side: int, prompts: int, grid: int) -> torch.Tensor:
    """``[T, T]`` bool, ``T = 1 + side² + prompts``: ``allowed[q, k]`` says whether query ``q`` may attend to key ``k``."""
    patches = side * side
    total = 1 + patches + prompts
    allowed = torch.zeros(total, total, dtype=torch.bool)
    allowed[0, :] = True  # CLS sees everything
    allowed[1 : 1 + patches, : 1 + patches] = True  # patches see CLS and patches, never prompts
    if prompts:
        own = prompt_regions(prompts, grid)[:, None] == patch_regions(side, grid)[None, :]
        allowed[1 + patches :, 1 : 1 + patches] = own  # a prompt sees its region's patches...
        allowed[1 + patches :, 1 + patches :] = torch.eye(prompts, dtype=torch.bool)  # ...and itself
    return allowed


def attention_bias(allowed: torch.Tensor, implementation: str, dtype: torch.dtype) -> torch.Tensor:
    """``allowed`` as the ``attention_mask`` transformers' CLIP attention takes: ``[1, 1, T, T]``, boolean for
    SDPA (True = attend), additive (0 / most negative ``dtype`` value) for eager attention."""
    mask = allowed[None, None]
    if implementation == "sdpa":
        return mask
    if implementation == "eager":
        return torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, torch.finfo(dtype).min)
    raise ConfigError(
        f"regional prompts need an arbitrary attention mask: the vision tower uses attn_implementation="
        f"{implementation!r}; load it with 'sdpa' or 'eager', or set fix_clip.prompts: 0"
    )
