"""Retrieval evaluation of CLIP checkpoints: Recall@K, the evaluation sets, DeBias-CLIP's bias probes.

``evaluate(models, datasets, probes, ...)`` runs everything and returns :class:`EvaluationResults`;
the pieces (readers, probes, embedding cache, recall, report) are importable on their own.
Layouts, protocol choices and the cache are documented in ``docs/evaluation.md``. Models load with
:func:`debias_diffusion.load_clip_model`; texts encode with :func:`debias_diffusion.clip_embedding.encode_texts`.

This package imports only the library, :mod:`train_encoder.data` and the foundation modules (errors, file
names, ``token_states``); ``tests/test_import_layers.py`` checks it.
"""

from __future__ import annotations

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
from .embedding import EmbeddingCache, embed_images, embed_texts, encode_images
from .probes import PROBE_NAMES, Probe, apply_probe, get_probe
from .report import EvaluationResults, ResultRow, read_results, results_markdown, write_report
from .retrieval import RetrievalScores, retrieval_scores, similarity_retrieval_scores
from .runner import evaluate

__all__ = [
    "DATASET_READERS",
    "PROBE_NAMES",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "EmbeddingCache",
    "EvalSet",
    "EvaluationResults",
    "Probe",
    "ResultRow",
    "RetrievalScores",
    "apply_probe",
    "embed_images",
    "embed_texts",
    "encode_images",
    "evaluate",
    "get_probe",
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
