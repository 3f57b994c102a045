"""Seeded scenes of 2-5 coloured shapes: what is where, independent of any resolution.

A scene lists its objects (shape, palette colour, size, centre) and its background. Positions
and sizes are fractions of the image side (x right, y down), so one scene renders at any
resolution. ``size`` is the side of the square with the object's area (every shape has unit area
at size 1, see :mod:`.geometry`), so an object covers ``size**2`` of the image before occlusion.

Scene ``index`` of a run with ``seed`` draws everything from ``numpy.random.default_rng([seed,
index, 0])`` (stream 0: the objects), except the background texture, which is chosen from stream 4
and drawn from stream 3, so the objects do not depend on the texture options. Captions draw their
random orders from stream 1 and their phrasings from stream 2. Scene ``i`` is therefore the same
however many scenes are made and in whatever order.

Placement (rejection sampling): objects are placed largest first, each at a uniformly drawn
centre that keeps its bounding box ``margin`` inside the image, redrawn up to ``max_tries`` times
until its box, grown by half of ``min_gap`` on each side, overlaps every placed (grown) box by at
most ``max_overlap`` of the smaller box's area. When an object finds no such place the whole
layout is started again, up to ``max_layouts`` times; after that the layout with the least
overlap is kept (rendering handles the occlusion; the ground truth records the visible areas).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from ..errors import ShapesWorldError
from ..prominence.detectors.colour import DEFAULT_PALETTE
from .geometry import SHAPES, shape_extent

__all__ = [
    "BACKGROUNDS",
    "COLOURS",
    "POSITIONS",
    "SHAPES",
    "SIZE_CLASSES",
    "TEXTURES",
    "Background",
    "Scene",
    "SceneConfig",
    "SceneObject",
    "sample_scene",
    "sample_scenes",
    "scene_rng",
]

COLOURS: tuple[str, ...] = tuple(DEFAULT_PALETTE)
"""The colour detector's eight palette colours; objects in one scene never share one."""

BACKGROUNDS: Mapping[str, tuple[int, int, int]] = MappingProxyType(
    {
        "white": (255, 255, 255),
        "light grey": (224, 224, 224),
        "grey": (128, 128, 128),
        "black": (0, 0, 0),
    }
)
"""Neutral backgrounds, each more than 2 x the colour detector's tolerance from every palette colour."""

TEXTURES: tuple[str, ...] = ("none", "noise", "stripes")
"""``noise``: grey per-pixel noise; ``stripes``: soft grey stripes at a random angle (both low amplitude)."""

POSITIONS: tuple[str, ...] = (
    "top left",
    "top",
    "top right",
    "left",
    "centre",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)
"""Coarse positions: the image cut into thirds in each direction."""

SIZE_CLASSES: tuple[str, ...] = ("small", "medium-sized", "large")

SizeMode = Literal["one_large", "free"]
SCENE_STREAM, ORDER_STREAM, PHRASING_STREAM, TEXTURE_STREAM, BACKGROUND_STREAM = 0, 1, 2, 3, 4


def scene_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """The generator for one purpose (``stream``) of scene ``index``."""
    return np.random.default_rng([seed, index, stream])


@dataclass(frozen=True)
class Background:
    """A neutral colour, optionally with a low-amplitude grey texture (``amplitude`` in 0-255 levels)."""

    colour: str = "white"
    texture: str = "none"
    amplitude: float = 12.0

    def __post_init__(self) -> None:
        if self.colour not in BACKGROUNDS:
            raise ShapesWorldError(f"unknown background {self.colour!r}; use one of {', '.join(BACKGROUNDS)}")
        if self.texture not in TEXTURES:
            raise ShapesWorldError(f"unknown texture {self.texture!r}; use one of {', '.join(TEXTURES)}")
        if not 0 <= self.amplitude <= 30:
            raise ShapesWorldError(
                f"texture amplitude must be 0-30 levels (more reads as objects to the colour detector), got {self.amplitude}"
            )

    @property
    def rgb(self) -> tuple[int, int, int]:
        return BACKGROUNDS[self.colour]


