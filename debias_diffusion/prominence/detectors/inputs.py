"""Checking what a detector is asked to measure, and splitting it into batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from PIL import Image

from ...errors import DetectorError

T = TypeVar("T")


def checked_inputs(
    images: Sequence[Image.Image], labels: Sequence[Sequence[str]]
) -> tuple[list[Image.Image], list[list[str]]]:
    """The images as RGB and the labels as lists of stripped strings, or a ``DetectorError``.

    ``labels[i]`` are the objects to look for in ``images[i]``. Images in another mode (``L``,
    ``RGBA``, ``P``...) are converted with ``Image.convert("RGB")`` (alpha is dropped, not blended).
    """
    if isinstance(images, Image.Image):
        raise DetectorError("images must be a sequence of PIL images, not a single image; wrap it in a list")
    images, labels = list(images), list(labels)
    if len(images) != len(labels):
        raise DetectorError(
            f"got {len(images)} images but {len(labels)} label lists: pass one list of labels per image"
        )
    rgb: list[Image.Image] = []
    for index, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise DetectorError(f"images[{index}] is a {type(image).__name__}, not a PIL image")
        if image.width < 1 or image.height < 1:
            raise DetectorError(f"images[{index}] is empty ({image.width}x{image.height})")
        rgb.append(image if image.mode == "RGB" else image.convert("RGB"))
    return rgb, [_checked_labels(index, image_labels) for index, image_labels in enumerate(labels)]


def _checked_labels(index: int, image_labels: Sequence[str]) -> list[str]:
    if isinstance(image_labels, str):
        raise DetectorError(
            f"labels[{index}] is the string {image_labels!r}; pass a list of labels per image, e.g. [{image_labels!r}]"
        )
    checked = []
    for label in image_labels:
        if not isinstance(label, str) or not label.strip():
            raise DetectorError(f"labels[{index}] holds {label!r}: every label must be a non-empty string")
        checked.append(label)
    return checked


def batches(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def checked_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise DetectorError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


def checked_threshold(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        raise DetectorError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)
