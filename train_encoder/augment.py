"""Caption tokenisation for training and the DeBias-CLIP short-branch augmentation.

Token rows are open_clip/OpenAI-compatible: ``[SOT, text..., EOT, PAD...]`` with SOT=49406,
EOT=49407 and PAD=0 (open_clip's zero padding; never 49407, since pooling takes the first EOT).
A caption longer than the context is cut so that EOT stays in the last slot, as open_clip and
Long-CLIP do.

DeBias-CLIP builds the short-branch caption from the long one in three steps (REFERENCE §2):

* **summary removal**: drop the first sentence;
* **sentence sub-sampling**: draw ``n ~ U{1..r}`` of the ``r`` remaining sentences (``r`` is the
  caption's sentence count less one), without replacement, in random order;
* **token padding**: move ``n_pre ~ U{0..n_post}`` of the ``n_post`` trailing pad tokens to right
  after SOT: ``[SOT, PAD*n_pre, text, EOT, PAD*rest]``. Nothing is cut by it.

Edge cases (not fixed by the paper; chosen here): a one-sentence caption has no detail sentence, so
its short caption is that sentence (summary removal is skipped); a two-sentence caption always
gives its second sentence; a blank caption is an error. Rows are built without attention masks:
like open_clip, training uses the causal mask only, so the inserted pads are attended.

Every random draw comes from a ``torch.Generator`` that the caller passes (never the global RNG);
a batch's draws are reproducible for the same captions and generator state.

Sentences are split on the raw caption (``debias_diffusion.sentences.split_sentences``), then each
is cleaned like open_clip does (ftfy, HTML entities) and tokenised; their ids, joined, are the
caption's ids.

Speed: BPE runs once per distinct whitespace-separated word (whitespace is a hard boundary in
CLIP's pre-tokeniser, so a text's ids are its words' ids in order) through the Rust tokenizer, in
one call per batch, and is cached; the per-caption sentence ids are cached too. Plain ASCII text
without ``&`` skips ftfy (open_clip's cleaning is the identity on it apart from whitespace).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import TypeVar

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerBase

from debias_diffusion.clip_constants import EOT_ID, LONG_CLIP_CONTEXT_LENGTH, PAD_ID, SOT_ID
from debias_diffusion.sentences import join_sentences, split_sentences
from debias_diffusion.tokenization import OpenCLIPTokenizer, build_clip_tokenizer, clean_text

__all__ = [
    "CONTEXT_LENGTH",
    "EOT_ID",
    "PAD_ID",
    "SOT_ID",
    "CaptionTokenizer",
    "DebiasAugment",
    "FirstSentence",
    "SentenceIds",
    "move_padding",
    "pack_token_ids",
    "random_token_padding",
    "remove_summary",
    "sample_sentence_subsets",
    "subsample_sentences",
]

CONTEXT_LENGTH = LONG_CLIP_CONTEXT_LENGTH

T = TypeVar("T")
SentenceIds = tuple[np.ndarray, ...]
"""BPE ids of one caption, one int32 array per sentence, without SOT/EOT."""

# Characters on which open_clip's ftfy + HTML cleaning can do more than collapse whitespace.
_NEEDS_FULL_CLEAN = re.compile(r"[^ -%'-~\t\n\r]")
_EMPTY_IDS = np.zeros(0, dtype=np.int32)
_RANDOM_BITS = 1 << 62


class CaptionTokenizer:
    """Captions -> BPE ids (whole texts or sentence by sentence) -> packed ``[B, context]`` rows.

    ``tokenizer`` is a fast CLIP tokenizer, by default
    ``build_clip_tokenizer(context_length=context_length, pad_token="!")``; its ids equal
    ``open_clip.tokenize``'s. Caches: ``word_cache_size`` distinct words and
    ``caption_cache_size`` captions' sentence ids (about 2 KB each; ``0`` turns a cache off). A
    full cache is emptied and refilled. The caption cache pays off when the captions come back
    (epochs, evaluation sets) and holds them all.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase | None = None,
        *,
        context_length: int = CONTEXT_LENGTH,
        caption_cache_size: int = 1 << 15,
        word_cache_size: int = 1 << 18,
    ) -> None:
        _check_context_length(context_length)
        for name, size in (("caption_cache_size", caption_cache_size), ("word_cache_size", word_cache_size)):
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise ValueError(f"{name} must be an int >= 0 (0 turns the cache off), got {size!r}")
        if tokenizer is None:
            tokenizer = build_clip_tokenizer(context_length=context_length, pad_token="!")
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise TypeError(
                f"CaptionTokenizer needs a fast (Rust-backed) CLIP tokenizer, got {type(tokenizer).__name__}; "
                "build one with debias_diffusion.tokenization.build_clip_tokenizer()"
            )
        ids = (tokenizer.convert_tokens_to_ids("<|startoftext|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>"))
        if ids != (SOT_ID, EOT_ID):
            raise ValueError(
                f"tokenizer maps <|startoftext|>/<|endoftext|> to {ids}, not ({SOT_ID}, {EOT_ID}); "
                "use the CLIP BPE tokenizer from debias_diffusion.tokenization.build_clip_tokenizer()"
            )
        self.tokenizer = tokenizer
        self.context_length = context_length
        self._backend = _word_encoder(backend)
        self._cleans = isinstance(tokenizer, OpenCLIPTokenizer)
        self._word_cache: dict[str, tuple[int, ...]] = {}
        self._caption_cache: dict[str, SentenceIds] = {}
        self._word_cache_size = word_cache_size
        self._caption_cache_size = caption_cache_size

    def clean(self, text: str) -> str:
        """The text as the tokenizer sees it: open_clip's cleaning (if the tokenizer cleans), whitespace collapsed."""
        if self._cleans and _NEEDS_FULL_CLEAN.search(text):
            return clean_text(text)
        return " ".join(text.split())

    def _clean_sentence(self, sentence: str) -> str:
        return clean_text(sentence) if self._cleans and _NEEDS_FULL_CLEAN.search(sentence) else sentence

    def sentence_ids(self, captions: Sequence[str]) -> list[SentenceIds]:
        """Per caption, the BPE ids of each of its sentences (``split_sentences``, then each sentence cleaned)."""
        _check_texts(captions, "captions")
        cache = self._caption_cache
        results: list[SentenceIds | None] = [cache.get(caption) for caption in captions]
        todo = [index for index, found in enumerate(results) if found is None]
        if not todo:
            return results  # type: ignore[return-value]
        # split_sentences already collapses whitespace: only text that needs open_clip's full cleaning is cleaned
        sentences = [
            [self._clean_sentence(sentence) for sentence in split_sentences(captions[index])] for index in todo
        ]
        for index, group in zip(todo, sentences, strict=True):
            group[:] = [sentence for sentence in group if sentence]
            if not group:
                raise ValueError(f"caption {index} is empty or only whitespace; drop blank captions from the data")
        flat = self._ids_of_texts([sentence for group in sentences for sentence in group])
        start = 0
        if len(cache) + len(todo) > self._caption_cache_size:
            cache.clear()
        for array in flat:
            array.flags.writeable = False  # shared with the cache
        for index, group in zip(todo, sentences, strict=True):
            ids = tuple(flat[start : start + len(group)])
            start += len(group)
            results[index] = ids
            if self._caption_cache_size:
                cache[captions[index]] = ids
        return results  # type: ignore[return-value]

    def text_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """BPE ids (int32, no SOT/EOT) of whole texts, without sentence splitting."""
        _check_texts(texts, "texts")
        cleaned = [self.clean(text) for text in texts]
        for index, text in enumerate(cleaned):
            if not text:
                raise ValueError(f"text {index} is empty or only whitespace; drop blank captions from the data")
        return self._ids_of_texts(cleaned)

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """``[B, context_length]`` int64 rows ``[SOT, text, EOT, PAD...]``, cut so that EOT stays last.

        A text whose sentence ids are cached (``sentence_ids`` saw it) is not tokenised again.
        """
        _check_texts(texts, "texts")
        cached = [self._caption_cache.get(text) for text in texts]
        fresh = iter(self.text_ids([text for text, found in zip(texts, cached, strict=True) if found is None]))
        token_lists = [next(fresh) if found is None else np.concatenate(found) for found in cached]
        return pack_token_ids(token_lists, self.context_length)

    def _ids_of_texts(self, texts: list[str]) -> list[np.ndarray]:
        """Ids of cleaned texts: each whitespace-separated word is BPE-encoded once (one Rust call)."""
        words = [text.split() for text in texts]
        cache = self._word_cache if self._word_cache_size else {}
        needed = set(chain.from_iterable(words))
        missing = [word for word in needed if word not in cache]
        if len(cache) + len(missing) > self._word_cache_size:
            cache.clear()  # a soft bound: one batch may overfill it
            missing = list(needed)
        if missing:
            encodings = self._backend.encode_batch(missing, add_special_tokens=False)
            for word, encoding in zip(missing, encodings, strict=True):
                cache[word] = tuple(encoding.ids)
        lookup = cache.__getitem__
        return [np.fromiter(chain.from_iterable(map(lookup, group)), dtype=np.int32) for group in words]


