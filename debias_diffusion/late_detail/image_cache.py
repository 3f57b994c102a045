"""The late-detail evaluator's images and measurements, kept by prominence's :class:`~..prominence.store.ImageStore`.

Each condition (a pipeline and its long-prompt policy) gets one store, so its images carry the same
guarantees as ``evaluate-prominence``'s: ``images/<condition>/<key>.png`` + sidecar, keyed by the
condition's content identity (:mod:`..prominence.identity`), the prompt, the seed and every generation
setting (the policy included); image and sidecar committed together and checked before reuse; planned
batches, so a resumed run writes the same bytes; measurements in
``detections/<detector hash>/<condition>/<key>.json``, tied to the bytes they measured.

No-mention control prompts never name their target, so they are generated without the store's
mention check: the evaluator works out which mentions each encoder reads itself (:func:`.runner.mention_reading`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..prominence.identity import FileHashCache, is_loader, source_identity
from ..prominence.image_cache import read_valid_sidecar, remove_scratch
from ..prominence.jobs import ImageJob, SamplingSettings
from ..prominence.measurement import Detector, ObjectMeasurement
from ..prominence.store import ImageStore
from ..weight_checks import check_pipeline_weights

__all__ = ["OUTPUT_FOLDERS", "ConditionImages", "condition_images", "file_hashes"]

OUTPUT_FOLDERS = ("images", "detections", "cache", "encoders", "report")
"""What a late-detail run writes inside its output folder (scratch left in them by a killed run is removed)."""


def file_hashes(output_dir: Path) -> FileHashCache:
    """Remove what killed runs left in ``output_dir``; the run's cache of model files' hashes."""
    remove_scratch(output_dir, OUTPUT_FOLDERS)
    return FileHashCache(output_dir / "cache" / "file-hashes.json")


@dataclass
class ConditionImages:
    """One condition's jobs and their valid images on disk; measurements once :meth:`measure` ran."""

    source: Any
    store: ImageStore
    jobs: list[ImageJob]
    sidecars: dict[ImageJob, dict | None]
    measurements: dict[ImageJob, list[ObjectMeasurement] | None]

    @property
    def identity(self) -> str:
        return self.store.identities[self.jobs[0].model]

    @property
    def complete(self) -> bool:
        """Every image is on disk and valid (nothing to generate)."""
        return all(sidecar is not None for sidecar in self.sidecars.values())

    def checked_pipeline(self) -> Any:
        """The condition's pipeline (loaded now if its source is a loader), its weights checked for NaN / inf."""
        pipe = self.source() if is_loader(self.source) else self.source
        check_pipeline_weights(pipe)  # NaN weights would make black images and exit 0
        return pipe

    def generate(self, pipe: Any, progress: bool) -> int:
        """Generate the missing images with ``pipe``; the number written."""
        return self.store.generate(pipe, self.jobs, self.sidecars, progress, check_mentions=False)

    def measure(self, batch_size: int, progress: bool) -> int:
        """Measure every image not measured yet (``job.ordering`` = the labels); the number measured."""
        return self.store.measure(self.jobs, self.sidecars, self.measurements, batch_size, progress)

    def image(self, job: ImageJob) -> str:
        """The image's path relative to the output folder."""
        return self.store.image_path(job).relative_to(self.store.output_dir).as_posix()


def condition_images(
    output_dir: Path,
    name: str,
    folder: str,
    source: Any,
    jobs: list[ImageJob],
    generation: SamplingSettings,
    detector: Detector,
    hashes: FileHashCache,
) -> ConditionImages:
    """The store of condition ``name`` (images in ``images/<folder>``) and what of ``jobs`` it already holds.

    Args:
        output_dir: the run's output folder (held under its lock by the caller).
        name: the condition's display name (every job's ``model``).
        folder: its file-system-safe folder name.
        source: its pipeline, or a zero-argument loader of one (not called here).
        jobs: every image of the condition.
        generation: the settings, the condition's ``long_prompt`` policy among them.
        detector: measures the labels.
        hashes: the run's cache of model files' hashes (saved here).
    """
    identity = source_identity(source, hashes, is_loader=is_loader(source))
    hashes.save()
    store = ImageStore(output_dir, {name: folder}, generation, {name: identity}, detector)
    sidecars = {job: read_valid_sidecar(store.image_path(job), store.key(job)) for job in jobs}
    return ConditionImages(source, store, jobs, sidecars, dict.fromkeys(jobs))  # measure() reads stored ones
