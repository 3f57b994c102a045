"""prompt_fitting: cuts inside words too long for the window, and work that grows linearly with the prompt."""

from __future__ import annotations

import pytest

from debias_diffusion.errors import PromptError
from debias_diffusion.prompt_fitting import count_tokens, split_into_chunks, truncate_prompt

TAGS = ["masterpiece", "best_quality", "1girl", "solo", "long_hair", "blue_eyes", "smile", "outdoors"]


class CountingTokenizer:
    """Wraps a tokenizer and counts the characters it is asked to tokenize (the work done)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.model_max_length = tokenizer.model_max_length
        self.characters = 0

    def __call__(self, text, **kwargs):
        self.characters += len(text) if isinstance(text, str) else sum(len(item) for item in text)
        return self.tokenizer(text, **kwargs)


def _work(make_text, size: int, clip_tokenizer, operation) -> float:
    """Characters tokenized per character of prompt."""
    text = make_text(size)
    counting = CountingTokenizer(clip_tokenizer)
    operation(text, counting, 75)
    return counting.characters / len(text)


def _distinct_words(size: int) -> str:  # no punctuation, every word new: nothing cached, one sentence
    return " ".join(f"w{index}x" for index in range(size))


def _one_long_word(size: int) -> str:  # CJK without spaces or punctuation: one "word" of the whole text
    return "猫坐在桌上看书" * size


@pytest.mark.parametrize("make_text", [_distinct_words, _one_long_word], ids=["words", "one-word"])
@pytest.mark.parametrize("operation", [split_into_chunks, truncate_prompt], ids=["chunk", "truncate"])
def test_work_per_character_does_not_grow_with_the_prompt(make_text, operation, clip_tokenizer):
    small = _work(make_text, 300, clip_tokenizer, operation)
    large = _work(make_text, 1200, clip_tokenizer, operation)
    # Linear work keeps this ratio near 1 (truncation even falls); quadratic work would make it ~4.
    assert large <= 1.5 * small, (small, large)
    assert small < 40  # a bounded number of passes over each character


def test_tag_list_without_spaces_is_cut_after_a_comma(clip_tokenizer):
    prompt = ",".join(TAGS * 10)
    cut = truncate_prompt(prompt, clip_tokenizer, 20)
    assert cut.cut_at == "punctuation" and cut.text.endswith(",")
    assert cut.text + cut.dropped == prompt
    assert cut.kept_tokens == count_tokens(clip_tokenizer, cut.text) <= 20
    next_tag = cut.dropped.split(",")[0] + ","
    assert count_tokens(clip_tokenizer, cut.text + next_tag) > 20  # the last comma that fits


def test_punctuation_is_preferred_only_when_it_keeps_half_the_window(clip_tokenizer):
    prompt = "ab," + "x" * 400  # the only comma is near the start
    cut = truncate_prompt(prompt, clip_tokenizer, 20)
    assert cut.cut_at == "character" and len(cut.text) > 3
    assert count_tokens(clip_tokenizer, prompt[: len(cut.text) + 1]) > 20


@pytest.mark.parametrize(
    "prompt",
    ["一只红色的猫坐在木桌上，" * 30, "猫" * 500, "!?" * 300, "~" * 600, "masterpiece,best_quality," * 40],
    ids=["cjk-comma", "cjk", "marks", "symbols", "tags"],
)
def test_chunks_of_long_words_fit_and_rebuild_the_word(prompt, clip_tokenizer):
    chunks = split_into_chunks(prompt, clip_tokenizer, 30)
    assert "".join(chunks) == prompt
    counts = [count_tokens(clip_tokenizer, chunk) for chunk in chunks]
    assert all(0 < count <= 30 for count in counts)
    assert all(count > 15 for count in counts[:-1])  # pieces are not needlessly short


def test_the_rest_of_a_cut_word_starts_the_next_chunk_with_the_following_words(clip_tokenizer):
    word = "猫" * 95  # 3 tokens a character: nine pieces of 10 characters, then 5 left
    chunks = split_into_chunks(f"A dog. {word} sits here. A bird.", clip_tokenizer, 30)
    assert chunks == ["A dog.", *["猫" * 10] * 9, "猫" * 5 + " sits here. A bird."]


def test_a_window_smaller_than_one_character_is_refused_clearly(clip_tokenizer):
    assert count_tokens(clip_tokenizer, "猫") == 3  # text cannot hold a third of a character
    with pytest.raises(PromptError, match=r"max_tokens=2 is too small for even one character .* \(3 tokens\)"):
        truncate_prompt("猫猫猫", clip_tokenizer, 2)
    assert truncate_prompt("猫猫猫", clip_tokenizer, 3).text == "猫"
