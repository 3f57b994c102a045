"""Late details in the world: does an object mentioned late in a long prompt reach the world pipeline's image?

The pipeline with its own ``clip-77`` (policies ``truncate`` and ``chunk``) and with each 248-token
encoder swapped in, measured by colour (see ``docs/late-detail.md``). Items are unseen scenes'
objects: an anchor (mentioned first) and a target of another colour, mentioned at token offsets
inside context sentences in the world's own words (:data:`WORLD_CONTEXT`); controls replace the
target's sentence with context.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..late_detail.runner import LateDetailCondition, LateDetailRun, evaluate_late_detail
from ..prominence.detectors import ColourDetector
from .scenes import SceneConfig, sample_scene
from .world_models import CAVEAT, EVAL_SEED, OWN_ENCODER, WORLD_GENERATION, world_pipeline_loaders

__all__ = [
    "DEMO_LATE_DETAIL",
    "OFFSETS",
    "WORLD_CONTEXT",
    "WorldLateDetailSettings",
    "late_detail_conditions",
    "run_world_late_detail",
    "world_items",
]

OFFSETS = (12, 40, 75, 110, 145, 180, 215)
"""Token offsets of the target's mention: inside 77, past 77, and up to 248's end."""

_PLACES = ("top", "bottom", "left", "right", "centre", "top left", "top right", "bottom left", "bottom right")
WORLD_CONTEXT: tuple[str, ...] = (
    *(sentence.format(place) for place in _PLACES for sentence in (
        "The {} of the image is white.", "The {} of the picture is white.",
        "In the {} of the image there is a white background.")),
    "There is a white background.", "The background is white.", "A picture on a white background.",
    "The image is on a white background.",
)  # fmt: skip
"""The world's late-detail context: sentences made only of words of the world's captions (which every
world encoder was trained on) that name no object. The evaluator's built-in neutral pool is English
style vocabulary ("Soft illumination.") that real CLIP learned from web captions but the world's
encoders never saw; with it a late-detail prompt is mostly untrained tokens, unlike a real prompt for
a real encoder (docs/shapes-world.md, late details)."""


@dataclass(frozen=True)
class WorldLateDetailSettings:
    """What is run: ``items`` unseen (anchor, target) pairs, at ``offsets``, with ``seeds``; ``conditions``
    (labels of :func:`late_detail_conditions`, in order) or ``None`` for all; ``attention``: also the
    cross-attention and state measurements (``report/attention.md``); ``context`` / ``builtin_context``:
    the context pool (by default the world's own words, see :data:`WORLD_CONTEXT`)."""

    items: int = 6
    seeds: tuple[int, ...] = (0, 1)
    offsets: tuple[int, ...] = OFFSETS
    conditions: tuple[str, ...] | None = None
    attention: bool = False
    """Also measure where each mention is dropped (``evaluate_late_detail(attention=True)``)."""
    context: tuple[str, ...] = WORLD_CONTEXT
    """Context sentences (default: :data:`WORLD_CONTEXT`, the world's own words)."""
    builtin_context: bool = False
    """Add the evaluator's built-in neutral pool (English style sentences the world's encoders never learned)."""


DEMO_LATE_DETAIL = WorldLateDetailSettings(
    items=3, seeds=(0, 1, 2), offsets=(12, 110),
    conditions=("CLIP-77", "CLIP-77 (chunk)", "Long-CLIP recipe", "DeBias recipe"),
)  # fmt: skip
"""The demo's ``--late-detail``: one offset inside 77 tokens and one past it."""


def world_items(count: int) -> list[dict[str, str]]:
    """Unseen 2-object scenes (seed ``EVAL_SEED + 2``) as (anchor, target) pairs of distinct colours."""
    config = SceneConfig(min_objects=2, max_objects=2)
    scenes = [sample_scene(EVAL_SEED + 2, index, config).objects for index in range(count)]
    return [{"anchor": objects[0].phrase, "target": objects[1].phrase} for objects in scenes]


def late_detail_conditions(models_dir: str | Path, encoders: Mapping[str, Path]) -> dict[str, LateDetailCondition]:
    """CLIP-77 with truncate and chunk, then every other encoder (one pass, truncate past 248)."""
    loaders = world_pipeline_loaders(models_dir, encoders)
    conditions = {label: LateDetailCondition(loader, "truncate") for label, loader in loaders.items()}
    return conditions | {f"{OWN_ENCODER} (chunk)": LateDetailCondition(loaders[OWN_ENCODER], "chunk")}


def run_world_late_detail(
    output_dir: str | Path,
    models_dir: str | Path,
    encoders: Mapping[str, Path],
    settings: WorldLateDetailSettings = WorldLateDetailSettings(),
) -> LateDetailRun:
    """Generate, measure and report the late-detail curves (``evaluate_late_detail``) of the world models.

    Args:
        output_dir: the run's folder (resumable, locked).
        models_dir: the models folder holding ``pipeline``.
        encoders: label -> encoder folder (:func:`~.world_models.world_encoders`).
        settings: items, seeds, offsets and conditions (:data:`DEMO_LATE_DETAIL` is the demo's).

    Raises:
        UsageError: ``settings.conditions`` names an unknown condition (checked before anything loads).
    """
    conditions = late_detail_conditions(models_dir, encoders)
    chosen = settings.conditions
    unknown = [label for label in chosen or () if label not in conditions]
    if unknown:
        raise UsageError(f"unknown late-detail condition(s) {unknown}; choose from {list(conditions)}")
    return evaluate_late_detail(
        {label: conditions[label] for label in chosen} if chosen else conditions,
        world_items(settings.items),
        detector=ColourDetector(),
        output_dir=output_dir,
        offsets=tuple(settings.offsets),
        seeds=tuple(settings.seeds),
        generation=WORLD_GENERATION,
        caveat=CAVEAT,
        attention=settings.attention,
        context=settings.context,
        builtin_context=settings.builtin_context,
    )
