"""The OpenAI CLIP state-dict layout, and its mapping to Hugging Face transformers names.

Every source this package converts (Long-CLIP ``.pt`` files, open_clip models and training
checkpoints, OpenAI-layout state dicts) is first brought to one canonical layout: the keys of
OpenAI's ``CLIP`` module (``token_embedding.weight``, ``positional_embedding``,
``transformer.resblocks.N.attn.in_proj_weight``, ``ln_final.*``, ``text_projection``,
``visual.*``, ``logit_scale``) with a single effective position table, in float32.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from ..errors import CheckpointError
from ..renamed import renamed_property
from ..stretching import LONG_CLIP_KEEP

TEXT_REQUIRED = ("token_embedding.weight", "positional_embedding", "ln_final.weight", "ln_final.bias")
BLOCK_KEYS = (
    "ln_1.weight", "ln_1.bias", "attn.in_proj_weight", "attn.in_proj_bias",
    "attn.out_proj.weight", "attn.out_proj.bias", "ln_2.weight", "ln_2.bias",
    "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
)  # fmt: skip
HIDDEN_ACTS = ("quick_gelu", "gelu")
OPENAI_HEAD_WIDTH = 64


@dataclass(frozen=True)
class TextTowerSpec:
    """Shape of a CLIP text tower, read off its weights (heads and activation are given)."""

    vocab_size: int
    width: int
    layers: int
    heads: int
    intermediate_size: int
    context_length: int
    projection_dim: int | None
    hidden_act: str = "quick_gelu"

    positions = renamed_property("positions", "context_length")


@dataclass(frozen=True)
class VisionTowerSpec:
    """Shape of a CLIP ViT image tower."""

    width: int
    layers: int
    heads: int
    intermediate_size: int
    patch_size: int
    image_size: int
    projection_dim: int
    hidden_act: str = "quick_gelu"


def canonical_openai_state_dict(
    state_dict: dict[str, torch.Tensor], source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Bring a CLIP state dict in OpenAI / Long-CLIP / open_clip layout to the canonical form.

    Strips ``module.`` (DDP) and ``text.`` (open_clip custom text tower) prefixes, merges
    Long-CLIP's ``positional_embedding_res`` (rows >= 20 come from it, rows < 20 from
    ``positional_embedding``), casts to float32 and checks that the weights are finite.
    """
    sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
    if "token_embedding.weight" not in sd and "text.token_embedding.weight" in sd:
        text = {k.removeprefix("text."): v for k, v in sd.items() if k.startswith("text.")}
        rest = {k: v for k, v in sd.items() if not k.startswith("text.")}
        sd = {**rest, **text}
    _require_text_keys(sd, source)
    sd = {k: v.detach().to(torch.float32) for k, v in sd.items() if torch.is_floating_point(v)}
    residual = sd.pop("positional_embedding_res", None)
    if residual is not None:
        sd["positional_embedding"] = merge_long_clip_positions(sd["positional_embedding"], residual)
    for key in [k for k in sd if k.startswith("visual.") and k.endswith("positional_embedding_res")]:
        sd.pop(key)
    bad = [k for k, v in sd.items() if not torch.isfinite(v).all()]
    if bad:
        shown = ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise CheckpointError(f"{source} has NaN or infinite values in {len(bad)} tensors: {shown}")
    return sd


def merge_long_clip_positions(table: torch.Tensor, residual: torch.Tensor, keep: int = LONG_CLIP_KEEP) -> torch.Tensor:
    """Long-CLIP's effective position table: ``table[:keep]`` then ``residual[keep:]``."""
    if table.shape != residual.shape:
        raise CheckpointError(
            f"positional_embedding {tuple(table.shape)} and positional_embedding_res "
            f"{tuple(residual.shape)} must have the same shape"
        )
    return torch.cat([table[:keep], residual[keep:]], dim=0)


