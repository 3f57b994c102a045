"""Pick and check torch devices before any model is loaded."""

from __future__ import annotations

import torch

from .errors import DeviceError

__all__ = ["resolve_device", "resolve_dtype"]


def resolve_device(device: str | None = None) -> str:
    """``device``, checked to exist here (``None`` or ``"auto"``: ``"cuda"`` when available, else ``"cpu"``).

    Raises:
        DeviceError: the name is not a torch device, or that device is not available on this machine.
    """
    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"{device!r} is not a torch device; use cpu, cuda, cuda:N or mps") from None
    count = _available_count(parsed.type)
    if count == 0:
        raise DeviceError(f"--device {device}: no {parsed.type} device is available on this machine; use --device cpu")
    if parsed.index is not None and count is not None and parsed.index >= count:
        raise DeviceError(
            f"--device {device}: this machine has {count} {parsed.type} device(s), numbered 0..{count - 1}"
        )
    return device


def resolve_dtype(name: str | None, device: str) -> torch.dtype:
    """The weights dtype ``name`` (``None``: float16 on CUDA, float32 elsewhere) for a resolved ``device``."""
    return getattr(torch, name or ("float16" if device.startswith("cuda") else "float32"))


def _available_count(kind: str) -> int | None:
    """How many devices of ``kind`` exist (None: unknown, let torch decide)."""
    if kind == "cpu":
        return None
    if kind == "cuda":
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    if kind == "mps":
        return 1 if torch.backends.mps.is_available() else 0
    backend = getattr(torch, kind, None)
    if backend is not None and hasattr(backend, "is_available"):
        return (backend.device_count() if hasattr(backend, "device_count") else 1) if backend.is_available() else 0
    return 0
