"""Objects found by their flat colour, for synthetic scenes of coloured shapes on a plain background.

Each label names one palette colour ("red cube", "a large blue sphere"). A pixel belongs to
colour ``c`` when it is explained by ``c`` blended with the background: its distance to the
line segment from the background colour to ``c`` (plain Euclidean distance in 0-255 sRGB) is at
most ``tolerance``, it lies on ``c``'s half of that segment (``c`` covers more than half of the
pixel, so anti-aliased edges count exactly when the shape covers most of the pixel and areas
stay unbiased), and no other palette colour explains it with a smaller distance. Pixels far
from every blend (outlines, unrelated colours, two shapes' shared anti-aliased edge) belong to
nothing. Each mask is then opened with a 3x3 square, which removes anything under 3 px thick:
where two shapes meet, anti-aliasing makes a 1 px seam of in-between colour (red beside yellow
makes an orange line) that must not count as an object.

The measurement of a label: mask = the opened mask of its colour (all of it, however many
pieces: an occluded shape may be cut in two); present when its area is at least ``min_area``
(a fraction of the image); box = the bounding box of the mask in pixel-edge coordinates (a
20 x 20 px square at (10, 10) has box (10, 10, 30, 30)); ``mask_area`` = mask pixels / image
pixels; score = the mask's mean colour weight (1.0 for a flat shape, lower where many pixels
are blends): a deterministic purity, not a probability. Two objects of one colour in one image
cannot be told apart, so ``measure`` refuses label lists that repeat a colour.

The background is ``background`` when given, else the per-channel median of the image's 1 px
border (the scene's plain or lightly textured backdrop, as long as shapes cover less than half
the border). Texture near the background colour stays background: a pixel must be more than
half-way from the background to a palette colour to count.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
from PIL import Image

from ...errors import DetectorError
from ..measurement import ObjectMeasurement
from .boxes import absent, detected
from .inputs import checked_inputs

RGB = tuple[int, int, int]

DEFAULT_PALETTE: Mapping[str, RGB] = MappingProxyType(
    {
        "red": (255, 0, 0),
        "orange": (255, 128, 0),
        "yellow": (255, 255, 0),
        "green": (0, 200, 0),
        "cyan": (0, 255, 255),
        "blue": (0, 0, 255),
        "purple": (128, 0, 255),
        "magenta": (255, 0, 255),
    }
)
"""Eight saturated sRGB colours. Any two are at least 127 apart (orange-yellow, orange-red,
purple-blue, purple-magenta), and each is at least 90 from every other colour's blend segment
with a white, grey or black background, so a pixel within ``DEFAULT_TOLERANCE`` of one colour's
blend is far from every other's."""

DEFAULT_TOLERANCE = 60.0
"""Distance (0-255 sRGB) a pixel may lie from a colour's blend segment: two thirds of the 90
separation above, and above three times the typical length (10 x sqrt(3) = 17) of noise with a
standard deviation of 10 levels per channel."""

DEFAULT_MIN_AREA = 0.001
"""0.1% of the image (262 px at 512 x 512): smaller specks are not objects in a prominence study."""

_OPENING = 3
_NAME = re.compile(r"[a-z]+( [a-z]+)*")


