"""Line plots of a per-position metric, one line per group with bootstrap error bars (matplotlib, Agg, PNG).

Uses :class:`matplotlib.figure.Figure` with its own Agg canvas: no pyplot, no global figure state.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..atomic_io import atomic_write_bytes
from .metrics import Estimate, PositionSummary

__all__ = ["DEFAULT_PLOT_DPI", "DEFAULT_PLOT_SIZE", "plot_by_position", "save_position_plot"]

DEFAULT_PLOT_SIZE = (800, 500)
"""Width and height of the PNG in pixels."""
DEFAULT_PLOT_DPI = 100


def plot_by_position(
    rows: Sequence[PositionSummary],
    metric: Callable[[PositionSummary], Estimate],
    *,
    title: str,
    ylabel: str,
    ylim: tuple[float, float] | None = (0.0, 1.0),
    size: tuple[int, int] = DEFAULT_PLOT_SIZE,
    dpi: int = DEFAULT_PLOT_DPI,
) -> bytes:
    """PNG bytes: ``metric(row)`` against prompt position, one line per group, error bars = its CI."""
    figure = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    labels = list(dict.fromkeys(row.label for row in rows))
    spread = 0.2 if len(labels) > 1 else 0.0
    for index, label in enumerate(labels):
        group = sorted((row for row in rows if row.label == label), key=lambda row: row.position)
        offset = (index / (len(labels) - 1) - 0.5) * spread if len(labels) > 1 else 0.0
        x = [row.position + offset for row in group]
        estimates = [metric(row) for row in group]
        y = [e.value for e in estimates]
        below = [_bar(e.value - e.low) for e in estimates]
        above = [_bar(e.high - e.value) for e in estimates]
        axes.errorbar(x, y, yerr=[below, above], marker="o", capsize=4, label=label)
    positions = sorted({row.position for row in rows})
    axes.set_xticks(positions)
    axes.set_xlabel("position in the prompt")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    if ylim is not None:
        axes.set_ylim(*ylim)
    axes.grid(True, alpha=0.3)
    if labels:
        axes.legend(loc="best")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def save_position_plot(path: str | Path, rows: Sequence[PositionSummary], metric: str, **kwargs) -> Path:
    """Plot ``metric`` (``"presence_rate"``, ``"mean_area_share"``, ...) of ``rows`` to ``path``, atomically."""
    defaults = {
        "presence_rate": ("Presence rate by prompt position", "presence rate (detected / named)"),
        "omission_rate": ("Omission rate by prompt position", "omission rate (named, not detected)"),
        "mean_area_share": ("Mean area share by prompt position", "mean area share of the image's objects"),
        "mean_area": ("Mean area by prompt position", "mean area (fraction of the image)"),
    }
    title, ylabel = defaults.get(metric, (metric, metric))
    kwargs.setdefault("title", title)
    kwargs.setdefault("ylabel", ylabel)
    png = plot_by_position(rows, lambda row: getattr(row, metric), **kwargs)
    atomic_write_bytes(path, png)
    return Path(path)


def _bar(length: float) -> float:
    """Error-bar length; 0 where the CI is missing (``nan``) or the point lies just outside it."""
    return max(length, 0.0) if math.isfinite(length) else 0.0
