"""The device a module's inputs must be on, with or without offloading, on every supported diffusers."""

from __future__ import annotations

import itertools

import torch

try:  # diffusers >= 0.40 also knows its own group offloading
    from diffusers.utils.torch_utils import get_module_execution_device as _diffusers_execution_device
except ImportError:
    _diffusers_execution_device = None

__all__ = ["get_module_execution_device"]


def get_module_execution_device(module: torch.nn.Module) -> torch.device:
    """Where ``module``'s forward wants its inputs: an accelerate offload hook's device, else the module's own.

    Args:
        module: a text encoder or any other ``torch.nn.Module`` of a pipeline.
    """
    if _diffusers_execution_device is not None:
        return _diffusers_execution_device(module)
    for submodule in module.modules():
        execution_device = getattr(getattr(submodule, "_hf_hook", None), "execution_device", None)
        if execution_device is not None:
            return torch.device(execution_device)
    device = getattr(module, "device", None)
    if device is None:
        device = next(itertools.chain(module.parameters(), module.buffers())).device
    return torch.device(device)
