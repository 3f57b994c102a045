"""Retrieval evaluation of CLIP checkpoints: Recall@K, the evaluation sets, DeBias-CLIP's bias probes.

``evaluate(models, datasets, probes, ...)`` runs everything and returns :class:`EvaluationResults`;
the pieces (readers, probes, embedding cache, recall, report) are importable on their own.
Layouts, protocol choices and the cache are documented in ``docs/evaluation.md``.
"""

from __future__ import annotations

from ..data.images import ImagePreprocessing
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
from .drift import DRIFT_FILE, recorded_source, text_drift
from .embedding import EmbeddingCache, embed_images, embed_texts, encode_images, encode_texts
from .models import LoadedCLIP, load_clip_model
from .probes import PROBE_NAMES, Probe, apply_probe, get_probe
from .report import EvaluationResults, ResultRow, read_results, results_markdown, write_report
from .retrieval import RetrievalScores, retrieval_scores, similarity_retrieval_scores
from .runner import evaluate

__all__ = [
    "DATASET_READERS",
    "DRIFT_FILE",
    "PROBE_NAMES",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "EmbeddingCache",
    "EvalSet",
    "EvaluationResults",
    "ImagePreprocessing",
    "LoadedCLIP",
    "Probe",
    "ResultRow",
    "RetrievalScores",
    "apply_probe",
    "embed_images",
    "embed_texts",
    "encode_images",
    "encode_texts",
    "evaluate",
    "get_probe",
    "load_clip_model",
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
