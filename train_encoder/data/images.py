"""Image decoding and CLIP preprocessing for training: ``debias_diffusion.image_preprocessing``'s.

The code lives in :mod:`debias_diffusion.image_preprocessing` (the image probes use it too);
``load_image`` here raises the training data's :class:`~train_encoder.data.errors.BadTrainingImageError`,
which datasets count and skip.
"""

from __future__ import annotations

import os

from PIL import Image

from debias_diffusion import image_preprocessing as _shared
from debias_diffusion.image_preprocessing import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    ClipImageTransform,
    ImagePreprocessing,
    ImageTransform,
    image_transform,
)

from .errors import BadTrainingImageError

__all__ = [
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "ClipImageTransform",
    "ImagePreprocessing",
    "ImageTransform",
    "image_transform",
    "load_image",
]


def load_image(source: str | os.PathLike | bytes, *, name: str | None = None) -> Image.Image:
    """:func:`debias_diffusion.image_preprocessing.load_image` raising the training :class:`BadTrainingImageError`."""
    return _shared.load_image(source, name=name, error=BadTrainingImageError)
