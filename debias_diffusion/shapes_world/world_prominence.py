"""Prompt-order prominence of the world's pipeline with each encoder: unseen scenes' objects, colour detector."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..prominence.detectors import ColourDetector
from ..prominence.runner import ProminenceRun, evaluate_prominence
from .scenes import SceneConfig, sample_scene
from .world_models import CAVEAT, EVAL_SEED, WORLD_GENERATION

__all__ = ["run_world_prominence", "world_object_sets"]


def world_object_sets(count: int, objects: int) -> list[list[str]]:
    """Unseen scenes' objects as prominence sets (phrases such as "red circle"; colours distinct).

    Args:
        count: how many sets (scenes ``0 .. count - 1`` of seed ``EVAL_SEED + 1``).
        objects: objects per set.
    """
    config = SceneConfig(min_objects=objects, max_objects=objects)
    return [[obj.phrase for obj in sample_scene(EVAL_SEED + 1, index, config).objects] for index in range(count)]


def run_world_prominence(
    output_dir: str | Path, pipelines: Mapping[str, Callable[[], Any]], *, quick: bool = False
) -> ProminenceRun:
    """Images from list and descriptive prompts, every ordering, measured by colour, with its report.

    Args:
        output_dir: the prominence run's folder (resumable, locked).
        pipelines: label -> pipeline loader (:func:`~.world_models.world_pipeline_loaders`).
        quick: 4 + 2 sets and one seed (a smoke run) instead of 8 two-object + 4 three-object sets, two seeds.
    """
    sets = world_object_sets(4 if quick else 8, 2) + world_object_sets(2 if quick else 4, 3)
    return evaluate_prominence(
        pipelines, sets, detector=ColourDetector(), output_dir=output_dir, templates=["list", "descriptive"],
        seeds=(0,) if quick else (0, 1), generation=WORLD_GENERATION, caveat=CAVEAT, grid_object_sets=3,
    )  # fmt: skip
