"""Object vocabularies for the text probes: COCO's 80 names, ComCO's 90 and SimCO's 18 (the
paper's code), a SimCO-like colour-shape set, user lists.

A user list is a ``.txt`` file (one name per line; blank lines and ``#`` comments skipped), a
``.json`` file or a ``.yaml``/``.yml`` file holding a list of strings (or a mapping with an
``objects`` list). Names are whitespace-collapsed; empty names and duplicates (ignoring case)
are refused with the line or item where they occur.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import ProbeConfigError

__all__ = [
    "BUILTIN_VOCABULARIES",
    "COCO_OBJECTS",
    "COMCO_OBJECTS",
    "SIMCO_OBJECTS",
    "SHAPE_COLOURS",
    "SHAPE_NAMES",
    "Vocabulary",
    "coco_vocabulary",
    "comco_vocabulary",
    "make_vocabulary",
    "read_vocabulary",
    "resolve_vocabulary",
    "shapes_vocabulary",
    "simco_vocabulary",
]

# The 80 COCO 2017 detection categories, in category-id order.
# fmt: off
COCO_OBJECTS: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)

# The 90 object names of the paper's ComCO experiments, in the order of clip-oscope's TOR/TOC
# scripts (``--protocol paper`` builds its captions in this order): COCO's 80 without "sports ball",
# plus eleven names of COCO's original 91-category list that have no 2017 annotations (street sign,
# hat, shoe, eye glasses, plate, mirror, window, desk, door, blender, hair brush). Three names are
# substrings of others: car / carrot, dog / hot dog, bear / teddy bear.
COMCO_OBJECTS: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "street sign", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "dining table", "cell phone", "elephant", "bear", "zebra", "giraffe", "hat", "backpack",
    "umbrella", "shoe", "eye glasses", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "kite",
    "baseball bat", "baseball glove", "tennis racket", "wine glass", "hot dog", "potted plant", "teddy bear",
    "hair drier", "hair brush", "skateboard", "surfboard", "bottle", "plate", "cup", "fork", "knife", "spoon",
    "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "pizza", "donut", "cake", "chair",
    "couch", "bed", "mirror", "window", "desk", "toilet", "door", "tv", "laptop", "mouse", "remote",
    "keyboard", "microwave", "oven", "toaster", "sink", "refrigerator", "blender", "book", "clock", "vase",
    "scissors", "toothbrush",
)

# The 18 shape names of the paper's SimCO experiments, in clip-oscope's order.
SIMCO_OBJECTS: tuple[str, ...] = (
    "cube", "sphere", "cylinder", "mug", "pentagon", "heart", "cone", "pyramid", "diamond", "moon", "cross",
    "snowflake", "leaf", "arrow", "star", "torus", "pot", "cap",
)
# fmt: on

# Each word is a single token of CLIP's BPE. Colours follow CLEVR's palette with "orange" for
# "cyan" (two tokens); shapes extend CLEVR's cube / sphere / cylinder.
SHAPE_COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange", "brown", "gray")
SHAPE_NAMES: tuple[str, ...] = ("cube", "sphere", "cylinder", "cone", "pyramid", "ring", "star", "heart")

VOCABULARY_SUFFIXES = (".txt", ".json", ".yaml", ".yml")


@dataclass(frozen=True)
class Vocabulary:
    """A named list of distinct object names; objects are referred to by their index here."""

    name: str
    objects: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.objects)


def coco_vocabulary() -> Vocabulary:
    """COCO's 80 object names (the objects ComCO renders come from these)."""
    return Vocabulary("coco", COCO_OBJECTS)


def comco_vocabulary() -> Vocabulary:
    """ComCO's 90 object names in clip-oscope's order (the paper's TOR/TOC vocabulary)."""
    return Vocabulary("comco", COMCO_OBJECTS)


def simco_vocabulary() -> Vocabulary:
    """SimCO's 18 shape names in clip-oscope's order."""
    return Vocabulary("simco", SIMCO_OBJECTS)


