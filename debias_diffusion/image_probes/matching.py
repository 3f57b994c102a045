"""Order-sensitive image-text matching: does the right caption beat one naming an absent object?

For each image (objects in slot order: large, small 1, ..., small n-1) one absent object is drawn
(seeded, uniformly among the vocabulary objects not in the image) and two caption pairs are built:

- **scenario 1** (the biases help): right = large object first, then the small ones
  (``"large and small1 and small2"``); wrong = the same with the large object swapped for the
  absent one, which therefore stands first (``"absent and small1 and small2"``).
- **scenario 2** (the biases hurt): right = the small ones first, the large object last
  (``"small1 and small2 and large"``); wrong = the same with the large object swapped for the
  absent one, which therefore stands last (``"small1 and small2 and absent"``).

A pair counts as correct when the right caption's cosine similarity to the image is strictly
higher than the wrong one's (a tie counts as wrong).

``paper_matching_captions`` builds the pairs as the paper's code does (clip-oscope's
``Image_Text_Matching.py``, for images whose large object is named first): one pair per absent
vocabulary object, and in scenario 2 the right caption swaps the large object with the *last*
one (``"small3 and small1 and small2 and large"``) while the wrong caption keeps the large object
first and swaps the last one for the absent object (``"large and small1 and small2 and absent"``). Captions are the paper's list style, names
joined by ``" and "``, optionally with articles.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..text_probes.captions import short_caption

__all__ = ["MatchingCaptions", "MatchingResult", "ScenarioResult", "absent_objects",
           "matching_accuracy", "matching_captions", "paper_matching_captions"]  # fmt: skip


@dataclass(frozen=True)
class MatchingCaptions:
    """One image's right and wrong caption in each scenario, and the absent object they use."""

    absent: str
    right_1: str
    wrong_1: str
    right_2: str
    wrong_2: str
    image: int = 0
    """Index of the image the captions describe (the paper's protocol makes several pairs per image)."""


@dataclass(frozen=True)
class ScenarioResult:
    accuracy: float | None
    """Share of pairs whose right caption scores strictly higher; ``None`` without pairs."""
    correct: int
    pairs: int

    def to_json(self) -> dict:
        return {"accuracy": self.accuracy, "correct": self.correct, "pairs": self.pairs}


@dataclass(frozen=True)
class MatchingResult:
    scenario_1: ScenarioResult
    scenario_2: ScenarioResult

    def to_json(self) -> dict:
        return {"scenario_1": self.scenario_1.to_json(), "scenario_2": self.scenario_2.to_json()}


def absent_objects(image_objects: Sequence[Sequence[int]], vocabulary_size: int, *, seed: int) -> list[int]:
    """One object per image, uniformly among those not in it, from ``random.Random(f"{seed}:absent")``."""
    rng = random.Random(f"{seed}:absent")
    drawn = []
    for objects in image_objects:
        present = set(objects)
        candidates = [i for i in range(vocabulary_size) if i not in present]
        if not candidates:
            raise ValueError(f"an image holds all {vocabulary_size} objects: no absent object to name")
        drawn.append(candidates[rng.randrange(len(candidates))])
    return drawn


def matching_captions(names: Sequence[str], absent: str, *, articles: bool = False, image: int = 0) -> MatchingCaptions:
    """The four captions for an image whose object names are ``names`` in slot order (large first)."""
    large, small = names[0], list(names[1:])

    def caption(items: list[str]) -> str:
        return short_caption(items, articles=articles)

    return MatchingCaptions(
        absent=absent,
        right_1=caption([large, *small]),
        wrong_1=caption([absent, *small]),
        right_2=caption([*small, large]),
        wrong_2=caption([*small, absent]),
        image=image,
    )


def paper_matching_captions(
    names: Sequence[str], vocabulary: Sequence[str], *, image: int = 0
) -> list[MatchingCaptions]:
    """clip-oscope's pairs for one image (``names`` in slot order, large first): one per absent object."""
    large, *small = names

    def caption(items: list[str]) -> str:
        return short_caption(items)

    right_1, right_2 = caption([large, *small]), caption([small[-1], *small[:-1], large])
    return [
        MatchingCaptions(
            absent=absent,
            right_1=right_1,
            wrong_1=caption([absent, *small]),
            right_2=right_2,
            wrong_2=caption([large, *small[:-1], absent]),
            image=image,
        )  # fmt: skip
        for absent in vocabulary
        if absent not in names
    ]


def matching_accuracy(
    right_scores: torch.Tensor | np.ndarray, wrong_scores: torch.Tensor | np.ndarray
) -> ScenarioResult:
    """Share of pairs with ``right > wrong`` (strictly) from two ``[pairs]`` score vectors."""
    right = np.asarray(right_scores.detach().cpu() if isinstance(right_scores, torch.Tensor) else right_scores, float)
    wrong = np.asarray(wrong_scores.detach().cpu() if isinstance(wrong_scores, torch.Tensor) else wrong_scores, float)
    if right.ndim != 1 or right.shape != wrong.shape:
        raise ValueError(f"expected two score vectors of one length, got shapes {right.shape} and {wrong.shape}")
    if not (np.isfinite(right).all() and np.isfinite(wrong).all()):
        raise ValueError("scores hold NaN or infinite values")
    correct = int((right > wrong).sum())
    return ScenarioResult(correct / len(right) if len(right) else None, correct, len(right))
