"""Text-based object retrieval (TOR): which of a caption's objects its embedding is closest to.

Each caption's embedding is compared (cosine similarity) with the embedding of every single
object of the vocabulary. A caption *qualifies* when its ``n`` best-scoring objects are exactly
its ``n`` objects (in any order); among qualifying captions, ``shares[k]`` is the fraction whose
best-scoring object is the one mentioned at position ``k + 1``. The shares sum to 1 whenever any
caption qualifies; an encoder without position bias gives about ``1 / n`` to each.

Ties in similarity are broken towards the lower vocabulary index (a stable sort), so results
never depend on the platform's ``topk`` order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["TORResult", "tor_metric", "tor_probe"]


@dataclass(frozen=True)
class TORResult:
    """Per-position top-1 shares among the captions whose top-n retrieval is exactly their objects."""

    shares: tuple[float, ...] | None
    """``shares[k]``: fraction of qualifying captions whose top-1 is the object at position k+1;
    ``None`` when no caption qualifies."""
    counts: tuple[int, ...]
    """Qualifying captions whose top-1 is the object at each position."""
    qualified: int
    total: int

    def to_json(self) -> dict:
        return {"shares": list(self.shares) if self.shares is not None else None, "counts": list(self.counts),
                "qualified": self.qualified, "total": self.total}  # fmt: skip


def tor_metric(similarity: torch.Tensor | np.ndarray, caption_objects: torch.Tensor | np.ndarray) -> TORResult:
    """TOR from a ``[captions, vocabulary]`` similarity matrix and ``[captions, n]`` object indices.

    ``caption_objects[i, k]`` is the vocabulary index of the object caption i mentions at position k+1.
    """
    scores = _as_array(similarity, "similarity", np.float64)
    objects = _as_array(caption_objects, "caption_objects", np.int64)
    if scores.ndim != 2 or objects.ndim != 2:
        raise ValueError(f"expected 2-D similarity and caption_objects, got shapes {scores.shape} and {objects.shape}")
    num_captions, vocabulary_size = scores.shape
    n = objects.shape[1]
    if objects.shape[0] != num_captions:
        raise ValueError(f"{num_captions} rows of similarities but {objects.shape[0]} rows of objects")
    if not 1 <= n <= vocabulary_size:
        raise ValueError(f"captions of {n} objects cannot be retrieved from a vocabulary of {vocabulary_size}")
    if not np.isfinite(scores).all():
        raise ValueError("similarity holds NaN or infinite values")
    if objects.size and (objects.min() < 0 or objects.max() >= vocabulary_size):
        raise ValueError(f"object indices must lie in [0, {vocabulary_size})")
    if any(len(set(row.tolist())) != n for row in objects):
        raise ValueError("each caption's objects must be distinct")
    ranked = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    qualifies = np.sort(ranked, axis=1) == np.sort(objects, axis=1)
    qualifies = qualifies.all(axis=1)
    top1_position = (objects == ranked[:, :1]).argmax(axis=1)
    counts = np.bincount(top1_position[qualifies], minlength=n)
    qualified = int(qualifies.sum())
    shares = tuple(float(c) / qualified for c in counts) if qualified else None
    return TORResult(shares, tuple(int(c) for c in counts), qualified, num_captions)


def tor_probe(
    caption_embeddings: torch.Tensor, object_embeddings: torch.Tensor, caption_objects: torch.Tensor | np.ndarray
) -> TORResult:
    """TOR from unit-norm caption and single-object embeddings (cosine = dot product)."""
    similarity = caption_embeddings.double() @ object_embeddings.double().T
    return tor_metric(similarity, caption_objects)


def _as_array(value, name: str, dtype) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numeric: {err}") from err
