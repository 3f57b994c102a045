"""One in-memory form for every CLIP source: canonical OpenAI-layout weights plus their shape."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..clip_constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from ..errors import CheckpointError
from ..image_preprocessing import ImagePreprocessing
from ..renamed import renamed_keywords
from ..stretching import LONG_CLIP_KEEP, LONG_CLIP_RATIO, stretch_position_table, stretch_ratio
from .openai_layout import (
    TextTowerSpec,
    VisionTowerSpec,
    canonical_openai_state_dict,
    text_tower_spec,
    vision_tower_spec,
)


@dataclass(frozen=True)
class CanonicalCLIP:
    """CLIP weights in canonical OpenAI layout (float32), with the towers' shapes.

    ``vision`` is ``None`` for text-only sources or when only the text tower is wanted.
    """

    state_dict: dict[str, torch.Tensor]
    text: TextTowerSpec
    vision: VisionTowerSpec | None
    source: str
    image_mean: tuple[float, ...] = OPENAI_CLIP_MEAN
    image_std: tuple[float, ...] = OPENAI_CLIP_STD

    @property
    def image_preprocessing(self) -> ImagePreprocessing:
        """What the image tower expects: its crop size and the source's normalisation."""
        if self.vision is None:
            raise CheckpointError(f"{self.source} has no image tower, so no image preprocessing")
        return ImagePreprocessing(self.vision.image_size, self.image_mean, self.image_std)

    def text_only(self) -> CanonicalCLIP:
        """Drop the image tower (and ``logit_scale``)."""
        kept = {k: v for k, v in self.state_dict.items() if not k.startswith("visual.") and k != "logit_scale"}
        return replace(self, state_dict=kept, vision=None)

    def stretched(self, keep: int = LONG_CLIP_KEEP, ratio: int = LONG_CLIP_RATIO) -> CanonicalCLIP:
        """Apply knowledge-preserved stretching to the text position table."""
        table = stretch_position_table(self.state_dict["positional_embedding"], keep, ratio)
        return replace(
            self,
            state_dict={**self.state_dict, "positional_embedding": table},
            text=replace(self.text, context_length=int(table.shape[0])),
        )

    @renamed_keywords(positions="context_length")
    def stretched_to(self, context_length: int, keep: int = LONG_CLIP_KEEP) -> CanonicalCLIP:
        """Stretch to exactly ``context_length`` rows (e.g. 77 -> 248), or return self if already there."""
        if self.text.context_length == context_length:
            return self
        return self.stretched(keep, stretch_ratio(self.text.context_length, context_length, keep))


def from_state_dict(
    state_dict: dict[str, torch.Tensor],
    *,
    source: str = "checkpoint",
    num_heads: int | None = None,
    vision_num_heads: int | None = None,
    hidden_act: str = "quick_gelu",
    text_only: bool = False,
) -> CanonicalCLIP:
    """Build from an OpenAI / Long-CLIP / open_clip-training state dict.

    Heads default to width // 64 (every OpenAI and Long-CLIP model); ``hidden_act`` defaults to
    ``quick_gelu`` (OpenAI weights). open_clip's LAION models use ``gelu``.
    """
    sd = canonical_openai_state_dict(state_dict, source)
    text = text_tower_spec(sd, num_heads=num_heads, hidden_act=hidden_act)
    clip = CanonicalCLIP(state_dict=sd, text=text, vision=None, source=source)
    if text_only:
        return clip.text_only()
    vision = vision_tower_spec(sd, num_heads=vision_num_heads or num_heads, hidden_act=hidden_act)
    return replace(clip, vision=vision)
