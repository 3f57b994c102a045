"""Hierarchical feature alignment: Gaussian-weighted CLS tokens of groups of intermediate layers, each
projected (LayerNorm + linear, like CLIP's own head) into the joint space for its own InfoNCE term."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["HierarchicalHeads", "gaussian_layer_weights", "layer_groups"]


def gaussian_layer_weights(size: int, sigma: float, center: float | None = None) -> torch.Tensor:
    """``[size]`` weights ``∝ exp(-(j - center)² / (2σ²))``, summing to 1; ``center`` defaults to ``(size - 1) / 2``."""
    if size < 1 or not sigma > 0:
        raise ValueError(f"need size >= 1 and sigma > 0, got size={size}, sigma={sigma}")
    center = (size - 1) / 2 if center is None else center
    offsets = torch.arange(size, dtype=torch.float64) - center
    weights = torch.exp(-(offsets**2) / (2 * sigma**2))
    return (weights / weights.sum()).float()


def layer_groups(num_layers: int, groups: int, group_size: int) -> list[list[int]]:
    """Indices (0-based encoder layers) of each group: ``groups`` runs of ``group_size`` consecutive layers,
    the last ending at layer ``num_layers - 2`` (the final layer's CLS is the main image feature)."""
    intermediate = num_layers - 1
    if groups * group_size > intermediate:
        raise ConfigError(
            f"fix_clip.groups={groups} x fix_clip.group_size={group_size} = {groups * group_size} layers, but the "
            f"image encoder has {num_layers} layers ({intermediate} intermediate); lower one of them"
        )
    start = intermediate - groups * group_size
    return [list(range(start + g * group_size, start + (g + 1) * group_size)) for g in range(groups)]


class HierarchicalHeads(nn.Module):
    """One LayerNorm + linear projection per group; ``forward`` maps per-layer CLS states to group features."""

    def __init__(
        self,
        groups: list[list[int]],
        weights: torch.Tensor,
        layer_norm: nn.LayerNorm,
        projection: nn.Linear,
        *,
        init: str = "copy",
    ) -> None:
        super().__init__()
        self.groups = groups
        self.register_buffer("weights", weights.clone(), persistent=False)
        self.norms = nn.ModuleList(copy.deepcopy(layer_norm) for _ in groups)
        self.projections = nn.ModuleList(copy.deepcopy(projection) for _ in groups)
        if init == "random":
            for norm, proj in zip(self.norms, self.projections, strict=True):
                norm.reset_parameters()
                nn.init.normal_(proj.weight, std=proj.in_features**-0.5)
        for parameter in self.parameters():
            parameter.requires_grad_(True)  # trainable even when copied from a frozen tower
        if not math.isclose(float(weights.sum()), 1.0, rel_tol=1e-5):
            raise ValueError("group weights must sum to 1")

    def forward(self, cls_states: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """``cls_states[l]``: the CLS output of layer ``l``, ``[B, W]``; returns one ``[B, D]`` per group."""
        features = []
        for layers, norm, projection in zip(self.groups, self.norms, self.projections, strict=True):
            stacked = torch.stack([cls_states[layer] for layer in layers], dim=-1)
            combined = (stacked * self.weights.to(stacked.dtype)).sum(dim=-1)
            features.append(projection(norm(combined)))
        return tuple(features)
