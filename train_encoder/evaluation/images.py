"""CLIP image preprocessing with PIL and torch only (no torchvision).

Same steps as OpenAI CLIP / open_clip / ``CLIPImageProcessor``: convert to RGB, resize the
shortest side to ``image_size`` (bicubic), center crop ``image_size`` square, scale to [0, 1],
normalise with the model's mean and std. Sizes and crop offsets follow torchvision's
``Resize(int)`` / ``CenterCrop`` arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from debias_diffusion.conversion.canonical import OPENAI_IMAGE_MEAN, OPENAI_IMAGE_STD

__all__ = ["ImagePreprocessing", "load_image", "preprocess_image"]


@dataclass(frozen=True)
class ImagePreprocessing:
    """What turns a picture into a model input."""

    image_size: int
    mean: tuple[float, ...] = OPENAI_IMAGE_MEAN
    std: tuple[float, ...] = OPENAI_IMAGE_STD


def preprocess_image(image: Image.Image, spec: ImagePreprocessing) -> torch.Tensor:
    """``[3, S, S]`` float32 tensor for one PIL image."""
    image = image.convert("RGB")
    size = spec.image_size
    width, height = image.size
    if width <= height:
        new_width, new_height = size, int(size * height / width)
    else:
        new_width, new_height = int(size * width / height), size
    if (new_width, new_height) != (width, height):
        image = image.resize((new_width, new_height), Image.Resampling.BICUBIC)
    left = int(round((new_width - size) / 2.0))
    top = int(round((new_height - size) / 2.0))
    image = image.crop((left, top, left + size, top + size))
    raw = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(size, size, 3)
    pixels = raw.permute(2, 0, 1).float() / 255.0
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(3, 1, 1)
    return (pixels - mean) / std


def load_image(path: str | Path, spec: ImagePreprocessing) -> torch.Tensor:
    """Open, decode and preprocess one image file."""
    with Image.open(path) as image:
        return preprocess_image(image, spec)
