"""Images for training: decoding that raises the training data's error, and the processor a checkpoint saves.

The transforms themselves are :mod:`debias_diffusion.image_preprocessing`'s (the image probes use
them too). ``load_image`` here raises :class:`~train_encoder.data.errors.BadImageError`, which
datasets count and skip.
"""

from __future__ import annotations

import os

from PIL import Image
from transformers import CLIPImageProcessor

from debias_diffusion import image_preprocessing
from debias_diffusion.image_preprocessing import ImagePreprocessing

from .errors import BadImageError

__all__ = ["clip_image_processor", "load_image"]


def load_image(source: str | os.PathLike | bytes, *, name: str | None = None) -> Image.Image:
    """:func:`debias_diffusion.image_preprocessing.load_image` raising the training :class:`BadImageError`."""
    return image_preprocessing.load_image(source, name=name, error=BadImageError)


def clip_image_processor(preprocessing: ImagePreprocessing) -> CLIPImageProcessor:
    """The ``CLIPImageProcessor`` that preprocesses images as ``preprocessing`` says (saved beside the weights)."""
    return CLIPImageProcessor(
        size={"shortest_edge": preprocessing.image_size},
        crop_size={"height": preprocessing.image_size, "width": preprocessing.image_size},
        image_mean=list(preprocessing.mean),
        image_std=list(preprocessing.std),
    )
