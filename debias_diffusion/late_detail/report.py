"""Late-detail report files: records (CSV, JSON), curves (JSON, PNG), prompts, an image grid, summary.md.

Plots use :class:`matplotlib.figure.Figure` with its own Agg canvas (no pyplot), as the prominence plots do.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from ..atomic_io import atomic_save_image, atomic_write_bytes, atomic_write_json, atomic_write_text
from ..prominence.grids import image_opener
from .metrics import DEFINITIONS, LateDetailCurve
from .prompts import LateDetailPrompt
from .records import LateDetailRecord

__all__ = ["LateDetailReport", "curves_markdown", "plot_curves", "write_late_detail_report"]


@dataclass(frozen=True)
class LateDetailReport:
    summary: Path
    curves_json: Path
    curves_plot: Path
    records_csv: Path
    records_json: Path
    prompts: Path
    grid: Path


def write_late_detail_report(
    records: Sequence[LateDetailRecord],
    curves: Sequence[LateDetailCurve],
    prompts: Sequence[LateDetailPrompt],
    folder: str | Path,
    *,
    settings: dict[str, Any],
    images_root: str | Path,
    caveat: str | None = None,
) -> LateDetailReport:
    """Write every report file into ``folder`` (atomically) and return their paths."""
    folder = Path(folder)
    files = LateDetailReport(
        summary=folder / "summary.md", curves_json=folder / "curves.json", curves_plot=folder / "curves.png",
        records_csv=folder / "records.csv", records_json=folder / "records.json",
        prompts=folder / "prompts.jsonl", grid=folder / "grid.png",
    )  # fmt: skip
    rows = [record.to_dict() for record in records]
    atomic_write_json(files.records_json, rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(files.records_csv, buffer.getvalue())
    atomic_write_json(files.curves_json, {"curves": {c.condition: c.to_dict() for c in curves},
                                          "definitions": dict(DEFINITIONS), "settings": settings})  # fmt: skip
    atomic_write_text(files.prompts, "".join(json.dumps(asdict(p)) + "\n" for p in prompts))
    atomic_write_bytes(files.curves_plot, plot_curves(curves))
    atomic_save_image(files.grid, offset_grid(records, images_root))
    text = ["# Late-detail adherence", ""]
    if caveat:
        text += [f"> {caveat}", ""]
    text += curves_markdown(curves)
    text += ["", "![presence by offset](curves.png)", "", "![images by offset](grid.png)", "", "## Definitions", ""]
    text += [f"- **{term}**: {meaning}" for term, meaning in DEFINITIONS]
    text += ["", "## Settings", "", "```json", json.dumps(settings, indent=2, default=str), "```", ""]
    atomic_write_text(files.summary, "\n".join(text))
    return files


def curves_markdown(curves: Sequence[LateDetailCurve]) -> list[str]:
    """One table per condition: offset, conditioned share, presence, baseline, difference [95% CI]; then lengths."""
    lines = ["| condition | window | policy | effective length |", "| --- | ---: | --- | ---: |"]
    lines += [f"| {c.condition} | {c.window} | {c.policy} | {c.effective_length if c.effective_length else 'none'} |"
              for c in curves]  # fmt: skip
    for curve in curves:
        lines += ["", f"### {curve.condition} (window {curve.window}, {curve.policy})", "",
                  "| offset | read by the encoder | presence | baseline | presence - baseline [95% CI] | area |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for i, offset in enumerate(curve.offsets):
            d = curve.difference[i]
            lines.append(
                f"| {offset} | {_pct(curve.conditioned[i])} | {_pct(curve.presence[i].value)} | "
                f"{_pct(curve.baseline[i].value)} | {_signed(d.value)} [{_signed(d.low)}, {_signed(d.high)}] | "
                f"{_num(curve.area[i].value)} |"
            )
    return lines


def plot_curves(curves: Sequence[LateDetailCurve], *, size: tuple[int, int] = (1000, 450), dpi: int = 100) -> bytes:
    """PNG bytes: presence (band = 95% CI) and baseline (dashed) by offset, and their difference, per condition."""
    figure = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    windows = sorted({c.window for c in curves if c.policy == "truncate"})
    for index, curve in enumerate(curves):
        colour = f"C{index % 10}"
        x = list(curve.offsets)
        left.plot(x, [e.value for e in curve.presence], marker="o", color=colour, label=curve.condition)
        left.fill_between(
            x, [e.low for e in curve.presence], [e.high for e in curve.presence], color=colour, alpha=0.15
        )
        left.plot(x, [e.value for e in curve.baseline], linestyle="--", color=colour, alpha=0.7)
        right.plot(x, [e.value for e in curve.difference], marker="o", color=colour, label=curve.condition)
        right.fill_between(x, [e.low for e in curve.difference], [e.high for e in curve.difference], color=colour,
                           alpha=0.15)  # fmt: skip
    for axes, title in ((left, "target presence (dashed: no-mention baseline)"), (right, "presence - baseline")):
        for window in windows:
            axes.axvline(window - 1.5, color="grey", linewidth=0.8, linestyle=":")
        axes.set_title(title)
        axes.set_xlabel("token offset of the mention (start token = 0)")
        axes.grid(alpha=0.3)
    left.set_ylim(-0.02, 1.02)
    right.axhline(0, color="black", linewidth=0.8)
    right.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def offset_grid(records: Sequence[LateDetailRecord], images_root: str | Path, *, cell: int = 128) -> Image.Image:
    """Rows = conditions, columns = offsets: the first item's first seed, mention images; a green bar = target found."""
    first = min(records, key=lambda r: (r.item, r.seed))
    chosen = [r for r in records if r.mentioned and r.item == first.item and r.seed == first.seed]
    conditions = list(dict.fromkeys(r.condition for r in chosen))
    offsets = sorted({r.offset for r in chosen})
    label_width, header = 160, 24
    grid = Image.new("RGB", (label_width + cell * len(offsets), header + cell * len(conditions)), "white")
    draw = ImageDraw.Draw(grid)
    draw.text((4, 4), f"target: {first.target}", fill="black")
    opener = image_opener(images_root)
    for column, offset in enumerate(offsets):
        draw.text((label_width + column * cell + 4, 4 + 10), f"@{offset}", fill="black")
    for row, condition in enumerate(conditions):
        top = header + row * cell
        draw.text((4, top + cell // 2), condition[:24], fill="black")
        for record in (r for r in chosen if r.condition == condition):
            left = label_width + offsets.index(record.offset) * cell
            grid.paste(opener(record.image).convert("RGB").resize((cell - 4, cell - 10)), (left + 2, top + 2))
            draw.rectangle((left + 2, top + cell - 7, left + cell - 2, top + cell - 2),
                           fill=(40, 170, 60) if record.present else (200, 60, 50))  # fmt: skip
    return grid


def _pct(value: float) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.0%}"


def _signed(value: float) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:+.2f}"


def _num(value: float) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.3f}"
