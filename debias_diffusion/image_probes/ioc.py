"""Image-based object classification (IOC): one linear probe per size slot on frozen image embeddings.

For each slot (large, small 1, ...), a multinomial logistic regression predicts the vocabulary
index of the object in that slot from the image embedding; held-out accuracy per slot. The probe,
the seeded train/test split and the result are the text probes' (TOC):
:func:`~debias_diffusion.probing.linear.slot_probes`.
"""

from __future__ import annotations

import numpy as np
import torch

from ..probing.linear import SlotProbeResult, slot_probes

__all__ = ["ioc_probe"]


def ioc_probe(
    image_embeddings: torch.Tensor,
    image_objects: torch.Tensor | np.ndarray,
    num_classes: int,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    l2: float = 1e-3,
    progress: bool = False,
) -> SlotProbeResult:
    """One probe per slot of ``image_objects`` (``[images, n]`` vocabulary indices, large object first)."""
    return slot_probes(
        image_embeddings, image_objects, num_classes, test_fraction=test_fraction, seed=seed, l2=l2,
        progress=progress, desc="IOC probes",
    )  # fmt: skip
