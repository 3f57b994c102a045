"""Multi-object captions for the text probes, from seeded samples of distinct objects.

Two styles:

- ``short``: the paper's list, object names joined by ``" and "`` (``"cat and dog and teapot"``);
  with ``articles=True`` each name gets its indefinite article (``"a cat and a dog and a teapot"``).
- ``long``: one sentence per object, in order (``"There is a cat in the scene. A dog can be seen in
  the picture."``), each sentence's template drawn from ``LONG_TEMPLATES``; with ``summary=True``
  a first sentence counts the objects without naming any (``"A picture of three objects."``), so
  it adds a Long-CLIP-style summary without moving any object forward.

Object sets are ordered tuples of distinct vocabulary indices drawn with ``random.Random(seed)``;
the long style's templates come from a second stream seeded by ``seed`` too, so the short and long
styles of one seed describe the same objects in the same order. Ordered tuples are distinct across
captions (a repeated tuple could sit on both sides of the classification probe's split).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..articles import indefinite_article, with_article
from ..errors import ProbeConfigError
from .vocabulary import Vocabulary

__all__ = [
    "CAPTION_STYLES",
    "LONG_TEMPLATES",
    "Caption",
    "CaptionStyle",
    "build_captions",
    "long_caption",
    "object_phrase",
    "sample_object_sets",
    "short_caption",
    "summary_sentence",
]

CaptionStyle = Literal["short", "long"]
CAPTION_STYLES: tuple[str, ...] = ("short", "long")

LONG_TEMPLATES: tuple[str, ...] = (
    "There is {a} {name} in the scene.",
    "{A} {name} can be seen in the picture.",
    "The image shows {a} {name}.",
    "{A} {name} is visible.",
    "One of the objects is {a} {name}.",
)
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


@dataclass(frozen=True)
class Caption:
    """A caption and the vocabulary indices of its objects, in the order they are mentioned."""

    text: str
    objects: tuple[int, ...]


def sample_object_sets(vocabulary_size: int, num_objects: int, count: int, *, seed: int) -> list[tuple[int, ...]]:
    """``count`` distinct ordered tuples of ``num_objects`` distinct indices in ``range(vocabulary_size)``."""
    _check_sizes(vocabulary_size, num_objects, count)
    rng = random.Random(seed)
    seen: set[tuple[int, ...]] = set()
    sets: list[tuple[int, ...]] = []
    while len(sets) < count:
        drawn = tuple(rng.sample(range(vocabulary_size), num_objects))
        if drawn not in seen:
            seen.add(drawn)
            sets.append(drawn)
    return sets


def object_phrase(name: str, *, articles: bool = False) -> str:
    """``name``, or ``"a name"`` / ``"an name"`` with ``articles``."""
    return with_article(name) if articles else name


def short_caption(names: Sequence[str], *, articles: bool = False) -> str:
    """The paper's list caption: ``"cat and dog and teapot"`` (``"a cat and a dog and a teapot"``)."""
    return " and ".join(object_phrase(name, articles=articles) for name in names)


def summary_sentence(num_objects: int) -> str:
    """``"A picture of three objects."``: counts the objects, names none."""
    number = _NUMBER_WORDS[num_objects] if num_objects < len(_NUMBER_WORDS) else str(num_objects)
    return f"A picture of {number} objects."


def long_caption(names: Sequence[str], *, rng: random.Random, summary: bool = False) -> str:
    """One sentence per object (template drawn from ``rng``), optionally after ``summary_sentence``."""
    sentences = [summary_sentence(len(names))] if summary else []
    for name in names:
        article = indefinite_article(name)
        template = LONG_TEMPLATES[rng.randrange(len(LONG_TEMPLATES))]
        sentences.append(template.format(a=article, A=article.capitalize(), name=name))
    return " ".join(sentences)


def build_captions(
    vocabulary: Vocabulary,
    *,
    num_objects: int,
    count: int,
    style: CaptionStyle = "short",
    seed: int = 0,
    articles: bool = False,
    summary: bool = False,
) -> list[Caption]:
    """``count`` captions of ``num_objects`` distinct objects each, in ``style``; seeded throughout."""
    if style not in CAPTION_STYLES:
        raise ProbeConfigError(f"unknown caption style {style!r}; choose one of {', '.join(CAPTION_STYLES)}")
    sets = sample_object_sets(len(vocabulary), num_objects, count, seed=seed)
    template_rng = random.Random(f"{seed}:long-templates")
    captions = []
    for objects in sets:
        names = [vocabulary.objects[i] for i in objects]
        text = (
            short_caption(names, articles=articles)
            if style == "short"
            else long_caption(names, rng=template_rng, summary=summary)
        )
        captions.append(Caption(text, objects))
    return captions


def _check_sizes(vocabulary_size: int, num_objects: int, count: int) -> None:
    for label, value in (("number of objects", num_objects), ("number of captions", count)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProbeConfigError(f"the {label} must be an integer, got {value!r}")
    if num_objects < 2:
        raise ProbeConfigError(f"captions need at least 2 objects to compare positions, got {num_objects}")
    if num_objects > vocabulary_size:
        raise ProbeConfigError(
            f"{num_objects} distinct objects per caption, but the vocabulary holds only {vocabulary_size}"
        )
    if count < 1:
        raise ProbeConfigError(f"the number of captions must be at least 1, got {count}")
    possible = math.perm(vocabulary_size, num_objects)
    if count > possible:
        raise ProbeConfigError(
            f"{count} captions asked for, but {vocabulary_size} objects make only {possible} distinct ordered "
            f"sets of {num_objects}; ask for fewer captions or use a larger vocabulary"
        )
