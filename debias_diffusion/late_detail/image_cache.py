"""The prominence runner's image and detection cache, as the late-detail evaluator uses it.

This is the one place that reaches into :mod:`debias_diffusion.prominence.runner`: images are
generated, cached (``images/<condition>/<key>.png`` + sidecar) and measured
(``detections/<detector hash>/<condition>/<key>.json``) exactly as ``evaluate-prominence`` does, so
both evaluators share one generation path, one cache layout and one set of detectors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ..prominence import runner as _runner
from ..prominence.measurement import Detector, ObjectMeasurement
from ..prominence.runner import GenerationOptions, ImageJob

__all__ = ["detection_path", "detector_folder", "folder_names", "generate_images", "image_path", "is_loader",
           "measure_images", "read_measurements"]  # fmt: skip


def folder_names(names: Sequence[str]) -> dict[str, str]:
    """A file-system-safe folder name per condition (refuses names that collide)."""
    return _runner._slugs(dict.fromkeys(names))


def is_loader(source: object) -> bool:
    """True for a function / partial that loads a pipeline (a pipeline object is called to generate)."""
    return _runner._is_loader(source)


def image_path(output_dir: Path, folders: Mapping[str, str], job: ImageJob, generation: GenerationOptions) -> Path:
    return _runner._image_path(output_dir, folders, job, generation)


def detector_folder(output_dir: Path, detector: Detector) -> tuple[Path, dict]:
    """The detector's cache folder (named by a hash of its settings) and those settings."""
    settings = {"name": detector.name, **detector.settings()}
    return output_dir / "detections" / _runner._hash(settings), settings


def detection_path(
    detector_dir: Path, folders: Mapping[str, str], job: ImageJob, generation: GenerationOptions
) -> Path:
    return _runner._detection_path(detector_dir, folders, job, generation)


def generate_images(pipe, jobs: list[ImageJob], output_dir: Path, folders, generation: GenerationOptions,
                    progress: bool) -> int:  # fmt: skip
    """Generate and cache ``jobs`` (all of one condition) with ``pipe``; the number generated."""
    return _runner._generate(pipe, jobs, output_dir, folders, generation, progress)


def measure_images(jobs: list[ImageJob], output_dir: Path, detector_dir: Path, folders, generation: GenerationOptions,
                   detector: Detector, batch_size: int, progress: bool) -> int:  # fmt: skip
    """Measure (``job.ordering`` = the labels) every job's image not measured yet; the number measured."""
    return _runner._measure(jobs, output_dir, detector_dir, folders, generation, detector, batch_size, progress)


def read_measurements(path: Path) -> list[ObjectMeasurement]:
    return _runner._read_measurements(path)
