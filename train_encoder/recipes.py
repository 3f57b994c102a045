"""Training recipes: how the short branch is built and weighted. A registry maps names to recipes.

A recipe is a frozen ``Recipe``: its short-branch transform (any ``ShortBranch`` callable), the
short-loss weight λ in ``L = λ·L_short + (1-λ)·L_long``, and how many principal components of the
image features the short captions are matched against (``None``: the plain image features). A new
method is an addition: write its ``ShortBranch`` (or reuse one), then ``register_recipe``.

A method that also changes the image side subclasses ``Recipe`` and overrides three hooks the trainer
calls: ``configured`` (read its config keys), ``image_side`` (an ``nn.Module`` of extra trainable
parameters and image branches, saved in checkpoints beside the CLIPModel; see ``ImageSide``) and
``step_loss`` (the loss from the forward's output). The defaults are the two-caption recipe.

Built in:

* ``debias``: DeBias-CLIP, short = summary removed + sentences sub-sampled + token padding, λ=0.1;
* ``long-clip``: Long-CLIP, short = first sentence (or the data's short caption), λ=0.5. Long-CLIP
  sums the two losses (``L_long + L_short``); λ=0.5 is that sum halved, the same up to the learning
  rate (and AdamW is nearly scale-invariant);
* ``fix-clip``: FIX-CLIP, registered by :mod:`train_encoder.fix_clip` (imported with the package).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import nn

from .augment import CaptionTokenizer, DebiasAugment, FirstSentence
from .losses import LossParts, two_caption_loss
from .model_output import TwoCaptionOutput

if TYPE_CHECKING:
    from transformers import CLIPModel


__all__ = ["ImageSide", "Recipe", "ShortBranch", "get_recipe", "recipe_names", "register_recipe"]


@runtime_checkable
class ShortBranch(Protocol):
    """Makes the short-branch token rows ``[B, context]`` for a batch of (long) captions."""

    def __call__(
        self,
        captions: Sequence[str],
        tokenizer: CaptionTokenizer,
        *,
        generator: torch.Generator,
        short_captions: Sequence[str | None] | None = None,
    ) -> torch.Tensor: ...


class ImageSide(Protocol):
    """What ``Recipe.image_side`` returns: an ``nn.Module`` (its parameters train and are checkpointed) that
    ``TwoCaptionCLIP`` calls as ``side(clip_model, pixel_values, **inputs)`` instead of the plain image tower,
    returning ``image_features``, ``short_image_features`` and ``hierarchy_features``; ``inputs`` come from
    ``side.batch_inputs(batch_size, generator=...)`` (seeded per batch by the trainer)."""

    def batch_inputs(self, batch_size: int, *, generator: torch.Generator) -> dict[str, torch.Tensor]: ...

    def __call__(self, model: CLIPModel, pixel_values: torch.Tensor, **inputs: torch.Tensor) -> Any: ...


@dataclass(frozen=True)
class Recipe:
    """A two-caption training recipe (see the module docstring)."""

    name: str
    short_weight: float
    short_branch: ShortBranch
    pca_components: int | None = 32
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"recipe name must be a non-empty string, got {self.name!r}")
        if isinstance(self.short_weight, bool) or not isinstance(self.short_weight, (int, float)):
            raise TypeError(f"short_weight must be a float in [0, 1], got {type(self.short_weight).__name__}")
        if not 0.0 <= self.short_weight <= 1.0:
            raise ValueError(f"short_weight (λ) must lie in [0, 1], got {self.short_weight}")
        if not isinstance(self.short_branch, ShortBranch):
            raise TypeError(f"short_branch must be callable like ShortBranch, got {type(self.short_branch).__name__}")
        k = self.pca_components
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f"pca_components must be an int >= 1 or None (no PCA), got {k!r}")

    def configured(self, config: Any) -> Recipe:
        """This recipe with a ``TrainConfig``'s overrides: ``short_weight``, ``pca_components`` (0 = no PCA)."""
        changes = {}
        if config.short_weight is not None:
            changes["short_weight"] = config.short_weight
        if config.pca_components is not None:
            changes["pca_components"] = config.pca_components or None
        return dataclasses.replace(self, **changes)

    def image_side(self, model: CLIPModel) -> nn.Module | None:
        """Extra image-side module for ``model`` (an :class:`ImageSide`), or ``None``: the plain image tower."""
        return None

    def step_loss(self, out: TwoCaptionOutput, *, label_smoothing: float = 0.1) -> dict[str, torch.Tensor]:
        """The loss of one forward: ``{"loss": total, ...parts}`` (every value is logged). Default: ``loss``
        on float32 features (bf16/fp16 logits at scale 100 lose the ranking)."""
        parts = self.loss(
            out.image_features.float(),
            out.long_text_features.float(),
            out.short_text_features.float(),
            out.logit_scale.float(),
            label_smoothing=label_smoothing,
        )
        return {"loss": parts.total, "loss_long": parts.long, "loss_short": parts.short}

    def long_token_ids(self, captions: Sequence[str], tokenizer: CaptionTokenizer) -> torch.Tensor:
        """The long branch: every caption whole, cut to the context with EOT last."""
        return tokenizer.encode(captions)

    def short_token_ids(
        self,
        captions: Sequence[str],
        tokenizer: CaptionTokenizer,
        *,
        generator: torch.Generator,
        short_captions: Sequence[str | None] | None = None,
    ) -> torch.Tensor:
        """The short branch rows for ``captions`` (``short_captions``: optional ones from the data)."""
        return self.short_branch(captions, tokenizer, generator=generator, short_captions=short_captions)

    def loss(
        self,
        image_features: torch.Tensor,
        long_text_features: torch.Tensor,
        short_text_features: torch.Tensor,
        logit_scale: torch.Tensor | float,
        *,
        label_smoothing: float = 0.1,
        gather: bool = True,
    ) -> LossParts:
        """``two_caption_loss`` with this recipe's λ and PCA component count."""
        return two_caption_loss(
            image_features,
            long_text_features,
            short_text_features,
            logit_scale,
            short_weight=self.short_weight,
            pca_components=self.pca_components,
            label_smoothing=label_smoothing,
            gather=gather,
        )


_RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe, *, replace: bool = False) -> Recipe:
    """Add ``recipe`` under ``recipe.name``; an existing name needs ``replace=True``."""
    if not isinstance(recipe, Recipe):
        raise TypeError(f"register_recipe takes a Recipe, got {type(recipe).__name__}")
    if recipe.name in _RECIPES and not replace:
        raise ValueError(f"a recipe named {recipe.name!r} is already registered; pass replace=True to override it")
    _RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(name: str) -> Recipe:
    """The registered recipe called ``name``."""
    try:
        return _RECIPES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown recipe {name!r}; valid names: {', '.join(recipe_names())}") from None


def recipe_names() -> tuple[str, ...]:
    """Names of the registered recipes, sorted."""
    return tuple(sorted(_RECIPES))


register_recipe(
    Recipe(
        name="debias",
        short_weight=0.1,
        short_branch=DebiasAugment(),
        pca_components=32,
        description="DeBias-CLIP: summary removal, sentence sub-sampling, token padding; λ=0.1",
    )
)
register_recipe(
    Recipe(
        name="long-clip",
        short_weight=0.5,
        short_branch=FirstSentence(),
        pca_components=32,
        description="Long-CLIP: first sentence (or the data's short caption) vs primary components; λ=0.5",
    )
)
