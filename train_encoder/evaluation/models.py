"""Full CLIP models (both towers) for retrieval: :mod:`debias_diffusion.clip_loading`, re-exported.

The loader lives in the library so the image probes (``debias-diffusion probe-image``) share it;
training and evaluation import it from here as before.
"""

from debias_diffusion.clip_loading import (
    CHECKPOINT_SUFFIXES,
    PREPROCESSOR_FILE,
    LoadedCLIP,
    ModelSource,
    load_clip_model,
    weights_identity,
)

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "PREPROCESSOR_FILE",
    "LoadedCLIP",
    "ModelSource",
    "load_clip_model",
    "weights_identity",
]
