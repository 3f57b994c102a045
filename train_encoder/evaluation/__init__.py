"""Retrieval evaluation of CLIP checkpoints: Recall@K, the evaluation sets, caption variants (the bias probes).

``evaluate(models, datasets, caption_variants, ...)`` runs everything and returns :class:`EvaluationResults`;
the pieces (readers, caption variants, embedding cache, recall, report) are importable on their own.
Layouts, protocol choices and the cache are documented in ``docs/evaluation.md``. Models load with
:func:`debias_diffusion.load_clip_model`; texts encode with
:func:`debias_diffusion.clip_embedding.encode_text_features`.

This package imports only the library, :mod:`train_encoder.data` and the foundation modules (errors, file
names, ``token_states``); ``tests/test_import_layers.py`` checks it.
"""

from __future__ import annotations

from debias_diffusion.renamed import renamed_attributes

from .caption_variants import CAPTION_VARIANT_NAMES, CaptionVariant, apply_caption_variant, get_caption_variant
from .datasets import (
    DATASET_READERS,
    DatasetFormatError,
    DatasetNotFoundError,
    EvalSet,
    read_coco,
    read_dci,
    read_docci,
    read_eval_set,
    read_flickr30k,
    read_long_dci,
    read_sharegpt4v_1k,
    read_urban1k,
)
from .drift import recorded_source, text_drift
from .embedding import EmbeddingCache, cached_image_features, cached_text_features, encode_images
from .report import EvaluationResults, ResultRow, read_results, results_markdown, write_report
from .retrieval import RetrievalScores, retrieval_scores, similarity_retrieval_scores
from .runner import evaluate

__all__ = [
    "DATASET_READERS",
    "CAPTION_VARIANT_NAMES",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "EmbeddingCache",
    "EvalSet",
    "EvaluationResults",
    "CaptionVariant",
    "ResultRow",
    "RetrievalScores",
    "apply_caption_variant",
    "cached_image_features",
    "cached_text_features",
    "encode_images",
    "evaluate",
    "get_caption_variant",
    "read_coco",
    "read_dci",
    "read_docci",
    "read_eval_set",
    "read_flickr30k",
    "read_long_dci",
    "read_results",
    "read_sharegpt4v_1k",
    "read_urban1k",
    "recorded_source",
    "results_markdown",
    "retrieval_scores",
    "similarity_retrieval_scores",
    "text_drift",
    "write_report",
]

__getattr__ = renamed_attributes(
    __name__,
    {"PROBE_NAMES": "CAPTION_VARIANT_NAMES", "Probe": "CaptionVariant", "apply_probe": "apply_caption_variant",
     "get_probe": "get_caption_variant", "embed_texts": "cached_text_features",
     "embed_images": "cached_image_features"},
    globals(),
)  # fmt: skip
