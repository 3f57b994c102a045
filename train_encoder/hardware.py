"""What a training run ran on, recorded in checkpoints and exports (and so in the model card)."""

from __future__ import annotations

import platform
from typing import Any

import torch

__all__ = ["describe_hardware"]


def describe_hardware(accelerator: Any) -> dict[str, Any]:
    """Processes, device type and name, and mixed precision of an ``accelerate.Accelerator``."""
    device = torch.device(accelerator.device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine() or device.type
    return {
        "processes": accelerator.num_processes,
        "device": device.type,
        "device_name": name,
        "mixed_precision": str(accelerator.mixed_precision),
    }
