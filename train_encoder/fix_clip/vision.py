"""The image tower's forward with FIX-CLIP's additions, over transformers' own ``CLIPVisionModel`` layers."""

from __future__ import annotations

from typing import NamedTuple

import torch
from transformers import CLIPVisionModel

from .masking import replace_masked_patches

__all__ = ["VisionPass", "vision_forward"]


class VisionPass(NamedTuple):
    pooled: torch.Tensor
    """``post_layernorm`` of the final CLS state, ``[B, W]`` (what ``CLIPVisionModel`` calls ``pooler_output``)."""
    cls_states: list[torch.Tensor]
    """The CLS state after each encoder layer, ``[B, W]`` each."""


def vision_forward(
    vision: CLIPVisionModel,
    pixel_values: torch.Tensor,
    *,
    patch_mask: torch.Tensor | None = None,
    mask_token: torch.Tensor | None = None,
    prompts: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
) -> VisionPass:
    """``vision``'s forward with optional masked patches and per-layer prompts.

    ``patch_mask`` ``[B, N]`` (True = replace by ``mask_token``); ``prompts`` ``[layers, M, W]``: before each
    layer the sequence's last M tokens are that layer's prompts (deep prompts: the previous layer's prompt
    outputs are dropped); ``attention_mask`` as ``regions.attention_bias`` makes it. With neither, this is
    ``CLIPVisionModel.forward`` step for step.
    """
    hidden = vision.embeddings(pixel_values)
    if patch_mask is not None:
        if mask_token is None:
            raise ValueError("patch_mask needs a mask_token")
        positions = vision.embeddings.position_embedding.weight[1:]
        hidden = replace_masked_patches(hidden, patch_mask, mask_token, positions)
    hidden = vision.pre_layrnorm(hidden)
    tokens = hidden.shape[1]
    layers = vision.encoder.layers
    if prompts is not None and prompts.shape[0] != len(layers):
        raise ValueError(f"prompts hold {prompts.shape[0]} layers, the encoder has {len(layers)}")
    cls_states = []
    for index, layer in enumerate(layers):
        if prompts is not None:
            layer_prompts = prompts[index].to(hidden.dtype).expand(hidden.shape[0], -1, -1)
            hidden = torch.cat([hidden[:, :tokens], layer_prompts], dim=1)
        hidden = layer(hidden, attention_mask)
        cls_states.append(hidden[:, 0])
    return VisionPass(vision.post_layernorm(hidden[:, 0]), cls_states)