def pack_token_ids(
    token_lists: Sequence[Sequence[int] | np.ndarray],
    context_length: int = CONTEXT_LENGTH,
    *,
    pad_before: Sequence[int] | None = None,
) -> torch.Tensor:
    """Rows ``[SOT, PAD*pad_before[i], ids, EOT, PAD...]`` (int64).

    Ids past ``context_length - 2`` are dropped so that EOT stays last. ``pad_before`` (token
    padding, default none) may not exceed a row's trailing pads: it never cuts text.
    """
    _check_context_length(context_length)
    if isinstance(token_lists, (str, bytes)):
        raise TypeError("token_lists must be a sequence of id sequences, one per row")
    shifts = [0] * len(token_lists) if pad_before is None else [int(shift) for shift in pad_before]
    if len(shifts) != len(token_lists):
        raise ValueError(f"pad_before has {len(shifts)} entries for {len(token_lists)} rows; give one per row")
    rows = np.full((len(token_lists), context_length), PAD_ID, dtype=np.int64)
    rows[:, 0] = SOT_ID
    room = context_length - 2
    for index, (ids, shift) in enumerate(zip(token_lists, shifts, strict=True)):
        count = min(len(ids), room)
        if not 0 <= shift <= room - count:
            raise ValueError(
                f"pad_before[{index}]={shift} must lie in 0..{room - count} (the row's pads after EOT); "
                "more would push text out of the context"
            )
        rows[index, 1 + shift : 1 + shift + count] = ids[:count]
        rows[index, 1 + shift + count] = EOT_ID
    return torch.from_numpy(rows)


