"""Prompt-order prominence metrics: pure functions of :class:`ProminenceRecord` lists (numpy only).

Everything is computed per *group*: one model, or one (model, template) with ``group_by_template=True``.
Confidence intervals come from a seeded cluster bootstrap over (object set, seed) clusters. The
definitions in :data:`DEFINITIONS` are the ones reports print; the docstrings below say the same.
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from ..errors import ProminenceDataError
from .measurement import ProminenceRecord

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_RESAMPLES",
    "DEFINITIONS",
    "ComparisonRow",
    "Estimate",
    "FirstMentionAdvantage",
    "ModelComparison",
    "ObjectFirstMention",
    "PairOrderEffect",
    "PositionSummary",
    "by_position",
    "compare_models",
    "first_mention_advantage",
    "group_label",
    "pair_order_effects",
    "records_by_image",
    "validate_records",
]

DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95

DEFINITIONS: tuple[tuple[str, str], ...] = (
    ("Measurement", "one named object in one generated image (one record)."),
    (
        "Position",
        "the 1-based place where the prompt names the object. Sets of different sizes pool: position k "
        "covers every image whose prompt names at least k objects.",
    ),
    (
        "Presence rate",
        "share of measurements whose object the detector found. Omission rate = 1 - presence rate "
        "(named in the prompt but not detected).",
    ),
    (
        "Area",
        "fraction of the image covered by the object's mask, or by its box when the detector makes no "
        "masks; an object that was not detected has area 0. Mean area averages over all measurements.",
    ),
    (
        "Area share",
        "an object's area divided by the summed areas of all objects named in the same image, so the "
        "shares of one image sum to 1. Images where nothing was detected (summed area 0) have no shares: "
        "they are left out of every share statistic and counted separately.",
    ),
    (
        "Cluster",
        "all images of one object set made with one seed (every ordering, and every template when "
        "templates are pooled). They share the seed's starting noise, so the bootstrap resamples them together.",
    ),
    (
        "Confidence interval",
        "percentile interval of the statistic over cluster-bootstrap resamples (draw as many clusters as "
        "there are, with replacement, and recompute); the generator is seeded, so it is repeatable.",
    ),
    (
        "First-mention advantage",
        "per image, the value of the object named first minus the mean value of the objects named at "
        "positions 2..n, averaged over images (over images with a detection for area share). When every "
        "set has n objects this equals the position-1 rate minus the mean of the position 2..n rates.",
    ),
    (
        "Object-controlled first-mention advantage",
        "per object, its mean value over measurements where it is named first minus its mean over "
        "measurements where it is named later; then the unweighted mean over objects seen both first and "
        "later. Objects that are simply bigger cannot produce it.",
    ),
    (
        "Pair order effect",
        "for objects A and B named in the same set: A's mean value over images where A is named before B "
        "minus A's mean value over images where B is named before A (and likewise for B). Positive means "
        "being named earlier within the pair makes the object more prominent.",
    ),
)
"""``(term, definition)`` pairs, shown verbatim in reports."""

GroupKey = tuple[str, "str | None"]
"""``(model, template)``; the template is ``None`` when templates are pooled."""


def group_label(model: str, template: str | None) -> str:
    """How a group is named in tables and plots: the model, plus ``[template]`` when split by template."""
    return model if template is None else f"{model} [{template}]"


# --- result types -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap confidence interval (``nan`` bounds when none was computed)."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float | None]:
        return {"value": _json_float(self.value), "low": _json_float(self.low), "high": _json_float(self.high)}


@dataclass(frozen=True)
class PositionSummary:
    """Every measurement at one prompt position, for one group."""

    model: str
    template: str | None
    position: int
    measurements: int
    """(image, object) measurements at this position."""
    detected: int
    presence_rate: Estimate
    omission_rate: Estimate
    """1 - presence rate: named but not detected."""
    mean_area: Estimate
    """Mean area (fraction of the image), not-detected objects counting 0."""
    mean_area_when_detected: float
    share_measurements: int
    """Measurements in images with at least one detection: the ones ``mean_area_share`` averages."""
    no_detection_measurements: int
    """Measurements in images where nothing was detected, left out of ``mean_area_share``."""
    mean_area_share: Estimate

    @property
    def label(self) -> str:
        return group_label(self.model, self.template)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


@dataclass(frozen=True)
class ObjectFirstMention:
    """One object: named first versus named later (same object, so its own size cancels)."""

    model: str
    template: str | None
    object: str
    measurements_first: int
    measurements_later: int
    presence_first: float
    presence_later: float
    presence_advantage: Estimate
    """``presence_first - presence_later``."""
    share_measurements_first: int
    share_measurements_later: int
    area_share_first: float
    area_share_later: float
    area_share_advantage: Estimate
    """``area_share_first - area_share_later``."""

    @property
    def omission_rate(self) -> float:
        """Over all of this object's measurements, whatever the position."""
        total = self.measurements_first + self.measurements_later
        detected = _nan_to_zero(self.presence_first) * self.measurements_first + _nan_to_zero(self.presence_later) * (
            self.measurements_later
        )
        return 1.0 - detected / total if total else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {**_to_dict(self), "omission_rate": _json_float(self.omission_rate)}


