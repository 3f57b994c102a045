"""Annotation files -> caption records (image path, long caption, optional short caption).

Formats: JSONL (one object per line), CSV/TSV (header row, configurable column names) and
ShareGPT4V's JSON list. Readers validate every record they return and raise
:class:`AnnotationError` naming the file and the line or entry. Image paths are kept as written;
datasets resolve relative ones against an image root given separately.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from .errors import AnnotationError, DataFileNotFoundError

#: ShareGPT4V's first 1000 entries are held out as the ShareGPT4V-1k retrieval benchmark:
#: train with ``skip_first=SHAREGPT4V_HOLDOUT``, evaluate with ``limit=SHAREGPT4V_HOLDOUT``.
SHAREGPT4V_HOLDOUT = 1000

FORMATS = ("jsonl", "csv", "tsv", "sharegpt4v")

_T = TypeVar("_T")


@dataclass(frozen=True)
class CaptionRecord:
    """One training pair: image path (as written in the annotations) and its captions."""

    image: str
    long_caption: str
    short_caption: str | None = None


def read_jsonl(
    path: str | os.PathLike,
    *,
    image_key: str = "image",
    caption_key: str = "caption",
    short_caption_key: str | None = "short_caption",
    skip_first: int = 0,
    limit: int | None = None,
) -> list[CaptionRecord]:
    """Read a JSONL file: one object per non-blank line, e.g. ``{"image": "a.jpg", "caption": "..."}``.

    ``skip_first`` / ``limit`` select records by position (blank lines do not count); skipped
    lines are not parsed. A missing or null short caption gives ``None``.
    """
    path = _existing_file(path)
    records = []
    with path.open(encoding="utf-8") as file:
        numbered = ((number, line) for number, line in enumerate(file, 1) if line.strip())
        try:
            for number, line in _window(numbered, skip_first, limit):
                where = f"{path}:{number}"
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError as error:
                    raise AnnotationError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
                if not isinstance(entry, dict):
                    raise AnnotationError(f"{where}: expected a JSON object, got {type(entry).__name__}")
                records.append(_record(entry, where, image_key, caption_key, short_caption_key))
        except UnicodeDecodeError as error:
            raise AnnotationError(f"{path}: not UTF-8 text ({error.reason})") from None
    return records


def read_csv(
    path: str | os.PathLike,
    *,
    image_column: str = "image",
    caption_column: str = "caption",
    short_caption_column: str | None = "short_caption",
    delimiter: str = ",",
    skip_first: int = 0,
    limit: int | None = None,
) -> list[CaptionRecord]:
    """Read a CSV (or, with ``delimiter="\\t"``, TSV) file whose first row names the columns.

    The image and caption columns must exist; the short-caption column is optional (absent
    column or empty cell gives ``None``). Fields holding the delimiter must be quoted.
    """
    path = _existing_file(path)
    records = []
    with path.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.DictReader(file, delimiter=delimiter)
        try:
            header = reader.fieldnames
            if not header:
                raise AnnotationError(f"{path}: empty file; expected a header row naming the columns")
            missing = [column for column in (image_column, caption_column) if column not in header]
            if missing:
                raise AnnotationError(
                    f"{path}: the header has no column {', '.join(map(repr, missing))} (columns: {header}); "
                    "name the columns with image_column= / caption_column="
                )
            short_column = short_caption_column if short_caption_column in header else None
            for row in _window(reader, skip_first, limit):
                where = f"{path}:{reader.line_num}"
                if None in row:
                    raise AnnotationError(
                        f"{where}: {len(header) + len(row[None])} fields but the header has {len(header)}; "
                        "quote fields that contain the delimiter"
                    )
                records.append(_record(row, where, image_column, caption_column, short_column))
        except UnicodeDecodeError as error:
            raise AnnotationError(f"{path}: not UTF-8 text ({error.reason})") from None
        except csv.Error as error:
            raise AnnotationError(f"{path}:{reader.line_num}: malformed CSV ({error})") from None
    return records


def read_sharegpt4v(path: str | os.PathLike, *, skip_first: int = 0, limit: int | None = None) -> list[CaptionRecord]:
    """Read ShareGPT4V's caption JSON: a list of ``{"id", "image", "conversations": [...]}``.

    The long caption is the first ``gpt`` turn; there is no short caption (the training
    augmentation derives it). ``skip_first=SHAREGPT4V_HOLDOUT`` leaves out ShareGPT4V-1k.
    """
    path = _existing_file(path)
    try:
        with path.open(encoding="utf-8") as file:
            entries = json.load(file)
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    except UnicodeDecodeError as error:
        raise AnnotationError(f"{path}: not UTF-8 text ({error.reason})") from None
    if not isinstance(entries, list):
        raise AnnotationError(f"{path}: expected a JSON list of entries, got {type(entries).__name__}")
    return [
        _sharegpt4v_record(entry, f"{path}: entry {i}") for i, entry in _window(enumerate(entries), skip_first, limit)
    ]


def read_annotations(path: str | os.PathLike, *, format: str | None = None, **options: Any) -> list[CaptionRecord]:
    """Read any supported file; ``format`` defaults from the suffix (.jsonl, .csv, .tsv, .json = ShareGPT4V).

    ``options`` go to the format's reader (column/key names, ``skip_first``, ``limit``).
    """
    if format is None:
        suffixes = {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv", ".json": "sharegpt4v"}
        format = suffixes.get(Path(path).suffix.lower())
        if format is None:
            raise AnnotationError(f"{path}: cannot tell the format from the suffix; pass format= one of {FORMATS}")
    if format == "jsonl":
        return read_jsonl(path, **options)
    if format in ("csv", "tsv"):
        if format == "tsv":
            options.setdefault("delimiter", "\t")
        return read_csv(path, **options)
    if format == "sharegpt4v":
        return read_sharegpt4v(path, **options)
    raise ValueError(f"unknown annotation format {format!r}; use one of {FORMATS}")


def _sharegpt4v_record(entry: Any, where: str) -> CaptionRecord:
    if not isinstance(entry, dict):
        raise AnnotationError(f"{where}: expected a JSON object, got {type(entry).__name__}")
    if "id" in entry:
        where = f"{where} (id {entry['id']!r})"
    image = _text(entry, "image", where, required=True)
    conversations = entry.get("conversations")
    if not isinstance(conversations, list):
        raise AnnotationError(f"{where}: 'conversations' must be a list of turns, got {type(conversations).__name__}")
    for turn_index, turn in enumerate(conversations):
        if isinstance(turn, dict) and turn.get("from") in ("gpt", "assistant"):
            caption = _text(turn, "value", f"{where}, conversations[{turn_index}]", required=True)
            return CaptionRecord(image=image, long_caption=caption)
    raise AnnotationError(f"{where}: no turn from 'gpt' in 'conversations' (the long caption)")


def _record(
    entry: Mapping[str, Any], where: str, image_key: str, caption_key: str, short_caption_key: str | None
) -> CaptionRecord:
    return CaptionRecord(
        image=_text(entry, image_key, where, required=True),
        long_caption=_text(entry, caption_key, where, required=True),
        short_caption=None if short_caption_key is None else _text(entry, short_caption_key, where, required=False),
    )


def _text(entry: Mapping[str, Any], key: str, where: str, *, required: bool) -> str | None:
    """The stripped string under ``key``; ``None`` when optional and absent, null or blank."""
    if key not in entry:
        if required:
            raise AnnotationError(f"{where}: no {key!r} field (fields: {sorted(k for k in entry if k is not None)})")
        return None
    value = entry[key]
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise AnnotationError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    text = value.strip()
    if not text and required:
        raise AnnotationError(f"{where}: {key!r} is empty")
    return text or None


def _window(items: Iterable[_T], skip_first: int, limit: int | None) -> Iterator[_T]:
    if skip_first < 0 or (limit is not None and limit < 0):
        raise ValueError(f"skip_first and limit must be >= 0, got skip_first={skip_first}, limit={limit}")
    return islice(items, skip_first, None if limit is None else skip_first + limit)


def _existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(
            f"annotation file {path} {'is a folder, not a file' if path.is_dir() else 'does not exist'}"
        )
    return path