def remove_summary(sentences: Sequence[T]) -> list[T]:
    """Drop the first (summary) sentence; a one-sentence caption is kept whole (it has nothing else)."""
    return list(sentences[1:]) if len(sentences) > 1 else list(sentences)


def sample_sentence_subsets(counts: Sequence[int], *, generator: torch.Generator) -> list[list[int]]:
    """For each count ``r``: ``n ~ U{1..r}`` distinct indices of ``range(r)`` in random order (``[]`` if ``r == 0``).

    Vectorised: one integer draw per row for ``n`` and one uniform key per (row, sentence); the
    chosen indices are the ``n`` smallest keys, so the order is a uniform random permutation.
    """
    _check_generator(generator)
    sizes = torch.as_tensor(list(counts), dtype=torch.int64)
    if sizes.ndim != 1 or bool((sizes < 0).any()):
        raise ValueError(f"counts must be a flat sequence of ints >= 0, got {list(counts)!r}")
    widest = int(sizes.max()) if len(sizes) else 0
    if widest == 0:
        return [[] for _ in range(len(sizes))]
    chosen = _uniform_below(sizes.clamp(min=1), generator) + 1
    keys = torch.rand((len(sizes), widest), generator=generator)
    keys.masked_fill_(torch.arange(widest) >= sizes[:, None], 2.0)
    order = keys.argsort(dim=1).tolist()
    return [row[:n] if size else [] for row, n, size in zip(order, chosen.tolist(), sizes.tolist(), strict=True)]


