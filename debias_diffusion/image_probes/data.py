"""What the image probes measure: multi-object images with their objects in slot order, and references.

An :class:`ImageProbeData` holds a vocabulary of single objects, one reference image per object
(in vocabulary order), and multi-object images. Each image lists its objects as vocabulary
indices in *slot order*: slot 0 is the large object, slots 1..n-1 the small ones (small 1, small
2, ...); how the small ones are ordered depends on the source (by area for the shapes world, by
file-name order for folders). Every image of one run has the same number of objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..clip_embedding import ImageItem
from ..errors import ProbeConfigError
from ..text_probes.vocabulary import Vocabulary

__all__ = ["ImageProbeData", "ProbeImage", "slot_labels"]


@dataclass(frozen=True)
class ProbeImage:
    """One multi-object image: the picture (or its file), a name, and its objects in slot order."""

    image: ImageItem
    name: str
    objects: tuple[int, ...]
    """Vocabulary indices: ``objects[0]`` is the large object, then small 1, small 2, ..."""


@dataclass(frozen=True)
class ImageProbeData:
    """A vocabulary, one reference image per object, and the multi-object images (same object count)."""

    source: str
    """``"shapes-world"`` or the images folder."""
    vocabulary: Vocabulary
    references: tuple[ImageItem, ...]
    images: tuple[ProbeImage, ...]
    slot_order: str
    """How the small objects are ordered into slots (goes into the report)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "references", tuple(self.references))
        object.__setattr__(self, "images", tuple(self.images))
        size = len(self.vocabulary)
        if len(self.references) != size:
            raise ProbeConfigError(f"{len(self.references)} reference images for a vocabulary of {size} objects")
        if not self.images:
            raise ProbeConfigError(f"{self.source}: no multi-object images to probe")
        counts = sorted({len(image.objects) for image in self.images})
        if len(counts) != 1:
            raise ProbeConfigError(
                f"{self.source}: images hold different numbers of objects ({', '.join(map(str, counts))}); "
                "probe one count at a time (--objects K)"
            )
        if counts[0] < 2:
            raise ProbeConfigError(f"{self.source}: images need at least 2 objects (a large and a small one)")
        for image in self.images:
            if len(set(image.objects)) != len(image.objects):
                raise ProbeConfigError(f"{image.name}: names an object twice; each object may appear once")
            if min(image.objects) < 0 or max(image.objects) >= size:
                raise ProbeConfigError(f"{image.name}: object index outside the vocabulary of {size}")
        if counts[0] >= size:
            raise ProbeConfigError(
                f"{self.source}: images of {counts[0]} objects need a vocabulary of more than {counts[0]} objects "
                f"(an absent object for the matching captions), got {size}"
            )

    @property
    def num_objects(self) -> int:
        return len(self.images[0].objects)

    def names(self, image: ProbeImage) -> list[str]:
        """The image's object names in slot order."""
        return [self.vocabulary.objects[i] for i in image.objects]


def slot_labels(num_objects: int) -> list[str]:
    """``["Large", "Small 1", "Small 2", ...]``: the column names of the paper's Table 2."""
    return ["Large", *(f"Small {k}" for k in range(1, num_objects))]
