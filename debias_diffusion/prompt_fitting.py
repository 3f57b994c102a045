"""Fit a prompt into a text encoder's window: count its tokens, truncate it, or split it into chunks.

Cuts prefer, in order: the end of a sentence, a space between words, and, only for a "word" that
alone is longer than the window (comma-joined tag lists such as ``masterpiece,best_quality,1girl``,
Chinese or Japanese text without spaces, long runs of symbols), the last punctuation mark inside
it that fits, else a character boundary. No prompt is refused for its length: like stock
diffusers, whatever does not fit is dropped, and ``PromptTruncation`` says what.

The work is linear in the prompt's length. Every distinct whitespace-separated word is tokenized
once, in one batched call; CLIP's BPE never merges across a space, so the tokens of a span of words
are the sum of its words' tokens (prefix sums), and each chunk is found by bisection. Only a word
longer than the window is tokenized again, in prefixes that grow geometrically, so its cost stays
proportional to its length. Each chunk's count is checked once more on its joined text.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Literal

from transformers import PreTrainedTokenizerBase

from .errors import EncoderMismatchError, PromptError
from .sentences import split_sentences

__all__ = [
    "CutKind",
    "PromptTruncation",
    "check_prompt_text",
    "count_tokens",
    "encoder_capacity",
    "split_into_chunks",
    "truncate_prompt",
]

CutKind = Literal["none", "sentence", "word", "punctuation", "character"]
# Characters after which a word that alone is too long may be cut: ", ; : . ! ?", "、。，",
# closing brackets and quotes (Unicode categories Po, Pe, Pf).
_CUT_AFTER_CATEGORIES = frozenset({"Po", "Pe", "Pf"})


def check_prompt_text(text: object) -> str:
    """Return ``text`` if it is a non-blank string, else raise ``PromptError``."""
    if not isinstance(text, str):
        raise PromptError(f"prompt must be a string, got {type(text).__name__}")
    if not text.strip():
        raise PromptError("prompt is empty or only whitespace; give some text to encode")
    return text


def _token_counts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[int]:
    """Tokens of each text, without SOT/EOT and without truncation, in one batched call."""
    if not texts:
        return []
    encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)
    return [len(ids) for ids in encoded["input_ids"]]


def _token_count(tokenizer: PreTrainedTokenizerBase, text: str) -> int:
    return _token_counts(tokenizer, [text])[0]


def count_tokens(tokenizer: PreTrainedTokenizerBase, text: str) -> int:
    """Number of BPE tokens in ``text``, without SOT/EOT and without truncation.

    Args:
        tokenizer: a CLIP tokenizer (:func:`~debias_diffusion.build_clip_tokenizer`).
        text: the prompt.
    """
    return _token_count(tokenizer, check_prompt_text(text))


def encoder_capacity(tokenizer: PreTrainedTokenizerBase) -> int:
    """Tokens of text that fit: the context length less the SOT and EOT tokens."""
    # transformers tokenizers hold the context length as ``model_max_length``
    length = getattr(tokenizer, "model_max_length", None)
    if not isinstance(length, int) or not 3 <= length <= 1_000_000:
        raise EncoderMismatchError(
            f"tokenizer has no usable model_max_length ({length!r}); "
            "build it with build_clip_tokenizer(context_length=...) or pass max_tokens"
        )
    return length - 2


@dataclass(frozen=True)
class PromptTruncation:
    """What ``truncate_prompt`` kept and dropped (texts have whitespace collapsed).

    ``cut_at`` is ``"sentence"`` or ``"word"`` when the cut fell on a space (the prompt is
    ``text + " " + dropped``), ``"punctuation"`` or ``"character"`` when it fell inside a word
    longer than the window (the prompt is ``text + dropped``), ``"none"`` when nothing was dropped.

    Args:
        text: the part kept.
        dropped: the part cut off (``""`` when nothing was).
        kept_tokens: tokens of ``text``, SOT and EOT excluded.
        total_tokens: tokens of the whole prompt, SOT and EOT excluded.
        cut_at: where the cut fell (see above).
    """

    text: str
    dropped: str
    kept_tokens: int
    total_tokens: int
    cut_at: CutKind

    @property
    def was_truncated(self) -> bool:
        return self.cut_at != "none"

    @property
    def dropped_tokens(self) -> int:
        return self.total_tokens - self.kept_tokens

    def warning_message(self) -> str:
        """A sentence telling how many tokens were dropped and quoting (briefly) what."""
        if not self.was_truncated:
            return f"Prompt fits: {self.kept_tokens} tokens, nothing dropped."
        return (
            f"Prompt truncated from {self.total_tokens} to {self.kept_tokens} tokens at a "
            f'{self.cut_at} boundary; dropped {self.dropped_tokens} tokens: "{_abbreviate(self.dropped)}"'
        )


def _abbreviate(text: str, limit: int = 80) -> str:
    if len(text) <= limit:
        return text
    head = text[: limit - 3]
    if " " in head:
        head = head.rsplit(" ", 1)[0]
    return head + "..."


def truncate_prompt(text: str, tokenizer: PreTrainedTokenizerBase, max_tokens: int | None = None) -> PromptTruncation:
    """Keep the longest prefix of whole sentences (else whole words) that fits in ``max_tokens``.

    ``max_tokens`` defaults to ``encoder_capacity(tokenizer)``. A first word longer than that
    is cut at its last punctuation mark that fits, else at a character boundary (see the module
    docstring); ``cut_at`` says which.

    Args:
        text: the prompt.
        tokenizer: the encoder's tokenizer.
        max_tokens: the token budget without SOT/EOT; ``None``: the encoder's capacity.
    """
    text = check_prompt_text(text)
    limit = _resolve_max_tokens(tokenizer, max_tokens)
    fitting = _FittedWords(text, tokenizer)
    chunk = next(fitting.chunks(limit))
    dropped = fitting.text_after(chunk)
    return PromptTruncation(
        text=chunk.text,
        dropped=dropped,
        kept_tokens=chunk.tokens,
        total_tokens=fitting.total_tokens,
        cut_at=chunk.cut_at if dropped else "none",
    )


def split_into_chunks(text: str, tokenizer: PreTrainedTokenizerBase, max_tokens: int | None = None) -> list[str]:
    """Split ``text`` into consecutive chunks of at most ``max_tokens`` tokens each.

    Chunks end at sentence boundaries where possible, else between words; joined with spaces they
    give ``text`` with whitespace collapsed. A word longer than ``max_tokens`` is split into
    pieces (at punctuation, else between characters) that are chunks of their own, its last piece
    starting the next chunk; those pieces join without a space. ``max_tokens`` defaults to
    ``encoder_capacity``.

    Args:
        text: the prompt.
        tokenizer: the encoder's tokenizer.
        max_tokens: each chunk's token budget without SOT/EOT; ``None``: the encoder's capacity.
    """
    text = check_prompt_text(text)
    limit = _resolve_max_tokens(tokenizer, max_tokens)
    fitting = _FittedWords(text, tokenizer)
    chunks = [chunk.text for chunk in fitting.chunks(limit, verify=False)]
    if max(_token_counts(tokenizer, chunks)) <= limit:  # one batched check of every chunk
        return chunks
    return [chunk.text for chunk in fitting.chunks(limit)]  # counts did not add up: check each chunk


def _resolve_max_tokens(tokenizer: PreTrainedTokenizerBase, max_tokens: int | None) -> int:
    if max_tokens is None:
        return encoder_capacity(tokenizer)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise TypeError(f"max_tokens must be an int or None, got {type(max_tokens).__name__}")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    return max_tokens


@dataclass(frozen=True)
class _Chunk:
    """One chunk's text and tokens, and where the prompt goes on after it."""

    text: str
    tokens: int
    cut_at: CutKind
    end: int  # the first word not wholly in this chunk
    end_offset: int = 0  # characters of word ``end`` already in this (or an earlier) chunk


