"""Check a converted model against open_clip's implementation of the source weights.

The reference is built by open_clip from the canonical OpenAI-layout weights, so a conversion
is accepted only when two independent implementations agree on the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from open_clip.transformer import QuickGELU, TextTransformer, VisionTransformer
from torch import nn

from .canonical import CanonicalCLIP
from .hf_models import HFTextEncoder
from .openai_layout import TextTowerSpec, VisionTowerSpec


@dataclass(frozen=True)
class EquivalenceReport:
    """Largest absolute differences between the converted model and the reference."""

    hidden_states: float
    pooled: float
    image_embeds: float | None = None

    @property
    def worst(self) -> float:
        return max(v for v in (self.hidden_states, self.pooled, self.image_embeds) if v is not None)


def reference_text_tower(clip: CanonicalCLIP) -> TextTransformer:
    """open_clip ``TextTransformer`` holding the canonical text weights (float32, eval)."""
    spec = clip.text
    tower = TextTransformer(
        context_length=spec.context_length,
        vocab_size=spec.vocab_size,
        width=spec.width,
        heads=spec.heads,
        layers=spec.layers,
        mlp_ratio=spec.intermediate_size / spec.width,
        output_dim=spec.projection_dim,
        act_layer=_activation(spec),
        output_tokens=True,
    )
    keys = set(tower.state_dict())
    tower.load_state_dict({k: v for k, v in clip.state_dict.items() if k in keys}, strict=True)
    return tower.eval()


def reference_vision_tower(clip: CanonicalCLIP) -> VisionTransformer:
    """open_clip ``VisionTransformer`` holding the canonical image weights (float32, eval)."""
    spec = clip.vision
    assert spec is not None
    tower = VisionTransformer(
        image_size=spec.image_size,
        patch_size=spec.patch_size,
        width=spec.width,
        layers=spec.layers,
        heads=spec.heads,
        mlp_ratio=spec.intermediate_size / spec.width,
        output_dim=spec.projection_dim,
        act_layer=_activation(spec),
    )
    weights = {k.removeprefix("visual."): v for k, v in clip.state_dict.items() if k.startswith("visual.")}
    tower.load_state_dict(weights, strict=True)
    return tower.eval()


def probe_token_ids(spec: TextTowerSpec, batch: int = 3, seed: int = 0) -> torch.Tensor:
    """Token rows that start with SOT, end at EOT at varied positions (last at the final slot)."""
    generator = torch.Generator().manual_seed(seed)
    sot, eot = spec.vocab_size - 2, spec.vocab_size - 1
    ids = torch.randint(1, sot, (batch, spec.context_length), generator=generator)
    ids[:, 0] = sot
    ends = torch.linspace(2, spec.context_length - 1, batch).long()
    for row, end in enumerate(ends.tolist()):
        ids[row, end] = eot
        ids[row, end + 1 :] = 0
    return ids


@torch.no_grad()
def compare_text_encoder(clip: CanonicalCLIP, encoder: HFTextEncoder) -> EquivalenceReport:
    """Compare per-token final hidden states and pooled/projected output on probe tokens."""
    ids = probe_token_ids(clip.text)
    pooled_ref, tokens_ref = reference_text_tower(clip)(ids)
    out = encoder(input_ids=ids)
    pooled = out.text_embeds if hasattr(out, "text_embeds") else out.pooler_output
    return EquivalenceReport(
        hidden_states=_max_diff(out.last_hidden_state, tokens_ref),
        pooled=_max_diff(pooled, pooled_ref),
    )


@torch.no_grad()
def compare_image_encoder(clip: CanonicalCLIP, model: nn.Module) -> float:
    """Largest difference of projected image embeddings on a seeded random batch."""
    spec = clip.vision
    assert spec is not None
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(2, 3, spec.image_size, spec.image_size, generator=generator)
    reference = reference_vision_tower(clip)(pixels)
    ours = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
    return _max_diff(ours, reference)


def _activation(spec: TextTowerSpec | VisionTowerSpec) -> type[nn.Module]:
    return QuickGELU if spec.hidden_act == "quick_gelu" else nn.GELU


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())
