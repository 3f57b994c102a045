"""The prominence report: measurements (CSV + JSON), metrics (JSON), ``summary.md``, plots and image grids.

:func:`write_report` is the one entry point; every file goes through :mod:`debias_diffusion.atomic_io`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic_io import atomic_write_json, atomic_write_text
from ..errors import ProminenceDataError
from .cut_mentions import cut_mentions_markdown, cut_mentions_to_dict, split_by_conditioning
from .grids import ImageOpener, image_opener, write_image_grids
from .measurement import ProminenceRecord
from .measurement_files import write_measurements_csv, write_measurements_json
from .metrics import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    DEFINITIONS,
    Estimate,
    ModelComparison,
    compare_models,
    group_label,
)
from .plots import DEFAULT_PLOT_SIZE, save_position_plot

__all__ = ["NO_CAVEAT", "ReportFiles", "summary_markdown", "write_report"]

NO_CAVEAT = "none given."
"""What the caveat line says when the runner gives none."""


@dataclass(frozen=True)
class ReportFiles:
    """Paths of everything :func:`write_report` wrote."""

    summary: Path
    measurements_csv: Path
    measurements_json: Path
    metrics_json: Path
    plots: tuple[Path, ...]
    grids: tuple[Path, ...]

    def all(self) -> list[Path]:
        return [
            self.summary,
            self.measurements_csv,
            self.measurements_json,
            self.metrics_json,
            *self.plots,
            *self.grids,
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": str(self.summary),
            "measurements_csv": str(self.measurements_csv),
            "measurements_json": str(self.measurements_json),
            "metrics_json": str(self.metrics_json),
            "plots": [str(p) for p in self.plots],
            "grids": [str(p) for p in self.grids],
        }


def write_report(
    records: Sequence[ProminenceRecord],
    output_dir: str | Path,
    *,
    caveat: str | None = None,
    title: str = "Prompt-order prominence",
    images_root: str | Path | None = None,
    open_image: ImageOpener | None = None,
    grid_rows: str = "ordering",
    grid_columns: str = "seed",
    grid_object_sets: Collection[int] | None = None,
    cell_size: int = 256,
    group_by_template: bool = False,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    top_pairs: int = 10,
    plot_size: tuple[int, int] = DEFAULT_PLOT_SIZE,
    run_settings: Mapping[str, Any] | None = None,
) -> ReportFiles:
    """Analyse ``records`` (:func:`~.metrics.compare_models`) and write the report into ``output_dir``.

    Files: ``measurements.csv`` / ``measurements.json`` (one row per record), ``metrics.json``,
    ``summary.md``, ``plots/presence_by_position.png``, ``plots/area_share_by_position.png`` and, when
    ``images_root`` (the folder record image paths are relative to) or ``open_image`` is given,
    ``grids/*.png`` (:func:`~.grids.write_image_grids`). ``caveat`` fills the summary's caveat line (e.g.
    "these are the project's own tiny models"); ``run_settings`` (detector, thresholds, ...) is printed in
    the summary and stored in ``metrics.json``. The records are checked before anything is written.

    Args:
        records: one per object per image (:class:`~.measurement.ProminenceRecord`).
        output_dir: the report folder (created as needed).
        caveat, title: the summary's caveat line and top heading.
        images_root, open_image: where the record images are (a folder, or a function of a record's ``image``);
            neither: no grids.
        grid_rows, grid_columns, grid_object_sets, cell_size: the grids' layout (:func:`~.grids.write_image_grids`).
        group_by_template, n_resamples, confidence, seed: the analysis (:func:`~.metrics.compare_models`).
        top_pairs: pairs (and most-omitted objects) listed per group.
        plot_size: the plots' size in pixels.
        run_settings: the run's settings, printed and stored.

    Raises:
        ProminenceDataError: bad records, or none whose prompt named every object of its set.
    """
    comparison = _analysed_comparison(
        records, group_by_template=group_by_template, n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    output_dir = Path(output_dir)
    measurements_csv = write_measurements_csv(output_dir / "measurements.csv", records)
    measurements_json = write_measurements_json(output_dir / "measurements.json", records)
    metrics_json = _write_metrics(output_dir / "metrics.json", comparison, records, caveat, run_settings)
    plots = _write_position_plots(output_dir / "plots", comparison, plot_size)
    if open_image is None and images_root is not None:
        open_image = image_opener(images_root)
    grids: tuple[Path, ...] = ()
    if open_image is not None:
        grids = tuple(
            write_image_grids(
                records,
                output_dir / "grids",
                open_image,
                rows=grid_rows,
                columns=grid_columns,
                object_sets=grid_object_sets,
                cell_size=cell_size,
            )
        )

    summary = output_dir / "summary.md"
    text = summary_markdown(
        comparison,
        caveat=caveat,
        title=title,
        top_pairs=top_pairs,
        plots=[p.relative_to(output_dir).as_posix() for p in plots],
        grids=None if open_image is None else [p.relative_to(output_dir).as_posix() for p in grids],
        run_settings=run_settings,
    )
    atomic_write_text(summary, text + "\n".join(cut_mentions_markdown(records)))
    return ReportFiles(summary, measurements_csv, measurements_json, metrics_json, plots, grids)


def _analysed_comparison(records: Sequence[ProminenceRecord], **settings: Any) -> ModelComparison:
    """:func:`~.metrics.compare_models` of the records whose prompts named every object; refuses when none did."""
    analysed, _ = split_by_conditioning(records)
    if not analysed:
        raise ProminenceDataError(
            "every image's prompt lost an object to the long-prompt policy, so no image was asked for its whole "
            "set: use shorter templates or sets, a longer text encoder, or long_prompt='chunk'"
        )
    return compare_models(analysed, **settings)


def _write_metrics(
    path: Path,
    comparison: ModelComparison,
    records: Sequence[ProminenceRecord],
    caveat: str | None,
    run_settings: Mapping[str, Any] | None,
) -> Path:
    """``metrics.json``: every metric, the objects cut from prompts, the caveat and the run's settings."""
    atomic_write_json(
        path,
        {
            **comparison.to_dict(),
            "cut_from_prompt": cut_mentions_to_dict(records),
            "caveat": caveat,
            "run_settings": _jsonable(run_settings or {}),
        },
    )
    return path


def _write_position_plots(folder: Path, comparison: ModelComparison, size: tuple[int, int]) -> tuple[Path, Path]:
    """Presence and mean area share by prompt position, one line per group."""
    positions = list(comparison.positions)
    return (
        save_position_plot(folder / "presence_by_position.png", positions, "presence_rate", size=size),
        save_position_plot(folder / "area_share_by_position.png", positions, "mean_area_share", size=size),
    )


def summary_markdown(
    comparison: ModelComparison,
    *,
    caveat: str | None = None,
    title: str = "Prompt-order prominence",
    top_pairs: int = 10,
    plots: Sequence[str] = (),
    grids: Sequence[str] | None = None,
    run_settings: Mapping[str, Any] | None = None,
) -> str:
    """The report's ``summary.md`` text.

    Args:
        comparison: the analysed records (:func:`~.metrics.compare_models`).
        caveat: the caveat line (``None``: :data:`NO_CAVEAT`).
        title: the top heading.
        top_pairs: pairs listed per group, and most-omitted objects listed per group.
        plots: plot paths relative to the summary.
        grids: image-grid paths relative to the summary; ``None`` when no image root was given.
        run_settings: printed as JSON under the overview.
    """
    ci = f"{round(comparison.confidence * 100, 1):g}% CI"
    return "\n".join(
        [
            f"# {title}",
            "",
            f"**Caveat:** {caveat.strip() if caveat else NO_CAVEAT}",
            "",
            *_overview_section(comparison, ci, run_settings),
            *_definitions_section(),
            *_comparison_section(comparison, ci),
            *_position_section(comparison),
            *_first_mention_section(comparison, ci),
            *_pair_effects_section(comparison, top_pairs),
            *_omission_section(comparison, top_pairs),
            *_plots_section(plots),
            *_grids_section(grids),
        ]
    )


def _overview_section(comparison: ModelComparison, ci: str, run_settings: Mapping[str, Any] | None) -> list[str]:
    out = ["## Overview", ""]
    for item in comparison.first_mention:
        out.append(
            f"- **{_md(item.label)}**: {item.images} images in {item.clusters} clusters (object set x seed); "
            f"{item.images_without_detection} images with nothing detected (left out of area shares)."
        )
    grouping = "model and template" if comparison.group_by_template else "model (templates pooled)"
    out += [
        f"- Grouped by {grouping}. Intervals: {ci}, cluster bootstrap, {comparison.n_resamples} resamples, "
        f"seed {comparison.seed}.",
        "",
    ]
    if run_settings:
        out += [
            "Run settings:",
            "",
            "```json",
            json.dumps(_jsonable(run_settings), indent=2, sort_keys=True),
            "```",
            "",
        ]
    return out


def _definitions_section() -> list[str]:
    return ["## Definitions", "", *[f"- **{term}**: {text}" for term, text in DEFINITIONS], ""]


def _comparison_section(comparison: ModelComparison, ci: str) -> list[str]:
    rows = [[row.metric, *(_est(v) for v in row.values)] for row in comparison.rows]
    return ["## Model comparison", "", f"Value [{ci}] per group.", "", *_table(["metric", *comparison.groups], rows)]


def _position_section(comparison: ModelComparison) -> list[str]:
    header = [
        "position",
        "measurements",
        "presence",
        "omission",
        "mean area",
        "mean area share",
        "share n",
        "no-detection n",
    ]
    out = ["## By prompt position", ""]
    for label in comparison.groups:
        rows = [
            [
                str(row.position),
                str(row.measurements),
                _est(row.presence_rate),
                _est(row.omission_rate),
                _est(row.mean_area),
                _est(row.mean_area_share),
                str(row.share_measurements),
                str(row.no_detection_measurements),
            ]
            for row in comparison.positions
            if row.label == label
        ]
        out += [f"### {_md(label)}", "", *_table(header, rows)]
    return out


def _first_mention_section(comparison: ModelComparison, ci: str) -> list[str]:
    header = [
        "group",
        "images",
        "clusters",
        "presence",
        "area share",
        "object-controlled presence",
        "object-controlled area share",
    ]
    rows = [
        [
            _md(item.label),
            str(item.images),
            str(item.clusters),
            _est(item.presence, signed=True),
            _est(item.area_share, signed=True),
            _est(item.object_controlled_presence, signed=True),
            _est(item.object_controlled_area_share, signed=True),
        ]
        for item in comparison.first_mention
    ]
    out = ["## First-mention advantage", "", f"Position 1 minus the mean of positions 2..n [{ci}].", ""]
    out += _table(header, rows)
    for item in comparison.first_mention:
        out += [f"### Per object: {_md(item.label)}", "", *_per_object_table(item.per_object)]
    return out


def _per_object_table(per_object: Sequence[Any]) -> list[str]:
    header = [
        "object",
        "n first",
        "n later",
        "presence first",
        "presence later",
        "presence advantage",
        "share first",
        "share later",
        "area share advantage",
    ]
    rows = [
        [
            _md(obj.object),
            str(obj.measurements_first),
            str(obj.measurements_later),
            _num(obj.presence_first),
            _num(obj.presence_later),
            _est(obj.presence_advantage, signed=True),
            _num(obj.area_share_first),
            _num(obj.area_share_later),
            _est(obj.area_share_advantage, signed=True),
        ]
        for obj in per_object
    ]
    return _table(header, rows)


def _pair_effects_section(comparison: ModelComparison, top_pairs: int) -> list[str]:
    header = [
        "A",
        "B",
        "images A first",
        "images B first",
        "A share effect",
        "B share effect",
        "A presence effect",
        "B presence effect",
    ]
    out = [
        "## Pair order effects",
        "",
        f"Top {top_pairs} pairs per group by the size of the mean area-share effect (A's and B's effects averaged).",
        "",
    ]
    for label in comparison.groups:
        effects = [e for e in comparison.pairs if group_label(e.model, e.template) == label]
        effects.sort(key=lambda e: -abs(e.mean_area_share_effect) if math.isfinite(e.mean_area_share_effect) else 1.0)
        rows = [
            [
                _md(e.object_a),
                _md(e.object_b),
                str(e.images_a_first),
                str(e.images_b_first),
                _num(e.a_area_share_effect, signed=True),
                _num(e.b_area_share_effect, signed=True),
                _num(e.a_presence_effect, signed=True),
                _num(e.b_presence_effect, signed=True),
            ]
            for e in effects[:top_pairs]
        ]
        out += [f"### {_md(label)} ({len(effects)} pair{'' if len(effects) == 1 else 's'})", "", *_table(header, rows)]
    return out


def _omission_section(comparison: ModelComparison, top_pairs: int) -> list[str]:
    omission_rows = [row for row in comparison.rows if row.metric.startswith("omission rate")]
    out = ["## Omission", "", "Named in the prompt but not detected.", ""]
    out += _table(["metric", *comparison.groups], [[r.metric, *(_est(v) for v in r.values)] for r in omission_rows])
    for item in comparison.first_mention:
        missed = sorted(item.per_object, key=lambda obj: -_finite_or(obj.omission_rate, -1.0))
        missed = [obj for obj in missed if obj.omission_rate > 0][:top_pairs]
        if missed:
            out += [
                f"Most often omitted, {_md(item.label)}: "
                + ", ".join(f"{_md(obj.object)} {_num(obj.omission_rate)}" for obj in missed),
                "",
            ]
    return out


def _plots_section(plots: Sequence[str]) -> list[str]:
    if not plots:
        return []
    return ["## Plots", "", *[f"![{Path(plot).stem}]({plot})" for plot in plots], ""]


def _grids_section(grids: Sequence[str] | None) -> list[str]:
    out = ["## Image grids", ""]
    if grids is None:
        return [*out, "None written: no image root was given.", ""]
    if not grids:
        return [*out, "None: no object set was selected.", ""]
    out += ["Boxes, labels and caption lines are coloured by the object's prompt position.", ""]
    return [*out, *[f"- [{Path(grid).stem}]({grid})" for grid in grids], ""]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _num(value: float, *, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _est(estimate: Estimate | None, *, signed: bool = False) -> str:
    if estimate is None or not math.isfinite(estimate.value):
        return "n/a"
    text = _num(estimate.value, signed=signed)
    if math.isfinite(estimate.low) and math.isfinite(estimate.high):
        text += f" [{_num(estimate.low, signed=signed)}, {_num(estimate.high, signed=signed)}]"
    return text


def _finite_or(value: float, default: float) -> float:
    return value if math.isfinite(value) else default


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
