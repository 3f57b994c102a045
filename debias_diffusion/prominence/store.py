"""Where one evaluation's images and measurements live on disk, and how they are made, checked and read.

See :mod:`.runner` for the layout and :mod:`.image_cache` for how image + sidecar pairs are committed,
checked and generated in planned batches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from tqdm.auto import tqdm

from ..atomic_io import atomic_write_json
from ..errors import ProminenceDataError
from .image_cache import commit_image, image_sha256, planned_batches
from .jobs import ImageJob, SamplingSettings
from .measurement import Detector, ObjectMeasurement, ProminenceRecord
from .mentions import conditioned_objects

__all__ = ["ImageStore", "folder_names"]

logger = logging.getLogger(__name__)


class ImageStore:
    """Where one run's images and measurements live, and how they are made, checked and read."""

    def __init__(self, output_dir: Path, slugs, generation: SamplingSettings, identities, detector: Detector) -> None:
        self.output_dir, self.slugs, self.generation, self.identities = output_dir, slugs, generation, identities
        self.detector = detector
        self.detector_settings = {"name": detector.name, **detector.settings()}
        self.detector_dir = output_dir / "detections" / _hash(self.detector_settings)
        atomic_write_json(self.detector_dir / "detector.json", self.detector_settings)

    def key(self, job: ImageJob) -> str:
        return job.key(self.generation, self.identities[job.model])

    def image_path(self, job: ImageJob) -> Path:
        return self.output_dir / "images" / self.slugs[job.model] / f"{self.key(job)}.png"

    def detection_path(self, job: ImageJob) -> Path:
        return self.detector_dir / self.slugs[job.model] / f"{self.key(job)}.json"

    def generate(
        self, pipe, jobs: list[ImageJob], sidecars: dict, progress: bool, *, check_mentions: bool = True
    ) -> int:
        """Generate the planned batches of ``jobs`` that miss an image; write only the missing images.

        With ``check_mentions`` (the default) every prompt must name its job's objects in order, and
        each sidecar records which of them the pipeline's long-prompt policy keeps (``conditioned``).
        Pass ``False`` for prompts that leave objects out on purpose (no-mention controls): no check,
        and ``conditioned`` is ``None``.
        """
        generation = self.generation
        todo = [batch for batch in planned_batches(jobs, lambda job: job.prompt, generation.images_per_call)
                if any(sidecars[job] is None for job in batch)]  # fmt: skip
        policy = generation.extra.get("long_prompt")
        kept = {job.prompt: conditioned_objects(pipe, job.prompt, job.ordering, policy) if check_mentions else None
                for job in jobs}  # fmt: skip
        if check_mentions and all(flags is not None and not all(flags) for flags in kept.values()):
            raise ProminenceDataError(
                f"every prompt loses an object to the long-prompt policy of {jobs[0].model!r}, so none of its images "
                "would be asked for its whole set: use shorter templates or sets, a longer text encoder, or "
                "long_prompt='chunk'"
            )
        missing = sum(sidecars[job] is None for batch in todo for job in batch)
        bar = tqdm(total=missing, desc=f"generate {jobs[0].model}", disable=not progress, unit="image")
        count = 0
        for batch in todo:
            prompt = batch[0].prompt
            conditioned = kept[prompt]
            kwargs = dict(num_inference_steps=generation.steps, guidance_scale=generation.guidance_scale,
                          width=generation.width, height=generation.height, **generation.extra)  # fmt: skip
            if generation.negative_prompt is not None:
                kwargs["negative_prompt"] = [generation.negative_prompt] * len(batch)
            generators = [torch.Generator(device="cpu").manual_seed(job.seed) for job in batch]
            images = pipe(prompt=[prompt] * len(batch), generator=generators, **kwargs).images
            if len(images) != len(batch):
                raise ProminenceDataError(f"the pipeline returned {len(images)} images for {len(batch)} prompts")
            for job, image in zip(batch, images, strict=True):
                if sidecars[job] is not None:
                    continue  # already on disk, the same bytes: this batch is regenerated for its other seeds
                sidecar = {**asdict(job), **generation.cache_fields(), "identity": self.identities[job.model],
                           "key": self.key(job), "batch_seeds": [j.seed for j in batch], "conditioned": conditioned}  # fmt: skip
                sidecars[job] = commit_image(self.image_path(job), _as_pil(image), sidecar)
                count += 1
                bar.update(1)
        bar.close()
        return count

    def cached_measurements(self, job: ImageJob, sidecar: Mapping[str, Any] | None) -> list[ObjectMeasurement] | None:
        """The stored measurements of the image ``sidecar`` describes, or None if missing or of other bytes."""
        path = self.detection_path(job)
        if sidecar is None or not path.is_file():
            return None
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(stored, dict) or stored.get("image_sha256") != sidecar["image_sha256"]:
                return None  # measured another image (or written by an older version): measure again
            measurements = [_measurement(row) for row in stored["measurements"]]
        except (ValueError, KeyError, TypeError):
            logger.warning("%s is damaged: measuring its image again", path)
            return None
        return measurements if [m.label for m in measurements] == list(job.ordering) else None

    def measure(self, jobs: list[ImageJob], sidecars: dict, measurements: dict, batch_size: int, progress) -> int:
        """Measure the planned batches (per model) with an unmeasured image; write only the missing measurements."""
        for job in jobs:  # a regenerated image has the bytes of the lost one: its stored measurements still apply
            if measurements[job] is None:
                measurements[job] = self.cached_measurements(job, sidecars[job])
        todo = [batch for batch in planned_batches(jobs, lambda job: job.model, batch_size)
                if any(measurements[job] is None for job in batch)]  # fmt: skip
        missing = sum(measurements[job] is None for batch in todo for job in batch)
        bar = tqdm(total=missing, desc=f"measure ({self.detector.name})", disable=not progress, unit="image")
        for batch in todo:
            images = []
            for job in batch:
                path = self.image_path(job)
                if image_sha256(path) != sidecars[job]["image_sha256"]:
                    raise ProminenceDataError(f"{path} changed during the run: its bytes no longer match its sidecar")
                with Image.open(path) as image:
                    images.append(image.convert("RGB"))
            results = self.detector.measure(images, [list(job.ordering) for job in batch])
            for job, result in zip(batch, results, strict=True):
                if measurements[job] is not None:
                    continue
                if [m.label for m in result] != list(job.ordering):
                    raise ProminenceDataError(
                        f"the detector measured {[m.label for m in result]}, asked for {list(job.ordering)}"
                    )
                stored = {"image_sha256": sidecars[job]["image_sha256"], "measurements": [asdict(m) for m in result]}
                atomic_write_json(self.detection_path(job), stored)
                measurements[job] = result
                bar.update(1)
        bar.close()
        return missing

    def records(self, job: ImageJob, sidecar: Mapping[str, Any], measurements: list[ObjectMeasurement]):
        image = self.image_path(job).relative_to(self.output_dir).as_posix()
        conditioned = sidecar.get("conditioned") or [True] * len(job.ordering)
        return [
            ProminenceRecord(
                model=job.model,
                object_set=job.object_set,
                template=job.template,
                ordering=job.ordering,
                seed=job.seed,
                image=image,
                object=m.label,
                position=position,
                present=m.present,
                score=m.score,
                box=m.box,
                box_area=m.box_area,
                mask_area=m.mask_area,
                conditioned=bool(kept),
            )  # fmt: skip
            for position, (m, kept) in enumerate(zip(measurements, conditioned, strict=True), start=1)
        ]


def folder_names(names: Iterable[str]) -> dict[str, str]:
    """A file-system-safe folder name per model (refuses names that collide)."""
    names = list(names)
    slugs = {name: re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model" for name in names}
    if len(set(slugs.values())) != len(slugs):
        raise ProminenceDataError(f"model names {names} collide as folder names; rename one")
    return slugs


def _measurement(row: Mapping[str, Any]) -> ObjectMeasurement:
    return ObjectMeasurement(**{**row, "box": None if row["box"] is None else tuple(row["box"])})


def _hash(data: Any) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _as_pil(image: Any) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    raise ProminenceDataError(f"the pipeline must return PIL images (output_type='pil'), got {type(image).__name__}")
