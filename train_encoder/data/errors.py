"""Errors raised while reading training data. Each names the file (and line or entry) and what to fix."""

from __future__ import annotations

from debias_diffusion.errors import BadImageError, DebiasDiffusionError


class DataError(DebiasDiffusionError):
    """Base class of the training-data errors."""


class AnnotationError(DataError, ValueError):
    """An annotation file is malformed: the message names the file and the line or entry."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """An annotation file, image root or tar shard does not exist."""


class BadTrainingImageError(DataError, BadImageError):
    """A training image is missing, truncated or undecodable. Datasets count and skip these; they never end a run.

    A :class:`debias_diffusion.errors.BadImageError` too (the one bad-image error): this name says the image is
    training data, which is skipped rather than fatal.
    """


class ShardError(DataError, ValueError):
    """Tar shards cannot feed the requested split (too few shards, or shards without samples)."""
