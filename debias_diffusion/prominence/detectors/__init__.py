"""Detectors that measure requested objects in images: OWLv2, Grounding DINO (+ SAM masks), flat colour.

``get_detector(name, **options)`` builds one by name. The model-backed detectors import
transformers only when first used, so the colour backend stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ...errors import DetectorError
from ..measurement import Detector
from .colour import DEFAULT_MIN_AREA, DEFAULT_PALETTE, DEFAULT_TOLERANCE, ColourDetector

if TYPE_CHECKING:
    from .grounding_dino import GroundingDinoDetector
    from .owlv2 import Owlv2Detector
    from .sam import SamMasker

__all__ = [
    "DEFAULT_MIN_AREA",
    "DEFAULT_PALETTE",
    "DEFAULT_TOLERANCE",
    "DETECTOR_NAMES",
    "ColourDetector",
    "GroundingDinoDetector",
    "Owlv2Detector",
    "SamMasker",
    "get_detector",
]

_DETECTORS = {
    "owlv2": ("owlv2", "Owlv2Detector"),
    "grounding-dino": ("grounding_dino", "GroundingDinoDetector"),
    "colour": ("colour", "ColourDetector"),
}
_ALIASES = {"color": "colour"}
_LAZY = {"Owlv2Detector": "owlv2", "GroundingDinoDetector": "grounding_dino", "SamMasker": "sam"}

DETECTOR_NAMES: tuple[str, ...] = tuple(_DETECTORS)
"""Names ``get_detector`` knows ("color" is accepted for "colour")."""


def get_detector(name: str, **options: Any) -> Detector:
    """The detector called ``name``, built with ``options`` (its constructor's keyword arguments)."""
    key = _ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in _DETECTORS:
        raise DetectorError(f"unknown detector {name!r}; known detectors: {', '.join(DETECTOR_NAMES)} (or 'color')")
    module, cls = _DETECTORS[key]
    return getattr(importlib.import_module(f".{module}", __name__), cls)(**options)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
