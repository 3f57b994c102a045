"""The ``fix-clip`` recipe: a ``Recipe`` whose image side is :class:`FixClipImageSide`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import CLIPModel

from ..augment import FirstSentence
from ..errors import ConfigError
from ..model_output import TwoCaptionOutput
from ..recipes import Recipe, register_recipe
from .image_side import FixClipImageSide
from .loss import fix_clip_loss
from .settings import FixClipSettings

__all__ = ["FixClipRecipe"]


@dataclass(frozen=True)
class FixClipRecipe(Recipe):
    """FIX-CLIP: short captions vs masked images, long captions vs raw images, regional prompts,
    hierarchical alignment. ``short_weight`` 0.5 makes ``2·(λ·L_short + (1-λ)·L_long)`` the paper's sum."""

    settings: FixClipSettings = field(default_factory=FixClipSettings)

    def configured(self, config: Any) -> FixClipRecipe:
        if config.pca_components:
            raise ConfigError(
                f"pca_components={config.pca_components}: the fix-clip recipe matches short captions with masked "
                "images, not principal components; leave pca_components null or 0"
            )
        recipe = super().configured(config)
        return dataclasses.replace(recipe, pca_components=None, settings=config.fix_clip or FixClipSettings())

    def image_side(self, model: CLIPModel) -> FixClipImageSide:
        return FixClipImageSide(model, self.settings)

    def step_loss(self, out: TwoCaptionOutput, *, label_smoothing: float = 0.1) -> dict[str, torch.Tensor]:
        if out.short_image_features is None:
            raise ValueError(
                "the fix-clip recipe needs the masked image branch: build TwoCaptionCLIP with its image side"
            )
        parts = fix_clip_loss(
            out.image_features.float(),
            out.short_image_features.float(),
            out.long_text_features.float(),
            out.short_text_features.float(),
            [features.float() for features in out.hierarchy_features],
            out.logit_scale.float(),
            hierarchy_weight=self.settings.hierarchy_weight,
            short_weight=self.short_weight,
            label_smoothing=label_smoothing,
        )
        return parts.logged()


FIX_CLIP = register_recipe(
    FixClipRecipe(
        name="fix-clip",
        short_weight=0.5,
        short_branch=FirstSentence(),
        pca_components=None,
        description="FIX-CLIP (from the paper): short caption vs masked image, long vs raw image, regional "
        "prompts, hierarchical alignment",
    )
)