def text_tower_spec(
    sd: dict[str, torch.Tensor], *, num_heads: int | None = None, hidden_act: str = "quick_gelu"
) -> TextTowerSpec:
    """Read the text tower's shape off a canonical state dict."""
    vocab, width = sd["token_embedding.weight"].shape
    layers = _count_blocks(sd, "transformer.resblocks.")
    _require_blocks(sd, "transformer.resblocks.", layers)
    projection = sd.get("text_projection")
    if projection is not None and (projection.ndim != 2 or projection.shape[0] != width):
        raise CheckpointError(f"text_projection has shape {tuple(projection.shape)}; expected [{width}, D]")
    table = sd["positional_embedding"].shape
    if len(table) != 2 or table[1] != width:
        raise CheckpointError(f"positional_embedding has shape {tuple(table)}; expected [N, {width}]")
    return TextTowerSpec(
        vocab_size=int(vocab),
        width=int(width),
        layers=layers,
        heads=_heads(width, num_heads, "text"),
        intermediate_size=int(sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
        context_length=int(table[0]),
        projection_dim=None if projection is None else int(projection.shape[1]),
        hidden_act=_check_act(hidden_act),
    )


def vision_tower_spec(
    sd: dict[str, torch.Tensor], *, num_heads: int | None = None, hidden_act: str = "quick_gelu"
) -> VisionTowerSpec | None:
    """Read the ViT image tower's shape, or ``None`` when the state dict has no image tower."""
    if not any(k.startswith("visual.") for k in sd):
        return None
    if "visual.conv1.weight" not in sd or "visual.proj" not in sd:
        raise CheckpointError(
            "the image tower is not an OpenAI-layout ViT (no visual.conv1.weight / visual.proj; "
            "ResNet and attention-pooled towers are not supported): convert with --text-only"
        )
    width, _, patch, _ = sd["visual.conv1.weight"].shape
    layers = _count_blocks(sd, "visual.transformer.resblocks.")
    _require_blocks(sd, "visual.transformer.resblocks.", layers)
    grid = math.isqrt(int(sd["visual.positional_embedding"].shape[0]) - 1)
    return VisionTowerSpec(
        width=int(width),
        layers=layers,
        heads=_heads(width, num_heads, "vision"),
        intermediate_size=int(sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
        patch_size=int(patch),
        image_size=int(patch * grid),
        projection_dim=int(sd["visual.proj"].shape[1]),
        hidden_act=_check_act(hidden_act),
    )


def text_state_dict_to_hf(sd: dict[str, torch.Tensor], spec: TextTowerSpec) -> dict[str, torch.Tensor]:
    """Map the text tower to ``CLIPTextModelWithProjection`` / ``CLIPModel`` key names."""
    out = {
        "text_model.embeddings.token_embedding.weight": sd["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": sd["positional_embedding"],
        "text_model.final_layer_norm.weight": sd["ln_final.weight"],
        "text_model.final_layer_norm.bias": sd["ln_final.bias"],
    }
    for i in range(spec.layers):
        out.update(_block_to_hf(sd, f"transformer.resblocks.{i}.", f"text_model.encoder.layers.{i}."))
    if "text_projection" in sd:
        out["text_projection.weight"] = sd["text_projection"].t()
    return {k: v.contiguous() for k, v in out.items()}


def vision_state_dict_to_hf(sd: dict[str, torch.Tensor], spec: VisionTowerSpec) -> dict[str, torch.Tensor]:
    """Map the ViT image tower to ``CLIPModel`` key names."""
    out = {
        "vision_model.embeddings.class_embedding": sd["visual.class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": sd["visual.conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": sd["visual.positional_embedding"],
        "vision_model.pre_layrnorm.weight": sd["visual.ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": sd["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": sd["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": sd["visual.ln_post.bias"],
        "visual_projection.weight": sd["visual.proj"].t(),
    }
    for i in range(spec.layers):
        out.update(_block_to_hf(sd, f"visual.transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}."))
    return {k: v.contiguous() for k, v in out.items()}


def _block_to_hf(sd: dict[str, torch.Tensor], src: str, dst: str) -> dict[str, torch.Tensor]:
    q_w, k_w, v_w = sd[src + "attn.in_proj_weight"].chunk(3, dim=0)
    q_b, k_b, v_b = sd[src + "attn.in_proj_bias"].chunk(3, dim=0)
    return {
        dst + "self_attn.q_proj.weight": q_w, dst + "self_attn.q_proj.bias": q_b,
        dst + "self_attn.k_proj.weight": k_w, dst + "self_attn.k_proj.bias": k_b,
        dst + "self_attn.v_proj.weight": v_w, dst + "self_attn.v_proj.bias": v_b,
        dst + "self_attn.out_proj.weight": sd[src + "attn.out_proj.weight"],
        dst + "self_attn.out_proj.bias": sd[src + "attn.out_proj.bias"],
        dst + "layer_norm1.weight": sd[src + "ln_1.weight"], dst + "layer_norm1.bias": sd[src + "ln_1.bias"],
        dst + "layer_norm2.weight": sd[src + "ln_2.weight"], dst + "layer_norm2.bias": sd[src + "ln_2.bias"],
        dst + "mlp.fc1.weight": sd[src + "mlp.c_fc.weight"], dst + "mlp.fc1.bias": sd[src + "mlp.c_fc.bias"],
        dst + "mlp.fc2.weight": sd[src + "mlp.c_proj.weight"], dst + "mlp.fc2.bias": sd[src + "mlp.c_proj.bias"],
    }  # fmt: skip


def _require_text_keys(sd: dict[str, torch.Tensor], source: str) -> None:
    missing = [k for k in TEXT_REQUIRED if k not in sd]
    if not missing:
        return
    if any(k.startswith(("text_model.", "embeddings.", "encoder.layers.")) for k in sd):
        raise CheckpointError(
            f"{source} is in Hugging Face transformers layout, not OpenAI/open_clip layout: pass the "
            "folder that holds it (with its config.json) instead of the weights file"
        )
    sample = ", ".join(sorted(sd)[:4])
    raise CheckpointError(
        f"unknown checkpoint layout in {source}: missing {', '.join(missing)}. Expected an "
        "OpenAI-layout CLIP (as saved by OpenAI CLIP, Long-CLIP or open_clip), an open_clip "
        f"training checkpoint, or a Hugging Face folder; found keys like: {sample}"
    )


def _count_blocks(sd: dict[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = {int(m.group(1)) for k in sd if (m := pattern.match(k))}
    if not indices:
        raise CheckpointError(f"no transformer blocks found under '{prefix}'")
    return max(indices) + 1


def _require_blocks(sd: dict[str, torch.Tensor], prefix: str, layers: int) -> None:
    missing = [f"{prefix}{i}.{key}" for i in range(layers) for key in BLOCK_KEYS if f"{prefix}{i}.{key}" not in sd]
    if missing:
        shown = ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else "")
        raise CheckpointError(f"checkpoint is missing {len(missing)} transformer-block tensors: {shown}")


def _heads(width: int, num_heads: int | None, tower: str) -> int:
    if num_heads is None:
        if width % OPENAI_HEAD_WIDTH:
            raise CheckpointError(
                f"cannot infer the {tower} tower's attention heads: width {width} is not a multiple "
                f"of {OPENAI_HEAD_WIDTH} (OpenAI's head width); pass the number of heads explicitly"
            )
        return width // OPENAI_HEAD_WIDTH
    if num_heads < 1 or width % num_heads:
        raise CheckpointError(f"{tower} width {width} is not divisible by {num_heads} attention heads")
    return num_heads


def _check_act(hidden_act: str) -> str:
    if hidden_act not in HIDDEN_ACTS:
        raise CheckpointError(f"hidden_act must be one of {HIDDEN_ACTS}; got {hidden_act!r}")
    return hidden_act