def shapes_vocabulary() -> Vocabulary:
    """64 SimCO-like ``"<colour> <shape>"`` phrases (8 colours x 8 shapes), colour-major."""
    return Vocabulary("shapes", tuple(f"{colour} {shape}" for colour in SHAPE_COLOURS for shape in SHAPE_NAMES))


BUILTIN_VOCABULARIES = {
    "coco": coco_vocabulary,
    "comco": comco_vocabulary,
    "simco": simco_vocabulary,
    "shapes": shapes_vocabulary,
}


def make_vocabulary(name: str, objects: Sequence[object], *, where: Sequence[str] | None = None) -> Vocabulary:
    """Check and clean a list of names: strings, non-empty, no duplicates (ignoring case), at least two.

    ``where`` names each item's origin (e.g. ``"line 3"``) for the error messages.
    """
    if isinstance(objects, str):
        raise ProbeConfigError(f"vocabulary {name!r} must be a list of names, not a single string")
    labels = list(where) if where is not None else [f"item {i + 1}" for i in range(len(objects))]
    cleaned: list[str] = []
    seen: dict[str, str] = {}
    for item, label in zip(objects, labels, strict=True):
        if not isinstance(item, str):
            raise ProbeConfigError(f"vocabulary {name!r}: {label} is {type(item).__name__} {item!r}, not a name")
        text = " ".join(item.split())
        if not text:
            raise ProbeConfigError(f"vocabulary {name!r}: {label} is empty; remove it or give a name")
        key = text.lower()
        if key in seen:
            raise ProbeConfigError(
                f"vocabulary {name!r}: {label} ({text!r}) duplicates {seen[key]}; every object must be listed once"
            )
        seen[key] = label
        cleaned.append(text)
    if len(cleaned) < 2:
        raise ProbeConfigError(f"vocabulary {name!r} has {len(cleaned)} name(s); the probes need at least 2")
    return Vocabulary(name, tuple(cleaned))


def read_vocabulary(path: str | Path) -> Vocabulary:
    """Read a user vocabulary from a ``.txt``, ``.json`` or ``.yaml``/``.yml`` file."""
    path = Path(path)
    if not path.is_file():
        raise ProbeConfigError(f"vocabulary file {path} not found")
    suffix = path.suffix.lower()
    if suffix not in VOCABULARY_SUFFIXES:
        raise ProbeConfigError(f"vocabulary file {path} must end in {', '.join(VOCABULARY_SUFFIXES)}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ProbeConfigError(f"could not read vocabulary file {path}: {err}") from err
    if suffix == ".txt":
        numbered = [(f"line {n}", line) for n, line in enumerate(text.splitlines(), 1)]
        kept = [(label, line) for label, line in numbered if line.strip() and not line.lstrip().startswith("#")]
        return make_vocabulary(path.stem, [line for _, line in kept], where=[label for label, _ in kept])
    try:
        data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ProbeConfigError(f"vocabulary file {path} is not valid {suffix[1:].upper()}: {err}") from err
    if isinstance(data, dict):
        data = data.get("objects")
    if not isinstance(data, list):
        raise ProbeConfigError(
            f"vocabulary file {path} must hold a list of names (or a mapping with an 'objects' list)"
        )
    return make_vocabulary(path.stem, data)


def resolve_vocabulary(spec: str | Path | Vocabulary | Sequence[str]) -> Vocabulary:
    """A built-in name (``"coco"``, ``"comco"``, ``"simco"``, ``"shapes"``), a file path, a ``Vocabulary`` or a list of names."""
    if isinstance(spec, Vocabulary):
        return spec
    if isinstance(spec, (str, Path)):
        if isinstance(spec, str) and spec.lower() in BUILTIN_VOCABULARIES:
            return BUILTIN_VOCABULARIES[spec.lower()]()
        if Path(spec).is_file():
            return read_vocabulary(spec)
        raise ProbeConfigError(
            f"unknown vocabulary {str(spec)!r}: use {', '.join(BUILTIN_VOCABULARIES)}, or the path of an existing "
            f"{'/'.join(VOCABULARY_SUFFIXES)} file"
        )
    return make_vocabulary("custom", list(spec))
