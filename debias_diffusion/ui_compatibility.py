"""What other Stable Diffusion front ends assume about a text encoder they load.

ComfyUI and AUTOMATIC1111 load a CLIP-L-shaped text encoder (768 wide, 12 layers: SD 1.x's encoder,
SDXL's first) with their own fixed configuration, which computes the MLP with ``quick_gelu`` (OpenAI
CLIP's activation) whatever the file's config says. An encoder trained or converted with another
activation loads there without error and silently computes something else.
"""

from __future__ import annotations

import warnings

__all__ = ["UICompatibilityWarning", "ui_activation_mismatch", "warn_if_ui_activation_differs"]

CLIP_L_WIDTH = 768
CLIP_L_LAYERS = 12
UI_CLIP_L_ACTIVATION = "quick_gelu"


class UICompatibilityWarning(UserWarning):
    """A model will load in other front ends (ComfyUI, A1111) but compute differently there."""


def ui_activation_mismatch(width: int, layers: int, hidden_act: str) -> str | None:
    """The warning text if a ``width`` x ``layers`` text encoder with ``hidden_act`` would differ in ComfyUI/A1111."""
    if (width, layers) != (CLIP_L_WIDTH, CLIP_L_LAYERS) or hidden_act == UI_CLIP_L_ACTIVATION:
        return None
    return (
        f"this CLIP-L-shaped text encoder ({width} wide, {layers} layers) uses {hidden_act!r}; ComfyUI and A1111 will "
        f"compute it with {UI_CLIP_L_ACTIVATION!r}, so its outputs there differ from diffusers/transformers. Use "
        f"{UI_CLIP_L_ACTIVATION!r} (the activation of OpenAI CLIP and Long-CLIP weights) unless the weights were "
        "trained with another activation"
    )


def warn_if_ui_activation_differs(width: int, layers: int, hidden_act: str, *, stacklevel: int = 3) -> str | None:
    """Issue a :class:`UICompatibilityWarning` when :func:`ui_activation_mismatch` finds one; return its text."""
    message = ui_activation_mismatch(width, layers, hidden_act)
    if message is not None:
        warnings.warn(message, UICompatibilityWarning, stacklevel=stacklevel)
    return message