class ColourDetector:
    """Measures labelled objects by their palette colour; see the module docstring for the rules."""

    name = "colour"

    def __init__(
        self,
        palette: Mapping[str, tuple[int, int, int]] = DEFAULT_PALETTE,
        tolerance: float = DEFAULT_TOLERANCE,
        min_area: float = DEFAULT_MIN_AREA,
        *,
        background: tuple[int, int, int] | None = None,
    ) -> None:
        self.palette = _checked_palette(palette)
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance > 0:
            raise DetectorError(f"tolerance must be a positive number (0-255 sRGB distance), got {tolerance!r}")
        if isinstance(min_area, bool) or not isinstance(min_area, (int, float)) or not 0 <= min_area <= 1:
            raise DetectorError(f"min_area must be a fraction of the image in [0, 1], got {min_area!r}")
        self.tolerance = float(tolerance)
        self.min_area = float(min_area)
        self.background = None if background is None else _checked_rgb("background", background)
        self._names = list(self.palette)
        self._colours = np.array([self.palette[name] for name in self._names], dtype=np.float32)

    def settings(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "palette": {name: list(rgb) for name, rgb in self.palette.items()},
            "tolerance": self.tolerance,
            "min_area": self.min_area,
            "background": "border median" if self.background is None else list(self.background),
            "colour_distance": "sRGB Euclidean distance to the background-to-colour blend segment",
            "opening": f"{_OPENING}x{_OPENING} square",
        }

    def colour_of(self, label: str) -> str:
        """The one palette colour named in ``label`` (whole words, case-insensitive)."""
        text = " ".join(re.findall(r"[a-z]+", label.lower()))
        found = [name for name in self._names if re.search(rf"\b{re.escape(name)}\b", text)]
        # "light blue" also contains "blue": keep only the longest names found
        found = [name for name in found if not any(name != other and _contains(other, name) for other in found)]
        if len(found) == 1:
            return found[0]
        palette = ", ".join(self._names)
        if not found:
            raise DetectorError(
                f"label {label!r} names no palette colour; the colour backend finds objects by colour, "
                f"so each label needs one of: {palette}"
            )
        raise DetectorError(f"label {label!r} names several palette colours ({', '.join(found)}); give one per label")

    def colour_masks(self, image: Image.Image) -> dict[str, np.ndarray]:
        """A boolean ``(height, width)`` mask per palette colour (after the 3x3 opening)."""
        return self._segment(image)[0]

    def _segment(self, image: Image.Image) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The masks, and each pixel's weight of each colour in its blend with the background."""
        pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.float32)
        background = self._background(pixels)
        offsets = pixels - background  # (height, width, 3)
        weights = np.empty((len(self._names), *pixels.shape[:2]), dtype=np.float32)
        costs = np.empty_like(weights)
        for index, direction in enumerate(self._colours - background):
            weights[index] = np.clip(offsets @ direction / (direction @ direction), 0.0, 1.0)
            residual = np.linalg.norm(offsets - weights[index][..., None] * direction, axis=-1)
            costs[index] = np.where((weights[index] > 0.5) & (residual <= self.tolerance), residual, np.inf)
        owner = costs.argmin(axis=0)
        explained = np.isfinite(costs.min(axis=0))
        masks = {name: _opened(explained & (owner == index)) for index, name in enumerate(self._names)}
        return masks, weights

    def measure(self, images: Sequence[Image.Image], labels: Sequence[Sequence[str]]) -> list[list[ObjectMeasurement]]:
        images, labels = checked_inputs(images, labels)
        colours = [self._image_colours(index, names) for index, names in enumerate(labels)]
        return [
            self._measure_image(image, names, image_colours) if names else []
            for image, names, image_colours in zip(images, labels, colours, strict=True)
        ]

    def _image_colours(self, index: int, names: list[str]) -> list[str]:
        colours = [self.colour_of(name) for name in names]
        seen: dict[str, str] = {}
        for name, colour in zip(names, colours, strict=True):
            if colour in seen:
                raise DetectorError(
                    f"labels {seen[colour]!r} and {name!r} of image {index} are both {colour}: the colour backend "
                    "cannot tell same-coloured objects apart; give each object in an image its own colour"
                )
            seen[colour] = name
        return colours

    def _measure_image(self, image: Image.Image, names: list[str], colours: list[str]) -> list[ObjectMeasurement]:
        masks, weights = self._segment(image)
        width, height = image.size
        results = []
        for name, colour in zip(names, colours, strict=True):
            mask = masks[colour]
            area = float(mask.mean())
            if area <= 0 or area < self.min_area:
                results.append(absent(name, has_masks=True))
                continue
            rows, cols = np.nonzero(mask)
            box = (float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1))
            score = float(weights[self._names.index(colour)][mask].mean())
            results.append(detected(name, score, box, width, height, area))
        return results

    def _background(self, pixels: np.ndarray) -> np.ndarray:
        if self.background is not None:
            background = np.array(self.background, dtype=np.float32)
        else:
            border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
            background = np.median(border, axis=0).astype(np.float32)
        distances = np.linalg.norm(self._colours - background, axis=1)
        close = int(distances.argmin())
        if distances[close] <= 2 * self.tolerance:
            raise DetectorError(
                f"the background {tuple(int(v) for v in background)} is within {distances[close]:.0f} of the palette "
                f"colour {self._names[close]!r} (the limit is 2 x tolerance = {2 * self.tolerance:.0f}): they cannot "
                "be told apart; use a neutral background or pass background=(r, g, b)"
            )
        return background


def _contains(longer: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", longer) is not None


def _opened(mask: np.ndarray, size: int = _OPENING) -> np.ndarray:
    """Morphological opening with a ``size`` x ``size`` square (erosion treats outside the image as inside)."""
    return _dilated(_eroded(mask, size), size)


def _eroded(mask: np.ndarray, size: int) -> np.ndarray:
    pad = size // 2
    padded = np.pad(mask, pad, constant_values=True)
    out = np.ones_like(mask)
    for dy in range(size):
        for dx in range(size):
            out &= padded[dy : dy + mask.shape[0], dx : dx + mask.shape[1]]
    return out


def _dilated(mask: np.ndarray, size: int) -> np.ndarray:
    pad = size // 2
    padded = np.pad(mask, pad, constant_values=False)
    out = np.zeros_like(mask)
    for dy in range(size):
        for dx in range(size):
            out |= padded[dy : dy + mask.shape[0], dx : dx + mask.shape[1]]
    return out


def _checked_rgb(what: str, value: Any) -> RGB:
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)
    ):
        raise DetectorError(f"{what} must be an (r, g, b) tuple of ints 0-255, got {value!r}")
    return (int(value[0]), int(value[1]), int(value[2]))


def _checked_palette(palette: Mapping[str, Any]) -> Mapping[str, RGB]:
    if not isinstance(palette, Mapping) or not palette:
        raise DetectorError("palette must be a non-empty mapping of colour names to (r, g, b)")
    checked = {}
    for name, rgb in palette.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise DetectorError(f"palette colour names must be lower-case words, got {name!r}")
        checked[name] = _checked_rgb(f"palette[{name!r}]", rgb)
    if len(set(checked.values())) != len(checked):
        raise DetectorError("palette has two names for the same colour")
    return MappingProxyType(checked)
