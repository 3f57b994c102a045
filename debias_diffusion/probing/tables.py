"""Markdown tables of percentages, as the probe reports print them."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["markdown_table", "percent"]


def percent(value: float | None) -> str:
    """``0.1234`` -> ``"12.3"``; ``None`` (nothing to measure) -> ``"-"``."""
    return "-" if value is None else f"{100 * value:.1f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: Sequence[int] = ()) -> str:
    """A pipe table; columns whose index is in ``numeric`` are right-aligned."""
    align = ["---:" if i in numeric else "---" for i in range(len(header))]
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines) + "\n"
