"""The records the prominence evaluator passes between its stages.

Detectors turn (image, object labels) into one :class:`ObjectMeasurement` per requested object;
the runner adds where the object was named in the prompt and which model made the image,
giving one :class:`ProminenceRecord` per (image, object). Metrics and reports read only these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from PIL import Image

__all__ = ["Box", "Detector", "ObjectMeasurement", "ProminenceRecord"]

Box = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)`` in pixels of the measured image."""


@dataclass(frozen=True)
class ObjectMeasurement:
    """How one requested object shows in one image (its best detection, if any)."""

    label: str
    """The text the detector was asked for (e.g. ``"red cube"``)."""
    present: bool
    """Detected at or above the detector's threshold."""
    score: float
    """The best detection's score (0.0 when nothing was detected)."""
    box: Box | None
    """The best detection's box, ``None`` when absent."""
    box_area: float
    """Fraction of the image covered by ``box`` (0.0 when absent)."""
    mask_area: float | None
    """Fraction of the image's pixels in the object's mask; ``None`` when the backend makes no masks."""

    @property
    def area(self) -> float:
        """The mask area when there is a mask, else the box area (fractions of the image)."""
        return self.box_area if self.mask_area is None else self.mask_area


@runtime_checkable
class Detector(Protocol):
    """Measures requested objects in images. Implementations batch over images."""

    name: str

    def settings(self) -> dict[str, Any]:
        """Everything that changes the measurements (model id, thresholds), for reports and cache keys."""
        ...

    def measure(self, images: Sequence[Image.Image], labels: Sequence[Sequence[str]]) -> list[list[ObjectMeasurement]]:
        """``labels[i]`` are the objects to look for in ``images[i]``; one measurement per label, same order."""
        ...


@dataclass(frozen=True)
class ProminenceRecord:
    """One object in one generated image, with where the prompt named it."""

    model: str
    """Display name of the pipeline / text encoder that made the image."""
    object_set: int
    """Index of the object set in the run's input."""
    template: str
    """Name of the prompt template."""
    ordering: tuple[str, ...]
    """The set's objects in prompt order."""
    seed: int
    image: str
    """The image's path relative to the run's output folder."""
    object: str
    position: int
    """1-based position of ``object`` in ``ordering``."""
    present: bool
    score: float
    box: Box | None
    box_area: float
    mask_area: float | None
    conditioned: bool = True
    """Whether the pipeline encoded the object's mention: ``False`` when its long-prompt policy cut the
    mention from the prompt (the object was named but never asked for; position metrics leave it out)."""

    @property
    def area(self) -> float:
        return self.box_area if self.mask_area is None else self.mask_area

    @property
    def image_key(self) -> tuple[str, int, str, tuple[str, ...], int]:
        """Identifies the image this record belongs to (all objects of one image share it)."""
        return (self.model, self.object_set, self.template, self.ordering, self.seed)
