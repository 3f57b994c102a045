"""Caption variants: the caption rewrites of DeBias-CLIP's bias probes, retrieved against the same images.

A caption variant is a name and a function caption -> caption (the paper calls each group a probe); sentences come from
:func:`debias_diffusion.sentences.split_sentences` and are re-joined with single spaces.

=================  ==============================================================================
``full``           the caption unchanged (the reference row)
``filler_1..5``    probe (a): the first two sentences, preceded by 1..5 x "This is a photo."
``first_2``        probe (b): the first two sentences (also ``filler_0``'s caption)
``swap_2``         probe (b): the first two sentences, second one first
``first_only``     probe (b): the first sentence only
``summary_at_4``   probe (c): the first (summary) sentence moved to position 4 (1-based), i.e. after
                   the next three sentences; with fewer than four sentences it goes last
``no_summary``     probe (c): the first sentence removed (a one-sentence caption stays as it is:
                   removing it would leave nothing to encode)
``shuffled``       not from the paper: all sentences in a random order, seeded per caption by
                   ``(seed, caption)``, so it does not depend on the order of the data
=================  ==============================================================================
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from debias_diffusion.sentences import join_sentences, split_sentences

from .datasets import EvalSet

__all__ = [
    "FILLER_SENTENCE",
    "CAPTION_VARIANT_NAMES",
    "CaptionVariant",
    "apply_caption_variant",
    "get_caption_variant",
    "get_caption_variants",
]

FILLER_SENTENCE = "This is a photo."
MAX_FILLERS = 5
SUMMARY_POSITION = 4


@dataclass(frozen=True)
class CaptionVariant:
    """A named caption rewrite. ``variant`` is what result rows and cache keys record."""

    name: str
    transform: Callable[[str], str]
    description: str
    seed: int | None = None

    @property
    def variant(self) -> str:
        return self.name if self.seed is None else f"{self.name}@seed{self.seed}"

    def __call__(self, caption: str) -> str:
        return self.transform(caption)


def _rewrite(edit: Callable[[list[str]], list[str]]) -> Callable[[str], str]:
    def transform(caption: str) -> str:
        sentences = split_sentences(caption)
        return join_sentences(edit(sentences)) if sentences else caption

    return transform


def _fillers(count: int) -> Callable[[list[str]], list[str]]:
    return lambda s: [FILLER_SENTENCE] * count + s[:2]


def _summary_at(position: int) -> Callable[[list[str]], list[str]]:
    def edit(s: list[str]) -> list[str]:
        rest = s[1:]
        return rest[: position - 1] + s[:1] + rest[position - 1 :]

    return edit


def _shuffled(seed: int) -> Callable[[str], str]:
    def transform(caption: str) -> str:
        sentences = split_sentences(caption)
        random.Random(f"{seed}\0{caption}").shuffle(sentences)
        return join_sentences(sentences) if sentences else caption

    return transform


_FIXED: dict[str, tuple[Callable[[str], str], str]] = {
    "full": (lambda caption: caption, "the caption unchanged"),
    **{
        f"filler_{n}": (_rewrite(_fillers(n)), f"first two sentences after {n} x {FILLER_SENTENCE!r}")
        for n in range(1, MAX_FILLERS + 1)
    },
    "first_2": (_rewrite(lambda s: s[:2]), "first two sentences"),
    "swap_2": (_rewrite(lambda s: s[1:2] + s[:1]), "first two sentences, swapped"),
    "first_only": (_rewrite(lambda s: s[:1]), "first sentence only"),
    "summary_at_4": (_rewrite(_summary_at(SUMMARY_POSITION)), "summary sentence moved to position 4"),
    "no_summary": (_rewrite(lambda s: s[1:] if len(s) > 1 else s), "summary sentence removed"),
}
_SEEDED: dict[str, tuple[Callable[[int], Callable[[str], str]], str]] = {
    "shuffled": (_shuffled, "sentences in a seeded random order"),
}

CAPTION_VARIANT_NAMES: tuple[str, ...] = (*_FIXED, *_SEEDED)


def get_caption_variant(name: str, *, seed: int = 0) -> CaptionVariant:
    """The caption variant called ``name``; ``seed`` only matters for random ones."""
    if name in _FIXED:
        transform, description = _FIXED[name]
        return CaptionVariant(name, transform, description)
    if name in _SEEDED:
        factory, description = _SEEDED[name]
        return CaptionVariant(name, factory(seed), description, seed=seed)
    raise ValueError(f"unknown caption variant {name!r}; known: {', '.join(CAPTION_VARIANT_NAMES)}")


def get_caption_variants(names: Sequence[str], *, seed: int = 0) -> list[CaptionVariant]:
    """Resolve several names at once (all checked before any is used)."""
    if isinstance(names, str):
        names = [names]
    return [get_caption_variant(name, seed=seed) for name in names]


def apply_caption_variant(eval_set: EvalSet, variant: CaptionVariant) -> EvalSet:
    """The same images with every caption rewritten by ``variant``."""
    return eval_set.with_captions([variant(c) for c in eval_set.captions], variant.variant)
