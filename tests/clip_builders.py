"""Tiny random CLIP models and checkpoints in the layouts the converters read (no downloads)."""

from __future__ import annotations

import torch
from open_clip.model import CLIP, CustomTextCLIP

TEXT_WIDTH, TEXT_HEADS, TEXT_LAYERS, EMBED_DIM = 32, 2, 2, 16
VISION_CFG = dict(layers=2, width=32, patch_size=8, image_size=32, head_width=16)
SOT, EOT = 49406, 49407


def _text_cfg(context_length: int, heads: int = TEXT_HEADS) -> dict:
    return dict(context_length=context_length, vocab_size=49408, width=TEXT_WIDTH, heads=heads, layers=TEXT_LAYERS)


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter (LayerNorm ones included) so a swapped tensor changes outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.1)
    return model.eval()


def tiny_openai_clip(
    context_length: int = 77, *, quick_gelu: bool = True, heads: int = TEXT_HEADS, seed: int = 0
) -> CLIP:
    """open_clip ``CLIP`` in OpenAI layout (text tower at the top level, ViT image tower)."""
    torch.manual_seed(seed)
    model = CLIP(EMBED_DIM, vision_cfg=VISION_CFG, text_cfg=_text_cfg(context_length, heads), quick_gelu=quick_gelu)
    return randomize(model, seed)


def tiny_custom_text_clip(context_length: int = 248, *, seed: int = 1) -> CustomTextCLIP:
    """open_clip ``CustomTextCLIP`` (text tower under ``text.``), like DeBias-CLIP's release."""
    torch.manual_seed(seed)
    model = CustomTextCLIP(EMBED_DIM, vision_cfg=VISION_CFG, text_cfg=_text_cfg(context_length), quick_gelu=True)
    return randomize(model, seed)


def long_clip_state_dict(seed: int = 2) -> tuple[dict[str, torch.Tensor], CLIP]:
    """A Long-CLIP-style state dict (248 rows + ``positional_embedding_res``) and its reference model.

    The reference model's single table is Long-CLIP's effective one, built here by hand:
    rows 0..19 from ``positional_embedding``, rows 20.. from ``positional_embedding_res``.
    """
    model = tiny_openai_clip(248, seed=seed)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    generator = torch.Generator().manual_seed(seed + 100)
    residual = torch.randn(248, TEXT_WIDTH, generator=generator) * 0.5
    state["positional_embedding_res"] = residual
    with torch.no_grad():
        model.positional_embedding[20:] = residual[20:]
    return state, model


def token_batch(context_length: int, ends: tuple[int, ...] = (5, 60, 150), seed: int = 0) -> torch.Tensor:
    """Token rows SOT ... EOT (EOT at each of ``ends``, clipped to the table), zero-padded."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 49000, (len(ends), context_length), generator=generator)
    ids[:, 0] = SOT
    for row, end in enumerate(ends):
        end = min(end, context_length - 1)
        ids[row, end] = EOT
        ids[row, end + 1 :] = 0
    return ids


@torch.no_grad()
def open_clip_text_outputs(model: torch.nn.Module, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """open_clip's own forward: per-token final states, penultimate block output, projected EOT."""
    tower = getattr(model, "text", model)
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        tower.ln_final.register_forward_hook(lambda m, i, o: captured.__setitem__("last", o)),
        tower.transformer.resblocks[-2].register_forward_hook(lambda m, i, o: captured.__setitem__("penultimate", o)),
    ]
    try:
        pooled = model.encode_text(ids)
    finally:
        for hook in hooks:
            hook.remove()
    return {"last": captured["last"], "penultimate": captured["penultimate"], "pooled": pooled}
