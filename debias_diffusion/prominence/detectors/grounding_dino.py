"""Open-vocabulary boxes from Grounding DINO (``GroundingDinoForObjectDetection``), one prompt per image.

The prompt joins the image's labels, lower-cased, with ". " and ends with "." ("red cube. blue
sphere."), as Grounding DINO was trained. A box is kept when its score (its highest token
probability, as Grounding DINO computes it) is at least ``box_threshold``; its phrase is the
tokens whose probability is at least ``text_threshold`` (0.3 / 0.25: the thresholds "CLIP Under
the Microscope" used to measure object areas).

Phrases are mapped back to labels by token position, not by string: each label owns the tokens
of its own span in the prompt, so "cat" in "cat. black cat." is never mistaken for the "cat"
inside "black cat". Each kept box goes to one label, chosen among the labels with at least one
phrase token: a label whose whole span is in the phrase (an exact match) wins over labels only
partly in it; among equals the one with the higher token probability wins (then the earlier
label). So a box phrased "cat" goes to "cat", one phrased "black cat" to "black cat", and a box
lighting "cat" and the "cat" of "black cat" but not "black" goes to "cat". A label's score is
its best token probability on its best box. Labels repeated in one image (after lower-casing)
are asked once and get the same measurement.
"""

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

DEFAULT_GROUNDING_DINO_MODEL = "IDEA-Research/grounding-dino-base"
DEFAULT_BOX_THRESHOLD = 0.3
DEFAULT_TEXT_THRESHOLD = 0.25
PROMPT_FORM = "labels lower-cased, joined with '. ', ending with '.'"
_SEPARATORS = (".", "?")  # Grounding DINO splits its prompt into phrases at these tokens


