"""Captions in the style of LLM long captions, and generation prompts with a chosen object order.

A long caption is a one-sentence summary, then one sentence per object (size, colour, shape,
coarse position and its relation to the nearest other object), in the mention order::

    A picture of a large red circle, a small blue star and a small green square on a white
    background. The large red circle sits in the top left of the image, to the left of the small
    blue star. The small blue star is at the top of the image, to the right of the large red
    circle. In the bottom right of the image there is the small green square, below the small
    blue star.

The short caption is the summary. Mention orders: ``"size"`` (largest first, ties by object
index, like web captions), ``"random"`` (the scene's own seeded stream) or an explicit ordering
(object indices or phrases such as ``"red circle"``), which is what the prompt builders use so that
the prominence evaluator can permute it. Each object's sentence does not depend on the order:
``varied`` phrasing picks one of :data:`SENTENCE_TEMPLATES` per object from the scene's phrasing
stream, and the related object is always the nearest one. No sentence contains an abbreviation
or an inner full stop, so :func:`debias_diffusion.sentences.split_sentences` gives back exactly
1 + n sentences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..articles import with_article
from ..errors import ShapesWorldError
from .scenes import ORDER_STREAM, PHRASING_STREAM, Scene, scene_rng

__all__ = [
    "SENTENCE_TEMPLATES",
    "Caption",
    "caption_scene",
    "descriptive_prompt",
    "list_prompt",
    "mention_order",
    "object_sentence",
    "summary_sentence",
]

MentionOrder = Literal["size", "random"]
Ordering = MentionOrder | Sequence[int | str]

SENTENCE_TEMPLATES: tuple[str, ...] = (
    "The {object} sits {position} of the image, {relation} the {other}.",
    "The {object} is {position} of the image, {relation} the {other}.",
    "{Position} of the image there is the {object}, {relation} the {other}.",
    "The {object} can be seen {position} of the image, {relation} the {other}.",
    "The {object} is placed {position} of the image, just {relation} the {other}.",
)
"""Per-object sentences; the first is the one used with ``varied=False``."""
_ALONE = "The {object} sits {position} of the image."
_TEXTURE_WORDS = {"none": "", "noise": " with faint noise", "stripes": " with faint stripes"}


@dataclass(frozen=True)
class Caption:
    """A scene's captions and the object indices in the order they are mentioned."""

    long: str
    short: str
    order: tuple[int, ...]


def mention_order(scene: Scene, order: Ordering = "size") -> tuple[int, ...]:
    """Object indices in mention order (see the module docstring)."""
    n = len(scene.objects)
    if isinstance(order, str):
        if order == "size":
            return tuple(sorted(range(n), key=lambda i: (-scene.objects[i].size, i)))
        if order == "random":
            return tuple(int(i) for i in scene_rng(scene.seed, scene.index, ORDER_STREAM).permutation(n))
        raise ShapesWorldError(f"mention order must be 'size', 'random' or a sequence of objects, got {order!r}")
    indices = [_object_index(scene, item) for item in order]
    if sorted(indices) != list(range(n)):
        raise ShapesWorldError(
            f"an ordering must name every object of the scene exactly once; got {list(order)!r} for "
            f"{[obj.phrase for obj in scene.objects]}"
        )
    return tuple(indices)


def summary_sentence(scene: Scene, order: Ordering = "size") -> str:
    """``"A picture of a large red circle and a small blue star on a white background."``"""
    indices = mention_order(scene, order)
    background = scene.background
    setting = f"{with_article(background.colour + ' background')}{_TEXTURE_WORDS[background.texture]}"
    if not indices:
        return f"A picture of {setting}."
    objects = _join([with_article(scene.objects[i].full_phrase) for i in indices])
    return f"A picture of {objects} on {setting}."


def object_sentence(scene: Scene, index: int, *, varied: bool = True) -> str:
    """The sentence describing object ``index``: size, colour, shape, position, relation to the nearest object."""
    obj = scene.objects[index]
    other = scene.nearest(index)
    if other is None:
        return _ALONE.format(object=obj.full_phrase, position=obj.position_phrase)
    template = SENTENCE_TEMPLATES[_template_choices(scene)[index] if varied else 0]
    return template.format(
        object=obj.full_phrase,
        position=obj.position_phrase,
        Position=obj.position_phrase[:1].upper() + obj.position_phrase[1:],
        relation=scene.relation(index, other),
        other=scene.objects[other].full_phrase,
    )


def caption_scene(scene: Scene, order: Ordering = "size", *, varied: bool = True) -> Caption:
    """The long caption (summary, then one sentence per object in ``order``) and the short one (the summary)."""
    indices = mention_order(scene, order)
    summary = summary_sentence(scene, indices)
    sentences = [object_sentence(scene, i, varied=varied) for i in indices]
    return Caption(long=" ".join([summary, *sentences]), short=summary, order=indices)


def list_prompt(scene: Scene, ordering: Ordering, *, sizes: bool = False) -> str:
    """``"a red circle, a blue star and a green square"`` with the objects in ``ordering``
    (``sizes=True`` adds the size words: ``"a large red circle, ..."``)."""
    indices = mention_order(scene, ordering)
    return _join([with_article(scene.objects[i].full_phrase if sizes else scene.objects[i].phrase) for i in indices])


def descriptive_prompt(scene: Scene, ordering: Ordering, *, varied: bool = True) -> str:
    """The long caption with the objects in ``ordering``: summary, then their sentences in that order."""
    return caption_scene(scene, ordering, varied=varied).long


def _template_choices(scene: Scene) -> list[int]:
    rng = scene_rng(scene.seed, scene.index, PHRASING_STREAM)
    return [int(i) for i in rng.integers(0, len(SENTENCE_TEMPLATES), size=len(scene.objects))]


def _object_index(scene: Scene, item: int | str) -> int:
    if isinstance(item, str):
        text = " ".join(item.lower().split())
        for index, obj in enumerate(scene.objects):
            if text in (obj.phrase, obj.full_phrase):
                return index
        raise ShapesWorldError(f"no object {item!r} in the scene; it has {[obj.phrase for obj in scene.objects]}")
    if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item < len(scene.objects):
        raise ShapesWorldError(f"object index {item!r} is not one of 0..{len(scene.objects) - 1}")
    return item


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"
