"""Turning a detector's best box for a label into an :class:`ObjectMeasurement`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..measurement import Box, ObjectMeasurement


def clip_box(box: Sequence[float], width: int, height: int) -> Box:
    """``(x0, y0, x1, y1)`` clipped to the image ``[0, width] x [0, height]``."""
    x0, y0, x1, y1 = (float(value) for value in box)
    return (
        min(max(x0, 0.0), width),
        min(max(y0, 0.0), height),
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
    )


def box_fraction(box: Box, width: int, height: int) -> float:
    """Fraction of a ``width`` x ``height`` image covered by ``box`` (already clipped)."""
    x0, y0, x1, y1 = box
    return max(0.0, x1 - x0) * max(0.0, y1 - y0) / (width * height)


def centres_inside(corner_boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Which ``(N, 4)`` corner boxes have their centre inside the image (not in padding around it)."""
    cx = (corner_boxes[:, 0] + corner_boxes[:, 2]) / 2
    cy = (corner_boxes[:, 1] + corner_boxes[:, 3]) / 2
    return (cx >= 0) & (cx <= width) & (cy >= 0) & (cy <= height)


def centre_to_corners(boxes: np.ndarray) -> np.ndarray:
    """``(..., 4)`` boxes from ``(cx, cy, w, h)`` to ``(x0, y0, x1, y1)``."""
    cx, cy, w, h = np.moveaxis(boxes, -1, 0)
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def detected(label: str, score: float, box: Box, width: int, height: int, mask_area: float | None) -> ObjectMeasurement:
    return ObjectMeasurement(
        label=label,
        present=True,
        score=float(score),
        box=box,
        box_area=box_fraction(box, width, height),
        mask_area=mask_area,
    )


def absent(label: str, has_masks: bool) -> ObjectMeasurement:
    """Nothing at or above threshold: score 0, no box, zero areas (``mask_area`` ``None`` without masks)."""
    return ObjectMeasurement(
        label=label, present=False, score=0.0, box=None, box_area=0.0, mask_area=0.0 if has_masks else None
    )
