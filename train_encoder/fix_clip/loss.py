"""FIX-CLIP's loss: ``Σ ω_i·L_i + L_short + L_long``, every term ``losses.contrastive_loss`` (InfoNCE)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..losses import contrastive_loss

__all__ = ["FixClipLossParts", "fix_clip_loss"]


@dataclass(frozen=True)
class FixClipLossParts:
    """``total = 2·(λ·short + (1-λ)·long) + Σ ω_i·hierarchy[i]``; λ = 0.5 gives the paper's sum."""

    total: torch.Tensor
    long: torch.Tensor
    short: torch.Tensor
    hierarchy: tuple[torch.Tensor, ...]

    def logged(self) -> dict[str, torch.Tensor]:
        """``loss``, ``loss_long``, ``loss_short`` and ``loss_hier_i`` (what the trainer logs)."""
        parts = {"loss": self.total, "loss_long": self.long, "loss_short": self.short}
        parts.update({f"loss_hier_{index}": term for index, term in enumerate(self.hierarchy)})
        return parts


def fix_clip_loss(
    image_features: torch.Tensor,
    short_image_features: torch.Tensor,
    long_text_features: torch.Tensor,
    short_text_features: torch.Tensor,
    hierarchy_features: Sequence[torch.Tensor],
    logit_scale: torch.Tensor | float,
    *,
    hierarchy_weight: float,
    short_weight: float = 0.5,
    label_smoothing: float = 0.1,
    gather: bool = True,
) -> FixClipLossParts:
    """Long captions vs the raw image, short captions vs the masked image, long captions vs each hierarchical
    group feature (our choice: the long caption, the model's logit scale), all L2-normalised here."""
    if not 0.0 <= short_weight <= 1.0:
        raise ValueError(f"short_weight (λ) must lie in [0, 1], got {short_weight}")

    def term(images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        return contrastive_loss(
            F.normalize(images, dim=-1),
            F.normalize(texts, dim=-1),
            logit_scale,
            label_smoothing=label_smoothing,
            gather=gather,
        )

    loss_long = term(image_features, long_text_features)
    loss_short = term(short_image_features, short_text_features)
    hierarchy = tuple(term(features, long_text_features) for features in hierarchy_features)
    total = 2.0 * (short_weight * loss_short + (1.0 - short_weight) * loss_long)
    for loss in hierarchy:
        total = total + hierarchy_weight * loss
    return FixClipLossParts(total, loss_long, loss_short, hierarchy)