@dataclass(frozen=True)
class FirstMentionAdvantage:
    """How much more prominent the first-named object is than the others, for one group."""

    model: str
    template: str | None
    images: int
    images_without_detection: int
    """Images left out of the area-share advantage because nothing was detected in them."""
    clusters: int
    presence: Estimate
    """Mean over images of presence(position 1) - mean presence(positions 2..n)."""
    area_share: Estimate
    """Mean over images with a detection of share(position 1) - mean share(positions 2..n)."""
    object_controlled_presence: Estimate
    """Unweighted mean over objects of :attr:`ObjectFirstMention.presence_advantage`."""
    object_controlled_area_share: Estimate
    """Unweighted mean over objects of :attr:`ObjectFirstMention.area_share_advantage`."""
    objects_compared: int
    """Objects seen both first and later, the ones the object-controlled presence advantage averages."""
    per_object: tuple[ObjectFirstMention, ...]

    @property
    def label(self) -> str:
        return group_label(self.model, self.template)

    def to_dict(self) -> dict[str, Any]:
        out = _to_dict(self)
        out["per_object"] = [item.to_dict() for item in self.per_object]
        return out


@dataclass(frozen=True)
class PairOrderEffect:
    """Objects A and B (``object_a`` sorts first) of one set: does naming one earlier make it more prominent?"""

    model: str
    template: str | None
    object_a: str
    object_b: str
    images_a_first: int
    """Images whose prompt names A before B."""
    images_b_first: int
    share_images_a_first: int
    """Of ``images_a_first``, those with a detection (used for the share effects)."""
    share_images_b_first: int
    a_presence_effect: float
    """A's presence rate when A is named before B minus when B is named before A."""
    b_presence_effect: float
    """B's presence rate when B is named before A minus when A is named before B."""
    a_area_share_effect: float
    """A's mean area share when A is named before B minus when B is named before A."""
    b_area_share_effect: float
    """B's mean area share when B is named before A minus when A is named before B."""

    @property
    def mean_area_share_effect(self) -> float:
        """Mean of the two objects' share effects: the average gain from being named earlier in this pair."""
        return (self.a_area_share_effect + self.b_area_share_effect) / 2

    @property
    def mean_presence_effect(self) -> float:
        return (self.a_presence_effect + self.b_presence_effect) / 2

    def to_dict(self) -> dict[str, Any]:
        return {
            **_to_dict(self),
            "mean_area_share_effect": _json_float(self.mean_area_share_effect),
            "mean_presence_effect": _json_float(self.mean_presence_effect),
        }


@dataclass(frozen=True)
class ComparisonRow:
    """One metric for every group of a :class:`ModelComparison` (``None`` where a group lacks it)."""

    metric: str
    values: tuple[Estimate | None, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "values": [None if v is None else v.to_dict() for v in self.values]}


