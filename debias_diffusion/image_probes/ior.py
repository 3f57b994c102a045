"""Image-based object retrieval (IOR): which of an image's objects its embedding is closest to.

Each multi-object image embedding is compared (cosine similarity) with the embedding of every
single-object reference image. An image qualifies when its top-n retrieved references are
exactly its n objects; among qualifying images, the share whose top-1 is the object in each slot
(large, small 1, small 2, ...). This is :func:`~debias_diffusion.probing.retrieval.slot_retrieval`
with size categories as slots (ties go to the lower vocabulary index).
"""

from __future__ import annotations

import numpy as np
import torch

from ..probing.retrieval import SlotRetrievalResult, slot_retrieval

__all__ = ["ior_metric", "ior_probe"]

ior_metric = slot_retrieval
"""IOR from an ``[images, vocabulary]`` similarity matrix and ``[images, n]`` slot-ordered objects."""


def ior_probe(
    image_embeddings: torch.Tensor, reference_embeddings: torch.Tensor, image_objects: torch.Tensor | np.ndarray
) -> SlotRetrievalResult:
    """IOR from unit-norm image and reference embeddings (cosine = dot product)."""
    if image_embeddings.ndim != 2 or reference_embeddings.ndim != 2:
        raise ValueError("image and reference embeddings must be 2-D [items, width]")
    if image_embeddings.shape[1] != reference_embeddings.shape[1]:
        raise ValueError(
            f"image embeddings are {image_embeddings.shape[1]} wide but references {reference_embeddings.shape[1]}"
        )
    return slot_retrieval(image_embeddings.double() @ reference_embeddings.double().T, image_objects)
