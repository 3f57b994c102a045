"""Refuse broken weights before the expensive work: NaN / infinite values, tensors missing from the files.

A model with NaN weights generates black images and a text encoder loaded from a folder that lacks a
tensor gets that tensor re-initialised at random by ``from_pretrained``: both run to the end and exit 0.
These checks turn them into a :class:`~debias_diffusion.errors.CheckpointError` naming the tensors.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .errors import CheckpointError

__all__ = ["DERIVED_KEY_SUFFIXES", "check_complete", "check_finite", "check_pipeline_weights"]

DERIVED_KEY_SUFFIXES = ("position_ids",)
"""State-dict keys a model rebuilds itself (transformers' ``position_ids`` buffers), so a file may lack them."""
_SHOWN = 5


def check_finite(module: nn.Module, name: str) -> None:
    """Raise :class:`CheckpointError` if any floating-point parameter or buffer of ``module`` holds NaN or inf.

    Args:
        module: the model to check (tensors on the meta device, i.e. not loaded yet, are skipped).
        name: what to call it in the message (e.g. ``"the pipeline's unet"``).
    """
    tensors = list(module.named_parameters()) + list(module.named_buffers())
    bad = [
        key
        for key, tensor in tensors
        if tensor.is_floating_point() and tensor.device.type != "meta" and not bool(torch.isfinite(tensor).all())
    ]
    if bad:
        raise CheckpointError(
            f"{name} has NaN or infinite weights in {len(bad)} tensors ({_listed(bad)}): the file is corrupt or "
            "was saved after training diverged; use another checkpoint"
        )


def check_complete(missing_keys: Iterable[str], source: Any) -> None:
    """Raise :class:`CheckpointError` when weights were missing from ``source``'s files.

    Args:
        missing_keys: ``from_pretrained(..., output_loading_info=True)[1]["missing_keys"]``; transformers
            fills these tensors with random values.
        source: the folder or Hub id, named in the message.
    """
    missing = sorted(key for key in missing_keys if not key.endswith(DERIVED_KEY_SUFFIXES))
    if missing:
        raise CheckpointError(
            f"{source} lacks {len(missing)} weight tensors the model needs ({_listed(missing)}); loading it would "
            "fill them with random values. The weights file is incomplete or belongs to another architecture: "
            "re-export or re-convert the model"
        )


def check_pipeline_weights(pipeline: Any) -> None:
    """:func:`check_finite` on every ``nn.Module`` component of a diffusers pipeline (UNet, VAE, text encoders)."""
    for name, component in getattr(pipeline, "components", {}).items():
        if isinstance(component, nn.Module):
            check_finite(component, f"the pipeline's {name}")


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown if len(keys) <= _SHOWN else f"{shown} and {len(keys) - _SHOWN} more"
