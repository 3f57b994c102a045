"""Context sentences: the text around a late detail that names no detectable object.

The built-in pool (:data:`NEUTRAL_CONTEXT`) talks about lighting, style, composition and the
backdrop only. It names none of the 80 COCO object classes and none of the shapes world's colours
or shapes, so it can surround objects of real photographs and of the world alike. Users add
their own sentences (a list, or a text file with one sentence a line; ``#`` starts a comment).

Every sentence is checked against the objects of the run: one that shares a word with an object
phrase (``"red circle"`` is named by any sentence with ``red`` or ``circle``, plurals included)
is refused, quoting it, since the detector could not tell its object from the target.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import ProminenceDataError

__all__ = ["NEUTRAL_CONTEXT", "check_context", "context_pool", "naming_words", "read_context_file"]

NEUTRAL_CONTEXT: tuple[str, ...] = (
    # lighting
    "Soft illumination.",
    "The illumination is even.",
    "The lighting is soft and diffuse.",
    "Nothing casts a hard shadow.",
    "The exposure is balanced.",
    "Highlights are gentle and never clipped.",
    "The shadows stay open and detailed.",
    "It looks like an overcast afternoon.",
    "The scene is lit from above and slightly to the left.",
    "There is no glare anywhere in the picture.",
    "The contrast is moderate.",
    "The brightness is the same from edge to edge.",
    "Daylight fills the whole scene.",
    "The lighting feels calm and quiet.",
    # style
    "Clean style.",
    "The style is simple and flat.",
    "It is drawn with crisp edges.",
    "The rendering is sharp.",
    "Everything is in focus.",
    "The image has no visible noise or grain.",
    "The drawing is tidy and precise.",
    "It resembles a page from a textbook.",
    "The style is minimal, with no decoration.",
    "Nothing in it is blurred.",
    "The outlines are smooth.",
    "The finish is matte rather than glossy.",
    "It has the look of a careful illustration.",
    "The picture is plain and uncluttered.",
    "No texture has been added.",
    "The look is modern and restrained.",
    # composition
    "Balanced layout.",
    "The composition is balanced.",
    "There is plenty of empty space.",
    "The view is straight on, from the front.",
    "The camera is level with the scene.",
    "The framing leaves a wide margin on every side.",
    "The layout feels orderly.",
    "Nothing is cut off at the edges.",
    "The scene is seen from a short distance.",
    "The perspective is flat, without depth.",
    "The arrangement is calm and easy to read.",
    "The spacing is generous.",
    "The eye moves easily across the picture.",
    "The picture is wider than it is deep.",
    "The horizon is not visible.",
    "There is no text or lettering anywhere.",
    "No watermark appears.",
    "There is no border around the picture.",
    # background
    "Plain backdrop.",
    "The backdrop is plain.",
    "The background is empty and smooth.",
    "Behind everything there is only a flat backdrop.",
    "The backdrop has no pattern.",
    "The background shows no gradient.",
    "The backdrop stays the same everywhere.",
    "Nothing stands in the far distance.",
    "The space behind is quiet and bare.",
    "The ground is not shown.",
    "The backdrop is clean and unmarked.",
    "The surface behind is smooth.",
    "There are no reflections on the backdrop.",
    "The backdrop fills the frame completely.",
)
"""The built-in neutral pool (3 to 12 CLIP tokens a sentence, so most token gaps can be filled exactly)."""

_NOT_NAMING = frozenset({"a", "an", "the", "of", "with", "and", "in", "on", "at", "to"})


def naming_words(phrase: str) -> frozenset[str]:
    """The words of an object phrase that name it (lower case, articles and prepositions left out)."""
    return frozenset(word for word in _words(phrase) if word not in _NOT_NAMING)


def check_context(sentences: Iterable[str], objects: Iterable[str]) -> None:
    """Raise :class:`ProminenceDataError` quoting the first sentence that names one of ``objects``."""
    names = {obj: naming_words(obj) for obj in objects}
    for sentence in sentences:
        words = set(_words(sentence))
        for obj, naming in names.items():
            shared = sorted(word for word in naming if {word, word + "s", word + "es"} & words)
            if shared:
                raise ProminenceDataError(
                    f"the context sentence {sentence!r} names the object {obj!r} (the word {shared[0]!r}); "
                    "context must name no object of the run: remove or reword it"
                )


def context_pool(
    objects: Iterable[str], user_sentences: Sequence[str] | str | Path = (), *, builtin: bool = True
) -> tuple[str, ...]:
    """The run's context sentences: the built-in pool (``builtin``) plus the user's, checked, duplicates dropped.

    Args:
        objects: every object phrase of the run (targets and anchors); no sentence may name one.
        user_sentences: sentences, or a text file with one sentence a line.
        builtin: include :data:`NEUTRAL_CONTEXT`.
    """
    if isinstance(user_sentences, (str, Path)):
        user_sentences = read_context_file(user_sentences)
    user = [_checked_sentence(sentence) for sentence in user_sentences]
    pool = tuple(dict.fromkeys([*(NEUTRAL_CONTEXT if builtin else ()), *user]))
    if not pool:
        raise ProminenceDataError("the context pool is empty: keep the built-in pool or give context sentences")
    check_context(pool, objects)
    return pool


def read_context_file(path: str | Path) -> list[str]:
    """Sentences from a text file: one a line; blank lines and lines starting with ``#`` are skipped."""
    path = Path(path)
    if not path.is_file():
        raise ProminenceDataError(f"context file {path} does not exist")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _checked_sentence(sentence: object) -> str:
    if not isinstance(sentence, str) or not sentence.strip():
        raise ProminenceDataError(f"a context sentence must be non-empty text, got {sentence!r}")
    text = " ".join(sentence.split())
    if text[-1] not in ".!?":
        text += "."
    return text


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())
