"""Conditioned single-object retrieval per slot (the paper's TOR and IOR), on a similarity matrix.

Each item (a caption or an image) is scored against every single object of the vocabulary
(cosine similarity of embeddings). An item *qualifies* when its ``n`` best-scoring objects are
exactly its ``n`` objects (in any order); among qualifying items, ``shares[k]`` is the fraction
whose best-scoring object is the one in slot ``k`` (a caption position, or an image's size
category). The shares sum to 1 whenever any item qualifies; no bias gives about ``1 / n`` each.

Ties in similarity are broken towards the lower vocabulary index (a stable sort), so results
never depend on the platform's ``topk`` order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["SlotRetrievalResult", "slot_retrieval"]


@dataclass(frozen=True)
class SlotRetrievalResult:
    """Per-slot top-1 shares among the items whose top-n retrieval is exactly their objects."""

    shares: tuple[float, ...] | None
    """``shares[k]``: fraction of qualifying items whose top-1 is the object in slot k;
    ``None`` when no item qualifies."""
    counts: tuple[int, ...]
    """Qualifying items whose top-1 is the object in each slot."""
    qualified: int
    total: int

    def to_json(self) -> dict:
        return {"shares": list(self.shares) if self.shares is not None else None, "counts": list(self.counts),
                "qualified": self.qualified, "total": self.total}  # fmt: skip


def slot_retrieval(
    similarity: torch.Tensor | np.ndarray, slot_objects: torch.Tensor | np.ndarray
) -> SlotRetrievalResult:
    """Shares from an ``[items, vocabulary]`` similarity matrix and ``[items, n]`` object indices.

    ``slot_objects[i, k]`` is the vocabulary index of item i's object in slot k.
    """
    scores = _as_array(similarity, "similarity", np.float64)
    objects = _as_array(slot_objects, "slot_objects", np.int64)
    if scores.ndim != 2 or objects.ndim != 2:
        raise ValueError(f"expected 2-D similarity and slot_objects, got shapes {scores.shape} and {objects.shape}")
    num_items, vocabulary_size = scores.shape
    n = objects.shape[1]
    if objects.shape[0] != num_items:
        raise ValueError(f"{num_items} rows of similarities but {objects.shape[0]} rows of objects")
    if not 1 <= n <= vocabulary_size:
        raise ValueError(f"items of {n} objects cannot be retrieved from a vocabulary of {vocabulary_size}")
    if not np.isfinite(scores).all():
        raise ValueError("similarity holds NaN or infinite values")
    if objects.size and (objects.min() < 0 or objects.max() >= vocabulary_size):
        raise ValueError(f"object indices must lie in [0, {vocabulary_size})")
    if any(len(set(row.tolist())) != n for row in objects):
        raise ValueError("each item's objects must be distinct")
    ranked = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    qualifies = np.sort(ranked, axis=1) == np.sort(objects, axis=1)
    qualifies = qualifies.all(axis=1)
    top1_slot = (objects == ranked[:, :1]).argmax(axis=1)
    counts = np.bincount(top1_slot[qualifies], minlength=n)
    qualified = int(qualifies.sum())
    shares = tuple(float(c) / qualified for c in counts) if qualified else None
    return SlotRetrievalResult(shares, tuple(int(c) for c in counts), qualified, num_items)


def _as_array(value, name: str, dtype) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numeric: {err}") from err
