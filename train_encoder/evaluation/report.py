"""Evaluation results: a JSON file (written atomically) and a markdown table.

The table has one row per (dataset, caption variant) and one column per (checkpoint, metric), so several
checkpoints sit side by side. JSON shape::

    {"format": "train_encoder.evaluation/2",
     "models": {NAME: {"source": str, "identity": str, "context_length": int}},
     "results": [{"model": NAME, "dataset": str, "caption_variant": str, "num_images": int, "num_texts": int,
                  "t2i": {"R@1": float, "R@5": float, "R@10": float}, "i2t": {...}}]}

Recalls are percentages. Format 1 (earlier releases) named the caption variant ``"probe"``; it still reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from debias_diffusion.atomic_io import atomic_write_json, atomic_write_text
from debias_diffusion.renamed import renamed_property

__all__ = [
    "DEFAULT_TABLE_METRICS",
    "RESULTS_FORMAT",
    "EvaluationResults",
    "ResultRow",
    "read_results",
    "results_markdown",
    "write_report",
]

RESULTS_FORMAT = "train_encoder.evaluation/2"
#: Earlier formats that still read, each with its row keys renamed since (old -> new).
_READABLE_FORMATS = {RESULTS_FORMAT: {}, "train_encoder.evaluation/1": {"probe": "caption_variant"}}
DEFAULT_TABLE_METRICS = ("t2i/R@1", "i2t/R@1")
JSON_NAME, MARKDOWN_NAME = "results.json", "results.md"


@dataclass(frozen=True)
class ResultRow:
    """Retrieval recalls of one model on one dataset under one caption variant.

    Args:
        model: the model's name in the run.
        dataset: the evaluation set's name.
        caption_variant: the caption variant's name (``full``, ``first_only``, ...; :mod:`.caption_variants`).
        num_images, num_texts: the set's size (texts after the variant).
        t2i, i2t: recalls in percent by metric (``{"R@1": ..., "R@5": ...}``), text-to-image and image-to-text.
    """

    model: str
    dataset: str
    caption_variant: str
    num_images: int
    num_texts: int
    t2i: dict[str, float]
    i2t: dict[str, float]

    probe = renamed_property("probe", "caption_variant")

    def metric(self, spec: str) -> float | None:
        """Value of ``"t2i/R@1"``-style metric, ``None`` if absent."""
        direction, _, name = spec.partition("/")
        values = {"t2i": self.t2i, "i2t": self.i2t}.get(direction)
        if values is None:
            raise ValueError(f"metric {spec!r} must look like 't2i/R@1' or 'i2t/R@5'")
        return values.get(name)


@dataclass
class EvaluationResults:
    """All rows of an evaluation run, with what each model was."""

    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[ResultRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"format": RESULTS_FORMAT, "models": self.models, "results": [asdict(row) for row in self.rows]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationResults:
        """Results from :meth:`to_dict`'s mapping, this format or an earlier one (``"probe"`` rows)."""
        format_name = data.get("format")
        renamed = _READABLE_FORMATS.get(format_name) if isinstance(format_name, str) else None
        if renamed is None:
            raise ValueError(
                f"not an evaluation results file (format {format_name!r}, expected one of "
                f"{', '.join(map(repr, _READABLE_FORMATS))})"
            )
        rows = [ResultRow(**{renamed.get(key, key): value for key, value in row.items()}) for row in data["results"]]
        return cls(dict(data["models"]), rows)

    def markdown(self, metrics: Sequence[str] = DEFAULT_TABLE_METRICS) -> str:
        return results_markdown(self, metrics)


def results_markdown(results: EvaluationResults, metrics: Sequence[str] = DEFAULT_TABLE_METRICS) -> str:
    """Markdown table: rows = dataset / caption variant, columns = checkpoint x metric ("-" where missing)."""
    models = list(results.models) or list(dict.fromkeys(row.model for row in results.rows))
    cells = {(row.dataset, row.caption_variant, row.model): row for row in results.rows}
    header = ["dataset", "caption_variant", *(f"{_cell(m)} {_label(s)}" for m in models for s in metrics)]
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---", "---", *("---:" for _ in models for _ in metrics)]) + " |",
    ]
    for dataset, variant in dict.fromkeys((row.dataset, row.caption_variant) for row in results.rows):
        values = []
        for model in models:
            row = cells.get((dataset, variant, model))
            for spec in metrics:
                value = row.metric(spec) if row is not None else None
                values.append("-" if value is None else f"{value:.1f}")
        lines.append("| " + " | ".join([_cell(dataset), _cell(variant), *values]) + " |")
    return "\n".join(lines) + "\n"


def write_report(
    results: EvaluationResults, output_dir: str | Path, *, metrics: Sequence[str] = DEFAULT_TABLE_METRICS
) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md`` into ``output_dir`` (each atomically); return their paths."""
    output_dir = Path(output_dir)
    json_path, markdown_path = output_dir / JSON_NAME, output_dir / MARKDOWN_NAME
    atomic_write_json(json_path, results.to_dict())
    atomic_write_text(markdown_path, results_markdown(results, metrics))
    return json_path, markdown_path


def read_results(path: str | Path) -> EvaluationResults:
    """Read a ``results.json`` written by :func:`write_report`."""
    return EvaluationResults.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _label(spec: str) -> str:
    direction, _, name = spec.partition("/")
    return f"{direction.upper()} {name}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
