"""Late-detail metrics: presence of the target by offset, against the no-mention baseline (numpy only).

Per condition and requested offset: the target's presence rate and mean area in images whose prompt
mentions it, the same in the controls (the **baseline**), their difference, and 95% intervals from a
seeded cluster bootstrap over (item, seed) clusters (the images of one item and seed share their
starting noise at every offset). The **effective length** is the largest offset up to which presence
minus baseline stays at least half of its value at the first offset (``None`` when that first value
is not positive: nothing to keep).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ProminenceDataError
from ..prominence.metrics import (  # the prominence bootstrap, shared
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    Estimate,
    _bootstrap_weights,
    _DifferenceStat,
    _RatioStat,
)
from .records import LateDetailRecord

__all__ = ["DEFINITIONS", "LateDetailCurve", "effective_length", "late_detail_curves"]

DEFINITIONS: tuple[tuple[str, str], ...] = (
    ("Offset", "index of the target mention's first token in the encoder's input (start token = 0)."),
    ("Presence", "share of images whose prompt mentions the target in which the detector found it."),
    ("Baseline", "the same share in the no-mention controls: the target's sentence replaced by context."),
    ("Conditioned", "share of mention images whose whole mention the encoder read (not truncated away)."),
    ("Cluster", "all images of one item with one seed; the bootstrap resamples clusters."),
    (
        "Effective length",
        "the largest offset up to which presence minus baseline stays at least half of its value at the "
        "first offset; none when that first value is not above zero.",
    ),
)


@dataclass(frozen=True)
class LateDetailCurve:
    """One condition's measurements at every offset (lists in offset order)."""

    condition: str
    window: int
    policy: str
    offsets: tuple[int, ...]
    mention_offsets: tuple[float, ...]
    """Mean offset of the mention in the condition's own tokenizer, per requested offset."""
    images: tuple[int, ...]
    """Mention images per offset (the controls have as many)."""
    conditioned: tuple[float, ...]
    presence: tuple[Estimate, ...]
    baseline: tuple[Estimate, ...]
    difference: tuple[Estimate, ...]
    """Presence minus baseline."""
    area: tuple[Estimate, ...]
    baseline_area: tuple[Estimate, ...]
    effective_length: int | None
    clusters: int

    def to_dict(self) -> dict[str, Any]:
        """The summary form: point values and the difference's interval as lists, plus every estimate."""
        return {
            "window": self.window,
            "policy": self.policy,
            "offsets": list(self.offsets),
            "mention_offsets": [_json(v) for v in self.mention_offsets],
            "images": list(self.images),
            "conditioned": [_json(v) for v in self.conditioned],
            "presence": [_json(e.value) for e in self.presence],
            "baseline": [_json(e.value) for e in self.baseline],
            "difference": [_json(e.value) for e in self.difference],
            "ci_low": [_json(e.low) for e in self.difference],
            "ci_high": [_json(e.high) for e in self.difference],
            "presence_ci": [[_json(e.low), _json(e.high)] for e in self.presence],
            "baseline_ci": [[_json(e.low), _json(e.high)] for e in self.baseline],
            "area": [_json(e.value) for e in self.area],
            "baseline_area": [_json(e.value) for e in self.baseline_area],
            "effective_length": self.effective_length,
            "clusters": self.clusters,
        }


def effective_length(offsets: Sequence[int], difference: Sequence[float]) -> int | None:
    """The largest offset up to which ``difference`` stays >= half its first value (see the module docstring)."""
    if not offsets or not math.isfinite(difference[0]) or difference[0] <= 0:
        return None
    kept = offsets[0]
    for offset, value in zip(offsets, difference, strict=True):
        if not math.isfinite(value) or value < difference[0] / 2:
            break
        kept = offset
    return int(kept)


def late_detail_curves(
    records: Sequence[LateDetailRecord],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> list[LateDetailCurve]:
    """One :class:`LateDetailCurve` per condition, in order of first appearance."""
    if not records:
        raise ProminenceDataError("no late-detail records to analyse")
    conditions = list(dict.fromkeys(r.condition for r in records))
    return [_curve([r for r in records if r.condition == name], n_resamples, confidence, seed) for name in conditions]


def _curve(records: list[LateDetailRecord], n_resamples: int, confidence: float, seed: int) -> LateDetailCurve:
    first = records[0]
    offsets = sorted({r.offset for r in records})
    clusters = sorted({(r.item, r.seed) for r in records})
    cluster_index = {key: i for i, key in enumerate(clusters)}
    shape = (len(clusters), len(offsets))
    sums = {name: np.zeros(shape) for name in ("present", "area", "count", "b_present", "b_area", "b_count")}
    for r in records:
        at = (cluster_index[(r.item, r.seed)], offsets.index(r.offset))
        prefix = "" if r.mentioned else "b_"
        sums[prefix + "present"][at] += r.present
        sums[prefix + "area"][at] += r.area
        sums[prefix + "count"][at] += 1
    weights = _bootstrap_weights(len(clusters), n_resamples, seed, (first.condition, None))
    presence = _RatioStat(sums["present"], sums["count"], weights)
    baseline = _RatioStat(sums["b_present"], sums["b_count"], weights)
    difference = _DifferenceStat(presence, baseline)
    area = _RatioStat(sums["area"], sums["count"], weights)
    baseline_area = _RatioStat(sums["b_area"], sums["b_count"], weights)
    columns = range(len(offsets))
    mentions = [[r for r in records if r.mentioned and r.offset == offset] for offset in offsets]
    estimates = [difference.estimate(c, confidence) for c in columns]
    return LateDetailCurve(
        condition=first.condition,
        window=first.window,
        policy=first.policy,
        offsets=tuple(offsets),
        mention_offsets=tuple(
            float(np.mean([r.mention_offset for r in rows])) if rows else math.nan for rows in mentions
        ),
        images=tuple(len(rows) for rows in mentions),
        conditioned=tuple(float(np.mean([r.conditioned for r in rows])) if rows else math.nan for rows in mentions),
        presence=tuple(presence.estimate(c, confidence) for c in columns),
        baseline=tuple(baseline.estimate(c, confidence) for c in columns),
        difference=tuple(estimates),
        area=tuple(area.estimate(c, confidence) for c in columns),
        baseline_area=tuple(baseline_area.estimate(c, confidence) for c in columns),
        effective_length=effective_length(offsets, [e.value for e in estimates]),
        clusters=len(clusters),
    )


def _json(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)
