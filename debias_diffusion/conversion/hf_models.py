"""Build Hugging Face transformers CLIP models from canonical OpenAI-layout weights."""

from __future__ import annotations

import torch
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPVisionConfig,
)

from ..clip_constants import CLIP_VOCAB_SIZE, EOT_ID, SOT_ID
from ..text_model_layout import state_dict_prefix
from .canonical import CanonicalCLIP
from .openai_layout import TextTowerSpec, VisionTowerSpec, text_state_dict_to_hf, vision_state_dict_to_hf

LEGACY_ARGMAX_EOS_ID = 2  # transformers pools at argmax(input_ids) when eos_token_id == 2

HFTextEncoder = CLIPTextModel | CLIPTextModelWithProjection


def hf_text_config(spec: TextTowerSpec) -> CLIPTextConfig:
    """The ``CLIPTextConfig`` matching a text tower (pooling at the EOT token, like OpenAI)."""
    real_vocab = spec.vocab_size == CLIP_VOCAB_SIZE
    return CLIPTextConfig(
        vocab_size=spec.vocab_size,
        hidden_size=spec.width,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        max_position_embeddings=spec.context_length,  # transformers' configs: max_position_embeddings
        hidden_act=spec.hidden_act,
        layer_norm_eps=1e-5,
        projection_dim=spec.projection_dim or spec.width,
        bos_token_id=SOT_ID if real_vocab else spec.vocab_size - 2,
        eos_token_id=EOT_ID if real_vocab else LEGACY_ARGMAX_EOS_ID,
        pad_token_id=EOT_ID if real_vocab else spec.vocab_size - 1,
    )


def hf_vision_config(spec: VisionTowerSpec) -> CLIPVisionConfig:
    """The ``CLIPVisionConfig`` matching a ViT image tower."""
    return CLIPVisionConfig(
        hidden_size=spec.width,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        image_size=spec.image_size,
        patch_size=spec.patch_size,
        projection_dim=spec.projection_dim,
        hidden_act=spec.hidden_act,
        layer_norm_eps=1e-5,
    )


def build_text_encoder(clip: CanonicalCLIP) -> HFTextEncoder:
    """``CLIPTextModelWithProjection`` (or ``CLIPTextModel`` without a projection), in eval mode."""
    config = hf_text_config(clip.text)
    weights = text_state_dict_to_hf(clip.state_dict, clip.text)
    if clip.text.projection_dim is None:
        model = CLIPTextModel(config)
        prefix = state_dict_prefix(model)
        weights = {prefix + k.removeprefix("text_model."): v for k, v in weights.items()}
    else:
        model = CLIPTextModelWithProjection(config)
    _load_exactly(model, weights)
    return model.eval()


def build_clip_model(clip: CanonicalCLIP) -> CLIPModel:
    """Full ``CLIPModel`` (both towers, ``logit_scale``), in eval mode."""
    if clip.vision is None or clip.text.projection_dim is None:
        raise ValueError(f"{clip.source} has no image tower or no text projection: export it text-only")
    config = CLIPConfig(
        text_config=hf_text_config(clip.text).to_dict(),
        vision_config=hf_vision_config(clip.vision).to_dict(),
        projection_dim=clip.vision.projection_dim,
    )
    model = CLIPModel(config)
    weights = {
        **text_state_dict_to_hf(clip.state_dict, clip.text),
        **vision_state_dict_to_hf(clip.state_dict, clip.vision),
    }
    scale = clip.state_dict.get("logit_scale")
    weights["logit_scale"] = scale.reshape(()) if scale is not None else model.logit_scale.detach().clone()
    _load_exactly(model, weights)
    return model.eval()


def _load_exactly(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    expected = set(model.state_dict())
    missing, unexpected = expected - set(weights), set(weights) - expected
    if missing or unexpected:
        raise RuntimeError(
            f"internal conversion error for {type(model).__name__}: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    model.load_state_dict(weights, strict=True)