def subsample_sentences(sentences: Sequence[T], *, generator: torch.Generator) -> list[T]:
    """``n ~ U{1..len}`` of ``sentences``, without replacement, in random order (``[]`` for none)."""
    (picked,) = sample_sentence_subsets([len(sentences)], generator=generator)
    return [sentences[index] for index in picked]


def move_padding(token_ids: torch.Tensor, n_pre: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """Move ``n_pre[i]`` trailing pads of row ``i`` to right after SOT: ``[SOT, PAD*n_pre, text, EOT, PAD*rest]``.

    ``n_pre[i]`` must lie in ``0..n_post[i]`` (the row's pads after EOT), so nothing is cut.
    """
    n_post = _trailing_pads(token_ids)
    shift = torch.as_tensor(n_pre, dtype=torch.int64, device=token_ids.device)
    if shift.shape != n_post.shape:
        raise ValueError(f"n_pre must hold one count per row ({tuple(n_post.shape)}), got shape {tuple(shift.shape)}")
    if bool(((shift < 0) | (shift > n_post)).any()):
        raise ValueError(
            f"n_pre must lie in 0..n_post (the pads after EOT) per row; got n_pre={shift.tolist()}, "
            f"n_post={n_post.tolist()}: a larger shift would push text out of the context"
        )
    positions = torch.arange(token_ids.shape[1], device=token_ids.device)
    source = positions - shift[:, None]
    moved = token_ids.gather(1, source.clamp(min=0))
    inserted = (positions >= 1) & (source < 1)
    return moved.masked_fill(inserted, PAD_ID)


def random_token_padding(token_ids: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
    """``move_padding`` with ``n_pre ~ U{0..n_post}`` drawn per row."""
    _check_generator(generator)
    n_post = _trailing_pads(token_ids)
    return move_padding(token_ids, _uniform_below(n_post.cpu() + 1, generator).to(token_ids.device))


@dataclass(frozen=True)
class DebiasAugment:
    """The DeBias-CLIP short branch; each step can be switched off for ablations.

    Called on a batch, returns the short-branch token rows. Given short captions from the data are
    ignored: the paper builds the short caption from the long one alone.
    """

    summary_removal: bool = True
    sentence_subsampling: bool = True
    token_padding: bool = True

    def short_sentences(self, sentences: Sequence[Sequence[T]], *, generator: torch.Generator) -> list[list[T]]:
        """Per caption, the sentences (strings or id arrays) its short caption is made of, in order."""
        pools = [remove_summary(group) if self.summary_removal else list(group) for group in sentences]
        if not self.sentence_subsampling:
            return pools
        picks = sample_sentence_subsets([len(pool) for pool in pools], generator=generator)
        return [[pool[index] for index in pick] for pool, pick in zip(pools, picks, strict=True)]

    def short_texts(self, captions: Sequence[str], *, generator: torch.Generator) -> list[str]:
        """The short captions as text (before token padding), for inspection.

        Draws like ``__call__``: with the same generator state the texts are what the rows hold
        (up to open_clip's text cleaning).
        """
        _check_texts(captions, "captions")
        chosen = self.short_sentences([split_sentences(caption) for caption in captions], generator=generator)
        return [join_sentences(group) for group in chosen]

    def __call__(
        self,
        captions: Sequence[str],
        tokenizer: CaptionTokenizer,
        *,
        generator: torch.Generator,
        short_captions: Sequence[str | None] | None = None,
    ) -> torch.Tensor:
        """The short-branch rows ``[B, context]`` of ``captions`` (``short_captions`` is ignored)."""
        _check_generator(generator)
        return self.short_rows(tokenizer.sentence_ids(captions), tokenizer.context_length, generator=generator)

    def short_rows(
        self, sentence_ids: Sequence[SentenceIds], context_length: int = CONTEXT_LENGTH, *, generator: torch.Generator
    ) -> torch.Tensor:
        """The short-branch rows from pre-tokenised captions (``CaptionTokenizer.sentence_ids``).

        For data sets stored already split and tokenised: no text is processed here.
        """
        _check_generator(generator)
        chosen = self.short_sentences(sentence_ids, generator=generator)
        token_lists = [np.concatenate(group) if group else _EMPTY_IDS for group in chosen]
        if not self.token_padding:
            return pack_token_ids(token_lists, context_length)
        # Same draw as random_token_padding(pack_token_ids(...)), without [B, context] tensor passes.
        room = context_length - 2
        n_post = torch.tensor([room - min(len(ids), room) for ids in token_lists], dtype=torch.int64)
        n_pre = _uniform_below(n_post + 1, generator)
        return pack_token_ids(token_lists, context_length, pad_before=n_pre.tolist())


@dataclass(frozen=True)
class FirstSentence:
    """Long-CLIP's short branch: the caption's first sentence, or the short caption the data gives.

    A given short caption that is ``None`` or blank counts as absent.
    """

    def __call__(
        self,
        captions: Sequence[str],
        tokenizer: CaptionTokenizer,
        *,
        generator: torch.Generator | None = None,
        short_captions: Sequence[str | None] | None = None,
    ) -> torch.Tensor:
        _check_texts(captions, "captions")
        given = [None] * len(captions) if short_captions is None else list(short_captions)
        if len(given) != len(captions):
            raise ValueError(
                f"short_captions has {len(given)} entries for {len(captions)} captions; give one per caption"
            )
        token_lists: list[np.ndarray] = [_EMPTY_IDS] * len(captions)
        provided = [index for index, short in enumerate(given) if isinstance(short, str) and short.strip()]
        derive = sorted(set(range(len(captions))).difference(provided))
        for index, ids in zip(derive, tokenizer.sentence_ids([captions[i] for i in derive]), strict=True):
            token_lists[index] = ids[0]
        for index, ids in zip(provided, tokenizer.text_ids([given[i] for i in provided]), strict=True):
            token_lists[index] = ids
        return pack_token_ids(token_lists, tokenizer.context_length)


def _word_encoder(backend: Tokenizer) -> Tokenizer:
    """A private copy of the Rust tokenizer: transformers leaves padding/truncation set on its own."""
    copy = Tokenizer.from_str(backend.to_str())
    copy.no_padding()
    copy.no_truncation()
    copy.encode_special_tokens = backend.encode_special_tokens  # typed "<|endoftext|>" stays text
    return copy


def _uniform_below(highs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per entry an int uniform on ``0..high-1`` (``high >= 1``); modulo bias below 1e-16."""
    return torch.randint(0, _RANDOM_BITS, highs.shape, generator=generator) % highs


def _trailing_pads(token_ids: torch.Tensor) -> torch.Tensor:
    """Per row, the number of positions after the first EOT; checks the ``[SOT, ..., EOT, ...]`` layout."""
    if not isinstance(token_ids, torch.Tensor) or token_ids.ndim != 2 or token_ids.dtype != torch.int64:
        got = (
            f"{tuple(token_ids.shape)} {token_ids.dtype}"
            if isinstance(token_ids, torch.Tensor)
            else type(token_ids).__name__
        )
        raise TypeError(f"token_ids must be a [batch, context] int64 tensor (from pack_token_ids), got {got}")
    is_eot = token_ids == EOT_ID
    if not bool(is_eot.any(dim=1).all()) or not bool((token_ids[:, 0] == SOT_ID).all()):
        raise ValueError(
            f"every row must start with SOT ({SOT_ID}) and hold an EOT ({EOT_ID}); build rows with pack_token_ids"
        )
    return token_ids.shape[1] - 1 - is_eot.int().argmax(dim=1)


def _check_generator(generator: object) -> None:
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator, got {type(generator).__name__}; "
            "pass e.g. torch.Generator().manual_seed(seed) (the global RNG is never used)"
        )
    if generator.device.type != "cpu":
        raise ValueError(f"generator must live on the CPU (draws are made there), got device {generator.device}")


def _check_texts(texts: object, name: str) -> None:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"{name} must be a list of strings (one per row), got {type(texts).__name__}")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{index}] must be a str, got {type(text).__name__}")


def _check_context_length(context_length: object) -> None:
    if isinstance(context_length, bool) or not isinstance(context_length, int) or context_length < 3:
        raise ValueError(f"context_length must be an int >= 3 (SOT, a token, EOT), got {context_length!r}")
