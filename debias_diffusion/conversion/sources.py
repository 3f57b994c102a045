"""Turn any supported CLIP source into canonical form: a file, an open_clip model or spec."""

from __future__ import annotations

from torch import nn

from ..errors import CheckpointError, ModelNotFoundError
from ..model_sources import OPEN_CLIP_PREFIX, ModelSource, ResolvedSource, SourceKind, resolve_source
from .canonical import CanonicalCLIP, from_state_dict
from .checkpoint_reading import read_state_dict
from .open_clip_models import from_open_clip_model

__all__ = ["OPEN_CLIP_PREFIX", "ClipSource", "load_open_clip_spec", "read_clip_source"]

ClipSource = ModelSource


def read_clip_source(
    source: ClipSource | ResolvedSource,
    *,
    num_heads: int | None = None,
    vision_num_heads: int | None = None,
    hidden_act: str = "quick_gelu",
    text_only: bool = False,
) -> CanonicalCLIP:
    """Read a checkpoint file, an open_clip model object, or an ``open_clip:ARCH/PRETRAINED`` spec.

    Files: Long-CLIP ``.pt`` (OpenAI layout, merged ``positional_embedding_res``), open_clip
    training checkpoints (``state_dict``, ``module.``, ``text.``), OpenAI-layout state dicts, as
    pickles (opened with ``weights_only=True``) or safetensors. Paths are local (see
    :func:`~debias_diffusion.model_sources.resolve_source`); a resolved Hub file is downloaded.

    Args:
        source: a file path, an open_clip model object or an ``open_clip:ARCH/PRETRAINED`` spec.
        num_heads, vision_num_heads: attention heads when not ``width // 64``.
        hidden_act: the MLP activation recorded with the weights.
        text_only: keep only the text tower.
    """
    resolved = resolve_source(source, hub=False)
    if resolved.kind is SourceKind.MODULE:
        return from_open_clip_model(resolved.module, text_only=text_only)
    if resolved.kind is SourceKind.OPEN_CLIP_SPEC:
        return from_open_clip_model(load_open_clip_spec(resolved.name), source=resolved.name, text_only=text_only)
    if resolved.kind in (SourceKind.FOLDER, SourceKind.PIPELINE_FOLDER):
        raise CheckpointError(
            f"{resolved.name} is a folder: folders are read as Hugging Face models (load_text_encoder); "
            "to convert, pass a checkpoint file (.pt, .pth, .bin, .ckpt, .safetensors)"
        )
    return from_state_dict(
        read_state_dict(resolved.checkpoint_file()),
        source=resolved.label,
        num_heads=num_heads,
        vision_num_heads=vision_num_heads,
        hidden_act=hidden_act,
        text_only=text_only,
    )


def load_open_clip_spec(spec: str) -> nn.Module:
    """Create the open_clip model named by ``open_clip:ARCH`` or ``open_clip:ARCH/PRETRAINED``.

    ``PRETRAINED`` is an open_clip tag (downloads from the Hub when online) or a local file.
    """
    import open_clip

    arch, _, pretrained = spec.removeprefix(OPEN_CLIP_PREFIX).partition("/")
    if arch not in open_clip.list_models():
        raise CheckpointError(f"unknown open_clip architecture {arch!r} in {spec!r}; see open_clip.list_models()")
    try:
        model = open_clip.create_model(arch, pretrained=pretrained or None, device="cpu")
    except (OSError, RuntimeError, ValueError) as err:
        raise ModelNotFoundError(
            f"could not load {spec!r} with open_clip: {err}. Offline (HF_HUB_OFFLINE=1) only cached "
            "or local weights load: download them on a machine with network first, or pass the file"
        ) from err
    return model.eval()
