"""Split captions and prompts into sentences without cutting abbreviations, initials or numbers.

Sentences are only ever split at whitespace, so ``" ".join(split_sentences(text))`` is the text
with its whitespace collapsed to single spaces. A sentence ends after a word ending in ``.``, ``?``
or ``!`` (closing quotes and brackets may follow), and at a blank line. It never ends after a known
abbreviation ("Mr.", "e.g.", "approx.", ...), a single-letter initial ("J. R. R."), a dotted name
with a capital ("U.S.", "J.R.R.", "Ph.D."), "No." before a number, or a list number opening a
sentence ("1. a cat"). After an ellipsis, "etc.", another number or a lower-case dotted word
("p.m."), it ends only when the next word starts with a capital letter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["join_sentences", "split_sentences"]

_CLOSERS = "\"')]}»”’›"
_OPENERS = "\"'([{«“‘‹"
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n")
_WORD = re.compile(r"\S+")
_DOTTED = re.compile(r"[^\W\d_]+(?:\.[^\W\d_]+)+")
_NUMBER = re.compile(r"\d+")

# Lower-cased, without the final period. These never end a sentence.
# fmt: off
_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "mx", "dr", "prof", "rev", "fr", "sr", "jr", "st", "mt", "ft", "gen", "col",
    "capt", "lt", "sgt", "gov", "sen", "rep", "hon", "messrs", "mme", "mlle", "e.g", "i.e", "cf",
    "viz", "vs", "approx", "ca", "fig", "figs", "eq", "eqs", "vol", "vols", "pp", "incl", "esp",
    "dept", "al", "resp", "ref", "refs", "sq", "apt", "ave", "blvd", "rd", "inc", "ltd", "co",
    "corp", "bros",
})
# fmt: on
# These end a sentence only when the next word starts with a capital letter.
_WEAK_ABBREVIATIONS = frozenset({"etc"})


def split_sentences(text: str) -> list[str]:
    """Return the sentences of ``text``, stripped, in order; ``[]`` for blank text."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    sentences: list[str] = []
    current: list[str] = []
    matches = list(_WORD.finditer(text))
    for index, match in enumerate(matches):
        word = match.group()
        current.append(word)
        if index + 1 == len(matches):
            break
        following = matches[index + 1]
        gap = text[match.end() : following.start()]
        if _PARAGRAPH_BREAK.search(gap) or _ends_sentence(word, following.group(), len(current)):
            sentences.append(" ".join(current))
            current = []
    if current:
        sentences.append(" ".join(current))
    return sentences


def join_sentences(sentences: Iterable[str]) -> str:
    """Join sentences with single spaces (whitespace inside them collapsed, blanks skipped)."""
    return " ".join(" ".join(sentences).split())


def _ends_sentence(word: str, next_word: str, position: int) -> bool:
    """Whether a sentence ends after ``word``, the ``position``-th word of its sentence."""
    core = word.rstrip(_CLOSERS)
    if core.endswith(("?", "!")):
        return True
    if core.endswith(("..", "…")):
        return _starts_with_capital(next_word)
    if not core.endswith("."):
        return False
    stem = core.lstrip(_OPENERS)[:-1]
    key = stem.lower()
    if key in _ABBREVIATIONS or (len(stem) == 1 and stem.isalpha()):
        return False
    if key == "no":
        return not next_word.lstrip(_OPENERS + "#")[:1].isdigit()
    if _NUMBER.fullmatch(stem):
        # "1. a cat 2. a dog" enumerates; "in 1999. Then" ends a sentence.
        return position > 1 and _starts_with_capital(next_word)
    if _DOTTED.fullmatch(stem):
        # "U.S.", "J.R.R.", "Ph.D." are names or degrees; "p.m." or a host name may end a sentence.
        return stem.islower() and _starts_with_capital(next_word)
    if key in _WEAK_ABBREVIATIONS:
        return _starts_with_capital(next_word)
    return True


def _starts_with_capital(word: str) -> bool:
    first = word.lstrip(_OPENERS)[:1]
    return first.isupper()
