"""Text-based object retrieval (TOR): which of a caption's objects its embedding is closest to.

TOR is :func:`debias_diffusion.probing.retrieval.slot_retrieval` with caption positions as slots:
each caption is compared with every single object name, a caption qualifies when its top-n
names are exactly its n objects, and ``shares[k]`` is the fraction of qualifying captions whose
top-1 is the object at position ``k + 1``. Ties go to the lower vocabulary index.
"""

from __future__ import annotations

import numpy as np
import torch

from ..probing.retrieval import SlotRetrievalResult as TORResult
from ..probing.retrieval import slot_retrieval as tor_metric

__all__ = ["TORResult", "tor_metric", "tor_probe"]


def tor_probe(
    caption_embeddings: torch.Tensor, object_embeddings: torch.Tensor, caption_objects: torch.Tensor | np.ndarray
) -> TORResult:
    """TOR from unit-norm caption and single-object embeddings (cosine = dot product)."""
    similarity = caption_embeddings.double() @ object_embeddings.double().T
    return tor_metric(similarity, caption_objects)
