"""The indefinite article of a noun phrase in generated prompts and captions ("a cat", "an owl")."""

from __future__ import annotations

__all__ = ["indefinite_article", "with_article"]


def indefinite_article(phrase: str) -> str:
    """``"an"`` before a vowel letter, else ``"a"`` (a spelling rule: "a unicorn" gets "an")."""
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def with_article(phrase: str) -> str:
    """``"a cat"``, ``"an orange cube"``."""
    return f"{indefinite_article(phrase)} {phrase}"
