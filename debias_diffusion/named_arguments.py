"""``NAME=VALUE`` command-line arguments (``--encoder clip-l=none``): parsed once, checked the same way."""

from __future__ import annotations

from collections.abc import Sequence

from .errors import UsageError

__all__ = ["parse_named_values"]


def parse_named_values(specs: Sequence[str], flag: str, *, example: str = "name=value") -> dict[str, str]:
    """``["a=x", "b=y"]`` -> ``{"a": "x", "b": "y"}``; a malformed or repeated name raises :class:`UsageError`."""
    pairs: dict[str, str] = {}
    for spec in specs:
        name, sep, value = (part.strip() for part in spec.partition("="))
        if not sep or not name or not value:
            raise UsageError(f"{flag} {spec!r} must look like NAME=VALUE (e.g. {flag} {example})")
        if name in pairs:
            raise UsageError(f"{flag} names {name!r} twice; names label the report's rows")
        pairs[name] = value
    return pairs
