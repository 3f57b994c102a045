"""Read an open_clip model object (``CLIP`` or ``CustomTextCLIP``) into canonical form.

Only what Hugging Face's CLIP can express is accepted: a causal text transformer pooled at the
EOT token, pre-norm blocks with (Quick)GELU MLPs and no layer scale, and optionally a ViT image
tower pooled at the class token. Anything else is refused with the feature named.
"""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from ..clip_constants import EOT_ID
from ..errors import CheckpointError
from .canonical import CanonicalCLIP, from_state_dict


def from_open_clip_model(model: nn.Module, *, source: str | None = None, text_only: bool = False) -> CanonicalCLIP:
    """Convert a loaded open_clip model, reading heads and activation from its modules."""
    source = source or f"open_clip {type(model).__name__}"
    tower = getattr(model, "text", None)
    text_owner = tower if isinstance(tower, nn.Module) else model
    if not hasattr(text_owner, "token_embedding") or not hasattr(text_owner, "transformer"):
        raise CheckpointError(
            f"{source}: the text tower ({type(text_owner).__name__}) is not open_clip's "
            "TextTransformer (HF-backed text towers are already in transformers format)"
        )
    _check_text_tower(text_owner, model, source)
    text_heads, text_act = _block_details(text_owner.transformer, source, "text")
    visual = getattr(model, "visual", None)
    keep_vision = not text_only and isinstance(visual, nn.Module)
    vision_heads = None
    if keep_vision:
        _check_vision_tower(visual, source)
        vision_heads, vision_act = _block_details(visual.transformer, source, "vision")
        if vision_act != text_act:
            raise CheckpointError(f"{source}: towers use different activations; convert with --text-only")
    state_dict = model.state_dict()
    if isinstance(getattr(text_owner, "text_projection", None), nn.Linear):
        key = "text.text_projection" if text_owner is not model else "text_projection"
        state_dict[key] = state_dict.pop(key + ".weight").t()
    clip = from_state_dict(
        state_dict,
        source=source,
        num_heads=text_heads,
        vision_num_heads=vision_heads,
        hidden_act=text_act,
        text_only=not keep_vision,
    )
    preprocess = getattr(visual, "preprocess_cfg", None) or {}
    if keep_vision and preprocess.get("mean") and preprocess.get("std"):
        clip = replace(clip, image_mean=tuple(preprocess["mean"]), image_std=tuple(preprocess["std"]))
    return clip


def _check_text_tower(text: nn.Module, model: nn.Module, source: str) -> None:
    pool = getattr(text, "pool_type", getattr(model, "text_pool_type", "argmax"))
    eos = getattr(text, "eos_id", getattr(model, "text_eos_id", None))
    if pool not in ("argmax", "eos") or (pool == "eos" and eos != EOT_ID):
        raise CheckpointError(f"{source}: text pooling {pool!r} is not EOT pooling; HF CLIP cannot express it")
    if getattr(text, "cls_emb", None) is not None:
        raise CheckpointError(f"{source}: text towers with a CLS embedding (CoCa) are not supported")
    if getattr(text, "attn_mask", getattr(model, "attn_mask", None)) is None:
        raise CheckpointError(f"{source}: the text tower is not causal; HF CLIP's text model is")
    projection = getattr(text, "text_projection", None)
    if isinstance(projection, nn.Linear) and projection.bias is not None:
        raise CheckpointError(f"{source}: a text projection with bias is not supported by HF CLIP")


def _check_vision_tower(visual: nn.Module, source: str) -> None:
    if not hasattr(visual, "conv1") or getattr(visual, "attn_pool", None) is not None:
        raise CheckpointError(
            f"{source}: image tower {type(visual).__name__} is not a plain ViT (ResNet, timm or "
            "attention-pooled towers are not supported); convert with --text-only"
        )
    if getattr(visual, "pool_type", "tok") != "tok" or getattr(visual, "final_ln_after_pool", False):
        raise CheckpointError(f"{source}: image pooling other than the class token is not supported; use --text-only")


def _block_details(transformer: nn.Module, source: str, tower: str) -> tuple[int, str]:
    block = transformer.resblocks[0]
    attn = getattr(block, "attn", None)
    if not isinstance(attn, nn.MultiheadAttention):
        raise CheckpointError(f"{source}: {tower} blocks use custom attention HF CLIP cannot express")
    for name in ("ls_1", "ls_2", "ln_attn"):
        if not isinstance(getattr(block, name, nn.Identity()), nn.Identity):
            raise CheckpointError(f"{source}: {tower} blocks use {name} (layer scale / extra norm), unsupported")
    if abs(block.ln_1.eps - 1e-5) > 1e-12:
        raise CheckpointError(f"{source}: {tower} LayerNorm eps {block.ln_1.eps} differs from CLIP's 1e-5")
    act = block.mlp.gelu
    if type(act).__name__ == "QuickGELU":
        return attn.num_heads, "quick_gelu"
    if isinstance(act, nn.GELU) and act.approximate == "none":
        return attn.num_heads, "gelu"
    raise CheckpointError(f"{source}: {tower} activation {type(act).__name__} is not GELU or QuickGELU")
