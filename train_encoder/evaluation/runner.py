"""``evaluate``: every model x dataset x caption variant, retrieval recalls, optional report files."""

from __future__ import annotations

import gc
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from debias_diffusion.clip_loading import LoadedCLIP, ModelSource, load_clip_model

from .caption_variants import apply_caption_variant, get_caption_variants
from .datasets import EvalSet
from .embedding import EmbeddingCache, cached_image_features, cached_text_features
from .report import EvaluationResults, ResultRow, write_report
from .retrieval import DEFAULT_KS, retrieval_scores

__all__ = ["evaluate"]

logger = logging.getLogger(__name__)


def evaluate(
    models: Mapping[str, ModelSource | LoadedCLIP],
    datasets: Sequence[EvalSet],
    caption_variants: Sequence[str] = ("full",),
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    cache_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
    stretch_to: int | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    seed: int = 0,
    num_workers: int = 4,
    progress: bool = True,
) -> EvaluationResults:
    """Evaluate T2I / I2T Recall@K of each model on each dataset under each caption variant.

    ``models`` maps a display name to anything :func:`load_clip_model` reads (a model object
    passed in is moved to ``device``). Models are loaded one at a time; image embeddings are
    computed once per (model, dataset) and shared by all caption variants. ``cache_dir`` enables the
    embedding cache; ``output_dir`` writes ``results.json`` and ``results.md``. Caption variant names
    (see :mod:`.caption_variants`) are checked before any model is loaded. Recalls are computed on ``device``.
    """
    variants = get_caption_variants(caption_variants, seed=seed)
    if not models or not datasets or not variants:
        raise ValueError("evaluate needs at least one model, one dataset and one caption variant")
    cache = EmbeddingCache(cache_dir)
    results = EvaluationResults()
    for name, source in models.items():
        clip = load_clip_model(source, stretch_to=stretch_to)
        clip.model.to(device)
        results.models[name] = {
            "source": clip.source,
            "identity": clip.identity,
            "context_length": clip.context_length,
        }
        try:
            for eval_set in datasets:
                images = cached_image_features(
                    clip, eval_set, cache=cache, batch_size=batch_size, num_workers=num_workers, progress=progress
                )
                for variant in variants:
                    varied = apply_caption_variant(eval_set, variant)
                    texts = cached_text_features(clip, varied, cache=cache, batch_size=batch_size, progress=progress)
                    scores = retrieval_scores(
                        texts.to(device), images.to(device), varied.caption_to_image, ks=ks
                    ).as_dict()
                    row = ResultRow(
                        name, eval_set.name, variant.variant, eval_set.num_images, eval_set.num_captions, **scores
                    )
                    logger.info("%s %s %s: T2I %s I2T %s", name, eval_set.name, variant.variant, row.t2i, row.i2t)
                    results.rows.append(row)
        finally:
            del clip  # the caller's own model object (if one was passed) stays alive
            _release(device)
    if output_dir is not None:
        write_report(results, output_dir)
    return results


def _release(device: str | torch.device) -> None:
    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
