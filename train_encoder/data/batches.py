"""What datasets yield (a sample, or a marker for a dropped one) and the collate that batches them.

Bad samples travel to the collate as :class:`BadSample` markers instead of disappearing inside a
worker process, so every batch carries its own skip count and the trainer can sum them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import torch


class Sample(NamedTuple):
    """A decoded training sample. ``index`` is the dataset index, or ``"shard:key"`` for tar shards."""

    image: torch.Tensor
    long_caption: str
    short_caption: str | None
    index: int | str


class BadSample(NamedTuple):
    """Stands for a sample that was dropped: ``source`` is the image path or ``shard:key``."""

    index: int | str
    source: str
    reason: str


@dataclass
class Batch:
    """A collated batch. It may hold fewer than ``batch_size`` samples (even none) when some were bad.

    ``images``: ``[B, 3, S, S]`` (B may be 0); captions stay strings;
    ``skipped`` lists the dropped samples, ``num_skipped`` counts them.
    """

    images: torch.Tensor
    long_captions: list[str]
    short_captions: list[str | None]
    indices: list[int | str]
    skipped: list[BadSample] = field(default_factory=list)

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    def __len__(self) -> int:
        return len(self.long_captions)

    def pin_memory(self) -> Batch:
        """Called by ``DataLoader(pin_memory=True)``."""
        return replace(self, images=self.images.pin_memory())

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """Move the images (the only tensor); also what accelerate's ``send_to_device`` calls."""
        return replace(self, images=self.images.to(device, non_blocking=non_blocking))


def collate_samples(items: Sequence[Sample | BadSample], *, image_shape: Sequence[int] | None = None) -> Batch:
    """Stack the good samples' images, keep captions as lists, and collect the bad ones.

    ``image_shape`` (e.g. ``(3, 224, 224)``) shapes the empty image tensor of an all-bad batch
    (``[0, *image_shape]``); without it that tensor is ``[0]``.
    """
    good = [item for item in items if isinstance(item, Sample)]
    bad = [item for item in items if isinstance(item, BadSample)]
    if len(good) + len(bad) != len(items):
        kinds = sorted({type(item).__name__ for item in items} - {"Sample", "BadSample"})
        raise TypeError(f"collate_samples takes Sample / BadSample items, got {kinds}")
    if good:
        images = torch.stack([sample.image for sample in good])
    else:
        images = torch.empty(0, *image_shape) if image_shape is not None else torch.empty(0)
    return Batch(
        images=images,
        long_captions=[sample.long_caption for sample in good],
        short_captions=[sample.short_caption for sample in good],
        indices=[sample.index for sample in good],
        skipped=bad,
    )
