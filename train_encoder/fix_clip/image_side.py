"""``FixClipImageSide``: FIX-CLIP's trainable image-side extras and its two image branches.

Owns the mask token (zero-initialised), the regional prompts ``[layers, M, W]`` and the hierarchical
heads; the CLIP weights stay in the ``CLIPModel``. Per batch: the raw branch (prompts, no masking)
gives the image features for the long captions and the per-layer CLS states for the hierarchical
terms; the masked branch (prompts, ``mask_ratio`` of the patches replaced) gives the image features
for the short captions. None of this is exported into the ``CLIPModel``: at inference the image
tower runs plain (no prompts, no mask).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from transformers import CLIPModel

from .hierarchy import HierarchicalHeads, gaussian_layer_weights, layer_groups
from .masking import random_patch_mask
from .regions import attention_allowed, attention_bias, patch_regions
from .settings import FixClipSettings
from .vision import vision_forward

__all__ = ["FixClipImageSide", "ImageSideOutput"]


class ImageSideOutput(NamedTuple):
    image_features: torch.Tensor
    """Raw branch, projected: matched with the long captions."""
    short_image_features: torch.Tensor
    """Masked branch, projected: matched with the short captions."""
    hierarchy_features: tuple[torch.Tensor, ...]
    """One projected feature per layer group (raw branch): each matched with the long captions."""


class FixClipImageSide(nn.Module):
    """The extras FIX-CLIP trains beside a ``CLIPModel`` (see the module docstring)."""

    def __init__(self, model: CLIPModel, settings: FixClipSettings) -> None:
        super().__init__()
        vision = model.vision_model
        config = vision.config
        self.settings = settings
        self.side = config.image_size // config.patch_size
        self.num_patches = self.side * self.side
        width = config.hidden_size
        layers = config.num_hidden_layers
        self.mask_token = nn.Parameter(torch.zeros(width))
        self.prompts = None
        if settings.prompts:
            patch_regions(self.side, settings.region_grid)  # refuses a grid finer than the patches
            self.prompts = nn.Parameter(torch.randn(layers, settings.prompts, width) * settings.prompt_init_std)
            allowed = attention_allowed(self.side, settings.prompts, settings.region_grid)
            self.register_buffer("allowed", allowed, persistent=False)
        groups = layer_groups(layers, settings.groups, settings.group_size)
        weights = gaussian_layer_weights(settings.group_size, settings.sigma, settings.center)
        self.hierarchy = HierarchicalHeads(
            groups, weights, vision.post_layernorm, model.visual_projection, init=settings.head_init
        )

    def batch_inputs(self, batch_size: int, *, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The random inputs of one batch (the patch mask), drawn from ``generator`` on the CPU."""
        mask = random_patch_mask(batch_size, self.num_patches, self.settings.mask_ratio, generator=generator)
        return {"patch_mask": mask}

    def forward(self, model: CLIPModel, pixel_values: torch.Tensor, patch_mask: torch.Tensor) -> ImageSideOutput:
        vision = model.vision_model
        attention = None
        if self.prompts is not None:
            implementation = vision.config._attn_implementation
            attention = attention_bias(self.allowed, implementation, pixel_values.dtype).to(pixel_values.device)
        raw = vision_forward(vision, pixel_values, prompts=self.prompts, attention_mask=attention)
        masked = vision_forward(
            vision,
            pixel_values,
            patch_mask=patch_mask,
            mask_token=self.mask_token,
            prompts=self.prompts,
            attention_mask=attention,
        )
        return ImageSideOutput(
            model.visual_projection(raw.pooled),
            model.visual_projection(masked.pooled),
            self.hierarchy(raw.cls_states),
        )
