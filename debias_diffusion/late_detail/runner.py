"""``evaluate_late_detail``: does a detail mentioned late in a long prompt reach the image?

For each condition (a pipeline, its encoder and a long-prompt policy) every item's mention and
control prompts (:func:`~.prompts.build_prompts`) are generated with the same seeds, the target
(and anchor) measured by a prominence detector, and the curves of :mod:`.metrics` reported.

Work is cached in ``output_dir`` exactly as ``evaluate-prominence`` caches it (:mod:`.image_cache`:
content-identity keys, exact resume, scratch cleanup, a NaN weight check before generating), plus
``encoders/<condition>.json``: the condition's window, policy, identity and, per prompt, where its own
tokenizer puts the mention and whether the encoder reads it. Every file is written atomically and
the whole run holds the output folder's lock; a re-run with the same arguments only fills the gaps.
Prompts, context and offsets are all checked before the first image is generated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic_io import atomic_write_json
from ..conditioning import check_long_prompt_policy, plan_prompt
from ..errors import ProminenceDataError, PromptError
from ..output_lock import locked_output
from ..prominence.jobs import ImageJob, SamplingSettings
from ..prominence.measurement import Detector
from ..prominence.store import folder_names
from ..tokenization import build_clip_tokenizer
from . import image_cache
from .attention import MentionAttention, measure_mention_attention, write_mention_attention
from .context import context_pool
from .metrics import LateDetailCurve, late_detail_curves
from .prompts import (
    DEFAULT_ANCHOR_SENTENCE,
    DEFAULT_OFFSETS,
    DEFAULT_TARGET_SENTENCE,
    LateDetailItem,
    LateDetailPrompt,
    build_prompts,
    mention_offset,
    read_items,
)
from .records import LateDetailRecord

__all__ = ["LateDetailCondition", "LateDetailRun", "evaluate_late_detail", "mention_reading"]

PipelineSource = Any
"""A text-to-image pipeline with a ``tokenizer``, or a zero-argument function / partial that loads one."""


@dataclass(frozen=True)
class LateDetailCondition:
    """A pipeline (or its loader) and the long-prompt policy it generates with."""

    pipeline: PipelineSource
    long_prompt: str = "truncate"


@dataclass
class LateDetailRun:
    records: list[LateDetailRecord]
    curves: list[LateDetailCurve]
    prompts: list[LateDetailPrompt]
    output_dir: Path
    generated: int
    measured: int
    report: Any = None
    """The :class:`~.report.LateDetailReport` written, or ``None`` with ``report=False``."""
    attention: list[MentionAttention] = dataclasses.field(default_factory=list)
    """With ``attention=True``: where each mention is dropped (:mod:`.attention`)."""


def evaluate_late_detail(
    conditions: Mapping[str, PipelineSource | LateDetailCondition],
    items: Sequence[LateDetailItem | str | Mapping[str, str]] | str | Path,
    *,
    detector: Detector,
    output_dir: str | Path,
    offsets: Sequence[int] = DEFAULT_OFFSETS,
    context: Sequence[str] | str | Path = (),
    builtin_context: bool = True,
    seeds: Sequence[int] = (0, 1, 2),
    total_tokens: int | None = None,
    tolerance: int = 2,
    target_sentence: str = DEFAULT_TARGET_SENTENCE,
    anchor_sentence: str = DEFAULT_ANCHOR_SENTENCE,
    context_seed: int = 0,
    generation: SamplingSettings | None = None,
    detection_batch_size: int = 8,
    report: bool = True,
    caveat: str | None = None,
    attention: bool = False,
    progress: bool = True,
) -> LateDetailRun:
    """Generate, measure and report late-detail adherence for each condition (see the module docstring).

    Args:
        conditions: display name -> pipeline / loader (truncate policy) or :class:`LateDetailCondition`.
        items: targets (with optional anchors), or a YAML/JSON file of them (:func:`~.prompts.read_items`).
        detector: a prominence detector (``get_detector``), e.g. OWLv2 or the colour detector.
        output_dir: cache and report folder; a re-run resumes.
        offsets: requested token offsets of the mention (start token = 0), strictly increasing.
        context: the user's context sentences (or a text file, one a line), added to the built-in pool.
        builtin_context: use the built-in neutral pool.
        seeds: one image per prompt and seed, the same for every condition.
        total_tokens: the prompts' length (default: the target's sentence ends the last offset's prompt).
        tolerance: tokens a planned offset may miss when the pool cannot fill a gap exactly.
        generation: steps, guidance, size... (the policy is each condition's).
        attention: also measure, per mention prompt and seed, the UNet's cross-attention on the mention
            and the encoder's states of it (:mod:`.attention`; one more denoising run per mention image,
            not cached); ``report/attention.{md,json,csv}``.
    """
    generation = generation or SamplingSettings()
    specs = _conditions(conditions)
    item_list = read_items(items) if isinstance(items, (str, Path)) else read_items(list(items))
    _check_seeds(seeds, detection_batch_size)
    pool = context_pool([label for item in item_list for label in item.labels], context, builtin=builtin_context)
    prompts = build_prompts(item_list, offsets, pool, build_clip_tokenizer(), total_tokens=total_tokens,
                            tolerance=tolerance, target_sentence=target_sentence, anchor_sentence=anchor_sentence,
                            seed=context_seed)  # fmt: skip
    output_dir = Path(output_dir)
    folders = folder_names(specs)
    with locked_output(output_dir):
        hashes = image_cache.file_hashes(output_dir)
        generated = measured = 0
        records: list[LateDetailRecord] = []
        attention_records: list[MentionAttention] = []
        identities = {}
        for name, spec in specs.items():
            options = dataclasses.replace(generation, extra={**generation.extra, "long_prompt": spec.long_prompt})
            jobs = [ImageJob(name, p.item, f"{p.kind}@{p.offset}", item_list[p.item].labels, seed, p.prompt)
                    for p in prompts for seed in seeds]  # fmt: skip
            images = image_cache.condition_images(output_dir, name, folders[name], spec.pipeline, jobs, options,
                                                  detector, hashes)  # fmt: skip
            identities[name] = images.identity
            reading_path = output_dir / "encoders" / f"{folders[name]}.json"
            reading = _read_reading(reading_path, spec.long_prompt, images.identity, prompts)
            pipe = None
            if not images.complete or reading is None:
                pipe = images.checked_pipeline()
                reading = _write_reading(reading_path, pipe, spec.long_prompt, images.identity, prompts)
                generated += images.generate(pipe, progress)
            if attention:
                attention_records += measure_mention_attention(
                    pipe or images.checked_pipeline(), prompts, condition=name, policy=spec.long_prompt,
                    seeds=seeds, generation=generation, progress=progress,
                )  # fmt: skip
            del pipe
            measured += images.measure(detection_batch_size, progress)
            records += _records(name, images, prompts, seeds, item_list, reading)
        detector_settings = images.store.detector_settings  # the same detector for every condition
        curves = late_detail_curves(records)
        files = None
        if report:
            from .report import write_late_detail_report  # matplotlib: only when a report is written

            settings = {"detector": detector_settings, "offsets": list(offsets), "seeds": list(seeds),
                        "tolerance": tolerance, "total_tokens": total_tokens, "context_seed": context_seed,
                        "context_sentences": len(pool), "target_sentence": target_sentence,
                        "anchor_sentence": anchor_sentence, "generation": generation.cache_fields(),
                        "items": [dataclasses.asdict(item) for item in item_list],
                        "conditions": {name: spec.long_prompt for name, spec in specs.items()},
                        "identities": identities}  # fmt: skip
            files = write_late_detail_report(records, curves, prompts, output_dir / "report", settings=settings,
                                             images_root=output_dir, caveat=caveat)  # fmt: skip
            if attention_records:
                write_mention_attention(attention_records, output_dir / "report", caveat=caveat)
    return LateDetailRun(records, curves, prompts, output_dir, generated, measured, files, attention_records)


def mention_reading(prompt: LateDetailPrompt, tokenizer, policy: str) -> tuple[int, bool]:
    """Where ``tokenizer`` puts the mention of a mention prompt, and whether an encoder with ``policy`` reads it.

    Read means the whole target sentence is in one of the segments the policy feeds the encoder
    (a sentence cut by truncation, or past a window that truncates, is not read; chunks read everything).
    """
    sentence_at = prompt.prompt.index(prompt.target_sentence)
    phrase_at = sentence_at + prompt.target_sentence.lower().index(prompt.target.lower())
    offset = mention_offset(prompt.prompt, phrase_at, tokenizer)
    conditioning_logger = logging.getLogger("debias_diffusion.conditioning")
    level = conditioning_logger.level
    conditioning_logger.setLevel(logging.ERROR)  # planning every prompt would warn about each truncation
    try:
        plan = plan_prompt(prompt.prompt, tokenizer, policy)
    except PromptError as err:
        raise ProminenceDataError(f"the prompt for offset {prompt.offset} cannot be encoded with policy "
                                  f"{policy!r}: {err}") from None  # fmt: skip
    finally:
        conditioning_logger.setLevel(level)
    read = any(prompt.target_sentence in " ".join(segment.split()) for segment in plan.segments)
    return offset, read


def _key(prompt: LateDetailPrompt) -> str:
    return hashlib.sha1(f"{prompt.offset}|{prompt.prompt}".encode()).hexdigest()[:16]


def _write_reading(path: Path, pipe, policy: str, identity: str, prompts: Sequence[LateDetailPrompt]) -> dict:
    tokenizer = getattr(pipe, "tokenizer", None)
    if tokenizer is None:
        raise ProminenceDataError(f"the pipeline {type(pipe).__name__} has no tokenizer: the mention offsets "
                                  "cannot be measured in its encoder's tokens")  # fmt: skip
    reading = {
        "window": int(tokenizer.model_max_length),  # the encoder's context length (transformers' name)
        "policy": policy,
        "identity": identity,
        "mentions": {_key(p): list(mention_reading(p, tokenizer, policy)) for p in prompts if p.mentioned},
    }
    atomic_write_json(path, reading)
    return reading


def _read_reading(path: Path, policy: str, identity: str, prompts: Sequence[LateDetailPrompt]) -> dict | None:
    """The stored reading, if it was made for this policy and pipeline (``identity``) and covers ``prompts``."""
    if not path.is_file():
        return None
    try:
        reading = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None  # damaged: read again
    wanted = {_key(p) for p in prompts if p.mentioned}
    if not isinstance(reading, dict) or (reading.get("policy"), reading.get("identity")) != (policy, identity):
        return None
    return reading if wanted <= set(reading.get("mentions", {})) else None


def _records(name, images, prompts, seeds, items, reading) -> list[LateDetailRecord]:
    mention_of = {(p.item, p.offset): p for p in prompts if p.mentioned}
    records = []
    for job, (prompt, seed) in zip(images.jobs, [(p, s) for p in prompts for s in seeds], strict=True):
        offset, read = reading["mentions"][_key(mention_of[(prompt.item, prompt.offset)])]
        measurements = images.measurements[job]
        target = measurements[-1]
        item = items[prompt.item]
        records.append(LateDetailRecord(
            condition=name, window=reading["window"], policy=reading["policy"], item=prompt.item, target=item.target,
            anchor=item.anchor, offset=prompt.offset, mentioned=prompt.mentioned, seed=seed, image=images.image(job),
            mention_offset=offset, conditioned=bool(read), present=target.present, area=target.area,
            score=target.score, anchor_present=measurements[0].present if item.anchor is not None else None,
        ))  # fmt: skip
    return records


def _conditions(conditions: Mapping[str, Any]) -> dict[str, LateDetailCondition]:
    if not conditions:
        raise ProminenceDataError("evaluate_late_detail needs at least one condition (a named pipeline)")
    specs = {}
    for name, value in conditions.items():
        spec = value if isinstance(value, LateDetailCondition) else LateDetailCondition(value)
        try:
            check_long_prompt_policy(spec.long_prompt)
        except ValueError as err:
            raise ProminenceDataError(f"condition {name!r}: {err}") from None
        specs[name] = spec
    return specs


def _check_seeds(seeds: Sequence[int], batch_size: int) -> None:
    if not seeds or len(set(seeds)) != len(seeds) or any(isinstance(s, bool) or not isinstance(s, int) or s < 0
                                                         for s in seeds):  # fmt: skip
        raise ProminenceDataError(f"seeds must be distinct non-negative integers, got {list(seeds)}")
    if batch_size < 1:
        raise ProminenceDataError("detection_batch_size must be >= 1")
