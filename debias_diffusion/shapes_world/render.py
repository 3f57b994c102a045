"""Render a scene: an anti-aliased RGB image plus exact per-object masks and visible areas.

Anti-aliasing is supersampling: each output pixel is ``supersample`` x ``supersample`` sub-pixels
(4 x 4 by default), every sub-pixel takes the colour of the last object drawn over its centre (or
the background), and the pixel is their mean, which is what drawing at 4x and downsampling with a
box filter gives. Objects are drawn largest first (:attr:`Scene.draw_order`), so small objects
are never covered by large ones.

Per object: ``coverage`` is the fraction of each pixel's sub-pixels it owns after occlusion,
``masks`` the pixels it covers more than half of (the colour detector's rule for anti-aliased
edges), ``visible_areas`` the mean coverage (the visible fraction of the image, exact up to the
sub-pixel grid), ``full_areas`` the same without occlusion, and ``boxes`` the masks' bounding boxes
in pixel-edge coordinates (a mask spanning columns 10-29 has x0=10, x1=30), like the detectors'.

Textured backgrounds are grey (equal in R, G and B) offsets of at most ``amplitude`` levels
around the background colour, drawn per output pixel from the scene's texture stream, so they
stay far from every palette colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import ShapesWorldError
from ..prominence.detectors.colour import DEFAULT_PALETTE
from .geometry import rasterize
from .scenes import TEXTURE_STREAM, Background, Scene, scene_rng

__all__ = ["Rendering", "background_pixels", "render_scene"]

Box = tuple[float, float, float, float]
_STRIPE_PERIOD = 1 / 12  # of the image side


@dataclass(frozen=True)
class Rendering:
    """A rendered scene; per-object tuples follow ``scene.objects``."""

    scene: Scene
    image: Image.Image
    coverage: tuple[np.ndarray, ...]
    """Float32 ``(size, size)`` fraction of each pixel the object shows in."""
    masks: tuple[np.ndarray, ...]
    """Boolean ``(size, size)``: the object covers more than half of the pixel. Disjoint."""
    visible_areas: tuple[float, ...]
    full_areas: tuple[float, ...]
    boxes: tuple[Box | None, ...]
    """Bounding box of each mask in pixel-edge coordinates, ``None`` for an empty mask."""

    @property
    def size(self) -> int:
        return self.image.width

    @property
    def mask_areas(self) -> tuple[float, ...]:
        return tuple(float(mask.mean()) for mask in self.masks)

    @property
    def labels(self) -> list[str]:
        """The objects' phrases ("red circle"), ready for ``ColourDetector().measure``."""
        return [obj.phrase for obj in self.scene.objects]


def render_scene(scene: Scene, size: int = 64, *, supersample: int = 4) -> Rendering:
    """Render ``scene`` at ``size`` x ``size`` pixels (see the module docstring)."""
    check_resolution(size, supersample)
    fine = size * supersample
    owner = np.full((fine, fine), -1, dtype=np.int8)
    full_areas = [0.0] * len(scene.objects)
    for i in scene.draw_order:
        obj = scene.objects[i]
        hit = rasterize(obj.shape, obj.centre, obj.size, fine)
        full_areas[i] = int(hit.sum()) / fine**2
        owner[hit] = i
    # per object: the fraction of each output pixel's sub-pixels it owns (box downsampling)
    blocks = owner.reshape(size, supersample, size, supersample)
    coverage = tuple((blocks == i).mean(axis=(1, 3), dtype=np.float32) for i in range(len(scene.objects)))
    pixels = background_pixels(scene, size)
    pixels = pixels * (blocks == -1).mean(axis=(1, 3), dtype=np.float32)[..., None]
    for obj, cover in zip(scene.objects, coverage, strict=True):
        pixels += cover[..., None] * np.asarray(DEFAULT_PALETTE[obj.colour], dtype=np.float32)
    image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    masks = tuple(cover > 0.5 for cover in coverage)
    return Rendering(
        scene=scene,
        image=image,
        coverage=coverage,
        masks=masks,
        visible_areas=tuple(int((owner == i).sum()) / fine**2 for i in range(len(scene.objects))),
        full_areas=tuple(full_areas),
        boxes=tuple(_mask_box(mask) for mask in masks),
    )


def check_resolution(size: object, supersample: object) -> None:
    """Raise :class:`ShapesWorldError` unless ``size`` >= 8 and 1 <= ``supersample`` <= 16 are ints."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ShapesWorldError(f"size must be an int of at least 8 pixels, got {size!r}")
    if isinstance(supersample, bool) or not isinstance(supersample, int) or not 1 <= supersample <= 16:
        raise ShapesWorldError(f"supersample must be an int from 1 to 16, got {supersample!r}")


def background_pixels(scene: Scene, size: int) -> np.ndarray:
    """Float32 ``(size, size, 3)`` background of ``scene`` (plain or textured), before the objects."""
    background: Background = scene.background
    base = np.asarray(background.rgb, dtype=np.float32)
    if background.texture == "none" or background.amplitude == 0:
        return np.broadcast_to(base, (size, size, 3)).copy()
    rng = scene_rng(scene.seed, scene.index, TEXTURE_STREAM)
    if background.texture == "noise":
        offset = rng.uniform(-1.0, 1.0, (size, size))
    else:  # stripes: a soft sine wave across the image at a random angle and phase
        angle, phase = rng.uniform(0, math.pi), rng.uniform(0, 2 * math.pi)
        coords = (np.arange(size, dtype=np.float64) + 0.5) / size
        along = math.cos(angle) * coords[None, :] + math.sin(angle) * coords[:, None]
        offset = np.sin(2 * math.pi * along / _STRIPE_PERIOD + phase)
    grey = np.rint(background.amplitude * offset).astype(np.float32)
    return np.clip(base + grey[..., None], 0, 255)


def _mask_box(mask: np.ndarray) -> Box | None:
    rows, cols = np.nonzero(mask)
    if not len(rows):
        return None
    return (float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1))
