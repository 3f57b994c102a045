"""The world's shipped models (``examples/shapes_world/models``) and its pipeline with any encoder swapped in.

A models folder holds ``clip-77`` (the pipeline's own 77-token encoder), ``long-clip-recipe`` and
``debias-recipe`` (CLIPModel folders stretched to 248 positions and fine-tuned) and ``pipeline`` (a
diffusers folder conditioned on ``clip-77``). :func:`load_world_pipeline` is the one way the demo, the
late-detail curves and the generation check load that pipeline.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelNotFoundError, UsageError
from ..prominence.jobs import SamplingSettings

__all__ = [
    "CAVEAT",
    "EVAL_SEED",
    "OWN_ENCODER",
    "PIPELINE_FOLDER",
    "WORLD_ENCODERS",
    "WORLD_GENERATION",
    "load_world_pipeline",
    "world_encoders",
    "world_pipeline_loaders",
]

CAVEAT = (
    "These are the project's own tiny models trained on a synthetic world of coloured shapes, not SD 1.5 or "
    "CLIP-L; the numbers show the chain works and how to read the report, not how real models behave."
)
"""What every report on the world models says first."""

WORLD_ENCODERS: Mapping[str, str] = {
    "CLIP-77": "clip-77",
    "Long-CLIP recipe": "long-clip-recipe",
    "DeBias recipe": "debias-recipe",
}
"""Report label -> folder in the models folder, in report order."""

OWN_ENCODER = "CLIP-77"
"""The label of the encoder the pipeline was trained with (loaded from the pipeline folder itself)."""

PIPELINE_FOLDER = "pipeline"

EVAL_SEED = 1
"""The models were trained on seed 0's scenes: evaluations draw unseen scenes from seed 1 onwards."""

WORLD_GENERATION = SamplingSettings(steps=15, guidance_scale=5.0, width=64, height=64, images_per_call=8)
"""How the world's pipeline generates in every evaluation (64 x 64, what it was trained at)."""


def world_encoders(models_dir: str | Path, extra: Mapping[str, str | Path] | None = None) -> dict[str, Path]:
    """Label -> CLIPModel folder: the shipped encoders, then ``extra`` ones; every folder checked to exist.

    Args:
        models_dir: the models folder (``examples/shapes_world/models`` or ``package_models.py``'s output).
        extra: more encoders to measure, label -> CLIPModel folder (``--encoder LABEL=FOLDER``).

    Raises:
        UsageError: an extra label repeats a shipped one.
        ModelNotFoundError: a folder (or the models folder's ``pipeline``) is missing.
    """
    models_dir = Path(models_dir)
    extra = {label: Path(folder) for label, folder in (extra or {}).items()}
    taken = sorted(set(extra) & set(WORLD_ENCODERS))
    if taken:
        raise UsageError(f"--encoder label(s) {taken} are the shipped encoders' labels; choose other names")
    missing = [name for name in [*WORLD_ENCODERS.values(), PIPELINE_FOLDER] if not (models_dir / name).is_dir()]
    missing += [str(folder) for folder in extra.values() if not folder.is_dir()]
    if missing:
        raise ModelNotFoundError(f"missing {', '.join(missing)} (in {models_dir}); see examples/shapes_world/README.md")
    return {label: models_dir / name for label, name in WORLD_ENCODERS.items()} | extra


def load_world_pipeline(pipeline_dir: str | Path, encoder: str | Path | None = None) -> Any:
    """The world's text-to-image pipeline in float32, progress bars off.

    Args:
        pipeline_dir: a diffusers pipeline folder (the models folder's ``pipeline``).
        encoder: a text encoder to swap in (anything ``load_text_encoder`` reads, e.g. a CLIPModel folder;
            its tokenizer comes with it); ``None`` keeps the pipeline's own.

    Returns:
        A :class:`~debias_diffusion.DeBiasStableDiffusionPipeline`.
    """
    from ..pipelines import DeBiasStableDiffusionPipeline

    if not Path(pipeline_dir).is_dir():
        raise ModelNotFoundError(f"{pipeline_dir} is not a pipeline folder; see examples/shapes_world/README.md")
    kwargs = {} if encoder is None else {"text_encoder": str(encoder)}
    pipe = DeBiasStableDiffusionPipeline.from_pretrained(pipeline_dir, torch_dtype=torch.float32, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def world_pipeline_loaders(models_dir: str | Path, encoders: Mapping[str, Path]) -> dict[str, Callable[[], Any]]:
    """Label -> zero-argument loader of the pipeline with that encoder (:data:`OWN_ENCODER`: the pipeline's own).

    Args:
        models_dir: the models folder holding ``pipeline``.
        encoders: label -> encoder folder, as :func:`world_encoders` returns.
    """
    pipeline_dir = Path(models_dir) / PIPELINE_FOLDER
    return {
        label: functools.partial(load_world_pipeline, pipeline_dir, None if label == OWN_ENCODER else folder)
        for label, folder in encoders.items()
    }
