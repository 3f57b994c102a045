"""Open-vocabulary boxes from OWLv2 (``Owlv2ForObjectDetection``), one text query per requested label."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from ...errors import DetectorError
from ..measurement import Box, ObjectMeasurement
from .boxes import absent, centre_to_corners, centres_inside, clip_box, detected
from .inputs import batches, checked_batch_size, checked_inputs, checked_threshold
from .pretrained import PretrainedParts, built_model_placement
from .sam import SamMasker

DEFAULT_OWLV2_MODEL = "google/owlv2-base-patch16-ensemble"
DEFAULT_OWLV2_THRESHOLD = 0.25
"""The OWLv2 score threshold of "A Cat Is A Cat" (the same checkpoint, used to tell which objects appear)."""
DEFAULT_QUERY_TEMPLATE = "a photo of a {label}"
"""OWL-ViT's prompt form (its paper and the transformers examples query "a photo of a cat")."""


class Owlv2Detector(PretrainedParts):
    """Measures each label with its own OWLv2 text query.

    The query for label ``L`` is ``query_template.format(label=L)`` (default "a photo of a red
    cube": give labels as bare noun phrases, or pass ``query_template="{label}"``). OWLv2 scores
    every predicted box against every query independently (a sigmoid per box and query), so a
    label's result does not depend on which other labels are asked for. A label's measurement is
    its highest-scoring box at or above ``threshold`` among boxes whose centre lies in the image
    (OWLv2 pads the image at the bottom/right to a square; boxes centred in that padding are
    dropped), clipped to the image. ``masks`` (a :class:`SamMasker`) adds ``mask_area``.
    """

    name = "owlv2"
    model_class, processor_class, what = "Owlv2ForObjectDetection", "Owlv2Processor", "OWLv2"

    def __init__(
        self,
        model: str = DEFAULT_OWLV2_MODEL,
        threshold: float = DEFAULT_OWLV2_THRESHOLD,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_size: int = 8,
        masks: SamMasker | None = None,
        query_template: str = DEFAULT_QUERY_TEMPLATE,
    ) -> None:
        if "{label}" not in query_template:
            raise DetectorError(f"query_template must contain '{{label}}', got {query_template!r}")
        self._set_parts(model, device, dtype)
        self.threshold = checked_threshold("threshold", threshold)
        self.batch_size = checked_batch_size(batch_size)
        self.masker = masks
        self.query_template = query_template

    @classmethod
    def from_components(
        cls,
        model: Any,
        processor: Any,
        *,
        model_name: str | None = None,
        threshold: float = DEFAULT_OWLV2_THRESHOLD,
        batch_size: int = 8,
        masks: SamMasker | None = None,
        query_template: str = DEFAULT_QUERY_TEMPLATE,
    ) -> Owlv2Detector:
        """Wrap a built ``Owlv2ForObjectDetection`` and ``Owlv2Processor`` (used where it is, in its dtype)."""
        placement = built_model_placement(model, model_name)
        detector = cls(
            **placement, threshold=threshold, batch_size=batch_size, masks=masks, query_template=query_template
        )
        return detector._adopt(model, processor)

    def settings(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model_name,
            "threshold": self.threshold,
            "query_template": self.query_template,
            "box_selection": "highest score per label, centre inside the image",
            "dtype": str(self.dtype).removeprefix("torch."),
            "masks": None if self.masker is None else self.masker.settings(),
        }

    def measure(self, images: Sequence[Image.Image], labels: Sequence[Sequence[str]]) -> list[list[ObjectMeasurement]]:
        images, labels = checked_inputs(images, labels)
        self.load()
        results: list[list[ObjectMeasurement]] = [[] for _ in images]
        for batch in batches([index for index, names in enumerate(labels) if names], self.batch_size):
            measured = self._measure_batch([images[i] for i in batch], [labels[i] for i in batch])
            for index, measurements in zip(batch, measured, strict=True):
                results[index] = measurements
        return results

    @torch.inference_mode()
    def _measure_batch(self, images: list[Image.Image], labels: list[list[str]]) -> list[list[ObjectMeasurement]]:
        queries = [[self.query_template.format(label=name) for name in names] for names in labels]
        self._check_query_lengths(queries)
        inputs = self._processor(text=queries, images=images, return_tensors="pt")
        outputs = self._model(
            input_ids=inputs["input_ids"].to(self.device),
            attention_mask=inputs["attention_mask"].to(self.device),
            pixel_values=inputs["pixel_values"].to(self.device, self.dtype),
        )
        scores = torch.sigmoid(outputs.logits.float()).cpu().numpy()  # (images, boxes, queries)
        # Boxes are relative to the padded square, whose side is the image's longer side.
        boxes = centre_to_corners(outputs.pred_boxes.float().cpu().numpy())
        return [
            self._measure_image(image, names, scores[row], boxes[row] * max(image.size))
            for row, (image, names) in enumerate(zip(images, labels, strict=True))
        ]

    def _measure_image(
        self, image: Image.Image, names: list[str], scores: np.ndarray, boxes: np.ndarray
    ) -> list[ObjectMeasurement]:
        width, height = image.size
        usable = centres_inside(boxes, width, height)
        best: dict[int, tuple[float, Box]] = {}
        for index in range(len(names)):
            label_scores = np.where(usable, scores[:, index], -1.0)
            top = int(label_scores.argmax())
            if label_scores[top] >= self.threshold:
                best[index] = (float(label_scores[top]), clip_box(boxes[top], width, height))
        mask_areas: dict[int, float] = {}
        if self.masker is not None:
            areas = self.masker.mask_areas(image, [box for _, box in best.values()])
            mask_areas = dict(zip(best, areas, strict=True))
        return [
            detected(name, *best[index], width, height, mask_areas.get(index))
            if index in best
            else absent(name, self.masker is not None)
            for index, name in enumerate(names)
        ]

    def _check_query_lengths(self, queries: list[list[str]]) -> None:
        text_config = getattr(getattr(self._model, "config", None), "text_config", None)
        limit = getattr(text_config, "max_position_embeddings", None)
        if limit is None:
            return
        for query in (query for image_queries in queries for query in image_queries):
            length = len(self._processor.tokenizer(query)["input_ids"])
            if length > limit:
                raise DetectorError(
                    f"the OWLv2 query {query!r} is {length} tokens, more than the model's {limit}: shorten the label"
                )
