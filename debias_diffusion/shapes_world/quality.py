"""Does the world's pipeline draw what it is asked for? Generation quality measured by colour.

The colour detector (:class:`~debias_diffusion.prominence.detectors.ColourDetector`) finds each palette
colour's pixels, so an image can be checked for the requested objects (one colour each), for how much
of its coloured area has a requested colour, and for colours nobody asked for.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ShapesWorldError
from ..image_preprocessing import load_image
from ..prominence.detectors import ColourDetector
from ..prominence.measurement import ProminenceRecord
from ..prominence.metrics import records_by_image
from .geometry import SHAPES
from .scenes import COLOURS

__all__ = [
    "ColourCounts",
    "ObjectPair",
    "completeness_vs_reference",
    "generation_quality",
    "pair_prompt",
    "pair_quality",
    "random_pairs",
]

ObjectPair = tuple[tuple[str, str], tuple[str, str]]
"""Two ``(colour, shape)`` objects of distinct colours, in mention order."""


@dataclass
class ColourCounts:
    """Colour accuracy over images: which share of coloured pixels has a requested colour, and how
    often an unrequested palette colour covers at least the detector's ``min_area``."""

    requested_pixels: int = 0
    coloured_pixels: int = 0
    images: int = 0
    images_with_extra: int = 0

    def add(self, masks: Mapping[str, np.ndarray], wanted: set[str], min_area: float) -> None:
        """Count one image from its ``ColourDetector.colour_masks``; ``wanted``: the requested colours."""
        self.coloured_pixels += sum(int(m.sum()) for m in masks.values())
        self.requested_pixels += sum(int(masks[c].sum()) for c in wanted)
        self.images += 1
        self.images_with_extra += any(m.mean() >= min_area for c, m in masks.items() if c not in wanted)

    @property
    def precision(self) -> float:
        """Share of coloured pixels in a requested colour (0 when no pixel is coloured)."""
        return self.requested_pixels / self.coloured_pixels if self.coloured_pixels else 0.0

    @property
    def extra_rate(self) -> float:
        """Share of images with an unrequested colour (0 before any image)."""
        return self.images_with_extra / self.images if self.images else 0.0


def generation_quality(
    records: Sequence[ProminenceRecord], images_root: str | Path, detector: ColourDetector | None = None
) -> dict[str, dict[str, float]]:
    """Generation quality of a prominence run, per model and per ``"MODEL / TEMPLATE"``.

    For each set size ``n``: ``"n-object all detected"`` (share of images with every requested object
    present) and ``"n-object images"``; over all images: ``"colour precision"`` and ``"images with an
    extra colour"`` (:class:`ColourCounts`). Objects are phrases whose first word is their colour.

    Args:
        records: the run's records (``ProminenceRun.records``), measured with the colour detector.
        images_root: the folder the records' ``image`` paths are relative to (``ProminenceRun.output_dir``).
        detector: the colour detector that measured them (default: ``ColourDetector()``).
    """
    detector = ColourDetector() if detector is None else detector
    counts: dict[str, dict[str, list[int]]] = {}
    colours: dict[str, ColourCounts] = {}
    for (model, _, template, *_), members in records_by_image(records).items():
        image = load_image(Path(images_root) / members[0].image).convert("RGB")
        masks = detector.colour_masks(image)
        wanted = {record.object.split()[0] for record in members}
        for group in (model, f"{model} / {template}"):
            found = counts.setdefault(group, {}).setdefault(f"{len(members)}-object", [0, 0])
            found[0] += all(record.present for record in members)
            found[1] += 1
            colours.setdefault(group, ColourCounts()).add(masks, wanted, detector.min_area)
    return {
        group: {
            **{f"{size} all detected": found / total for size, (found, total) in sorted(sizes.items())},
            **{f"{size} images": total for size, (_, total) in sorted(sizes.items())},
            "colour precision": colours[group].precision,
            "images with an extra colour": colours[group].extra_rate,
        }
        for group, sizes in counts.items()
    }


