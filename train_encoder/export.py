"""Export trained weights as Hugging Face folders, written atomically.

``DESTINATION/clip/``          the full ``CLIPModel`` + ``CLIPImageProcessor`` + tokenizer (retrieval, `eval`)
``DESTINATION/text_encoder/``  ``CLIPTextModelWithProjection`` + tokenizer with ``model_max_length`` = the
                               encoder's positions (248): what ``debias_diffusion.load_text_encoder`` and the
                               pipelines load (``CLIPTextModel.from_pretrained`` drops the projection for SD 1.x)

``DESTINATION/recipe_extras.safetensors``  a recipe's image-side parameters (FIX-CLIP's mask token, prompts,
                               hierarchical heads), for recipes that have them: kept for reference, not
                               part of either model (inference runs the plain towers)

Each folder also holds ``train_encoder_export.json`` (recipe, step, epoch, source), and ``DESTINATION/README.md``
is a model card with Hub metadata (``train_encoder.model_card``), ready for ``--push-to-hub``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from transformers import CLIPModel, CLIPTextModelWithProjection

from debias_diffusion.atomic_io import atomic_directory
from debias_diffusion.errors import CheckpointError
from debias_diffusion.image_preprocessing import ImagePreprocessing, clip_image_processor
from debias_diffusion.text_model_layout import get_context_length
from debias_diffusion.tokenization import build_clip_tokenizer
from debias_diffusion.ui_compatibility import warn_if_ui_activation_differs
from debias_diffusion.weight_checks import check_complete

from .checkpointing import read_checkpoint_metadata, save_extras
from .file_names import CARD_FILE, CHECKPOINTS_DIR, CLIP_DIR, EXTRAS_FILE, METADATA_FILE, MODEL_DIR, TEXT_ENCODER_DIR
from .model_card import DEFAULT_LICENSE, model_card, run_facts

__all__ = [
    "ExportResult",
    "export_checkpoint",
    "export_model",
    "text_encoder_of",
]


@dataclass(frozen=True)
class ExportResult:
    destination: Path
    clip: Path
    text_encoder: Path
    metadata: dict[str, Any]


def text_encoder_of(model: CLIPModel) -> CLIPTextModelWithProjection:
    """The text tower and projection of ``model`` as a standalone ``CLIPTextModelWithProjection`` (weights copied)."""
    config = model.config.text_config.__class__.from_dict(model.config.text_config.to_dict())
    config.projection_dim = model.config.projection_dim
    encoder = CLIPTextModelWithProjection(config)
    encoder.text_model.load_state_dict(model.text_model.state_dict())
    encoder.text_projection.load_state_dict(model.text_projection.state_dict())
    return encoder.to(model.dtype).eval()


def export_model(
    model: CLIPModel,
    destination: str | Path,
    *,
    preprocessing: ImagePreprocessing,
    metadata: dict[str, Any],
    dtype: torch.dtype = torch.float32,
    overwrite: bool = False,
    extras: Mapping[str, torch.Tensor] | None = None,
    run_dir: str | Path | None = None,
    license: str = DEFAULT_LICENSE,
) -> ExportResult:
    """Write ``model`` as ``clip/`` and ``text_encoder/`` under ``destination`` (one atomic rename), the
    recipe's ``extras`` (a state dict) beside them as ``recipe_extras.safetensors``, and a model card
    (``README.md``, Hub metadata with ``license``) from ``metadata`` and the training ``run_dir``'s records."""
    destination = Path(destination)
    context_length = get_context_length(model)
    text_config = model.config.text_config
    warn_if_ui_activation_differs(text_config.hidden_size, text_config.num_hidden_layers, text_config.hidden_act)
    full = CLIPModel(model.config)
    full.load_state_dict(model.state_dict())
    full = full.to(dtype).eval()
    text = text_encoder_of(full)
    tokenizer = build_clip_tokenizer(context_length=context_length)
    # train_encoder_export.json keeps its key "positions" for the context length (model cards of earlier exports read it)
    metadata = {**metadata, "positions": context_length, "dtype": str(dtype).removeprefix("torch.")}
    with atomic_directory(destination, overwrite=overwrite) as scratch:
        for folder, module in ((scratch / CLIP_DIR, full), (scratch / TEXT_ENCODER_DIR, text)):
            module.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
        clip_image_processor(preprocessing).save_pretrained(scratch / CLIP_DIR)
        if extras is not None:
            save_extras(dict(extras), scratch / EXTRAS_FILE)
        (scratch / CARD_FILE).write_text(model_card(metadata, run_facts(run_dir), license=license), encoding="utf-8")
    return ExportResult(destination, destination / CLIP_DIR, destination / TEXT_ENCODER_DIR, metadata)


def export_checkpoint(
    checkpoint: str | Path,
    destination: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
    overwrite: bool = False,
    license: str = DEFAULT_LICENSE,
) -> ExportResult:
    """Export a training checkpoint folder (``OUTPUT/checkpoints/step-N``); its run folder feeds the model card."""
    checkpoint = Path(checkpoint)
    saved = read_checkpoint_metadata(checkpoint)
    try:
        model, info = CLIPModel.from_pretrained(
            str(checkpoint / MODEL_DIR), local_files_only=True, output_loading_info=True
        )
    except (OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"cannot load the CLIPModel of checkpoint {checkpoint}: {error}") from error
    check_complete(info["missing_keys"], checkpoint / MODEL_DIR)
    state = saved["state"]
    metadata = {
        "recipe": saved["recipe"],
        "source": saved["source"],
        "step": state["step"],
        "epoch": state["epoch"],
        "samples_seen": state["samples_seen"],
        "checkpoint": str(checkpoint),
        **({"hardware": saved["hardware"]} if "hardware" in saved else {}),
    }
    preprocessing = ImagePreprocessing(**saved["preprocessing"])
    extras = load_file(checkpoint / EXTRAS_FILE) if (checkpoint / EXTRAS_FILE).is_file() else None
    return export_model(
        model,
        destination,
        preprocessing=preprocessing,
        metadata=metadata,
        dtype=dtype,
        overwrite=overwrite,
        extras=extras,
        run_dir=checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINTS_DIR else None,
        license=license,
    )