class GroundingDinoDetector(PretrainedParts):
    """Measures labels with Grounding DINO; see the module docstring for how boxes become labels."""

    name = "grounding-dino"
    model_class, processor_class, what = "GroundingDinoForObjectDetection", "GroundingDinoProcessor", "Grounding DINO"

    def __init__(
        self,
        model: str = DEFAULT_GROUNDING_DINO_MODEL,
        box_threshold: float = DEFAULT_BOX_THRESHOLD,
        text_threshold: float = DEFAULT_TEXT_THRESHOLD,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_size: int = 4,
        masks: SamMasker | None = None,
    ) -> None:
        self._set_parts(model, device, dtype)
        self.box_threshold = checked_threshold("box_threshold", box_threshold)
        self.text_threshold = checked_threshold("text_threshold", text_threshold)
        self.batch_size = checked_batch_size(batch_size)
        self.masker = masks

    @classmethod
    def from_components(
        cls,
        model: Any,
        processor: Any,
        *,
        model_name: str | None = None,
        box_threshold: float = DEFAULT_BOX_THRESHOLD,
        text_threshold: float = DEFAULT_TEXT_THRESHOLD,
        batch_size: int = 4,
        masks: SamMasker | None = None,
    ) -> GroundingDinoDetector:
        """Wrap a built ``GroundingDinoForObjectDetection`` and ``GroundingDinoProcessor`` (used as they are)."""
        placement = built_model_placement(model, model_name)
        detector = cls(
            **placement, box_threshold=box_threshold, text_threshold=text_threshold, batch_size=batch_size, masks=masks
        )
        return detector._adopt(model, processor)

    def settings(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model_name,
            "box_threshold": self.box_threshold,
            "text_threshold": self.text_threshold,
            "prompt": PROMPT_FORM,
            "box_selection": "one label per box by token span (exact span first), highest label score per label",
            "dtype": str(self.dtype).removeprefix("torch."),
            "masks": None if self.masker is None else self.masker.settings(),
        }

    def measure(self, images: Sequence[Image.Image], labels: Sequence[Sequence[str]]) -> list[list[ObjectMeasurement]]:
        """Measures; images are batched with others of their size only, so results do not depend on batching."""
        images, labels = checked_inputs(images, labels)
        for names in labels:
            for name in names:
                if any(separator in name for separator in _SEPARATORS):
                    raise DetectorError(
                        f"label {name!r} contains '.' or '?', which Grounding DINO reads as a phrase break"
                    )
        self.load()
        results: list[list[ObjectMeasurement]] = [[] for _ in images]
        # The processor pads a batch to its largest image, which moves DETR-style boxes a little.
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, (image, names) in enumerate(zip(images, labels, strict=True)):
            if names:
                by_size.setdefault(image.size, []).append(index)
        for indices in by_size.values():
            for batch in batches(indices, self.batch_size):
                measured = self._measure_batch([images[i] for i in batch], [labels[i] for i in batch])
                for index, measurements in zip(batch, measured, strict=True):
                    results[index] = measurements
        return results

    @torch.inference_mode()
    def _measure_batch(self, images: list[Image.Image], labels: list[list[str]]) -> list[list[ObjectMeasurement]]:
        phrases = [_unique_phrases(names) for names in labels]
        prompts = [_prompt(image_phrases) for image_phrases in phrases]
        tokenized = [
            self._token_spans(prompt, image_phrases) for prompt, image_phrases in zip(prompts, phrases, strict=True)
        ]
        inputs = self._processor(images=images, text=prompts, padding="longest", return_tensors="pt")
        for (ids, _), batch_ids in zip(tokenized, inputs["input_ids"].tolist(), strict=True):
            if batch_ids[: len(ids)] != ids:
                raise DetectorError("the Grounding DINO processor tokenized a prompt differently from its tokenizer")
        outputs = self._model(**{key: _placed(value, self.device, self.dtype) for key, value in inputs.items()})
        probs = torch.sigmoid(outputs.logits.float()).cpu().numpy()  # (images, boxes, max text tokens)
        boxes = centre_to_corners(outputs.pred_boxes.float().cpu().numpy())  # relative to each unpadded image
        results = []
        for row, image in enumerate(images):
            best = self._best_boxes(probs[row], boxes[row], tokenized[row][1], image.size)
            results.append(self._measurements(image, labels[row], phrases[row], best))
        return results

    def _token_spans(self, prompt: str, phrases: list[str]) -> tuple[list[int], list[list[int]]]:
        """The prompt's token ids, and the token positions of each phrase (from character offsets)."""
        encoding = self._processor.tokenizer(prompt, return_offsets_mapping=True)
        ids, offsets = list(encoding["input_ids"]), encoding["offset_mapping"]
        limit = getattr(getattr(self._model, "config", None), "max_text_len", None)
        if limit is not None and len(ids) > limit:
            raise DetectorError(
                f"the Grounding DINO prompt for {len(phrases)} labels is {len(ids)} tokens, more than the model's "
                f"{limit}; measure fewer labels per image"
            )
        spans, start = [], 0
        for phrase in phrases:
            end = start + len(phrase)
            spans.append(
                [i for i, (first, last) in enumerate(offsets) if first < last and start <= first and last <= end]
            )
            start = end + 2  # ". "
        if not all(spans):
            raise DetectorError(f"the Grounding DINO tokenizer gave no tokens for a label among {phrases}")
        return ids, spans

    def _best_boxes(
        self, probs: np.ndarray, boxes: np.ndarray, spans: list[list[int]], size: tuple[int, int]
    ) -> dict[int, tuple[float, Box]]:
        """For each phrase index with a kept box: (its token probability, its box in image pixels)."""
        width, height = size
        boxes = boxes * np.array([width, height, width, height])
        kept = (probs.max(axis=1) >= self.box_threshold) & centres_inside(boxes, width, height)
        lit = probs >= self.text_threshold
        phrase_scores = np.stack([probs[:, span].max(axis=1) for span in spans])  # (phrases, boxes)
        any_lit = np.stack([lit[:, span].any(axis=1) for span in spans])
        all_lit = np.stack([lit[:, span].all(axis=1) for span in spans])
        preference = np.where(any_lit, phrase_scores + 2.0 * all_lit, -np.inf)  # exact span first, then score
        owner = preference.argmax(axis=0)
        owned = kept & any_lit.any(axis=0)
        best = {}
        for phrase in range(len(spans)):
            candidates = np.where(owned & (owner == phrase), phrase_scores[phrase], -np.inf)
            top = int(candidates.argmax())
            if np.isfinite(candidates[top]):
                best[phrase] = (float(candidates[top]), clip_box(boxes[top], width, height))
        return best

    def _measurements(
        self, image: Image.Image, names: list[str], phrases: list[str], best: dict[int, tuple[float, Box]]
    ) -> list[ObjectMeasurement]:
        width, height = image.size
        mask_areas: dict[int, float] = {}
        if self.masker is not None:
            areas = self.masker.mask_areas(image, [box for _, box in best.values()])
            mask_areas = dict(zip(best, areas, strict=True))
        results = []
        for name in names:
            phrase = phrases.index(_phrase(name))
            if phrase in best:
                results.append(detected(name, *best[phrase], width, height, mask_areas.get(phrase)))
            else:
                results.append(absent(name, self.masker is not None))
        return results


def _phrase(label: str) -> str:
    return " ".join(label.lower().split())


def _unique_phrases(labels: list[str]) -> list[str]:
    return list(dict.fromkeys(_phrase(label) for label in labels))


def _prompt(phrases: list[str]) -> str:
    return ". ".join(phrases) + "."


def _placed(value: Any, device: torch.device, dtype: torch.dtype) -> Any:
    if not isinstance(value, torch.Tensor):
        return value
    return value.to(device, dtype) if value.is_floating_point() else value.to(device)
