"""What one forward of :class:`train_encoder.model_setup.TwoCaptionCLIP` returns, and a recipe's loss reads."""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["TwoCaptionOutput"]


class TwoCaptionOutput(NamedTuple):
    image_features: torch.Tensor
    long_text_features: torch.Tensor
    short_text_features: torch.Tensor
    long_hidden_states: torch.Tensor | None
    """Final-layer-norm hidden states of the long captions (what a Stable Diffusion UNet reads); the first
    ``TwoCaptionCLIP.hidden_positions`` of them, ``None`` when that is 0."""
    logit_scale: torch.Tensor
    """The multiplier, ``logit_scale.exp()``."""
    short_image_features: torch.Tensor | None = None
    """The image features for the short captions when a recipe's image side makes its own (FIX-CLIP: masked)."""
    hierarchy_features: tuple[torch.Tensor, ...] = ()
    """Further image features from a recipe's image side (FIX-CLIP: one per layer group)."""