@dataclass(frozen=True)
class SceneObject:
    """One shape: ``size`` is the side of its equal-area square; ``centre`` its box centre (fractions)."""

    shape: str
    colour: str
    size: float
    centre: tuple[float, float]
    size_class: str
    """``"large"``, ``"medium-sized"`` or ``"small"``: the word captions use."""

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ShapesWorldError(f"unknown shape {self.shape!r}; use one of {', '.join(SHAPES)}")
        if self.colour not in COLOURS:
            raise ShapesWorldError(f"unknown colour {self.colour!r}; use one of {', '.join(COLOURS)}")
        if self.size_class not in SIZE_CLASSES:
            raise ShapesWorldError(f"unknown size class {self.size_class!r}; use one of {', '.join(SIZE_CLASSES)}")
        if not 0 < self.size < 1:
            raise ShapesWorldError(f"size must be a fraction of the image side in (0, 1), got {self.size}")

    @property
    def phrase(self) -> str:
        """``"red circle"``: the object's name for detectors and object-set files."""
        return f"{self.colour} {self.shape}"

    @property
    def full_phrase(self) -> str:
        """``"large red circle"``."""
        return f"{self.size_class} {self.colour} {self.shape}"

    @property
    def area(self) -> float:
        """Area as a fraction of the image, before occlusion."""
        return self.size**2

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Bounding box ``(x0, y0, x1, y1)`` in fractions of the image."""
        half_w, half_h = shape_extent(self.shape)
        (x, y), s = self.centre, self.size
        return (x - half_w * s, y - half_h * s, x + half_w * s, y + half_h * s)

    @property
    def position(self) -> str:
        """Coarse position of the centre, one of :data:`POSITIONS`."""
        x, y = self.centre
        column = "left" if x < 1 / 3 else "right" if x > 2 / 3 else ""
        row = "top" if y < 1 / 3 else "bottom" if y > 2 / 3 else ""
        return " ".join(word for word in (row, column) if word) or "centre"

    @property
    def position_phrase(self) -> str:
        """``"in the top left"``, ``"at the top"``, ``"on the left"``, ``"in the centre"``."""
        position = self.position
        if position in ("top", "bottom"):
            return f"at the {position}"
        if position in ("left", "right"):
            return f"on the {position}"
        return f"in the {position}"


@dataclass(frozen=True)
class Scene:
    """Objects in sampling order (index = object id), a background, and where it came from."""

    seed: int
    index: int
    objects: tuple[SceneObject, ...]
    background: Background = field(default_factory=Background)

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", tuple(self.objects))
        colours = [obj.colour for obj in self.objects]
        if len(set(colours)) != len(colours):
            raise ShapesWorldError(
                f"objects in one scene need distinct colours (the colour detector tells them apart), got {colours}"
            )

    @property
    def draw_order(self) -> tuple[int, ...]:
        """Largest first (ties by index), so small objects are drawn over large ones and stay visible."""
        return tuple(sorted(range(len(self.objects)), key=lambda i: (-self.objects[i].size, i)))

    def relation(self, subject: int, other: int) -> str:
        """``"to the left of"``, ``"to the right of"``, ``"above"`` or ``"below"``: ``subject`` relative to ``other``,
        along the axis where their centres differ most (horizontal on ties)."""
        (x1, y1), (x2, y2) = self.objects[subject].centre, self.objects[other].centre
        if abs(x1 - x2) >= abs(y1 - y2):
            return "to the left of" if x1 < x2 else "to the right of"
        return "above" if y1 < y2 else "below"

    def nearest(self, subject: int) -> int | None:
        """The object whose centre is closest to ``subject``'s (lowest index on ties); ``None`` when alone."""
        x, y = self.objects[subject].centre
        others = [i for i in range(len(self.objects)) if i != subject]
        if not others:
            return None
        return min(others, key=lambda i: (math.dist((x, y), self.objects[i].centre), i))

    def relations(self) -> list[tuple[int, str, int]]:
        """``(subject, relation, other)`` for every ordered pair of objects."""
        n = len(self.objects)
        return [(i, self.relation(i, j), j) for i in range(n) for j in range(n) if i != j]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "index": self.index,
            "background": asdict(self.background),
            "objects": [
                {
                    "shape": o.shape,
                    "colour": o.colour,
                    "size": o.size,
                    "size_class": o.size_class,
                    "centre": list(o.centre),
                }
                for o in self.objects
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scene:
        try:
            objects = tuple(
                SceneObject(
                    o["shape"],
                    o["colour"],
                    float(o["size"]),
                    (float(o["centre"][0]), float(o["centre"][1])),
                    o["size_class"],
                )
                for o in data["objects"]
            )
            return cls(int(data["seed"]), int(data["index"]), objects, Background(**data.get("background", {})))
        except (KeyError, TypeError, IndexError) as err:
            raise ShapesWorldError(f"not a scene record ({err!r}): {dict(data)!r}") from None


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are sampled. Sizes are sides of equal-area squares, as fractions of the image side."""

    min_objects: int = 2
    max_objects: int = 5
    shapes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = COLOURS
    size_mode: SizeMode = "one_large"
    """``"one_large"``: one object drawn from ``large_size`` and called "large", the rest from ``small_size``
    and called "small" (SimCO style); ``"free"``: every size from ``free_size``, called "small" below 0.18,
    "medium-sized" below 0.23 and "large" above."""
    large_size: tuple[float, float] = (0.30, 0.38)
    small_size: tuple[float, float] = (0.13, 0.19)
    free_size: tuple[float, float] = (0.13, 0.27)
    max_overlap: float = 0.0
    """Largest allowed overlap of two grown bounding boxes, as a fraction of the smaller one."""
    min_gap: float = 0.03
    """Clear space between bounding boxes (fraction of the image side): each box is grown by half of it before
    the overlap test, so with ``max_overlap=0`` anti-aliased edges of two objects never share a pixel."""
    max_tries: int = 100
    """Centre draws per object in one layout attempt."""
    max_layouts: int = 20
    """Layout attempts (all objects placed afresh) before the least-overlapping one is kept."""
    margin: float = 0.02
    """Clear space between every bounding box and the image border."""
    background: str = "white"
    textures: tuple[str, ...] = ("none",)
    """Each scene's texture is drawn uniformly from these."""
    texture_amplitude: float = 12.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "shapes", tuple(self.shapes))
        object.__setattr__(self, "colours", tuple(self.colours))
        object.__setattr__(self, "textures", tuple(self.textures))
        for name in ("large_size", "small_size", "free_size"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        self._check()

    def _check(self) -> None:
        if not (isinstance(self.min_objects, int) and isinstance(self.max_objects, int)):
            raise ShapesWorldError("min_objects and max_objects must be ints")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ShapesWorldError(f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}")
        _check_names("shape", self.shapes, SHAPES)
        _check_names("colour", self.colours, COLOURS)
        if len(set(self.colours)) < self.max_objects:
            raise ShapesWorldError(
                f"{self.max_objects} objects need as many distinct colours (the colour detector tells objects "
                f"apart by colour), got {len(set(self.colours))}"
            )
        if self.size_mode not in ("one_large", "free"):
            raise ShapesWorldError(f"size_mode must be 'one_large' or 'free', got {self.size_mode!r}")
        for name in ("large_size", "small_size", "free_size"):
            low, high = getattr(self, name)
            if not 0 < low <= high < 1:
                raise ShapesWorldError(f"{name} must be (low, high) with 0 < low <= high < 1, got {(low, high)}")
        if self.size_mode == "one_large" and not self.large_size[0] >= 1.25 * self.small_size[1]:
            raise ShapesWorldError(
                f"the large object must be clearly larger: large_size[0] ({self.large_size[0]}) must be at least "
                f"1.25 x small_size[1] ({self.small_size[1]})"
            )
        if not 0 <= self.max_overlap <= 1:
            raise ShapesWorldError(f"max_overlap must be a fraction in [0, 1], got {self.max_overlap}")
        if not (0 <= self.min_gap < 0.5 and 0 <= self.margin < 0.25):
            raise ShapesWorldError(
                f"min_gap must be in [0, 0.5) and margin in [0, 0.25), got {self.min_gap}, {self.margin}"
            )
        for name in ("max_tries", "max_layouts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ShapesWorldError(f"{name} must be a positive int, got {value!r}")
        if not self.textures:
            raise ShapesWorldError("textures must name at least one of " + ", ".join(TEXTURES))
        for texture in self.textures:
            Background(self.background, texture, self.texture_amplitude)  # checks the names and amplitude
        largest = max(self.large_size[1], self.small_size[1], self.free_size[1])
        if max(shape_extent(s)[i] for s in self.shapes for i in (0, 1)) * 2 * largest > 1 - 2 * self.margin:
            raise ShapesWorldError(f"objects of size {largest} do not fit in the image with margin {self.margin}")

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SceneConfig:
        try:
            return cls(**data)
        except TypeError as err:
            raise ShapesWorldError(f"bad scene config: {err}") from None


def sample_scene(seed: int, index: int, config: SceneConfig | None = None) -> Scene:
    """Scene ``index`` of the run ``seed`` (both non-negative ints); see the module docstring."""
    config = SceneConfig() if config is None else config
    seed, index = check_seed("seed", seed), check_seed("index", index)
    rng = scene_rng(seed, index, SCENE_STREAM)
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    colours = [config.colours[i] for i in rng.choice(len(config.colours), size=count, replace=False)]
    shapes = [config.shapes[i] for i in rng.integers(0, len(config.shapes), size=count)]
    if config.size_mode == "one_large":
        large = int(rng.integers(count))
        sizes = [float(rng.uniform(*(config.large_size if i == large else config.small_size))) for i in range(count)]
        classes = ["large" if i == large else "small" for i in range(count)]
    else:
        sizes = [float(rng.uniform(*config.free_size)) for _ in range(count)]
        classes = [_size_word(size) for size in sizes]
    centres = _layout(rng, shapes, sizes, config)
    objects = tuple(
        SceneObject(shape, colour, size, centre, size_class)
        for shape, colour, size, centre, size_class in zip(shapes, colours, sizes, centres, classes, strict=True)
    )
    texture = config.textures[int(scene_rng(seed, index, BACKGROUND_STREAM).integers(len(config.textures)))]
    return Scene(seed, index, objects, Background(config.background, texture, config.texture_amplitude))


def sample_scenes(seed: int, count: int, config: SceneConfig | None = None, *, start: int = 0) -> list[Scene]:
    """Scenes ``start`` to ``start + count - 1``."""
    return [sample_scene(seed, index, config) for index in range(start, start + count)]


def check_seed(name: str, value: object) -> int:
    """``value`` as an int when it is a non-negative int (what ``numpy.random.default_rng`` accepts)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ShapesWorldError(f"{name} must be a non-negative int, got {value!r}")
    return int(value)


def _size_word(size: float) -> str:
    """Free mode's size words: thirds of the default ``free_size`` range."""
    return "small" if size < 0.18 else "medium-sized" if size < 0.23 else "large"


def _layout(
    rng: np.random.Generator, shapes: Sequence[str], sizes: Sequence[float], config: SceneConfig
) -> list[tuple[float, float]]:
    """Centres for the objects: up to ``max_layouts`` attempts, else the attempt with the least overlap."""
    best: tuple[float, list[tuple[float, float]]] | None = None
    for _ in range(config.max_layouts):
        centres: list[tuple[float, float]] = [(0.0, 0.0)] * len(shapes)
        placed: list[tuple[float, float, float, float]] = []
        worst = 0.0
        for i in sorted(range(len(shapes)), key=lambda i: (-sizes[i], i)):
            overlap, centres[i], box = _place(rng, shapes[i], sizes[i], placed, config)
            placed.append(box)
            worst = max(worst, overlap)
        if best is None or worst < best[0]:
            best = (worst, centres)
        if worst <= config.max_overlap:
            break
    assert best is not None
    return best[1]


def _place(
    rng: np.random.Generator,
    shape: str,
    size: float,
    placed: Sequence[tuple[float, float, float, float]],
    config: SceneConfig,
) -> tuple[float, tuple[float, float], tuple[float, float, float, float]]:
    """(overlap, centre, box) of the first of ``max_tries`` uniform draws within ``max_overlap``, else the best one."""
    half_w, half_h = (half * size for half in shape_extent(shape))
    low_x, high_x = config.margin + half_w, 1 - config.margin - half_w
    low_y, high_y = config.margin + half_h, 1 - config.margin - half_h
    best: tuple[float, tuple[float, float]] | None = None
    for _ in range(config.max_tries):
        x, y = float(rng.uniform(low_x, high_x)), float(rng.uniform(low_y, high_y))
        box = (x - half_w, y - half_h, x + half_w, y + half_h)
        overlap = max((_overlap(box, other, config.min_gap / 2) for other in placed), default=0.0)
        if best is None or overlap < best[0]:
            best = (overlap, (x, y))
        if overlap <= config.max_overlap:
            break
    assert best is not None
    overlap, (x, y) = best
    return overlap, (x, y), (x - half_w, y - half_h, x + half_w, y + half_h)


def _overlap(a: tuple[float, ...], b: tuple[float, ...], grow: float) -> float:
    """Intersection of the two boxes grown by ``grow``, over the smaller grown box's area."""
    a = (a[0] - grow, a[1] - grow, a[2] + grow, a[3] + grow)
    b = (b[0] - grow, b[1] - grow, b[2] + grow, b[3] + grow)
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return width * height / smaller


def _check_names(what: str, names: Sequence[str], known: Sequence[str]) -> None:
    if not names:
        raise ShapesWorldError(f"{what}s must name at least one of {', '.join(known)}")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ShapesWorldError(f"unknown {what}(s) {', '.join(map(repr, unknown))}; use some of {', '.join(known)}")