@dataclass(frozen=True)
class ModelComparison:
    """All metrics for all groups, plus one table with the groups side by side (``rows``)."""

    groups: tuple[str, ...]
    """Column labels of ``rows``: :func:`group_label` of each group, in order of first appearance."""
    rows: tuple[ComparisonRow, ...]
    positions: tuple[PositionSummary, ...]
    first_mention: tuple[FirstMentionAdvantage, ...]
    pairs: tuple[PairOrderEffect, ...]
    group_by_template: bool
    n_resamples: int
    confidence: float
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": list(self.groups),
            "rows": [row.to_dict() for row in self.rows],
            "positions": [item.to_dict() for item in self.positions],
            "first_mention": [item.to_dict() for item in self.first_mention],
            "pairs": [item.to_dict() for item in self.pairs],
            "group_by_template": self.group_by_template,
            "n_resamples": self.n_resamples,
            "confidence": self.confidence,
            "seed": self.seed,
            "definitions": dict(DEFINITIONS),
        }


# --- public functions -------------------------------------------------------------------------------


def validate_records(records: Sequence[ProminenceRecord]) -> None:
    """Raise :class:`ProminenceDataError` unless ``records`` can be analysed.

    Requirements: at least one record; every image (``image_key``) has exactly one record per object of
    its ordering, at that object's position, all with the same image path; orderings name at least two
    distinct objects; all images of one ``object_set`` name the same objects (whatever the model);
    scores and areas are finite and areas lie in [0, 1].
    """
    records_by_image(records)


