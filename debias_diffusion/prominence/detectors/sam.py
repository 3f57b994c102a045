"""Object masks from boxes with Segment Anything (``SamModel`` + ``SamProcessor``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..measurement import Box
from .pretrained import PretrainedParts, built_model_placement

DEFAULT_SAM_MODEL = "facebook/sam-vit-base"


class SamMasker(PretrainedParts):
    """One binary mask per box prompt: SAM's single-mask output (``multimask_output=False``), as Grounded-SAM.

    The mask is SAM's, not clipped to the box; ``mask_threshold`` (0.0, SAM's own) binarises the
    upscaled mask logits. Loads lazily on the first call (or :meth:`load`).
    """

    model_class, processor_class, what = "SamModel", "SamProcessor", "SAM"

    def __init__(
        self,
        model: str = DEFAULT_SAM_MODEL,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        mask_threshold: float = 0.0,
    ) -> None:
        self._set_parts(model, device, dtype)
        self.mask_threshold = float(mask_threshold)

    @classmethod
    def from_components(
        cls, model: Any, processor: Any, *, model_name: str | None = None, mask_threshold: float = 0.0
    ) -> SamMasker:
        """Wrap an already built ``SamModel`` and ``SamProcessor`` (used where it is, in its dtype)."""
        return cls(**built_model_placement(model, model_name), mask_threshold=mask_threshold)._adopt(model, processor)

    def settings(self) -> dict[str, Any]:
        return {
            "backend": "sam",
            "model": self.model_name,
            "mask_threshold": self.mask_threshold,
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    @torch.inference_mode()
    def masks(self, image: Image.Image, boxes: Sequence[Box]) -> list[np.ndarray]:
        """A boolean ``(height, width)`` mask for each ``(x0, y0, x1, y1)`` box in image pixels."""
        if not boxes:
            return []
        self.load()
        image = image if image.mode == "RGB" else image.convert("RGB")
        inputs = self._processor(
            images=image, input_boxes=[[list(map(float, box)) for box in boxes]], return_tensors="pt"
        )
        outputs = self._model(
            pixel_values=inputs["pixel_values"].to(self.device, self.dtype),
            input_boxes=inputs["input_boxes"].to(self.device, self.dtype),
            multimask_output=False,
        )
        masks = self._processor.post_process_masks(
            outputs.pred_masks.float().cpu(),
            inputs["original_sizes"],
            inputs["reshaped_input_sizes"],
            mask_threshold=self.mask_threshold,
        )[0]  # (boxes, 1, height, width)
        return [mask[0].numpy().astype(bool) for mask in masks]

    def mask_areas(self, image: Image.Image, boxes: Sequence[Box]) -> list[float]:
        """For each box, the fraction of the image's pixels in its mask."""
        return [float(mask.mean()) for mask in self.masks(image, boxes)]