class _FittedWords:
    """A prompt's words with their token counts, cut into chunks that fit a window."""

    def __init__(self, text: str, tokenizer: PreTrainedTokenizerBase):
        self.tokenizer = tokenizer
        self.words: list[str] = []
        self.sentence_ends: list[int] = []  # word index after each sentence's last word
        for sentence in split_sentences(text):
            self.words.extend(sentence.split(" "))
            self.sentence_ends.append(len(self.words))
        distinct = list(dict.fromkeys(self.words))
        tokens_of = dict(zip(distinct, _token_counts(tokenizer, distinct), strict=True))
        self.counts = [tokens_of[word] for word in self.words]
        self.before = list(accumulate(self.counts, initial=0))  # tokens of words[:i]
        self.total_tokens = self.before[-1]

    def text_after(self, chunk: _Chunk) -> str:
        """The prompt's text after ``chunk``: the rest of a cut word, then the following words."""
        if not chunk.end_offset:
            return " ".join(self.words[chunk.end :])
        return " ".join([self.words[chunk.end][chunk.end_offset :], *self.words[chunk.end + 1 :]])

    def chunks(self, limit: int, verify: bool = True) -> Iterator[_Chunk]:
        """Consecutive chunks of at most ``limit`` tokens, lazily (truncation takes the first).

        ``verify=False`` skips counting each chunk's joined text (the caller checks them all at once).
        """
        start, lead = 0, None  # lead: (text, tokens) of a cut word's last piece, standing for words[start]
        while start < len(self.words):
            if lead is None and self.counts[start] > limit:
                offset = 0
                for piece, tokens, cut_at in _split_long_word(self.words[start], self.tokenizer, limit):
                    if cut_at == "none":  # the word's last piece leads the next chunk
                        lead = (piece, tokens)
                        break
                    offset += len(piece)
                    yield _Chunk(piece, tokens, cut_at, start, end_offset=offset)
                continue
            chunk = self._whole_words(start, lead, limit, verify)
            yield chunk
            start, lead = chunk.end, None

    def _whole_words(self, start: int, lead: tuple[str, int] | None, limit: int, verify: bool) -> _Chunk:
        """The longest run of whole sentences from ``start`` that fits, else of whole words."""
        first_tokens = lead[1] if lead else self.counts[start]
        reach = limit - first_tokens + self.before[start + 1]
        end = max(start + 1, bisect_right(self.before, reach) - 1)
        last = bisect_right(self.sentence_ends, end) - 1
        boundary = self.sentence_ends[last] if last >= 0 else 0
        cut_at: CutKind = "sentence"
        if boundary > start:
            end = boundary
        elif end < len(self.words):
            cut_at = "word"
        first = lead[0] if lead else self.words[start]
        while True:
            text = " ".join([first, *self.words[start + 1 : end]])
            summed = first_tokens + self.before[end] - self.before[start + 1]
            tokens = _token_count(self.tokenizer, text) if verify else summed
            if tokens <= limit or end == start + 1:
                return _Chunk(text, tokens, cut_at, end)
            end, cut_at = end - 1, "word"  # counts did not add up (never seen with CLIP's BPE)


