"""Every measurement as a flat table: CSV and JSON files (one row per record), written atomically, and read back.

Columns: the record's fields, with ``ordering`` as a JSON array, the box as ``box_x0, box_y0, box_x1, box_y1``
(empty / null when there is no box), the derived ``area`` and ``conditioned`` (false: the pipeline cut the
object's mention from the prompt). Floats are written with ``repr`` so they read
back exactly.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic_io import atomic_write_json, atomic_write_text
from ..errors import ProminenceDataError
from .measurement import ProminenceRecord

__all__ = [
    "MEASUREMENT_COLUMNS",
    "measurement_row",
    "read_measurements_csv",
    "read_measurements_json",
    "record_from_row",
    "write_measurements_csv",
    "write_measurements_json",
]

BOX_COLUMNS = ("box_x0", "box_y0", "box_x1", "box_y1")
MEASUREMENT_COLUMNS: tuple[str, ...] = (
    "model",
    "object_set",
    "template",
    "ordering",
    "seed",
    "image",
    "object",
    "position",
    "present",
    "score",
    *BOX_COLUMNS,
    "box_area",
    "mask_area",
    "area",
    "conditioned",
)


def measurement_row(record: ProminenceRecord) -> dict[str, Any]:
    """One record as a flat, JSON-ready row (``ordering`` stays a list here; the CSV writes it as JSON text)."""
    box = record.box if record.box is not None else (None, None, None, None)
    return {  # plain Python types: records may carry numpy scalars, which neither JSON nor repr() keep plain
        "model": str(record.model),
        "object_set": int(record.object_set),
        "template": str(record.template),
        "ordering": [str(name) for name in record.ordering],
        "seed": int(record.seed),
        "image": str(record.image),
        "object": str(record.object),
        "position": int(record.position),
        "present": bool(record.present),
        "score": float(record.score),
        **{name: None if value is None else float(value) for name, value in zip(BOX_COLUMNS, box, strict=True)},
        "box_area": float(record.box_area),
        "mask_area": None if record.mask_area is None else float(record.mask_area),
        "area": float(record.area),
        "conditioned": bool(record.conditioned),
    }


def record_from_row(row: Mapping[str, Any]) -> ProminenceRecord:
    """Inverse of :func:`measurement_row`; also accepts the all-text rows of the CSV file."""
    try:
        ordering = row["ordering"]
        if isinstance(ordering, str):
            ordering = json.loads(ordering)
        box_values = [_optional_float(row[name]) for name in BOX_COLUMNS]
        if any(v is None for v in box_values) and any(v is not None for v in box_values):
            raise ValueError("the box has some coordinates but not all four")
        box = None if box_values[0] is None else tuple(box_values)
        return ProminenceRecord(
            model=str(row["model"]),
            object_set=int(row["object_set"]),
            template=str(row["template"]),
            ordering=tuple(str(name) for name in ordering),
            seed=int(row["seed"]),
            image=str(row["image"]),
            object=str(row["object"]),
            position=int(row["position"]),
            present=_bool(row["present"]),
            score=float(row["score"]),
            box=box,  # type: ignore[arg-type]
            box_area=float(row["box_area"]),
            mask_area=_optional_float(row["mask_area"]),
            conditioned=_bool(row.get("conditioned", True)),  # files from before the column: all conditioned
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ProminenceDataError(f"cannot read a measurement from row {dict(row)!r}: {error}") from error


def write_measurements_csv(path: str | Path, records: Sequence[ProminenceRecord]) -> Path:
    """Write one CSV row per record (header :data:`MEASUREMENT_COLUMNS`), atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MEASUREMENT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        row = measurement_row(record)
        row["ordering"] = json.dumps(row["ordering"], ensure_ascii=False)
        writer.writerow({name: _csv_cell(value) for name, value in row.items()})
    atomic_write_text(path, buffer.getvalue())
    return Path(path)


def write_measurements_json(path: str | Path, records: Sequence[ProminenceRecord]) -> Path:
    """Write the records as a JSON list of :func:`measurement_row` objects, atomically."""
    atomic_write_json(path, [measurement_row(record) for record in records])
    return Path(path)


def read_measurements_csv(path: str | Path) -> list[ProminenceRecord]:
    """Read a file written by :func:`write_measurements_csv`."""
    with open(path, newline="", encoding="utf-8") as handle:
        return [record_from_row(row) for row in csv.DictReader(handle)]


def read_measurements_json(path: str | Path) -> list[ProminenceRecord]:
    """Read a file written by :func:`write_measurements_json`."""
    rows = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(rows, list):
        raise ProminenceDataError(f"{path}: expected a JSON list of measurement rows")
    return [record_from_row(row) for row in rows]


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(f"not a boolean: {value!r}")
