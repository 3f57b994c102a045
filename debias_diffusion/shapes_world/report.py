"""The world demo's report: ``summary.json`` (every number) and ``report.md`` (one section per step).

Steps: retrieval with the DeBias paper's probes, hidden-state drift against ``clip-77``, generation
quality (:mod:`.quality`), prominence by prompt position and, when run, late-detail curves. The
retrieval and drift numbers come in as plain data (``train_encoder.evaluation`` computes them).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic_io import atomic_write_json, atomic_write_text
from ..late_detail.metrics import LateDetailCurve
from ..late_detail.report import curves_markdown
from ..late_detail.runner import LateDetailRun
from ..prominence.metrics import ModelComparison, compare_models
from ..prominence.runner import ProminenceRun
from .quality import generation_quality
from .world_models import CAVEAT

__all__ = [
    "REAL_MODELS",
    "WorldReportFiles",
    "TARGET_ALL_DETECTED",
    "drift_table",
    "position_table",
    "quality_table",
    "world_report",
    "world_summary",
    "write_world_report",
]

REAL_MODELS = """\
debias-diffusion evaluate-prominence --model stable-diffusion-v1-5/stable-diffusion-v1-5 \\
    --objects examples/prominence_objects.yaml --detector owlv2 \\
    --encoder clip-l=none --encoder longclip-l=longclip-l --encoder debias=exports/debias-clip-l/text_encoder
python -m train_encoder eval --model debias=exports/debias-clip-l/clip --dataset urban1k=data/urban1k \\
    --probe full --probe no_summary --probe shuffled"""
"""The same measurements on SD 1.5 with real weights (GPU, network)."""

TARGET_ALL_DETECTED = 0.70
"""The pipeline's target: every object detected in this share of 2-object images."""

DRIFT_KEY = "mean_cosine_first_77"


@dataclass(frozen=True)
class WorldReportFiles:
    """What :func:`write_world_report` wrote, and the run's total time it reported."""

    summary_json: Path
    report_md: Path
    seconds: float


