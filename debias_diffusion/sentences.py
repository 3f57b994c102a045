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
# The last character of a word that may end a sentence (the whitespace is collapsed to " " first).
_CANDIDATE_END = re.compile(r"[.?!…" + re.escape(_CLOSERS) + r"](?= )")
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
    """Return the sentences of ``text``, stripped, in order; ``[]`` for blank text.

    Only a word whose last character is sentence punctuation or a closing quote/bracket can end a
    sentence, so each paragraph's whitespace is collapsed to single spaces and a regular
    expression finds those words; :func:`_ends_sentence` decides each. The Python work is per
    candidate, not per word (long captions are split several times faster).

    Args:
        text: any text (paragraph breaks end sentences too).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    sentences: list[str] = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        flat = " ".join(paragraph.split())
        start = 0
        for candidate in _CANDIDATE_END.finditer(flat):
            end = candidate.end()  # the space after the word
            word_start = flat.rfind(" ", 0, end) + 1
            next_end = flat.find(" ", end + 1)
            next_word = flat[end + 1 :] if next_end < 0 else flat[end + 1 : next_end]
            if _ends_sentence(flat[word_start:end], next_word, 1 if word_start == start else 2):
                sentences.append(flat[start:end])
                start = end + 1
        if start < len(flat):
            sentences.append(flat[start:])
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
