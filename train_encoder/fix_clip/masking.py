"""The short branch's image: a random share of patch tokens replaced by a learnable mask token."""

from __future__ import annotations

import torch

__all__ = ["masked_count", "random_patch_mask", "replace_masked_patches"]


def masked_count(num_patches: int, ratio: float) -> int:
    """Patches masked per image: ``round(ratio * num_patches)``, at most ``num_patches - 1`` (one stays visible)."""
    return min(round(ratio * num_patches), num_patches - 1)


def random_patch_mask(batch_size: int, num_patches: int, ratio: float, *, generator: torch.Generator) -> torch.Tensor:
    """``[batch, patches]`` bool, True = masked: exactly ``masked_count`` patches per row, uniformly without
    replacement, drawn from ``generator`` alone (seeded per batch by the trainer: exact resume)."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must lie in [0, 1), got {ratio}")
    if batch_size < 0 or num_patches < 1:
        raise ValueError(f"need batch_size >= 0 and num_patches >= 1, got {batch_size}, {num_patches}")
    order = torch.rand(batch_size, num_patches, generator=generator).argsort(dim=1)
    return order < masked_count(num_patches, ratio)


def replace_masked_patches(
    embeddings: torch.Tensor, patch_mask: torch.Tensor, mask_token: torch.Tensor, patch_positions: torch.Tensor
) -> torch.Tensor:
    """Embeddings ``[B, 1 + N, W]`` (CLS first, position embeddings added) with masked patches replaced by
    ``mask_token + position``: the mask token takes the place of the patch embedding, its position is kept
    (BEiT / SimMIM style; our choice). The CLS token is never masked."""
    if patch_mask.shape != (embeddings.shape[0], embeddings.shape[1] - 1):
        raise ValueError(
            f"patch_mask {tuple(patch_mask.shape)} must be [batch, patches] = "
            f"{(embeddings.shape[0], embeddings.shape[1] - 1)}"
        )
    replaced = (mask_token + patch_positions).to(embeddings.dtype).expand_as(embeddings[:, 1:])
    patches = torch.where(patch_mask.to(embeddings.device)[..., None], replaced, embeddings[:, 1:])
    return torch.cat([embeddings[:, :1], patches], dim=1)
