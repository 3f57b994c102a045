"""Write image-probe results: ``results.json``, ``table.md`` (like the paper's Tables 2 and 6), ``images.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path

from ..atomic_io import atomic_directory
from ..probing.tables import markdown_table, percent
from .results import ImageProbeResults, ModelImageProbeResult

__all__ = ["REPORT_FILES", "markdown_report", "matching_table", "slot_table", "write_report"]

REPORT_FILES = ("results.json", "table.md", "images.jsonl")


def _slot_rows(model: ModelImageProbeResult, n: int, references: int) -> list[list[str]]:
    ior, ioc, every = model.ior, model.ioc, model.ior_all
    ior_cells = [percent(s) for s in ior.shares] if ior.shares is not None else ["-"] * n
    ranks = " / ".join(f"{r:.1f}" for r in every.mean_ranks)
    best = " / ".join(percent(v) for v in every.best_slot_shares)
    return [
        [model.name, "IOR", *ior_cells, f"{ior.qualified}/{ior.total} images qualified"],
        [model.name, "IOR (all images)", *(percent(s) for s in every.top1_shares),
         f"top-1 not in the image: {percent(every.outside)}; mean rank {ranks} of {references}; "
         f"best of its own objects {best}"],
        [model.name, "IOC", *(percent(a) for a in ioc.accuracies),
         f"chance {percent(ioc.chance)}; {ioc.train_size} train / {ioc.test_size} test"],
    ]  # fmt: skip


def slot_table(results: ImageProbeResults) -> str:
    """Rows model x probe (IOR, IOC), columns Large, Small 1, ..., in percent (the paper's Table 2)."""
    n = results.settings.num_objects
    rows = [row for model in results.models for row in _slot_rows(model, n, results.settings.vocabulary_size)]
    return markdown_table(["Model", "Probe", *results.slots, "Details"], rows, numeric=range(2, 2 + n))


def matching_table(results: ImageProbeResults) -> str:
    """Rows model, columns first / second scenario accuracy in percent (the paper's Table 6)."""
    rows = []
    for model in results.models:
        first, second = model.matching.scenario_1, model.matching.scenario_2
        drop = None if first.accuracy is None or second.accuracy is None else first.accuracy - second.accuracy
        rows.append([model.name, percent(first.accuracy), percent(second.accuracy), percent(drop),
                     f"{first.correct}/{first.pairs} and {second.correct}/{second.pairs} pairs right"])  # fmt: skip
    return markdown_table(["Model", "First scenario", "Second scenario", "Drop", "Details"], rows, numeric=(1, 2, 3))


def markdown_report(results: ImageProbeResults) -> str:
    """The settings, both tables, and what the numbers mean."""
    s = results.settings
    return "\n".join(
        [
            "# Image probes: object size bias and order-sensitive matching",
            "",
            f"Source `{s.source}`: {s.num_images} images of {s.num_objects} objects, vocabulary `{s.vocabulary}` "
            f"({s.vocabulary_size} objects), seed {s.seed}. Slots: {s.slot_order}.",
            "",
            slot_table(results),
            "IOR: among images whose top-n retrieved single-object references are exactly their n objects, % whose "
            "top-1 is the object in each slot (no size bias: about 100/n each). IOR (all images, our addition): % of "
            "all images whose top-1 is each slot's object, and each slot's mean rank among all references. "
            "IOC: held-out accuracy (%) of a "
            f"linear probe predicting the object in each slot ({100 * s.test_fraction:.0f}% of images held out).",
            "",
            matching_table(results),
            _matching_note(s.protocol),
            "",
        ]
    )


def _matching_note(protocol: str) -> str:
    if protocol == "paper":
        return (
            "Matching (clip-oscope's pairs): one pair per image and absent object; % of pairs whose right caption "
            "scores higher. First scenario: large object named first, the wrong caption swaps it for the absent "
            "object; second scenario: right = large and last object swapped (large last), wrong = large first and "
            "the last object swapped for the absent one. Drop = first - second."
        )
    return (
        "Matching: % of images whose right caption scores higher than the wrong one. First scenario: large "
        "object named first, the wrong caption swaps it for an absent object; second scenario: the large "
        "object named last, swapped likewise. Drop = first - second."
    )


def write_report(results: ImageProbeResults, output_dir: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write ``REPORT_FILES`` into ``output_dir`` atomically (all or nothing); returns their paths."""
    output_dir = Path(output_dir)
    names = results.vocabulary.objects
    per_image: list[list[dict]] = [[] for _ in results.images]
    for c in results.captions:
        per_image[c.image].append({"absent": c.absent, "scenario_1": [c.right_1, c.wrong_1],
                                   "scenario_2": [c.right_2, c.wrong_2]})  # fmt: skip
    lines = []
    for image, pairs in zip(results.images, per_image, strict=True):
        record = {"image": image.name, "objects": list(image.objects), "names": [names[i] for i in image.objects]}
        # ours: one pair per image, flat; the paper's protocol: one pair per absent object, listed
        record.update(pairs[0] if results.settings.protocol == "ours" else {"pairs": pairs})
        lines.append(json.dumps(record) + "\n")
    with atomic_directory(output_dir, overwrite=overwrite) as scratch:
        (scratch / "results.json").write_text(json.dumps(results.to_json(), indent=2) + "\n", encoding="utf-8")
        (scratch / "table.md").write_text(markdown_report(results), encoding="utf-8")
        (scratch / "images.jsonl").write_text("".join(lines), encoding="utf-8")
    return [output_dir / name for name in REPORT_FILES]
