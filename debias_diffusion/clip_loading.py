"""Load a full CLIP model (both towers) for retrieval and the image probes, from any source the library reads.

Sources: a ``transformers.CLIPModel`` object; a Hugging Face model folder; a checkpoint file
(Long-CLIP / DeBias-CLIP / OpenAI / open_clip training ``.pt``, safetensors) or an open_clip model
object / ``open_clip:ARCH/PRETRAINED`` spec (through ``debias_diffusion.conversion``); a Hub id
``owner/name`` or a file in a Hub repo ``owner/name/file.pt``.

Every loaded model gets an ``identity``: a hash of all its weights (after stretching) and its
image preprocessing, so embedding caches are keyed by what the model *is*, not where it came from.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import CLIPModel

from .conversion.hf_models import build_clip_model
from .conversion.sources import OPEN_CLIP_PREFIX, read_clip_source
from .errors import CheckpointError, ModelNotFoundError
from .image_preprocessing import ImagePreprocessing
from .loading import CHECKPOINT_SUFFIXES, missing_model_error
from .stretching import LONG_CLIP_KEEP, stretch_ratio, stretch_text_encoder
from .text_model_layout import position_count
from .weight_checks import check_complete

__all__ = ["LoadedCLIP", "ModelSource", "load_clip_model", "weights_identity"]

ModelSource = str | Path | nn.Module
PREPROCESSOR_FILE = "preprocessor_config.json"


@dataclass
class LoadedCLIP:
    """A ``CLIPModel`` in eval mode with its image preprocessing and weight identity."""

    model: CLIPModel
    preprocessing: ImagePreprocessing
    source: str
    identity: str

    @property
    def context_length(self) -> int:
        """Rows of the text position table (77 for OpenAI CLIP, 248 for long models)."""
        return position_count(self.model)


def load_clip_model(
    source: ModelSource | LoadedCLIP,
    *,
    stretch_to: int | None = None,
    hidden_act: str = "quick_gelu",
    num_heads: int | None = None,
) -> LoadedCLIP:
    """Load ``source`` as a :class:`LoadedCLIP` on the CPU, in float32.

    ``stretch_to`` applies knowledge-preserved stretching when the text table is shorter (e.g.
    evaluate OpenAI CLIP at 248 positions); ``hidden_act`` / ``num_heads`` are passed to the
    checkpoint reader for files (LAION open_clip weights use ``gelu``). An in-memory
    ``CLIPModel`` is used as is (not copied): stretching changes it in place.

    Args:
        source: an HF folder or Hub id, a train_encoder export ``clip/`` folder, an OpenAI-layout / Long-CLIP
            file, an ``open_clip:`` spec, a ``CLIPModel`` or a ``LoadedCLIP``.
        stretch_to: positions after KPS when the text table is shorter.
        hidden_act, num_heads: passed to the checkpoint reader for files.
    """
    if isinstance(source, LoadedCLIP):
        model, preprocessing, label = source.model, source.preprocessing, source.source
    elif isinstance(source, CLIPModel):
        model, label = source, f"<in-memory {type(source).__name__}>"
        preprocessing = ImagePreprocessing(int(model.config.vision_config.image_size))
    else:
        model, preprocessing, label = _load(source, stretch_to, hidden_act, num_heads)
    if stretch_to is not None and position_count(model) < stretch_to:
        ratio = stretch_ratio(position_count(model), stretch_to, LONG_CLIP_KEEP)
        stretch_text_encoder(model, keep=LONG_CLIP_KEEP, ratio=ratio)
    model = model.float().eval()
    return LoadedCLIP(model, preprocessing, label, weights_identity(model, preprocessing))


def weights_identity(model: nn.Module, preprocessing: ImagePreprocessing | None = None) -> str:
    """Hex digest of every parameter and buffer (names, dtypes, shapes, bytes) and the preprocessing.

    Raises :class:`~debias_diffusion.errors.CheckpointError` on NaN or infinite weights.
    """
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"the model has NaN or infinite weights in {name}")
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(memoryview(tensor.reshape(-1).view(torch.uint8).numpy()))
    if preprocessing is not None:
        digest.update(repr(preprocessing).encode())
    return digest.hexdigest()


def _load(source: ModelSource, stretch_to, hidden_act, num_heads) -> tuple[CLIPModel, ImagePreprocessing, str]:
    if isinstance(source, nn.Module) or (isinstance(source, str) and source.startswith(OPEN_CLIP_PREFIX)):
        return _from_canonical(source, stretch_to, hidden_act, num_heads)
    path = Path(source)
    if path.is_dir():
        return _from_folder(path)
    if path.is_file() or (path.suffix in CHECKPOINT_SUFFIXES and path.parent.is_dir()):
        return _from_canonical(path, stretch_to, hidden_act, num_heads)
    return _from_hub(str(source), stretch_to, hidden_act, num_heads)


def _from_canonical(source, stretch_to, hidden_act, num_heads) -> tuple[CLIPModel, ImagePreprocessing, str]:
    clip = read_clip_source(source, hidden_act=hidden_act, num_heads=num_heads)
    if clip.vision is None:
        raise CheckpointError(f"{clip.source} has no image tower: retrieval needs a full CLIP model")
    if stretch_to is not None and clip.text.positions < stretch_to:
        clip = clip.stretched_to(stretch_to)
    preprocessing = ImagePreprocessing(clip.vision.image_size, tuple(clip.image_mean), tuple(clip.image_std))
    return build_clip_model(clip), preprocessing, clip.source


def _from_folder(path: Path) -> tuple[CLIPModel, ImagePreprocessing, str]:
    config_file = path / "config.json"
    if (path / "model_index.json").is_file() or not config_file.is_file():
        raise CheckpointError(
            f"{path} is not a Hugging Face CLIPModel folder (no config.json, or a diffusers pipeline): "
            "retrieval needs both towers"
        )
    try:
        architectures = json.loads(config_file.read_text()).get("architectures") or ["CLIPModel"]
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{config_file} is not valid JSON: {err}") from err
    if "CLIPModel" not in architectures:
        raise CheckpointError(
            f"{path} holds a {architectures[0]}, not a CLIPModel: a text-only export cannot do image retrieval"
        )
    try:
        model, info = CLIPModel.from_pretrained(str(path), local_files_only=True, output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"could not load a CLIPModel from {path}: {err}") from err
    check_complete(info["missing_keys"], path)
    return model, _preprocessing(model, path / PREPROCESSOR_FILE), str(path)


def _from_hub(repo: str, stretch_to, hidden_act, num_heads) -> tuple[CLIPModel, ImagePreprocessing, str]:
    parts = repo.split("/")
    if len(parts) < 2 or not all(parts):
        raise ModelNotFoundError(f"{repo!r} is not an existing file or folder, nor a Hugging Face Hub id (owner/name)")
    from huggingface_hub import hf_hub_download

    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    if filename:
        local = _hub_call(repo, lambda: hf_hub_download(repo_id, filename))
        model, preprocessing, _ = _from_canonical(Path(local), stretch_to, hidden_act, num_heads)
        return model, preprocessing, repo
    model, info = _hub_call(repo, lambda: CLIPModel.from_pretrained(repo_id, output_loading_info=True))
    check_complete(info["missing_keys"], repo)
    try:
        config = Path(hf_hub_download(repo_id, PREPROCESSOR_FILE))
    except Exception:  # no preprocessor config on the Hub or in the cache: CLIP's defaults
        config = None
    return model, _preprocessing(model, config), repo


def _hub_call(repo: str, fetch):
    try:
        return fetch()
    except (OSError, ValueError) as err:
        raise missing_model_error(repo, err) from err


def _preprocessing(model: CLIPModel, config_file: Path | None) -> ImagePreprocessing:
    """The model's image size with a ``preprocessor_config.json`` beside it read on top, if there is one."""
    config = {"image_size": int(model.config.vision_config.image_size)}
    if config_file is not None and config_file.is_file():
        try:
            config |= json.loads(config_file.read_text())
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{config_file} is not valid JSON: {err}") from err
    return ImagePreprocessing.from_source(config)
