"""Prompts that mention a target object at controlled token offsets, and their no-mention controls.

For one item (a target, optionally an anchor mentioned first) one sequence of context sentences is
built whose sentence boundaries fall where the target's mention must start for each requested
offset. The target's sentence is then inserted at one boundary per offset, so every prompt of an
item has the same sentences and the same length: only the target's position changes. The control
prompt of an offset inserts context sentences of the target sentence's length instead (the target
is never asked for). Context sentences are drawn, seeded, from the pool without repetition; token
gaps are filled exactly where possible, else within ``tolerance`` tokens, else refused.

**Offset**: the index of the mention's first token in the encoder's input (the start token is 0),
so the first word of a prompt is at offset 1 and a 77-position encoder reads offsets 1 to 75.
The mention is the object phrase itself ("red circle"), not its article.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from transformers import PreTrainedTokenizerBase

from ..articles import with_article
from ..errors import ProminenceDataError
from ..tokenization import count_tokens

__all__ = [
    "DEFAULT_ANCHOR_SENTENCE",
    "DEFAULT_OFFSETS",
    "DEFAULT_TARGET_SENTENCE",
    "LateDetailItem",
    "LateDetailPrompt",
    "build_prompts",
    "mention_offset",
    "read_items",
]

DEFAULT_OFFSETS: tuple[int, ...] = (5, 40, 75, 110, 145, 180, 215)
DEFAULT_TARGET_SENTENCE = "There is also {object}."
DEFAULT_ANCHOR_SENTENCE = "The picture shows {object}."


@dataclass(frozen=True)
class LateDetailItem:
    """A target object phrase (what is mentioned late and detected), and an optional anchor mentioned first."""

    target: str
    anchor: str | None = None

    def __post_init__(self) -> None:
        for name, value in (("target", self.target), ("anchor", self.anchor)):
            if value is None and name == "anchor":
                continue
            if not isinstance(value, str) or not value.strip():
                raise ProminenceDataError(f"an item's {name} must be a non-empty object phrase, got {value!r}")
        if self.anchor is not None and " ".join(self.anchor.lower().split()) == " ".join(self.target.lower().split()):
            raise ProminenceDataError(
                f"the anchor equals the target ({self.target!r}): the target would be mentioned at the start of "
                "every prompt; choose a different anchor or none"
            )

    @property
    def labels(self) -> tuple[str, ...]:
        """What the detector measures in every image of this item: the anchor (if any), then the target."""
        return (self.target,) if self.anchor is None else (self.anchor, self.target)


@dataclass(frozen=True)
class LateDetailPrompt:
    """One prompt of the run: the target mentioned at ``offset``, or its control (``mentioned=False``)."""

    item: int
    """Index of the item in the run's input."""
    offset: int
    """The requested offset (the control's too: it marks the place the target's sentence would take)."""
    mentioned: bool
    prompt: str
    planned_offset: int
    """Where the mention starts in the reference tokenizer's tokens (= ``offset`` unless within tolerance)."""
    total_tokens: int
    """Tokens of the whole prompt (reference tokenizer, no start/end tokens)."""
    target: str
    target_sentence: str
    """The sentence that mentions the target (present in the prompt only when ``mentioned``)."""

    @property
    def kind(self) -> str:
        return "mention" if self.mentioned else "baseline"


