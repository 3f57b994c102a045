"""Image-based object retrieval (IOR): which of an image's objects its embedding is closest to.

Each multi-object image embedding is compared (cosine similarity) with the embedding of every
single-object reference image. An image qualifies when its top-n retrieved references are
exactly its n objects; among qualifying images, the share whose top-1 is the object in each slot
(large, small 1, small 2, ...). This is :func:`~debias_diffusion.probing.retrieval.slot_retrieval`
with size categories as slots (ties go to the lower vocabulary index).

The conditioning keeps few or no images for weak models (a small or undertrained CLIP rarely
ranks all n objects on top), so :func:`ior_diagnostics` adds, over *all* images (our addition,
not in the paper): the share whose top-1 is each slot's object (the rest: top-1 not in the
image), and each slot's mean rank among all references (1 = first); and, as the paper's code
(clip-oscope's ``IOR.py``) prints second, the share of all images whose own objects rank best at
each slot (every image counts for exactly one slot).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..probing.retrieval import SlotRetrievalResult, slot_retrieval

__all__ = ["RetrievalDiagnostics", "ior_diagnostics", "ior_metric", "ior_probe", "ior_similarity"]

ior_metric = slot_retrieval
"""IOR from an ``[images, vocabulary]`` similarity matrix and ``[images, n]`` slot-ordered objects."""


@dataclass(frozen=True)
class RetrievalDiagnostics:
    """Unconditioned retrieval over all images: top-1 shares and mean ranks per slot."""

    top1_shares: tuple[float, ...]
    """``top1_shares[k]``: fraction of all images whose top-1 reference is the object in slot k."""
    outside: float
    """Fraction of all images whose top-1 reference is none of their objects."""
    mean_ranks: tuple[float, ...]
    """Mean 1-based rank of the slot's object among all references (ties: lower index first)."""
    best_slot_shares: tuple[float, ...]
    """Fraction of all images whose best-ranked *own* object is the one in slot k (sums to 1)."""

    def to_json(self) -> dict:
        return {"top1_shares": list(self.top1_shares), "outside": self.outside, "mean_ranks": list(self.mean_ranks),
                "best_slot_shares": list(self.best_slot_shares)}  # fmt: skip


def ior_diagnostics(
    similarity: torch.Tensor | np.ndarray, image_objects: torch.Tensor | np.ndarray
) -> RetrievalDiagnostics:
    """Diagnostics from the same inputs as :func:`ior_metric` (checked by it first)."""
    slot_retrieval(similarity, image_objects)  # the same checks and messages
    scores = np.asarray(similarity.detach().cpu() if isinstance(similarity, torch.Tensor) else similarity, float)
    objects = np.asarray(image_objects.detach().cpu() if isinstance(image_objects, torch.Tensor) else image_objects)
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(scores.shape[1])[None, :].repeat(len(scores), 0), axis=1)
    slot_ranks = np.take_along_axis(ranks, objects.astype(np.int64), axis=1) + 1
    top1 = slot_ranks == 1
    best_slot = np.bincount(slot_ranks.argmin(axis=1), minlength=objects.shape[1]) / len(objects)
    return RetrievalDiagnostics(
        tuple(float(v) for v in top1.mean(axis=0)), float(1 - top1.any(axis=1).mean()),
        tuple(float(v) for v in slot_ranks.mean(axis=0)), tuple(float(v) for v in best_slot),
    )  # fmt: skip


def ior_similarity(image_embeddings: torch.Tensor, reference_embeddings: torch.Tensor) -> torch.Tensor:
    """``[images, references]`` cosine similarities of unit-norm embeddings, in float64."""
    if image_embeddings.ndim != 2 or reference_embeddings.ndim != 2:
        raise ValueError("image and reference embeddings must be 2-D [items, width]")
    if image_embeddings.shape[1] != reference_embeddings.shape[1]:
        raise ValueError(
            f"image embeddings are {image_embeddings.shape[1]} wide but references {reference_embeddings.shape[1]}"
        )
    return image_embeddings.double() @ reference_embeddings.double().T


def ior_probe(
    image_embeddings: torch.Tensor, reference_embeddings: torch.Tensor, image_objects: torch.Tensor | np.ndarray
) -> SlotRetrievalResult:
    """IOR from unit-norm image and reference embeddings (cosine = dot product)."""
    return slot_retrieval(ior_similarity(image_embeddings, reference_embeddings), image_objects)
