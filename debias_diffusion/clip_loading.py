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
from dataclasses import dataclass

import torch
from torch import nn
from transformers import CLIPModel

from .conversion.hf_models import build_clip_model
from .conversion.sources import read_clip_source
from .errors import CheckpointError
from .image_preprocessing import ImagePreprocessing
from .model_sources import CHECKPOINT_SUFFIXES as CHECKPOINT_SUFFIXES  # re-exported by train_encoder.evaluation
from .model_sources import PRETRAINED_KINDS, ModelSource, ResolvedSource, SourceKind, resolve_source
from .stretching import stretch_to_context_length
from .text_model_layout import get_context_length
from .weight_checks import check_complete

__all__ = ["LoadedCLIP", "ModelSource", "load_clip_model", "weights_identity"]

PREPROCESSOR_FILE = "preprocessor_config.json"


@dataclass
class LoadedCLIP:
    """A ``CLIPModel`` in eval mode with its image preprocessing and weight identity.

    Args:
        model: the ``CLIPModel`` (both towers), float32, eval mode.
        preprocessing: the image transform its vision tower expects (crop size, resize, normalisation).
        source: where it was read from, for messages and records.
        identity: :func:`weights_identity` of the model and preprocessing (cache keys, records).
    """

    model: CLIPModel
    preprocessing: ImagePreprocessing
    source: str
    identity: str

    @property
    def context_length(self) -> int:
        """Rows of the text position table (77 for OpenAI CLIP, 248 for long models)."""
        return get_context_length(self.model)


def load_clip_model(
    source: ModelSource | LoadedCLIP,
    *,
    stretch_to: int | None = None,
    hidden_act: str = "quick_gelu",
    num_heads: int | None = None,
    revision: str | None = None,
) -> LoadedCLIP:
    """Load ``source`` as a :class:`LoadedCLIP` on the CPU, in float32.

    ``stretch_to`` applies knowledge-preserved stretching when the text table is shorter (e.g.
    evaluate OpenAI CLIP at 248 positions); ``hidden_act`` / ``num_heads`` are passed to the
    checkpoint reader for files (LAION open_clip weights use ``gelu``). An in-memory
    ``CLIPModel`` is used as is (not copied): stretching changes it in place. ``revision`` picks the
    branch, tag or commit of a Hub source.

    Args:
        source: an HF folder or Hub id, a train_encoder export ``clip/`` folder, an OpenAI-layout / Long-CLIP
            file, an ``open_clip:`` spec, a ``CLIPModel`` or a ``LoadedCLIP``.
        stretch_to: positions after KPS when the text table is shorter.
        hidden_act, num_heads: passed to the checkpoint reader for files.
        revision: branch, tag or commit of a Hub source.
    """
    if isinstance(source, LoadedCLIP):
        model, preprocessing, label = source.model, source.preprocessing, source.source
    elif isinstance(source, CLIPModel):
        model, label = source, f"<in-memory {type(source).__name__}>"
        preprocessing = ImagePreprocessing(int(model.config.vision_config.image_size))
    else:
        model, preprocessing, label = _load(resolve_source(source, revision=revision), hidden_act, num_heads)
    stretch_to_context_length(model, stretch_to)
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


def _load(resolved: ResolvedSource, hidden_act, num_heads) -> tuple[CLIPModel, ImagePreprocessing, str]:
    if resolved.kind in PRETRAINED_KINDS:
        return _from_pretrained_source(resolved)
    clip = read_clip_source(resolved, hidden_act=hidden_act, num_heads=num_heads)
    if clip.vision is None:
        raise CheckpointError(f"{clip.source} has no image tower: retrieval needs a full CLIP model")
    return build_clip_model(clip), clip.image_preprocessing, clip.source


def _from_pretrained_source(resolved: ResolvedSource) -> tuple[CLIPModel, ImagePreprocessing, str]:
    """A Hugging Face ``CLIPModel`` folder or Hub repo, with its ``preprocessor_config.json`` when it has one."""
    if resolved.kind is SourceKind.PIPELINE_FOLDER:
        raise CheckpointError(
            f"{resolved.name} is a diffusers pipeline folder, not a Hugging Face CLIPModel folder: "
            "retrieval needs both towers"
        )
    architectures = resolved.read_json("config.json").get("architectures") or ["CLIPModel"]
    if "CLIPModel" not in architectures:
        raise CheckpointError(
            f"{resolved.label} holds a {architectures[0]}, not a CLIPModel: a text-only export cannot do image retrieval"
        )
    try:
        model, info = CLIPModel.from_pretrained(resolved.name, output_loading_info=True, **resolved.pretrained_kwargs())
    except (OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"could not load a CLIPModel from {resolved.label}: {err}") from err
    check_complete(info["missing_keys"], resolved.label)
    config = {"image_size": int(model.config.vision_config.image_size)}
    config |= resolved.read_json(PREPROCESSOR_FILE, required=False) or {}
    return model, ImagePreprocessing.from_source(config), resolved.label
