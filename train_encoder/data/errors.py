"""Errors raised while reading training data. Each names the file (and line or entry) and what to fix."""

from __future__ import annotations

from debias_diffusion.errors import BadImageError as _AnyBadImageError
from debias_diffusion.errors import DebiasDiffusionError


class DataError(DebiasDiffusionError):
    """Base class of the training-data errors."""


class AnnotationError(DataError, ValueError):
    """An annotation file is malformed: the message names the file and the line or entry."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """An annotation file, image root or tar shard does not exist."""


class BadImageError(DataError, _AnyBadImageError):
    """An image is missing, truncated or undecodable. Datasets count and skip these; they never end a run."""


class ShardError(DataError, ValueError):
    """Tar shards cannot feed the requested split (too few shards, or shards without samples)."""