def drift_table(drift: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Mean hidden-state cosine to ``clip-77`` over positions 0-76, per long encoder."""
    return [
        "| encoder | mean cosine |",
        "| --- | ---: |",
        *[f"| {label} | {d[DRIFT_KEY]:.4f} |" for label, d in drift.items()],
    ]


def quality_table(quality: Mapping[str, Mapping[str, float]]) -> list[str]:
    """All-detected rates of 2- and 3-object images, colour precision and extra-colour rate, per group."""
    lines = [
        "| model | 2-object: all detected | 3-object: all detected | colour precision | images with an extra colour |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for model, stats in quality.items():
        cells = [stats.get(f"{n}-object all detected", float("nan")) for n in (2, 3)]
        cells += [stats["colour precision"], stats["images with an extra colour"]]
        lines.append(f"| {model} | " + " | ".join(f"{value:.1%}" for value in cells) + " |")
    return lines


def position_table(comparison: ModelComparison) -> list[str]:
    """Mean area share and presence by prompt position, and the first-mention advantage, per model."""
    positions = sorted({row.position for row in comparison.positions})
    lines = [
        "| model | " + " | ".join(f"area share @{p}" for p in positions) + " | "
        + " | ".join(f"presence @{p}" for p in positions) + " | first-mention advantage (area share, 95% CI) |",
        "| --- |" + " ---: |" * (2 * len(positions) + 1),
    ]  # fmt: skip
    for first in comparison.first_mention:
        rows = {row.position: row for row in comparison.positions if row.model == first.model}
        shares = [f"{rows[p].mean_area_share.value:.3f}" if p in rows else "" for p in positions]
        presence = [f"{rows[p].presence_rate.value:.0%}" if p in rows else "" for p in positions]
        advantage = first.area_share
        lines.append(f"| {first.model} | " + " | ".join(shares + presence)
                     + f" | {advantage.value:+.3f} [{advantage.low:+.3f}, {advantage.high:+.3f}] |")  # fmt: skip
    return lines


def world_report(
    *,
    retrieval_markdown: str,
    drift: Mapping[str, Mapping[str, float]],
    quality: Mapping[str, Mapping[str, float]],
    comparison: ModelComparison,
    prominence_summary: str,
    seconds: float,
    late_curves: Sequence[LateDetailCurve] | None = None,
    late_summary: str | None = None,
) -> str:
    """``report.md``'s text.

    Args:
        retrieval_markdown: the retrieval table (``train_encoder`` eval's ``markdown()``).
        drift: label -> ``{"mean_cosine_first_77": ...}`` for each long encoder.
        quality: :func:`~.quality.generation_quality`'s result.
        comparison: the prominence records' :func:`~debias_diffusion.prominence.metrics.compare_models`.
        prominence_summary: link to the prominence ``summary.md``, relative to the report.
        seconds: the run's time.
        late_curves: the late-detail curves, when they were run (with ``late_summary``, their summary's link).
    """
    return "\n".join([
        *_introduction(),
        "## 1. Retrieval in the world (R@1 etc., unseen scenes, long captions)", "", retrieval_markdown, "",
        "## 2. Hidden-state drift vs clip-77 (mean cosine over positions 0-76; 1 = unchanged)", "",
        *drift_table(drift), "",
        *_quality_section(quality),
        *_prominence_section(comparison, prominence_summary),
        *([] if late_curves is None else _late_detail_section(late_curves, late_summary)),
        f"Total time: {seconds:.0f} s.",
    ]) + "\n"  # fmt: skip


def world_summary(
    *,
    retrieval_results: Any,
    drift: Mapping[str, Mapping[str, float]],
    quality: Mapping[str, Mapping[str, float]],
    comparison: ModelComparison,
    seconds: float,
    late_curves: Sequence[LateDetailCurve] | None = None,
) -> dict[str, Any]:
    """``summary.json``'s content: every number of the report (arguments as in :func:`world_report`)."""
    summary = {
        "retrieval": retrieval_results,
        "drift_mean_cosine_first_77": {label: values[DRIFT_KEY] for label, values in drift.items()},
        "generation_quality": quality,
        "prominence": comparison.to_dict(),
    }
    if late_curves is not None:
        summary["late_detail"] = {curve.condition: curve.to_dict() for curve in late_curves}
    return summary | {"seconds": round(seconds, 1)}


def write_world_report(
    output_dir: str | Path,
    *,
    retrieval_results: Any,
    retrieval_markdown: str,
    drift: Mapping[str, Mapping[str, float]],
    prominence: ProminenceRun,
    started: float,
    late: LateDetailRun | None = None,
) -> WorldReportFiles:
    """Measure generation quality, compare positions and write ``summary.json`` and ``report.md`` (atomically).

    Args:
        output_dir: the demo's output folder (``prominence`` and ``late`` wrote inside it).
        retrieval_results, retrieval_markdown: ``train_encoder`` eval's ``to_dict()["results"]`` and table.
        drift: label -> drift summary (``train_encoder.evaluation.text_drift``) of each long encoder.
        prominence: the prominence run, measured with the colour detector.
        started: ``time.perf_counter()`` when the run began (the report gives the total time).
        late: the late-detail run, if any.

    """
    output_dir = Path(output_dir)
    quality = generation_quality(prominence.records, prominence.output_dir)
    comparison = compare_models(prominence.records)
    late_curves = None if late is None else late.curves
    seconds = round(time.perf_counter() - started, 1)
    summary = world_summary(retrieval_results=retrieval_results, drift=drift, quality=quality,
                            comparison=comparison, seconds=seconds, late_curves=late_curves)  # fmt: skip
    text = world_report(
        retrieval_markdown=retrieval_markdown, drift=drift, quality=quality, comparison=comparison,
        prominence_summary=_link(prominence.report.summary, output_dir), seconds=summary["seconds"],
        late_curves=late_curves, late_summary=None if late is None else _link(late.report.summary, output_dir),
    )  # fmt: skip
    atomic_write_json(output_dir / "summary.json", summary)
    atomic_write_text(output_dir / "report.md", text)
    return WorldReportFiles(output_dir / "summary.json", output_dir / "report.md", summary["seconds"])


def _introduction() -> list[str]:
    return [
        "# Shapes world: the whole chain offline", "", f"> {CAVEAT}", "",
        "The same measurements on SD 1.5 with real weights (GPU, network; see docs/prominence.md):", "",
        "```bash", REAL_MODELS, "```", "",
    ]  # fmt: skip


def _quality_section(quality: Mapping[str, Mapping[str, float]]) -> list[str]:
    return [
        "## 3. Generation quality (colour detector, list and descriptive prompts)", "",
        f"Target: every object detected in at least {TARGET_ALL_DETECTED:.0%} of 2-object images.", "",
        *quality_table(quality),
    ]  # fmt: skip


def _prominence_section(comparison: ModelComparison, summary_link: str) -> list[str]:
    return [
        "", "## 4. Prominence by prompt position", "",
        "Area share: an object's detected area over the sum of its set's detected areas in that image; "
        "first-mention advantage: position 1's share minus the mean of the later positions' (cluster bootstrap).", "",
        *position_table(comparison), "",
        f"Full report with definitions, plots and image grids: [{summary_link}]({summary_link})", "",
    ]  # fmt: skip


def _late_detail_section(curves: Sequence[LateDetailCurve], summary_link: str | None) -> list[str]:
    lines = ["## 5. Late details: the target mentioned at a token offset, against no-mention controls", "",
             *curves_markdown(curves), ""]  # fmt: skip
    if summary_link:
        lines += [f"Curves, grid and definitions: [{summary_link}]({summary_link})", ""]
    return lines


def _link(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` (both as the runs gave them), with forward slashes."""
    return Path(path).relative_to(folder).as_posix()
