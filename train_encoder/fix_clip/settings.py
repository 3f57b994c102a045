"""``FixClipSettings``: every FIX-CLIP knob the paper leaves open, with this implementation's defaults.

It is :class:`~train_encoder.config.TrainConfig`'s ``fix_clip`` field (YAML ``fix_clip: {groups: 2, ...}``,
``--set fix_clip.groups=2``; the flat ``fix_clip_groups`` keys of earlier releases still load, deprecated). None of
the defaults comes from released code (there is none we could read); see ``docs/fix-clip.md`` for which
details are published and which are our choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["HEAD_INITS", "FixClipSettings"]

HEAD_INITS = ("copy", "random")


@dataclass(frozen=True)
class FixClipSettings:
    """FIX-CLIP's image-side settings (``TrainConfig.fix_clip``)."""

    mask_ratio: float = 0.75
    """Share of patch tokens replaced by the mask token in the short branch (paper: ~75%)."""
    prompts: int = 4
    """Regional prompt tokens per image-encoder layer, M (our choice; 0: no prompts)."""
    region_grid: int = 2
    """Regions are a ``region_grid x region_grid`` split of the patch grid; prompt m covers region
    ``m mod region_grid²`` (our choice)."""
    prompt_init_std: float = 0.02
    """Prompts start as N(0, std²) (our choice, VPT's usual scale)."""
    groups: int = 2
    """Hierarchical groups of intermediate layers (our choice; 0: no hierarchical terms)."""
    group_size: int = 4
    """Consecutive intermediate layers per group; the groups end at the layer before the last (our choice)."""
    sigma: float = 1.0
    """Width of the Gaussian layer weights inside a group, in layers (our choice)."""
    center: float | None = None
    """Peak of the Gaussian inside a group (0-based layer offset); null: the group's middle (our choice)."""
    hierarchy_weight: float = 0.1
    """ω_i of every hierarchical InfoNCE term in ``Σ ω_i·L_i + L_short + L_long`` (our choice)."""
    head_init: str = "copy"
    """Hierarchical heads (LayerNorm + projection) start as copies of the final ones, or random (our choice)."""

    def __post_init__(self) -> None:
        def need(ok: bool, key: str, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"fix_clip.{key}={getattr(self, key)!r}: must be {allowed}")

        need(0.0 <= self.mask_ratio < 1.0, "mask_ratio", "in [0, 1) (the paper masks ~0.75 of the patches)")
        need(self.prompts >= 0, "prompts", ">= 0 (0 turns regional prompts off)")
        need(self.region_grid >= 1, "region_grid", ">= 1 (regions per side of the patch grid)")
        need(math.isfinite(self.prompt_init_std) and self.prompt_init_std >= 0, "prompt_init_std", ">= 0")
        need(self.groups >= 0, "groups", ">= 0 (0 turns the hierarchical alignment off)")
        need(self.group_size >= 1, "group_size", ">= 1")
        need(self.sigma > 0, "sigma", "> 0 (the Gaussian's width in layers)")
        need(
            self.center is None or 0 <= self.center <= self.group_size - 1,
            "center",
            f"null (the group's middle) or in [0, group_size - 1] = [0, {self.group_size - 1}]",
        )
        need(self.hierarchy_weight >= 0, "hierarchy_weight", ">= 0")
        need(self.head_init in HEAD_INITS, "head_init", f"one of {', '.join(HEAD_INITS)}")
