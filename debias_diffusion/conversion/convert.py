"""Convert a CLIP source into a Hugging Face folder, verified against open_clip's forward."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..atomic_io import atomic_directory
from ..errors import CheckpointError, UsageError
from ..image_preprocessing import clip_image_processor
from ..stretching import LONG_CLIP_KEEP
from ..tokenization import build_clip_tokenizer
from ..ui_compatibility import warn_if_ui_activation_differs
from .canonical import CanonicalCLIP
from .equivalence import EquivalenceReport, compare_image_encoder, compare_text_encoder
from .hf_models import build_clip_model, build_text_encoder
from .openai_layout import TextTowerSpec, VisionTowerSpec
from .sources import ClipSource, read_clip_source

DEFAULT_TOLERANCE = 1e-4
PROVENANCE_FILE = "debias_diffusion_conversion.json"


@dataclass(frozen=True)
class ConversionResult:
    """What :func:`convert_to_hf` wrote and how closely it matches the source."""

    destination: Path
    source: str
    text: TextTowerSpec
    vision: VisionTowerSpec | None
    stretched_from: int | None
    equivalence: EquivalenceReport | None


def convert_to_hf(
    source: ClipSource,
    destination: str | Path,
    *,
    stretch_to: int | None = None,
    keep: int = LONG_CLIP_KEEP,
    text_only: bool = False,
    num_heads: int | None = None,
    vision_num_heads: int | None = None,
    hidden_act: str = "quick_gelu",
    dtype: torch.dtype = torch.float32,
    verify: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
    overwrite: bool = False,
) -> ConversionResult:
    """Write ``source`` as a Hugging Face model folder (safetensors, config, tokenizer).

    ``text_only`` writes ``CLIPTextModelWithProjection`` (loadable by ``CLIPTextModel`` and as a
    diffusers ``text_encoder``); otherwise a full ``CLIPModel`` with its image processor.
    ``stretch_to`` applies knowledge-preserved stretching first (e.g. 77 -> 248). With
    ``verify`` the converted model must match open_clip's forward within ``tolerance``
    (float32) or nothing is written. The weights as written in ``dtype`` must be finite (float16
    overflows past 65504) and each tensor must keep its values to the dtype's rounding, or nothing is written.

    Args:
        source: a checkpoint file, an open_clip model object or an ``open_clip:ARCH/PRETRAINED`` spec.
        destination: the folder to write (atomically).
        stretch_to: the context length after KPS (e.g. 248); ``None`` keeps the source's.
        keep: leading positions KPS leaves unchanged (20, as Long-CLIP).
        text_only: write only the text tower (``CLIPTextModelWithProjection``).
        num_heads, vision_num_heads: attention heads when not ``width // 64``.
        hidden_act: the MLP activation (``quick_gelu`` for OpenAI / Long-CLIP, ``gelu`` for LAION weights).
        dtype: the written weights' dtype.
        verify, tolerance: compare with open_clip's forward and refuse a larger difference.
        overwrite: replace an existing ``destination`` (else ``OutputExistsError``).
    """
    if not math.isfinite(tolerance) or tolerance < 0:
        raise UsageError(
            f"tolerance must be a finite number >= 0, got {tolerance}; use verify=False (--no-verify) to skip the check"
        )
    clip = read_clip_source(
        source, num_heads=num_heads, vision_num_heads=vision_num_heads, hidden_act=hidden_act, text_only=text_only
    )
    original_length = clip.text.context_length
    warn_if_ui_activation_differs(clip.text.width, clip.text.layers, clip.text.hidden_act)
    if stretch_to is not None:
        clip = clip.stretched_to(stretch_to, keep=keep)
    model = build_text_encoder(clip) if clip.vision is None else build_clip_model(clip)
    report = _verify(clip, model, tolerance) if verify else None
    tokenizer = build_clip_tokenizer(context_length=clip.text.context_length)
    result = ConversionResult(
        destination=Path(destination),
        source=clip.source,
        text=clip.text,
        vision=clip.vision,
        stretched_from=original_length if clip.text.context_length != original_length else None,
        equivalence=report,
    )
    model = _written(model, dtype)
    with atomic_directory(destination, overwrite=overwrite) as scratch:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        if clip.vision is not None:
            _image_processor(clip).save_pretrained(scratch)
        (scratch / PROVENANCE_FILE).write_text(json.dumps(_provenance(result), indent=2) + "\n")
    return result


def _verify(clip: CanonicalCLIP, model: torch.nn.Module, tolerance: float) -> EquivalenceReport:
    if clip.vision is None:
        report = compare_text_encoder(clip, model)
    else:
        text = _compare_full_text(clip, model)
        report = EquivalenceReport(text.hidden_states, text.pooled, compare_image_encoder(clip, model))
    if not report.worst <= tolerance:  # NaN outputs fail too
        raise CheckpointError(
            f"converted model differs from open_clip's forward of {clip.source} by {report.worst:.3g} "
            f"(> tolerance {tolerance:g}); nothing was written. Check num_heads / hidden_act "
            f"(got heads={clip.text.heads}, act={clip.text.hidden_act})"
        )
    return report


def _written(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """``model`` cast to ``dtype``, refused when a tensor overflows (float16 stops at 65504) or loses more than
    the dtype's rounding relative to the tensor's largest value (a tensor of values too small for float16)."""
    if dtype == torch.float32:
        return model
    original = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    model = model.to(dtype)
    overflow, lossy = [], []
    for name, tensor in model.state_dict().items():
        if not tensor.is_floating_point():
            continue
        if not torch.isfinite(tensor).all():
            overflow.append(name)
        elif (tensor.float() - original[name]).abs().max() > torch.finfo(dtype).eps * original[name].abs().max():
            lossy.append(name)
    kind = str(dtype).removeprefix("torch.")
    if overflow or lossy:
        what = f"overflows to inf in {overflow[0]}" if overflow else f"loses the small values of {lossy[0]}"
        raise CheckpointError(
            f"writing {kind} {what} ({len(overflow) + len(lossy)} tensors in all); nothing was written: "
            "write float32 (--dtype float32) or bfloat16"
        )
    return model


def _compare_full_text(clip: CanonicalCLIP, model: torch.nn.Module) -> EquivalenceReport:
    from transformers import CLIPTextModelWithProjection

    encoder = CLIPTextModelWithProjection(model.config.text_config)
    encoder.text_model.load_state_dict(model.text_model.state_dict())
    encoder.text_projection.load_state_dict(model.text_projection.state_dict())
    return compare_text_encoder(clip, encoder.eval())


def _image_processor(clip: CanonicalCLIP):
    return clip_image_processor(clip.image_preprocessing)


def _provenance(result: ConversionResult) -> dict:
    return {
        "source": result.source,
        # the file keeps its key "positions" for the context length (readers of earlier files rely on it)
        "text": {
            ("positions" if key == "context_length" else key): value for key, value in asdict(result.text).items()
        },
        "vision": asdict(result.vision) if result.vision else None,
        "stretched_from": result.stretched_from,
        "equivalence_max_abs_diff": asdict(result.equivalence) if result.equivalence else None,
    }