def read_items(source: str | Path | Sequence[Any]) -> list[LateDetailItem]:
    """Items from a YAML/JSON file or parsed data: a list of targets (strings) or ``{target:, anchor:}`` mappings
    (or a mapping with the key ``items``)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ProminenceDataError(f"item file {path} does not exist")
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as err:
            raise ProminenceDataError(f"item file {path} is not valid YAML/JSON: {err}") from None
    else:
        data = source
    if isinstance(data, Mapping):
        data = data.get("items")
    if not isinstance(data, Sequence) or isinstance(data, str) or not data:
        raise ProminenceDataError("items must be a non-empty list of targets or {target: ..., anchor: ...} mappings")
    items = []
    for index, entry in enumerate(data):
        if isinstance(entry, LateDetailItem):
            items.append(entry)
        elif isinstance(entry, str):
            items.append(LateDetailItem(" ".join(entry.split())))
        elif isinstance(entry, Mapping) and set(entry) <= {"target", "anchor"} and "target" in entry:
            anchor = entry.get("anchor")
            items.append(LateDetailItem(entry["target"], None if anchor is None else str(anchor)))
        else:
            raise ProminenceDataError(
                f"item {index} must be a target phrase or {{target: ..., anchor: ...}}, got {entry!r}"
            )
    return items


def mention_offset(prompt: str, phrase_start: int, tokenizer: PreTrainedTokenizerBase) -> int:
    """Offset (start token = 0) of the word starting at character ``phrase_start`` of ``prompt``."""
    before = prompt[:phrase_start]
    return 1 + (count_tokens(tokenizer, before) if before.strip() else 0)


def build_prompts(
    items: Sequence[LateDetailItem],
    offsets: Sequence[int],
    pool: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    *,
    total_tokens: int | None = None,
    tolerance: int = 2,
    target_sentence: str = DEFAULT_TARGET_SENTENCE,
    anchor_sentence: str = DEFAULT_ANCHOR_SENTENCE,
    seed: int = 0,
) -> list[LateDetailPrompt]:
    """Every item's mention and control prompt at every offset (see the module docstring).

    Args:
        items: targets (and anchors) to place.
        offsets: requested mention offsets, strictly increasing, each >= 1.
        pool: context sentences (checked by :func:`~.context.context_pool`).
        tokenizer: the reference tokenizer the offsets are planned with.
        total_tokens: prompt length in tokens; default: the target's sentence ends the last offset's prompt.
        tolerance: how far (tokens) a planned offset or the total may miss when the pool cannot fill a gap exactly.
        target_sentence, anchor_sentence: patterns with ``{object}`` (the phrase with its article).
        seed: draws the context sentences (per item).
    """
    _check_offsets(offsets, tolerance)
    for pattern in (target_sentence, anchor_sentence):
        if "{object}" not in pattern:
            raise ProminenceDataError(f"the sentence pattern {pattern!r} must contain '{{object}}'")
    lengths = {sentence: count_tokens(tokenizer, sentence) for sentence in pool}
    prompts = []
    for index, item in enumerate(items):
        rng = random.Random(seed * 7919 + index)
        builder = _ItemPrompts(index, item, tokenizer, target_sentence, anchor_sentence, lengths, rng)
        prompts.extend(builder.build(list(offsets), total_tokens, tolerance))
    return prompts


class _ItemPrompts:
    """One item's context sequence and prompts (the token arithmetic of the module docstring)."""

    def __init__(self, index: int, item: LateDetailItem, tokenizer, target_pattern: str, anchor_pattern: str,
                 lengths: dict[str, int], rng: random.Random) -> None:  # fmt: skip
        self.index, self.item, self.tokenizer = index, item, tokenizer
        self.target_sentence = _sentence(target_pattern, item.target)
        self.anchor_sentence = None if item.anchor is None else _sentence(anchor_pattern, item.anchor)
        self.anchor_tokens = 0 if self.anchor_sentence is None else count_tokens(tokenizer, self.anchor_sentence)
        self.target_tokens = count_tokens(tokenizer, self.target_sentence)
        self.phrase_at = self.target_sentence.lower().index(item.target.lower())
        self.before_phrase = mention_offset(self.target_sentence, self.phrase_at, tokenizer) - 1
        available = list(lengths)
        rng.shuffle(available)
        self.available, self.lengths = available, lengths

    def build(self, offsets: list[int], total_tokens: int | None, tolerance: int) -> list[LateDetailPrompt]:
        earliest = 1 + self.anchor_tokens + self.before_phrase
        if offsets[0] < earliest - tolerance:
            raise ProminenceDataError(
                f"offset {offsets[0]} cannot be reached for target {self.item.target!r}: the "
                f"{'anchor sentence and the ' if self.anchor_sentence else ''}words before the mention take "
                f"{earliest - 1} tokens, so the earliest offset is {earliest}; raise the first offset"
            )
        context: list[str] = []  # the item's context sentences; cuts[i] = sentences before offset i's target
        cuts, filled = [], 0
        for offset in offsets:
            wanted = max(0, offset - earliest)  # context tokens before this offset's mention
            sentences, got = self._fill(wanted - filled, tolerance, f"offset {offset}")
            context += sentences
            filled += got
            cuts.append(len(context))
        last_end = filled + self.anchor_tokens + self.target_tokens
        total = last_end if total_tokens is None else total_tokens
        if total < last_end - tolerance:
            raise ProminenceDataError(
                f"total_tokens={total_tokens} is too short for target {self.item.target!r}: the last offset's "
                f"prompt needs at least {last_end} tokens"
            )
        tail, _ = self._fill(total - last_end, tolerance, f"the total of {total} tokens")
        context += tail
        filler, _ = self._fill(self.target_tokens, tolerance, "the no-mention control's stand-in sentence")
        head = [self.anchor_sentence] if self.anchor_sentence else []
        prompts = []
        for offset, cut in zip(offsets, cuts, strict=True):
            before = " ".join([*head, *context[:cut]])
            mention = " ".join([*head, *context[:cut], self.target_sentence, *context[cut:]])
            control = " ".join([*head, *context[:cut], *filler, *context[cut:]])
            phrase_start = len(before) + (1 if before else 0) + self.phrase_at
            planned = mention_offset(mention, phrase_start, self.tokenizer)
            for mentioned, text in ((True, mention), (False, control)):
                prompts.append(LateDetailPrompt(self.index, offset, mentioned, text, planned,
                                                count_tokens(self.tokenizer, text), self.item.target, self.target_sentence))  # fmt: skip
        return prompts

    def _fill(self, tokens: int, tolerance: int, what: str) -> tuple[list[str], int]:
        """Unused pool sentences totalling ``tokens`` (exactly if possible, else the nearest within tolerance)."""
        if tokens <= 0:
            if tokens < -tolerance:
                raise ProminenceDataError(f"{what} is {-tokens} tokens too close to the previous one for target "
                                          f"{self.item.target!r}; space the offsets further apart")  # fmt: skip
            return [], 0
        reach: dict[int, list[str]] = {0: []}
        for sentence in self.available:
            length = self.lengths[sentence]
            for total, chosen in list(reach.items()):
                if total + length <= tokens + tolerance and total + length not in reach:
                    reach[total + length] = [*chosen, sentence]
        best = min(reach, key=lambda total: (abs(total - tokens), total > tokens))
        if abs(best - tokens) > tolerance:
            raise ProminenceDataError(
                f"the context pool cannot fill {tokens} tokens for {what} (target {self.item.target!r}): the "
                f"closest is {best} with {len(self.available)} unused sentences; add context sentences or raise tolerance"
            )
        for sentence in reach[best]:
            self.available.remove(sentence)
        return reach[best], best


def _sentence(pattern: str, phrase: str) -> str:
    text = pattern.format(object=with_article(phrase))
    return text[:1].upper() + text[1:]


def _check_offsets(offsets: Sequence[int], tolerance: int) -> None:
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ProminenceDataError(f"tolerance must be a non-negative number of tokens, got {tolerance!r}")
    if not offsets or any(isinstance(o, bool) or not isinstance(o, int) or o < 1 for o in offsets):
        raise ProminenceDataError(f"offsets must be token indices >= 1 (the start token is 0), got {list(offsets)}")
    if list(offsets) != sorted(set(offsets)):
        raise ProminenceDataError(f"offsets must be strictly increasing, got {list(offsets)}")
