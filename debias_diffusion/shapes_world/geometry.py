"""The eight shapes as exact outlines, and their rasterisation by sub-pixel sampling.

Every shape is normalised to **unit area** with its bounding box centred on the origin, so an
object of ``size`` s covers exactly s x s (in image-side units) whatever its shape: sizes are
comparable across shapes, which is what a prominence study measures. The circle is an exact disc;
the others are polygons (the heart is a 64-gon of the classic parametric curve).

Rasterisation samples a pixel at the centre of each sub-pixel: a sub-pixel belongs to a shape when
its centre lies inside the outline (even-odd rule; the disc by distance). This is exact and the
same on every platform; PIL's polygon fill is not used because it includes its boundary (a 20 x 20
square fills 21 x 21 pixels) and its rules have changed between Pillow versions.
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["SHAPES", "shape_extent", "shape_outline", "rasterize"]

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "diamond", "pentagon", "heart")
"""Shape names, each a single token in CLIP's BPE vocabulary ("hexagon" is two, so the pentagon is used)."""

_HEART_POINTS = 64
_STAR_INNER = 0.5  # inner/outer radius; fatter than the classic 0.38 so the points survive at small sizes
_CROSS_ARM = 0.36  # half-thickness of the arms, as a fraction of the half-width


def _regular(n: int, radius: float = 1.0, phase: float = -math.pi / 2) -> list[tuple[float, float]]:
    return [
        (radius * math.cos(phase + 2 * math.pi * k / n), radius * math.sin(phase + 2 * math.pi * k / n))
        for k in range(n)
    ]


def _raw_outline(shape: str) -> np.ndarray:
    """Vertices (x right, y down) before normalisation; the apex of pointed shapes is at the top."""
    if shape == "square":
        points = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    elif shape == "triangle":
        points = [(0, -1), (1, 1), (-1, 1)]
    elif shape == "star":
        outer, inner = _regular(5), _regular(5, _STAR_INNER, -math.pi / 2 + math.pi / 5)
        points = [point for pair in zip(outer, inner, strict=True) for point in pair]
    elif shape == "cross":
        a = _CROSS_ARM
        points = [
            (-a, -1),
            (a, -1),
            (a, -a),
            (1, -a),
            (1, a),
            (a, a),
            (a, 1),
            (-a, 1),
            (-a, a),
            (-1, a),
            (-1, -a),
            (-a, -a),
        ]
    elif shape == "diamond":
        points = [(0, -1), (0.75, 0), (0, 1), (-0.75, 0)]
    elif shape == "pentagon":
        points = _regular(5)
    elif shape == "heart":
        t = np.linspace(0, 2 * np.pi, _HEART_POINTS, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        points = list(zip(x.tolist(), y.tolist(), strict=True))
    else:
        raise KeyError(shape)
    return np.asarray(points, dtype=np.float64)


def _polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


@functools.cache
def _unit_outline(shape: str) -> np.ndarray | None:
    """Unit-area vertices with the bounding box centred on 0 (``None`` for the circle)."""
    if shape == "circle":
        return None
    points = _raw_outline(shape)
    points = points - (points.min(axis=0) + points.max(axis=0)) / 2
    points = points / math.sqrt(_polygon_area(points))
    points.setflags(write=False)
    return points


def shape_extent(shape: str) -> tuple[float, float]:
    """Half-width and half-height of the bounding box of a unit-area ``shape``."""
    outline = _unit_outline(shape)
    if outline is None:
        radius = 1 / math.sqrt(math.pi)
        return radius, radius
    half = np.abs(outline).max(axis=0)
    return float(half[0]), float(half[1])


def shape_outline(shape: str, centre: tuple[float, float], size: float) -> np.ndarray | None:
    """The polygon's vertices for an object (same units as ``centre``/``size``); ``None`` for the circle."""
    outline = _unit_outline(shape)
    return None if outline is None else outline * size + np.asarray(centre, dtype=np.float64)


def rasterize(shape: str, centre: tuple[float, float], size: float, resolution: int) -> np.ndarray:
    """Boolean ``(resolution, resolution)`` mask of the sub-pixels whose centres lie inside the object.

    ``centre`` and ``size`` are fractions of the image side; sub-pixel ``(row, col)`` has its centre
    at ``((col + 0.5) / resolution, (row + 0.5) / resolution)``.
    """
    half_w, half_h = shape_extent(shape)
    cx, cy = centre
    mask = np.zeros((resolution, resolution), dtype=bool)
    # only the sub-pixels whose centres can fall inside the bounding box
    c0 = max(0, math.floor((cx - half_w * size) * resolution - 0.5))
    c1 = min(resolution, math.ceil((cx + half_w * size) * resolution + 0.5))
    r0 = max(0, math.floor((cy - half_h * size) * resolution - 0.5))
    r1 = min(resolution, math.ceil((cy + half_h * size) * resolution + 0.5))
    if c0 >= c1 or r0 >= r1:
        return mask
    px = (np.arange(c0, c1) + 0.5) / resolution
    py = (np.arange(r0, r1) + 0.5) / resolution
    outline = shape_outline(shape, centre, size)
    if outline is None:
        radius = size / math.sqrt(math.pi)
        inside = (px[None, :] - cx) ** 2 + (py[:, None] - cy) ** 2 <= radius**2
    else:
        inside = np.zeros((len(py), len(px)), dtype=bool)
        for (x1, y1), (x2, y2) in zip(outline, np.roll(outline, -1, axis=0), strict=True):
            crosses = (y1 > py) != (y2 > py)  # the edge spans the row's y (half-open: no double counts)
            if not crosses.any():
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                x_at = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
            inside ^= crosses[:, None] & (px[None, :] < x_at[:, None])
    mask[r0:r1, c0:c1] = inside
    return mask
