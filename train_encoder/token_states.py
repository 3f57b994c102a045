"""Per-token hidden states of a fine-tuned text tower vs a reference: which tokens count, how far they moved.

Shared by the SD-compatibility loss (:func:`train_encoder.losses.distillation_loss`) and the drift
report (:func:`train_encoder.evaluation.text_drift`). A Stable Diffusion UNet reads the first
``SD_CONTEXT_LENGTH`` hidden states of its text encoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from debias_diffusion.clip_constants import EOT_ID, OPENAI_CLIP_CONTEXT_LENGTH
from debias_diffusion.renamed import renamed_attributes

__all__ = ["EOT_ID", "SD_CONTEXT_LENGTH", "hidden_state_drift", "real_token_mask"]

SD_CONTEXT_LENGTH = OPENAI_CLIP_CONTEXT_LENGTH

__getattr__ = renamed_attributes(__name__, {"SD_POSITIONS": "SD_CONTEXT_LENGTH"}, globals())


def real_token_mask(input_ids: torch.Tensor, *, eot_id: int = EOT_ID) -> torch.Tensor:
    """``[B, L]`` bool: True from SOT up to and including each row's first EOT (all True if none)."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.ndim != 2:
        raise ValueError("input_ids must be a [batch, positions] tensor of token ids")
    is_eot = input_ids == eot_id
    last = torch.where(is_eot.any(dim=1), is_eot.int().argmax(dim=1), input_ids.shape[1] - 1)
    return torch.arange(input_ids.shape[1], device=input_ids.device) <= last[:, None]


@torch.no_grad()
def hidden_state_drift(
    new_hidden: torch.Tensor, ref_hidden: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Per position, the mean cosine between new and reference hidden states over the real tokens.

    Compares the positions both hold (``min`` of their lengths); ``attention_mask`` (``[B, >= L]``,
    nonzero = real, e.g. ``real_token_mask(ids)``) picks the tokens. A position with no real token
    gives NaN. Returns a float32 ``[L]`` tensor.
    """
    if new_hidden.ndim != 3 or ref_hidden.ndim != 3:
        raise ValueError(
            f"hidden states must be [batch, positions, width], got {tuple(new_hidden.shape)} and {tuple(ref_hidden.shape)}"
        )
    length = min(new_hidden.shape[1], ref_hidden.shape[1])
    if (
        new_hidden.shape[0] != ref_hidden.shape[0]
        or new_hidden.shape[2] != ref_hidden.shape[2]
        or attention_mask.ndim != 2
        or attention_mask.shape[0] != new_hidden.shape[0]
        or attention_mask.shape[1] < length
    ):
        raise ValueError(
            f"shapes do not match: new {tuple(new_hidden.shape)}, reference {tuple(ref_hidden.shape)}, "
            f"attention_mask {tuple(attention_mask.shape)} (needs [batch, >= {length}])"
        )
    mask = attention_mask[:, :length].to(device=new_hidden.device, dtype=torch.float32) != 0
    cosine = F.cosine_similarity(
        new_hidden[:, :length].float(), ref_hidden[:, :length].float().to(new_hidden.device), dim=-1
    )
    counts = mask.sum(dim=0)
    return torch.where(counts > 0, (cosine * mask).sum(dim=0) / counts.clamp(min=1), torch.nan)
