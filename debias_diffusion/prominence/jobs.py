"""What an evaluation generates: the generation settings, one job per image, and the plan of all jobs."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..argument_types import bounded_float, bounded_int
from ..errors import ProminenceDataError
from ..renamed import renamed_attributes
from ..settings_arguments import flag, no_flag
from .prompts import ObjectSet, PromptTemplate, orderings

__all__ = ["ImageJob", "SamplingSettings", "check_generation_options", "check_run_arguments", "plan_jobs"]

_RUNNER_ARGUMENTS = ("prompt", "generator", "num_inference_steps", "guidance_scale", "width", "height",
                     "negative_prompt", "num_images_per_prompt", "output_type")  # fmt: skip


@dataclass(frozen=True)
class SamplingSettings:
    """Settings every image is generated with (part of the image cache key)."""

    steps: int = field(default=30, metadata=flag("denoising steps", type=bounded_int(1)))
    guidance_scale: float = field(default=7.5, metadata=flag("classifier-free guidance scale", type=bounded_float(0)))
    width: int | None = field(
        default=None, metadata=flag("image width in pixels (the CLI's --size WxH)", type=bounded_int(1))
    )
    height: int | None = field(
        default=None, metadata=flag("image height in pixels (the CLI's --size WxH)", type=bounded_int(1))
    )
    negative_prompt: str | None = field(
        default=None, metadata=flag("negative prompt for every image", "-n", "--negative-prompt")
    )
    images_per_call: int = field(default=4, metadata=no_flag("Python only: the same on every run"))
    """Seeds of one prompt generated in one batched call (each with its own generator). Batching changes
    pixels slightly, so the batches are planned: the same seeds always share a call, on every run."""
    extra: dict[str, Any] = field(default_factory=dict, metadata=no_flag("Python only: more pipeline arguments"))
    """More keyword arguments for the pipeline call (e.g. ``{"long_prompt": "chunk"}``)."""

    def cache_fields(self) -> dict[str, Any]:
        fields = asdict(self)
        fields.pop("images_per_call")  # batches are planned the same way on every run
        return fields


@dataclass(frozen=True)
class ImageJob:
    """One image to generate and measure."""

    model: str
    object_set: int
    template: str
    ordering: tuple[str, ...]
    seed: int
    prompt: str

    def key(self, options: SamplingSettings, identity: str = "") -> str:
        """The image's cache key: model name and ``identity`` (see :mod:`.identity`), prompt, seed, settings."""
        fields = {"model": self.model, "prompt": self.prompt, "seed": self.seed, **options.cache_fields()}
        if identity:
            fields["identity"] = identity
        return hashlib.sha1(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:20]


def plan_jobs(
    model_names: Sequence[str],
    object_sets: Sequence[ObjectSet],
    templates: Sequence[PromptTemplate],
    seeds: Sequence[int],
    *,
    max_orderings: int = 24,
    ordering_seed: int = 0,
) -> list[ImageJob]:
    """Every (model, set, template, ordering, seed), ordered model-major so pipelines load once."""
    jobs = []
    for model in model_names:
        for set_index, object_set in enumerate(object_sets):
            for order in orderings(object_set.objects, max_orderings=max_orderings, seed=ordering_seed + set_index):
                for template in templates:
                    prompt = template.format(order)
                    jobs.extend(ImageJob(model, set_index, template.name, order, seed, prompt) for seed in seeds)
    return jobs


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_generation_options(generation: SamplingSettings) -> None:
    """Raise ``ProminenceDataError`` unless every setting is usable (before anything is generated)."""
    if not _positive_int(generation.steps) or not _positive_int(generation.images_per_call):
        raise ProminenceDataError(
            f"steps and images_per_call must be integers >= 1, got {generation.steps!r}, {generation.images_per_call!r}"
        )
    guidance = generation.guidance_scale
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not math.isfinite(guidance):
        raise ProminenceDataError(f"guidance_scale must be a finite number, got {guidance!r}")
    for name in ("width", "height"):
        value = getattr(generation, name)
        if value is not None and (not _positive_int(value) or value % 8):
            raise ProminenceDataError(f"{name} must be a positive multiple of 8 (the VAE's factor), got {value!r}")
    if generation.negative_prompt is not None and not isinstance(generation.negative_prompt, str):
        raise ProminenceDataError(f"negative_prompt must be a string, got {type(generation.negative_prompt).__name__}")
    if not isinstance(generation.extra, dict) or (taken := sorted(set(generation.extra) & set(_RUNNER_ARGUMENTS))):
        raise ProminenceDataError(
            f"SamplingSettings.extra must be a dict of other pipeline arguments; the runner sets {taken or 'these'} itself"
        )


def check_run_arguments(pipelines, sets, templates, seeds, generation: SamplingSettings, batch_size: int) -> None:
    """Raise ``ProminenceDataError`` unless an evaluation with these arguments can run."""
    if not pipelines:
        raise ProminenceDataError("evaluate_prominence needs at least one pipeline")
    if not sets:
        raise ProminenceDataError("evaluate_prominence needs at least one object set")
    if not templates:
        raise ProminenceDataError("evaluate_prominence needs at least one template")
    if len({t.name for t in templates}) != len(templates):
        raise ProminenceDataError(f"template names repeat: {[t.name for t in templates]}")
    if not seeds or len(set(seeds)) != len(seeds) or any(not isinstance(s, int) or s < 0 for s in seeds):
        raise ProminenceDataError(f"seeds must be distinct non-negative integers, got {list(seeds)}")
    if not _positive_int(batch_size):
        raise ProminenceDataError(f"detection_batch_size must be an integer >= 1, got {batch_size!r}")
    check_generation_options(generation)


# The old name, for one release (``generate``'s run settings are GenerationSettings; these are every image's).
__getattr__ = renamed_attributes(__name__, {"GenerationOptions": "SamplingSettings"}, globals())
