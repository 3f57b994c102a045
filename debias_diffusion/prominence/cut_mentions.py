"""Objects named in a prompt but cut from it by the pipeline's long-prompt policy, kept apart from the position metrics.

An image whose prompt lost an object's mention was not asked for that object at its position (nor
for the image's full set), so every record of such an image is left out of the position metrics
and counted here instead: per model and prompt position, how many mentions were cut and how
often the cut object appeared anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .measurement import ProminenceRecord

__all__ = ["CutMentions", "cut_mentions", "cut_mentions_markdown", "cut_mentions_to_dict", "split_by_conditioning"]


@dataclass(frozen=True)
class CutMentions:
    """One model and prompt position: the mentions cut there, and how often the object was seen anyway."""

    model: str
    position: int
    cut: int
    present_anyway: int


def split_by_conditioning(
    records: Sequence[ProminenceRecord],
) -> tuple[list[ProminenceRecord], list[ProminenceRecord]]:
    """(records of images whose prompt kept every object, records of images that lost at least one)."""
    cut_images = {record.image_key for record in records if not record.conditioned}
    kept = [record for record in records if record.image_key not in cut_images]
    return kept, [record for record in records if record.image_key in cut_images]


def cut_mentions(records: Sequence[ProminenceRecord]) -> list[CutMentions]:
    """The cut mentions among ``records``, by model and position (positions with none left out)."""
    counts: dict[tuple[str, int], list[int]] = {}
    for record in records:
        if not record.conditioned:
            row = counts.setdefault((record.model, record.position), [0, 0])
            row[0] += 1
            row[1] += bool(record.present)
    return [CutMentions(model, position, *row) for (model, position), row in sorted(counts.items())]


def cut_mentions_to_dict(records: Sequence[ProminenceRecord]) -> dict[str, Any]:
    """The ``metrics.json`` entry: images left out of the position metrics and the cut mentions."""
    _, cut_records = split_by_conditioning(records)
    return {
        "images_left_out": len({record.image_key for record in cut_records}),
        "by_position": [asdict(row) for row in cut_mentions(records)],
    }


def cut_mentions_markdown(records: Sequence[ProminenceRecord]) -> list[str]:
    """The summary's section on cut mentions (empty when no prompt lost an object)."""
    rows = cut_mentions(records)
    if not rows:
        return []
    images = len({record.image_key for record in split_by_conditioning(records)[1]})
    out = [
        "## Objects cut from the prompt",
        "",
        f"The long-prompt policy cut {sum(r.cut for r in rows)} object mentions from {images} images' prompts: those "
        "objects were never asked for, so these images are left out of every metric above.",
        "",
        "| model | position | mentions cut | detected anyway |",
        "| --- | --- | --- | --- |",
    ]
    out += [f"| {row.model} | {row.position} | {row.cut} | {row.present_anyway} |" for row in rows]
    return [*out, ""]
