"""Load a ready (text encoder, tokenizer) pair from a Hub id, a folder or a checkpoint file."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from .conversion.hf_models import HFTextEncoder, build_text_encoder
from .conversion.sources import ClipSource, read_clip_source
from .errors import CheckpointError, EncoderMismatchError
from .model_sources import PRETRAINED_KINDS, ResolvedSource, SourceKind, resolve_source
from .model_sources import missing_model_error as missing_model_error  # generation imports it from here
from .renamed import renamed_keywords, renamed_property
from .stretching import stretch_to_context_length
from .text_model_layout import get_context_length, hidden_width, text_transformer
from .tokenization import OpenCLIPTokenizer, build_clip_tokenizer
from .transformers_logging import quiet_transformers
from .weight_checks import check_complete, check_finite

TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer_config.json")


@dataclass
class LoadedTextEncoder:
    """A text encoder with the tokenizer sized to its context length.

    Args:
        text_encoder: the ``CLIPTextModel`` / ``CLIPTextModelWithProjection``, in eval mode.
        tokenizer: its CLIP tokenizer, ``model_max_length`` equal to the encoder's context length.
        source: where it was read from, for messages and records.
    """

    text_encoder: HFTextEncoder
    tokenizer: Any
    source: str

    @property
    def context_length(self) -> int:
        """Token positions the encoder reads, SOT and EOT included (77, or 248 for long encoders)."""
        return get_context_length(self.text_encoder)

    max_length = renamed_property("max_length", "context_length")

    @property
    def width(self) -> int:
        return hidden_width(self.text_encoder)


@renamed_keywords(expected_positions="expected_context_length")
def load_text_encoder(
    source: ClipSource,
    *,
    subfolder: str | None = None,
    with_projection: bool | None = None,
    expected_context_length: int | None = None,
    expected_width: int | None = None,
    stretch_to: int | None = None,
    num_heads: int | None = None,
    hidden_act: str = "quick_gelu",
    torch_dtype: torch.dtype | None = None,
    revision: str | None = None,
) -> LoadedTextEncoder:
    """Return a ready text encoder + tokenizer from any supported source.

    ``source``: a Hugging Face folder (CLIPModel / CLIPTextModel, or a diffusers pipeline folder,
    read from ``subfolder`` or ``text_encoder/``), a checkpoint file (``.pt`` etc., opened with
    ``weights_only=True``), an open_clip model or ``open_clip:ARCH/PRETRAINED`` spec, a Hub repo id
    (``owner/name``) or a file in a Hub repo (``owner/name/file.pt``).

    ``with_projection``: ``True`` for ``CLIPTextModelWithProjection``, ``False`` for
    ``CLIPTextModel`` (SD 1.x), ``None`` keeps what the source has. ``stretch_to`` applies KPS
    when the table is shorter. ``expected_context_length`` / ``expected_width`` fail clearly on a
    mismatch (e.g. a 77-row table where 248 was expected, a 512-wide encoder for SD 1.x).

    Args:
        source: see above.
        subfolder: the folder inside ``source`` holding the encoder.
        with_projection: the model class (see above).
        expected_context_length: the required context length (``expected_positions=`` is a deprecated spelling).
        expected_width: the required hidden width.
        stretch_to: the context length after KPS when the table is shorter.
        num_heads, hidden_act: passed to the checkpoint reader for files and open_clip models.
        torch_dtype: cast the encoder to this dtype (``None``: keep the dtype it was read in).
        revision: the Hub revision for a Hub source.
    """
    resolved = resolve_source(source, revision=revision)
    if resolved.kind in PRETRAINED_KINDS:
        encoder, tokenizer, label = _from_pretrained_source(resolved, subfolder, with_projection)
    else:
        encoder, tokenizer, label = _from_canonical(resolved, with_projection, num_heads, hidden_act)
    stretch_to_context_length(encoder, stretch_to)
    check_finite(encoder, label)
    _check_expectations(encoder, label, expected_context_length, expected_width)
    tokenizer.model_max_length = get_context_length(encoder)  # transformers' name for the context length
    if torch_dtype is not None:
        encoder.to(torch_dtype)
    return LoadedTextEncoder(encoder.eval(), tokenizer, label)


def _from_canonical(resolved: ResolvedSource, with_projection, num_heads, hidden_act):
    clip = read_clip_source(resolved, num_heads=num_heads, hidden_act=hidden_act, text_only=True)
    encoder = _as_class(build_text_encoder(clip), with_projection)
    return encoder, build_clip_tokenizer(context_length=clip.text.context_length), clip.source


def _from_pretrained_source(resolved: ResolvedSource, subfolder: str | None, with_projection: bool | None):
    """A folder, a pipeline folder or a Hub repo (a pipeline when it has ``model_index.json``)."""
    is_pipeline = subfolder is None and (
        resolved.kind is SourceKind.PIPELINE_FOLDER
        or (resolved.kind is SourceKind.HUB_REPO and resolved.has_file("model_index.json"))
    )
    subfolder = "text_encoder" if is_pipeline else subfolder
    config = resolved.read_json(f"{subfolder}/config.json" if subfolder else "config.json")
    encoder = _from_pretrained(resolved, subfolder, config, with_projection)
    if resolved.on_hub:
        return encoder, _hub_tokenizer(resolved, "tokenizer" if is_pipeline else subfolder, encoder), resolved.label
    folder = Path(resolved.name, subfolder or "")
    tokenizer = _tokenizer(_tokenizer_folder(Path(resolved.name), folder), get_context_length(encoder))
    return encoder, tokenizer, str(folder)


def _from_pretrained(resolved: ResolvedSource, subfolder, config: dict, with_projection) -> HFTextEncoder:
    has_projection = "CLIPTextModel" not in config.get("architectures", ["CLIPTextModelWithProjection"])
    want_projection = has_projection if with_projection is None else with_projection
    cls = CLIPTextModelWithProjection if want_projection else CLIPTextModel
    label = f"{resolved.name}/{subfolder}" if subfolder else resolved.name
    if want_projection and not has_projection:
        raise EncoderMismatchError(f"{label} has no text projection; load it with with_projection=False")
    kwargs = {**resolved.pretrained_kwargs(), "subfolder": subfolder or ""}
    try:
        if want_projection and "text_config" in config:  # a CLIPModel folder: its projection width is top-level
            text_config = CLIPTextConfig.from_pretrained(resolved.name, **kwargs)
            text_config.projection_dim = config.get("projection_dim", text_config.projection_dim)
            kwargs["config"] = text_config
        # dropping the projection is intended, not worth a report; missing tensors are refused below
        with quiet_transformers() if has_projection and not want_projection else nullcontext():
            encoder, info = cls.from_pretrained(resolved.name, output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"could not load a CLIP text encoder from {resolved.name}: {err}") from err
    check_complete(info["missing_keys"], label)
    return encoder


def _hub_tokenizer(resolved: ResolvedSource, subfolder: str | None, encoder: nn.Module):
    try:  # load_text_encoder sizes the tokenizer to the encoder afterwards
        return OpenCLIPTokenizer.from_pretrained(resolved.name, subfolder=subfolder or "", revision=resolved.revision)
    except (OSError, ValueError):
        return build_clip_tokenizer(context_length=get_context_length(encoder))


def _as_class(encoder: HFTextEncoder, with_projection: bool | None) -> HFTextEncoder:
    if with_projection is None or with_projection == isinstance(encoder, CLIPTextModelWithProjection):
        return encoder
    if with_projection:
        raise EncoderMismatchError("the source has no text projection; load it with with_projection=False")
    plain = CLIPTextModel(encoder.config)
    text_transformer(plain).load_state_dict(text_transformer(encoder).state_dict())
    return plain.eval()


def _tokenizer_folder(root: Path, model_folder: Path) -> Path | None:
    for candidate in (model_folder, root / "tokenizer", root):
        if any((candidate / name).is_file() for name in TOKENIZER_FILES):
            return candidate
    return None


def _tokenizer(folder: Path | None, context_length: int):
    if folder is None:
        return build_clip_tokenizer(context_length=context_length)
    # transformers' tokenizers call the context length model_max_length
    return OpenCLIPTokenizer.from_pretrained(str(folder), model_max_length=context_length)


def _check_expectations(encoder: nn.Module, label: str, context_length: int | None, width: int | None) -> None:
    have_length, have_width = get_context_length(encoder), hidden_width(encoder)
    if context_length is not None and have_length != context_length:
        hint = (
            f"pass stretch_to={context_length} (CLI: --stretch-to {context_length}) to apply knowledge-preserved "
            "stretching"
            if have_length < context_length
            else "load an encoder with the expected length"
        )
        raise EncoderMismatchError(
            f"{label} has a {have_length}-row position table where {context_length} was expected; {hint}"
        )
    if width is not None and have_width != width:
        raise EncoderMismatchError(
            f"{label} produces {have_width}-wide hidden states but {width} are needed (the UNet's "
            "cross_attention_dim): SD 1.x needs a 768-wide CLIP-L encoder, SD 2.x 1024 (OpenCLIP-H), "
            "SDXL 768 + 1280; a ViT-B encoder (512) fits none of them"
        )
