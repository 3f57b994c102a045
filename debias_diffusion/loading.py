"""Load a ready (text encoder, tokenizer) pair from a Hub id, a folder or a checkpoint file."""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from .conversion.hf_models import HFTextEncoder, build_text_encoder
from .conversion.sources import OPEN_CLIP_PREFIX, ClipSource, read_clip_source
from .errors import CheckpointError, EncoderMismatchError, ModelNotFoundError
from .stretching import LONG_CLIP_KEEP, stretch_ratio, stretch_text_encoder
from .text_model_layout import hidden_width, position_count, text_transformer
from .tokenization import OpenCLIPTokenizer, build_clip_tokenizer
from .transformers_logging import quiet_transformers
from .weight_checks import check_complete, check_finite

TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer_config.json")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")


@dataclass
class LoadedTextEncoder:
    """A text encoder with the tokenizer sized to its position table."""

    text_encoder: HFTextEncoder
    tokenizer: Any
    source: str

    @property
    def max_length(self) -> int:
        return position_count(self.text_encoder)

    @property
    def width(self) -> int:
        return hidden_width(self.text_encoder)


def load_text_encoder(
    source: ClipSource,
    *,
    subfolder: str | None = None,
    with_projection: bool | None = None,
    expected_positions: int | None = None,
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
    when the table is shorter. ``expected_positions`` / ``expected_width`` fail clearly on a
    mismatch (e.g. a 77-row table where 248 was expected, a 512-wide encoder for SD 1.x).

    Args:
        source: see above.
        subfolder: the folder inside ``source`` holding the encoder.
        with_projection: the model class (see above).
        expected_positions, expected_width: required position count / hidden width.
        stretch_to: positions after KPS when the table is shorter.
        num_heads, hidden_act: passed to the checkpoint reader for files and open_clip models.
        torch_dtype: cast the encoder to this dtype (``None``: keep the dtype it was read in).
        revision: the Hub revision for a Hub source.
    """
    encoder, tokenizer, label = _load(source, subfolder, with_projection, num_heads, hidden_act, revision)
    if stretch_to is not None and position_count(encoder) < stretch_to:
        ratio = stretch_ratio(position_count(encoder), stretch_to, LONG_CLIP_KEEP)
        stretch_text_encoder(encoder, keep=LONG_CLIP_KEEP, ratio=ratio)
    check_finite(encoder, label)
    _check_expectations(encoder, label, expected_positions, expected_width)
    tokenizer.model_max_length = position_count(encoder)
    if torch_dtype is not None:
        encoder.to(torch_dtype)
    return LoadedTextEncoder(encoder.eval(), tokenizer, label)


def _load(source, subfolder, with_projection, num_heads, hidden_act, revision):
    if isinstance(source, nn.Module) or (isinstance(source, str) and source.startswith(OPEN_CLIP_PREFIX)):
        return _from_canonical(source, with_projection, num_heads, hidden_act)
    path = Path(source)
    if path.is_dir():
        return _from_folder(path, subfolder, with_projection)
    if path.is_file() or (path.suffix in CHECKPOINT_SUFFIXES and path.parent.is_dir()):
        return _from_canonical(path, with_projection, num_heads, hidden_act)
    return _from_hub(str(source), subfolder, with_projection, num_heads, hidden_act, revision)


def _from_canonical(source, with_projection, num_heads, hidden_act):
    clip = read_clip_source(source, num_heads=num_heads, hidden_act=hidden_act, text_only=True)
    encoder = _as_class(build_text_encoder(clip), with_projection)
    return encoder, build_clip_tokenizer(model_max_length=clip.text.positions), clip.source


def _from_folder(path: Path, subfolder: str | None, with_projection: bool | None):
    if subfolder is None and (path / "model_index.json").is_file():
        subfolder = "text_encoder"
    folder = path / subfolder if subfolder else path
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{folder} has no config.json: not a Hugging Face model folder")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{config_file} is not valid JSON: {err}") from err
    encoder = _from_pretrained(str(path), subfolder, config, with_projection, local_files_only=True)
    tokenizer_folder = _tokenizer_folder(path, folder)
    return encoder, _tokenizer(tokenizer_folder, position_count(encoder)), str(folder)


def _from_pretrained(repo: str, subfolder, config: dict, with_projection, **kwargs) -> HFTextEncoder:
    has_projection = "CLIPTextModel" not in config.get("architectures", ["CLIPTextModelWithProjection"])
    want_projection = has_projection if with_projection is None else with_projection
    cls = CLIPTextModelWithProjection if want_projection else CLIPTextModel
    label = f"{repo}/{subfolder}" if subfolder else repo
    if want_projection and not has_projection:
        raise EncoderMismatchError(f"{label} has no text projection; load it with with_projection=False")
    try:
        if want_projection and "text_config" in config:  # a CLIPModel folder: its projection width is top-level
            text_config = CLIPTextConfig.from_pretrained(repo, subfolder=subfolder or "", **kwargs)
            text_config.projection_dim = config.get("projection_dim", text_config.projection_dim)
            kwargs = {**kwargs, "config": text_config}
        # dropping the projection is intended, not worth a report; missing tensors are refused below
        with quiet_transformers() if has_projection and not want_projection else nullcontext():
            encoder, info = cls.from_pretrained(repo, subfolder=subfolder or "", output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"could not load a CLIP text encoder from {repo}: {err}") from err
    check_complete(info["missing_keys"], label)
    return encoder


def _from_hub(repo: str, subfolder, with_projection, num_heads, hidden_act, revision):
    parts = repo.split("/")
    if len(parts) < 2 or not all(parts):
        raise ModelNotFoundError(f"{repo!r} is not an existing file or folder, nor a Hugging Face Hub id (owner/name)")
    from huggingface_hub import hf_hub_download

    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    if filename:
        local = _hub_call(repo, lambda: hf_hub_download(repo_id, filename, revision=revision))
        return _from_canonical(Path(local), with_projection, num_heads, hidden_act)
    is_pipeline = subfolder is None and _hub_has_file(repo_id, "model_index.json", revision)
    subfolder = "text_encoder" if is_pipeline else subfolder
    config_name = f"{subfolder}/config.json" if subfolder else "config.json"
    config_file = _hub_call(repo, lambda: hf_hub_download(repo_id, config_name, revision=revision))
    config = json.loads(Path(config_file).read_text())
    encoder = _from_pretrained(repo_id, subfolder, config, with_projection, revision=revision)
    try:  # load_text_encoder sizes the tokenizer to the encoder afterwards
        tokenizer = OpenCLIPTokenizer.from_pretrained(
            repo_id, subfolder="tokenizer" if is_pipeline else (subfolder or ""), revision=revision
        )
    except (OSError, ValueError):
        tokenizer = build_clip_tokenizer(model_max_length=position_count(encoder))
    return encoder, tokenizer, repo


def _hub_has_file(repo_id: str, filename: str, revision: str | None) -> bool:
    from huggingface_hub import hf_hub_download

    try:
        hf_hub_download(repo_id, filename, revision=revision)
    except Exception:  # absent, offline and not cached, or unreachable: treat as "no"
        return False
    return True


def _hub_call(repo: str, fetch):
    from huggingface_hub.errors import HFValidationError

    try:
        return fetch()
    except (OSError, ValueError, HFValidationError) as err:
        raise missing_model_error(repo, err) from err


def missing_model_error(repo: str, err: Exception) -> ModelNotFoundError:
    """A ``ModelNotFoundError`` for a Hub id that could not be fetched, saying how to get it."""
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    repo_id = "/".join(str(repo).split("/")[:2])
    hint = (
        "HF_HUB_OFFLINE is set, so only models already in the Hugging Face cache load: "
        f"run `hf download {repo_id}` on a machine with network, or pass a local path"
        if offline
        else "check the id and your network / HF token"
    )
    return ModelNotFoundError(f"{repo!r} is not a local path and could not be fetched from the Hub ({hint}): {err}")


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


def _tokenizer(folder: Path | None, max_length: int):
    if folder is None:
        return build_clip_tokenizer(model_max_length=max_length)
    return OpenCLIPTokenizer.from_pretrained(str(folder), model_max_length=max_length)


def _check_expectations(encoder: nn.Module, label: str, positions: int | None, width: int | None) -> None:
    have_positions, have_width = position_count(encoder), hidden_width(encoder)
    if positions is not None and have_positions != positions:
        hint = (
            f"pass stretch_to={positions} (CLI: --stretch {positions}) to apply knowledge-preserved stretching"
            if have_positions < positions
            else "load an encoder with the expected length"
        )
        raise EncoderMismatchError(
            f"{label} has a {have_positions}-row position table where {positions} was expected; {hint}"
        )
    if width is not None and have_width != width:
        raise EncoderMismatchError(
            f"{label} produces {have_width}-wide hidden states but {width} are needed (the UNet's "
            "cross_attention_dim): SD 1.x needs a 768-wide CLIP-L encoder, SD 2.x 1024 (OpenCLIP-H), "
            "SDXL 768 + 1280; a ViT-B encoder (512) fits none of them"
        )