def by_position(
    records: Sequence[ProminenceRecord],
    *,
    group_by_template: bool = False,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> list[PositionSummary]:
    """One row per group and prompt position k (1-based).

    For the measurements at position k: count, presence rate, omission rate (1 - presence: named but
    not detected), mean area (fraction of the image; not detected = 0) and mean area share (the object's
    area over the summed areas of all objects named in the same image; images with nothing detected are
    left out of the share and counted in ``no_detection_measurements``). Sets of different sizes pool:
    position k covers every image with at least k objects. CIs: cluster bootstrap over (object set, seed).
    """
    groups = _prepare(records, group_by_template, n_resamples, confidence, seed)
    return [row for group in groups for row in _position_rows(group, confidence)]


def first_mention_advantage(
    records: Sequence[ProminenceRecord],
    *,
    group_by_template: bool = False,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> list[FirstMentionAdvantage]:
    """Position 1 minus the mean of positions 2..n, for presence and area share, per group.

    Per image: value of the first-named object minus the mean value of the others; averaged over images
    (area share: over images with a detection). Equals position-1 rate minus the mean of the position
    2..n rates when all sets have n objects. Per object: the object's mean when named first minus its mean
    when named later; the object-controlled advantage is the unweighted mean of that over objects seen
    both first and later, so objects that are simply bigger cannot produce it. CIs: seeded cluster
    bootstrap, clusters = (object set, seed), since all orderings of a set with one seed are paired.
    """
    groups = _prepare(records, group_by_template, n_resamples, confidence, seed)
    return [_first_mention(group, confidence) for group in groups]


def pair_order_effects(
    records: Sequence[ProminenceRecord],
    *,
    group_by_template: bool = False,
) -> list[PairOrderEffect]:
    """For each unordered pair {A, B} named together in a set, per group: the effect of naming A before B.

    ``a_area_share_effect`` = A's mean area share over images naming A before B minus A's mean share over
    images naming B before A (images with no detection left out); ``b_...`` likewise for B; the presence
    effects use presence rates. Pairs pool over the object sets that contain both objects. Counts say how
    many images each side has; an effect is ``nan`` when one side has none.
    """
    groups = _prepare(records, group_by_template, 0, DEFAULT_CONFIDENCE, 0)
    return [effect for group in groups for effect in _pair_effects(group)]


def compare_models(
    records: Sequence[ProminenceRecord],
    *,
    group_by_template: bool = False,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> ModelComparison:
    """All of :func:`by_position`, :func:`first_mention_advantage` and :func:`pair_order_effects`, per group,
    plus one table (``rows``) with the groups side by side: per position presence, omission, mean area and
    area share; first-mention and object-controlled advantages; the mean pair order effect (no CI).

    Bootstrap draws depend only on ``seed`` and the group, so every number equals the stand-alone function's.
    """
    groups = _prepare(records, group_by_template, n_resamples, confidence, seed)
    positions = [_position_rows(group, confidence) for group in groups]
    first = [_first_mention(group, confidence) for group in groups]
    pairs = [_pair_effects(group) for group in groups]
    return ModelComparison(
        groups=tuple(group_label(*group.key) for group in groups),
        rows=tuple(_comparison_rows(positions, first, pairs)),
        positions=tuple(row for rows in positions for row in rows),
        first_mention=tuple(first),
        pairs=tuple(effect for effects in pairs for effect in effects),
        group_by_template=group_by_template,
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
    )


# --- preparation -------------------------------------------------------------------------------------


@dataclass
class _Image:
    ordering: tuple[str, ...]
    cluster: int
    present: np.ndarray
    """(n,) 1.0 / 0.0 by position."""
    area: np.ndarray
    """(n,) area by position, 0 where not detected."""
    share: np.ndarray | None
    """(n,) area shares by position; ``None`` when nothing was detected."""


@dataclass
class _Group:
    key: GroupKey
    images: list[_Image]
    n_clusters: int
    weights: np.ndarray
    """(resamples, clusters) bootstrap counts: how often each cluster is drawn in each resample."""


ImageKey = tuple[str, int, str, tuple[str, ...], int]


def records_by_image(records: Sequence[ProminenceRecord]) -> dict[ImageKey, list[ProminenceRecord]]:
    """Check the records (see :func:`validate_records`); return each image's records in position order.

    Keys are :attr:`ProminenceRecord.image_key`, in order of first appearance.
    """
    if isinstance(records, (str, bytes)) or not isinstance(records, Sequence):
        raise ProminenceDataError(f"expected a sequence of ProminenceRecord, got {type(records).__name__}")
    if not records:
        raise ProminenceDataError("no prominence records to analyse: the list is empty")
    images: dict[ImageKey, list[ProminenceRecord]] = {}
    for index, record in enumerate(records):
        if not isinstance(record, ProminenceRecord):
            raise ProminenceDataError(f"record {index} is a {type(record).__name__}, not a ProminenceRecord")
        _check_values(record)
        images.setdefault(record.image_key, []).append(record)

    set_objects: dict[int, tuple[tuple[str, ...], ImageKey]] = {}
    for key, image_records in images.items():
        model, object_set, template, ordering, seed = key
        where = f"image {image_records[0].image!r} (model {model!r}, object set {object_set}, seed {seed})"
        if len(set(ordering)) != len(ordering):
            raise ProminenceDataError(f"{where}: the ordering {list(ordering)} names an object twice")
        if len(ordering) < 2:
            raise ProminenceDataError(f"{where}: the ordering {list(ordering)} names fewer than two objects")
        named = sorted(r.object for r in image_records)
        if named != sorted(ordering):
            raise ProminenceDataError(
                f"{where}: expected one record per object of the ordering {list(ordering)}, got records for {named}"
            )
        for record in image_records:
            if record.position != ordering.index(record.object) + 1:
                raise ProminenceDataError(
                    f"{where}: {record.object!r} has position {record.position}, but the ordering "
                    f"{list(ordering)} names it at {ordering.index(record.object) + 1}"
                )
        if len({r.image for r in image_records}) != 1:
            raise ProminenceDataError(f"{where}: its records point at different image files")
        objects = tuple(sorted(ordering))
        seen = set_objects.setdefault(object_set, (objects, key))
        if seen[0] != objects:
            raise ProminenceDataError(
                f"object set {object_set} mixes objects: {list(seen[0])} (model {seen[1][0]!r}, ordering "
                f"{list(seen[1][3])}) and {list(objects)} (model {model!r}, ordering {list(ordering)}); every "
                "ordering of a set must name the same objects"
            )
        image_records.sort(key=lambda r: r.position)
    return images


def _check_values(record: ProminenceRecord) -> None:
    where = f"record for {record.object!r} in image {record.image!r}"
    if not math.isfinite(record.score):
        raise ProminenceDataError(f"{where}: score {record.score} is not finite")
    if record.box is not None and (len(record.box) != 4 or not all(math.isfinite(v) for v in record.box)):
        raise ProminenceDataError(f"{where}: box {record.box} is not four finite pixel coordinates")
    for name, value in (("box_area", record.box_area), ("mask_area", record.mask_area)):
        if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ProminenceDataError(f"{where}: {name} {value} is not a fraction of the image in [0, 1]")


def _prepare(
    records: Sequence[ProminenceRecord], group_by_template: bool, n_resamples: int, confidence: float, seed: int
) -> list[_Group]:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 0:
        raise ProminenceDataError(f"n_resamples must be a non-negative integer, got {n_resamples!r}")
    if not 0.0 < confidence < 1.0:
        raise ProminenceDataError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ProminenceDataError(f"seed must be a non-negative integer, got {seed!r}")
    images = records_by_image(records)

    grouped: dict[GroupKey, list[tuple[tuple[int, int], list[ProminenceRecord]]]] = {}
    for (model, object_set, template, _ordering, seed_), image_records in images.items():
        key = (model, template if group_by_template else None)
        grouped.setdefault(key, []).append(((object_set, seed_), image_records))

    groups = []
    for key, members in grouped.items():
        cluster_ids = {cluster: i for i, cluster in enumerate(sorted({cluster for cluster, _ in members}))}
        prepared = [_prepare_image(image_records, cluster_ids[cluster]) for cluster, image_records in members]
        weights = _bootstrap_weights(len(cluster_ids), n_resamples, seed, key)
        groups.append(_Group(key=key, images=prepared, n_clusters=len(cluster_ids), weights=weights))
    return groups


def _prepare_image(image_records: list[ProminenceRecord], cluster: int) -> _Image:
    present = np.array([1.0 if r.present else 0.0 for r in image_records])
    area = np.array([r.area if r.present else 0.0 for r in image_records])
    total = area.sum()
    return _Image(
        ordering=image_records[0].ordering,
        cluster=cluster,
        present=present,
        area=area,
        share=area / total if total > 0 else None,
    )


def _bootstrap_weights(n_clusters: int, n_resamples: int, seed: int, key: GroupKey) -> np.ndarray:
    """Cluster draw counts, seeded by ``seed`` and the group's names (not by which other groups exist)."""
    model, template = key
    entropy = [seed, zlib.crc32(model.encode()), zlib.crc32(("" if template is None else template).encode())]
    rng = np.random.default_rng(entropy)
    return rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_resamples).astype(float)


# --- computations ------------------------------------------------------------------------------------


def _position_rows(group: _Group, confidence: float) -> list[PositionSummary]:
    positions = max(len(image.ordering) for image in group.images)
    shape = (group.n_clusters, positions)
    count, detected, area, share_count, share_sum = (np.zeros(shape) for _ in range(5))
    for image in group.images:
        n, c = len(image.ordering), image.cluster
        count[c, :n] += 1
        detected[c, :n] += image.present
        area[c, :n] += image.area
        if image.share is not None:
            share_count[c, :n] += 1
            share_sum[c, :n] += image.share

    presence = _RatioStat(detected, count, group.weights)
    mean_area = _RatioStat(area, count, group.weights)
    mean_share = _RatioStat(share_sum, share_count, group.weights)
    model, template = group.key
    rows = []
    for k in range(positions):
        presence_k = presence.estimate(k, confidence)
        rows.append(
            PositionSummary(
                model=model,
                template=template,
                position=k + 1,
                measurements=int(count[:, k].sum()),
                detected=int(detected[:, k].sum()),
                presence_rate=presence_k,
                omission_rate=Estimate(1.0 - presence_k.value, 1.0 - presence_k.high, 1.0 - presence_k.low),
                mean_area=mean_area.estimate(k, confidence),
                mean_area_when_detected=_safe_ratio(area[:, k].sum(), detected[:, k].sum()),
                share_measurements=int(share_count[:, k].sum()),
                no_detection_measurements=int(count[:, k].sum() - share_count[:, k].sum()),
                mean_area_share=mean_share.estimate(k, confidence),
            )
        )
    return rows


def _first_mention(group: _Group, confidence: float) -> FirstMentionAdvantage:
    objects = sorted({name for image in group.images for name in image.ordering})
    column = {name: i for i, name in enumerate(objects)}
    shape = (group.n_clusters, len(objects))
    # Per-image differences: columns 0 = presence, 1 = area share.
    diff_sum, diff_count = np.zeros((group.n_clusters, 2)), np.zeros((group.n_clusters, 2))
    # Per-object sums: first / later x presence / share.
    count_first, count_later, present_first, present_later = (np.zeros(shape) for _ in range(4))
    share_n_first, share_n_later, share_first, share_later = (np.zeros(shape) for _ in range(4))
    for image in group.images:
        c = image.cluster
        diff_sum[c, 0] += image.present[0] - image.present[1:].mean()
        diff_count[c, 0] += 1
        if image.share is not None:
            diff_sum[c, 1] += image.share[0] - image.share[1:].mean()
            diff_count[c, 1] += 1
        for position, name in enumerate(image.ordering):
            o = column[name]
            first = position == 0
            (count_first if first else count_later)[c, o] += 1
            (present_first if first else present_later)[c, o] += image.present[position]
            if image.share is not None:
                (share_n_first if first else share_n_later)[c, o] += 1
                (share_first if first else share_later)[c, o] += image.share[position]

    diffs = _RatioStat(diff_sum, diff_count, group.weights)
    presence_gap = _DifferenceStat(
        _RatioStat(present_first, count_first, group.weights), _RatioStat(present_later, count_later, group.weights)
    )
    share_gap = _DifferenceStat(
        _RatioStat(share_first, share_n_first, group.weights), _RatioStat(share_later, share_n_later, group.weights)
    )
    model, template = group.key
    per_object = tuple(
        ObjectFirstMention(
            model=model,
            template=template,
            object=name,
            measurements_first=int(count_first[:, o].sum()),
            measurements_later=int(count_later[:, o].sum()),
            presence_first=float(presence_gap.first.point[o]),
            presence_later=float(presence_gap.later.point[o]),
            presence_advantage=presence_gap.estimate(o, confidence),
            share_measurements_first=int(share_n_first[:, o].sum()),
            share_measurements_later=int(share_n_later[:, o].sum()),
            area_share_first=float(share_gap.first.point[o]),
            area_share_later=float(share_gap.later.point[o]),
            area_share_advantage=share_gap.estimate(o, confidence),
        )
        for name, o in column.items()
    )
    return FirstMentionAdvantage(
        model=model,
        template=template,
        images=len(group.images),
        images_without_detection=sum(image.share is None for image in group.images),
        clusters=group.n_clusters,
        presence=diffs.estimate(0, confidence),
        area_share=diffs.estimate(1, confidence),
        object_controlled_presence=presence_gap.mean_over_columns(confidence),
        object_controlled_area_share=share_gap.mean_over_columns(confidence),
        objects_compared=int(np.isfinite(presence_gap.point).sum()),
        per_object=per_object,
    )


_PAIR_FIELDS = ("n", "share_n", "a_present", "b_present", "a_share", "b_share")


def _pair_effects(group: _Group) -> list[PairOrderEffect]:
    # sums[(a, b)][a_first][field]
    sums: dict[tuple[str, str], dict[bool, dict[str, float]]] = defaultdict(
        lambda: {side: dict.fromkeys(_PAIR_FIELDS, 0.0) for side in (True, False)}
    )
    for image in group.images:
        for i, j in combinations(range(len(image.ordering)), 2):
            (ia, a), (ib, b) = sorted([(i, image.ordering[i]), (j, image.ordering[j])], key=lambda item: item[1])
            side = sums[(a, b)][ia < ib]
            side["n"] += 1
            side["a_present"] += image.present[ia]
            side["b_present"] += image.present[ib]
            if image.share is not None:
                side["share_n"] += 1
                side["a_share"] += image.share[ia]
                side["b_share"] += image.share[ib]

    model, template = group.key
    effects = []
    for (a, b), sides in sorted(sums.items()):
        a_first, b_first = sides[True], sides[False]
        effects.append(
            PairOrderEffect(
                model=model,
                template=template,
                object_a=a,
                object_b=b,
                images_a_first=int(a_first["n"]),
                images_b_first=int(b_first["n"]),
                share_images_a_first=int(a_first["share_n"]),
                share_images_b_first=int(b_first["share_n"]),
                a_presence_effect=_gap(a_first, b_first, "a_present", "n"),
                b_presence_effect=_gap(b_first, a_first, "b_present", "n"),
                a_area_share_effect=_gap(a_first, b_first, "a_share", "share_n"),
                b_area_share_effect=_gap(b_first, a_first, "b_share", "share_n"),
            )
        )
    return effects


def _gap(earlier: dict[str, float], later: dict[str, float], value: str, count: str) -> float:
    return _safe_ratio(earlier[value], earlier[count]) - _safe_ratio(later[value], later[count])


def _comparison_rows(
    positions: list[list[PositionSummary]], first: list[FirstMentionAdvantage], pairs: list[list[PairOrderEffect]]
) -> list[ComparisonRow]:
    by_group = [{row.position: row for row in rows} for rows in positions]
    top = max(max(rows) for rows in by_group)
    rows: list[ComparisonRow] = []
    for metric, attribute in (
        ("presence rate", "presence_rate"),
        ("omission rate", "omission_rate"),
        ("mean area", "mean_area"),
        ("mean area share", "mean_area_share"),
    ):
        for k in range(1, top + 1):
            values = tuple(getattr(rows[k], attribute) if k in rows else None for rows in by_group)
            rows.append(ComparisonRow(f"{metric}, position {k}", values))
    for metric, attribute in (
        ("first-mention advantage, presence", "presence"),
        ("first-mention advantage, area share", "area_share"),
        ("object-controlled first-mention advantage, presence", "object_controlled_presence"),
        ("object-controlled first-mention advantage, area share", "object_controlled_area_share"),
    ):
        rows.append(ComparisonRow(metric, tuple(getattr(item, attribute) for item in first)))
    for metric, attribute in (
        ("mean pair order effect, presence", "mean_presence_effect"),
        ("mean pair order effect, area share", "mean_area_share_effect"),
    ):
        values = []
        for effects in pairs:
            finite = [getattr(e, attribute) for e in effects if math.isfinite(getattr(e, attribute))]
            values.append(Estimate(float(np.mean(finite)) if finite else math.nan, math.nan, math.nan))
        rows.append(ComparisonRow(metric, tuple(values)))
    return rows


# --- bootstrap helpers -------------------------------------------------------------------------------


class _RatioStat:
    """Column-wise ``sum(numerator) / sum(denominator)`` over clusters, and over each bootstrap resample."""

    def __init__(self, numerator: np.ndarray, denominator: np.ndarray, weights: np.ndarray) -> None:
        self.point = _divide(numerator.sum(axis=0), denominator.sum(axis=0))
        self.resampled = _divide(weights @ numerator, weights @ denominator)  # (resamples, columns)

    def estimate(self, column: int, confidence: float) -> Estimate:
        return _estimate(float(self.point[column]), self.resampled[:, column], confidence)


class _DifferenceStat:
    """``first - later`` of two ratio statistics, per column and as an unweighted mean over columns."""

    def __init__(self, first: _RatioStat, later: _RatioStat) -> None:
        self.first, self.later = first, later
        self.point = first.point - later.point
        self.resampled = first.resampled - later.resampled

    def estimate(self, column: int, confidence: float) -> Estimate:
        return _estimate(float(self.point[column]), self.resampled[:, column], confidence)

    def mean_over_columns(self, confidence: float) -> Estimate:
        return _estimate(_finite_mean(self.point), _finite_mean(self.resampled, axis=1), confidence)


def _estimate(point: float, resampled: np.ndarray, confidence: float) -> Estimate:
    finite = resampled[np.isfinite(resampled)]
    if not math.isfinite(point) or finite.size == 0:
        return Estimate(point, math.nan, math.nan)
    low, high = np.quantile(finite, [(1.0 - confidence) / 2, (1.0 + confidence) / 2])
    return Estimate(point, float(low), float(high))


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.full(np.broadcast_shapes(numerator.shape, denominator.shape), np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _finite_mean(values: np.ndarray, axis: int | None = None) -> Any:
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    count = finite.sum(axis=axis)
    if axis is None:
        return float(total / count) if count else math.nan
    return _divide(total, count.astype(float))


def _safe_ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator > 0 else math.nan


def _nan_to_zero(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def _json_float(value: float) -> float | None:
    """JSON has no NaN: undefined values become ``None``."""
    return None if value is None or not math.isfinite(value) else float(value)


def _to_dict(item: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in item.__dataclass_fields__:
        value = getattr(item, name)
        if isinstance(value, Estimate):
            out[name] = value.to_dict()
        elif isinstance(value, float):
            out[name] = _json_float(value)
        elif isinstance(value, tuple) and value and hasattr(value[0], "to_dict"):
            out[name] = [v.to_dict() for v in value]
        else:
            out[name] = value
    return out