def _split_long_word(word: str, tokenizer: PreTrainedTokenizerBase, limit: int) -> Iterator[tuple[str, int, CutKind]]:
    """``word`` cut into pieces of at most ``limit`` tokens: ``(piece, tokens, how it was cut)``.

    Each piece but the last (cut ``"none"``) is the longest prefix of the rest that fits, shortened
    to end at its last punctuation mark when that keeps at least half of it. Prefix lengths are
    searched by doubling, then bisection, so the work per piece is proportional to the piece; the
    pieces come lazily (truncation needs only the first).
    """
    start, guess = 0, limit
    while start < len(word):
        length, tokens = _longest_fitting_prefix(word, start, tokenizer, limit, guess)
        guess = max(length, 1)
        if start + length == len(word):
            yield word[start:], tokens, "none"
            return
        if length == 0:
            raise PromptError(
                f"max_tokens={limit} is too small for even one character of {_abbreviate(word[start:], 40)!r} "
                f"({_token_count(tokenizer, word[start])} tokens); allow more tokens"
            )
        cut_at: CutKind = "character"
        mark = _last_cut_mark(word[start : start + length])
        if mark:
            mark_tokens = _token_count(tokenizer, word[start : start + mark])
            if mark_tokens <= limit:
                length, tokens, cut_at = mark, mark_tokens, "punctuation"
        yield word[start : start + length], tokens, cut_at
        start += length


def _longest_fitting_prefix(
    text: str, start: int, tokenizer: PreTrainedTokenizerBase, limit: int, guess: int
) -> tuple[int, int]:
    """``(characters, tokens)`` of the longest ``text[start:]`` prefix found to fit in ``limit`` tokens.

    Starts at ``guess`` characters and rescales by tokens measured per character (a few calls on
    text of even density); after three such steps it bisects, so it never takes more than a
    logarithmic number of calls.
    """
    available = len(text) - start
    fits, fits_tokens, fails = 0, 0, available + 1  # longest size known to fit, shortest known not to
    size, steps = min(max(1, guess), available), 0
    while fits + 1 < fails:
        tokens = _token_count(tokenizer, text[start : start + size])
        if tokens <= limit:
            fits, fits_tokens = size, tokens
        else:
            fails = size
        steps += 1
        rescaled = size * limit // max(tokens, 1) + (1 if tokens <= limit else 0)
        size = rescaled if steps <= 3 else (fits + fails) // 2
        size = min(max(size, fits + 1), fails - 1)
    return fits, fits_tokens


def _last_cut_mark(piece: str) -> int:
    """Length of the longest prefix of ``piece`` that ends with a punctuation mark, if that is at
    least half of the piece (else 0)."""
    length = len(piece)
    for index in range(length - 1, (length + 1) // 2 - 2, -1):
        if unicodedata.category(piece[index]) in _CUT_AFTER_CATEGORIES:
            return index + 1
    return 0
