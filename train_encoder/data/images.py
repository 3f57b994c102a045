"""Images for training: decoding that raises the training data's error.

The transforms themselves are :mod:`debias_diffusion.image_preprocessing`'s (the image probes use
them too). ``load_image`` here raises :class:`~train_encoder.data.errors.BadTrainingImageError`, which
datasets count and skip.
"""

from __future__ import annotations

import os

from PIL import Image

from debias_diffusion import image_preprocessing

from .errors import BadTrainingImageError

__all__ = ["load_image"]


def load_image(source: str | os.PathLike | bytes, *, name: str | None = None) -> Image.Image:
    """:func:`debias_diffusion.image_preprocessing.load_image` raising the training :class:`BadTrainingImageError`."""
    return image_preprocessing.load_image(source, name=name, error=BadTrainingImageError)