def completeness_vs_reference(
    records: Sequence[ProminenceRecord],
    reference: str,
    *,
    n_resamples: int = 4000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Each model's completeness (share of images with every requested object present) and its
    difference from ``reference``'s, paired by image (object set, ordering, template, seed), with a
    cluster-bootstrap interval over (object set, seed) clusters, as the prominence metrics resample.

    Args:
        records: a prominence run's records; every model must have the reference's images.
        reference: the model every other one is compared with (e.g. ``"CLIP-77"``).
        n_resamples: bootstrap resamples.
        confidence: the interval's coverage.
        seed: the bootstrap's seed.

    Returns:
        ``{model: {"complete", "difference", "ci_low", "ci_high", "images"}}``, the reference first.
    """
    complete: dict[str, dict[tuple, bool]] = {}
    for (model, object_set, template, ordering, seed_), members in records_by_image(records).items():
        complete.setdefault(model, {})[(object_set, template, ordering, seed_)] = all(r.present for r in members)
    if reference not in complete:
        raise ShapesWorldError(f"no records of the reference model {reference!r}; the run has {sorted(complete)}")
    images = sorted(complete[reference])
    clusters = sorted({(key[0], key[3]) for key in images})
    column = {cluster: i for i, cluster in enumerate(clusters)}
    weights = np.random.default_rng(seed).multinomial(
        len(clusters), np.full(len(clusters), 1.0 / len(clusters)), size=n_resamples
    )
    tail = 100 * (1 - confidence) / 2
    result = {}
    for model in [reference, *(name for name in complete if name != reference)]:
        missing = [key for key in images if key not in complete[model]]
        if missing:
            raise ShapesWorldError(f"{model!r} lacks {len(missing)} of {reference!r}'s images (e.g. {missing[0]})")
        done, difference, count = (np.zeros(len(clusters)) for _ in range(3))
        for key in images:
            c = column[(key[0], key[3])]
            done[c] += complete[model][key]
            difference[c] += complete[model][key] - complete[reference][key]
            count[c] += 1
        resampled = (weights @ difference) / (weights @ count)
        low, high = np.percentile(resampled, [tail, 100 - tail])
        result[model] = {
            "complete": float(done.sum() / count.sum()),
            "difference": float(difference.sum() / count.sum()),
            "ci_low": float(low),
            "ci_high": float(high),
            "images": len(images),
        }
    return result


def random_pairs(count: int, seed: int) -> list[ObjectPair]:
    """``count`` seeded pairs of objects: two distinct colours, any shapes."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        first, second = rng.sample(COLOURS, 2)
        pairs.append(((first, rng.choice(SHAPES)), (second, rng.choice(SHAPES))))
    return pairs


def pair_prompt(pair: ObjectPair, style: str) -> str:
    """``"list"``: "a red circle and a blue star"; ``"summary"``: the training captions' summary form."""
    (c1, s1), (c2, s2) = pair
    if style == "list":
        return f"a {c1} {s1} and a {c2} {s2}"
    if style == "summary":
        return f"A picture of a large {c1} {s1} and a small {c2} {s2} on a white background."
    raise ShapesWorldError(f"unknown prompt style {style!r}; use 'summary' or 'list'")


def pair_quality(
    images: Sequence[Image.Image], pairs: Sequence[ObjectPair], detector: ColourDetector | None = None
) -> dict[str, Any]:
    """How well ``images`` (one per pair, same order) show their pairs, measured by colour.

    Returns ``all_objects_rate`` (images with both objects), ``object_recall`` (objects found) split into
    ``first_object_rate`` / ``second_object_rate`` by mention order, ``colour_precision`` and
    ``extra_colour_rate`` (:class:`ColourCounts`), and each position's mean detected area.

    Args:
        images: the generated images.
        pairs: the pair each image was asked for.
        detector: the colour detector (default: ``ColourDetector()``).
    """
    if not pairs or len(images) != len(pairs):
        raise ShapesWorldError(
            f"need one image per pair and at least one pair, got {len(images)} images, {len(pairs)} pairs"
        )
    detector = ColourDetector() if detector is None else detector
    measured = detector.measure(list(images), [[f"{c} {s}" for c, s in pair] for pair in pairs])
    present = np.array([[m.present for m in row] for row in measured])
    colours = ColourCounts()
    for image, pair in zip(images, pairs, strict=True):
        colours.add(detector.colour_masks(image), {c for c, _ in pair}, detector.min_area)
    return {
        "all_objects_rate": float(present.all(axis=1).mean()),
        "object_recall": float(present.mean()),
        "first_object_rate": float(present[:, 0].mean()),
        "second_object_rate": float(present[:, 1].mean()),
        "colour_precision": colours.precision,
        "extra_colour_rate": colours.extra_rate,
        "first_object_mean_area": float(np.mean([row[0].mask_area or 0.0 for row in measured])),
        "second_object_mean_area": float(np.mean([row[1].mask_area or 0.0 for row in measured])),
    }
