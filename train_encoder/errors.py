"""Errors of the training recipe. Each message names what was wrong and what to do.

The training data's errors live in :mod:`train_encoder.data.errors`, the evaluation sets' in
:mod:`train_encoder.evaluation.datasets`.
"""

from __future__ import annotations

from debias_diffusion.errors import CheckpointError, DebiasDiffusionError

__all__ = ["ConfigError", "UnreadableCheckpointError"]


class ConfigError(DebiasDiffusionError, ValueError):
    """A config file or override is malformed, names an unknown key, or holds a bad value."""


class UnreadableCheckpointError(CheckpointError):
    """A checkpoint's files are truncated, corrupt or missing (not merely from another run)."""
