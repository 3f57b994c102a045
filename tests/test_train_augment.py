"""DeBias-CLIP caption augmentation, training tokenisation and recipes (train_encoder.augment / .recipes)."""

from __future__ import annotations

import random
import re
import string
from collections import Counter

import numpy as np
import pytest
import torch

from debias_diffusion import sentences as sentences_module
from debias_diffusion.sentences import split_sentences
from debias_diffusion.tokenization import build_clip_tokenizer, clean_text
from train_encoder.augment import (
    EOT_ID,
    PAD_ID,
    SOT_ID,
    CaptionTokenizer,
    DebiasAugment,
    FirstSentence,
    move_padding,
    pack_token_ids,
    random_token_padding,
    remove_summary,
    sample_sentence_subsets,
    subsample_sentences,
)
from train_encoder.recipes import Recipe, get_recipe, recipe_names, register_recipe

S, E = SOT_ID, EOT_ID
EDGE_CAPTION = "Dr. Smith stands by a tower. It is 3.5 m tall. No final period"
EDGE_SENTENCES = ["Dr. Smith stands by a tower.", "It is 3.5 m tall.", "No final period"]
CORPUS = [
    "A cat sleeps on a mat.",
    "A CAT sleeps. A dog barks!  Is it raining?",
    EDGE_CAPTION,
    "Mr. Smith walks his dog, e.g. at 8 p.m. on 5th Ave. It's 3.14 km, approx. 20 min.",
    "café, naïve, Zürich, São Paulo. Ελληνικά γράμματα and 日本語のテキスト.",
    "Tom &amp; Jerry &lt;3 &quot;yum&quot;. The dog’s “smart quotes” and ﬁsh.",
    "emoji 🐱🐶 and 👩‍⚕️ doctor. wow!? typed <|endoftext|> and <|startoftext|> markup!!",
    "she's, he'll, they've, we're, I'm, you'd, can't. C++ & C# <html> x=y*2 under_score",
    "  lots   of\twhitespace.\n\nA new paragraph\r\nwith CRLF  ",
    "The image shows a red boat on a pebbled shore at low tide. " * 20,  # > 248 tokens
]


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def tokenizer() -> CaptionTokenizer:
    return CaptionTokenizer(build_clip_tokenizer(context_length=248, pad_token="!"))


def _text(tokenizer: CaptionTokenizer, text: str) -> list[int]:
    return tokenizer.tokenizer(text, add_special_tokens=False)["input_ids"]


def _row_text(row: torch.Tensor) -> list[int]:
    """The text ids of a packed row: between SOT and the first EOT, inserted pads dropped."""
    ids = row.tolist()
    return [token for token in ids[1 : ids.index(E)] if token != PAD_ID]


# --- packing and tokenisation ----------------------------------------------------------------------


def test_pack_token_ids_exact_layouts():
    rows = pack_token_ids([[5, 6, 7], [], list(range(10, 20))], context_length=6)
    assert rows.dtype == torch.int64
    assert rows.tolist() == [
        [S, 5, 6, 7, E, PAD_ID],
        [S, E, PAD_ID, PAD_ID, PAD_ID, PAD_ID],
        [S, 10, 11, 12, 13, E],  # cut to context - 2 text ids; EOT stays last
    ]


def test_pack_token_ids_with_padding_before_the_text():
    rows = pack_token_ids([[5, 6, 7], [8]], context_length=8, pad_before=[3, 1])
    assert rows.tolist() == [[S, 0, 0, 0, 5, 6, 7, E], [S, 0, 8, E, 0, 0, 0, 0]]
    assert torch.equal(rows, move_padding(pack_token_ids([[5, 6, 7], [8]], context_length=8), [3, 1]))
    with pytest.raises(ValueError, match="pad_before"):
        pack_token_ids([[5, 6, 7]], context_length=8, pad_before=[4])


@pytest.mark.parametrize("bad", [2, 0, True, 3.0])
def test_pack_token_ids_rejects_bad_context(bad):
    with pytest.raises(ValueError, match="context_length"):
        pack_token_ids([[1]], context_length=bad)


def test_encode_equals_the_whole_text_tokenizer(tokenizer):
    # The HF tokenizer equals open_clip.tokenize (tests/test_tokenization.py); open_clip is slow to import.
    # Calling it first also checks that the padding/truncation it leaves on its Rust backend does not leak.
    hf = tokenizer.tokenizer(CORPUS, padding="max_length", truncation=True, max_length=248, return_tensors="pt")
    rows = tokenizer.encode(CORPUS)
    assert torch.equal(rows, hf["input_ids"])
    assert rows[-1, -1].item() == E  # the long caption was cut, EOT kept last
    assert ((rows == E).sum(dim=1) == 1).all()  # a typed "<|endoftext|>" stays text


def test_a_tokenizer_used_with_padding_before_wrapping_still_gives_unpadded_ids():
    hf = build_clip_tokenizer(context_length=248, pad_token="!")
    expected = hf(CORPUS[:3], padding="max_length", truncation=True, max_length=248, return_tensors="pt")
    assert torch.equal(CaptionTokenizer(hf).encode(CORPUS[:3]), expected["input_ids"])


def test_sentence_ids_concatenate_to_the_caption_ids(tokenizer):
    for caption, sentences in zip(CORPUS, tokenizer.sentence_ids(CORPUS), strict=True):
        assert all(isinstance(ids, np.ndarray) and ids.dtype == np.int32 for ids in sentences)
        assert not any(ids.flags.writeable for ids in sentences)  # cached: must not be edited
        assert np.concatenate(sentences).tolist() == _text(tokenizer, caption)


def test_sentence_split_edge_cases_through_the_tokenizer(tokenizer):
    (sentences,) = tokenizer.sentence_ids([EDGE_CAPTION])
    assert [ids.tolist() for ids in sentences] == [_text(tokenizer, s) for s in EDGE_SENTENCES]


# fmt: off
SPLIT_VOCABULARY = [
    "Dr.", "Mr.", "e.g.", "i.e.", "etc.", "U.S.", "p.m.", "No.", "no.", "3.5", "1.", "12.", "1999.", "J.", "R.",
    "A", "a", "The", "cat", "Cat", "dog,", "end.", "end!", "what?", "wow!!", '"Stop."', "(a", "tabby.)", "[pug.]",
    "“Hi.”", "Wait…", "and...", "x;", "y:", "well-", "#5", "'quoted'", "»fin«", "v1.2", "www.example.com.", "café.",
    "Ελλάδα.", "1,000.50", "approx.", "vs.", "5", "Fig.", "St.", "B", "b.", "?!", "...", "…", "\ue000", '"', "(",
]
SEPARATORS = [" "] * 12 + ["  ", "\t", "\n", "\n\n", " \n \n ", "\u2029", "\xa0"]
# fmt: on


def _word_by_word_split(text: str) -> list[str]:
    """The plain definition split_sentences must agree with: walk every word, decide after each."""
    sentences, current = [], []
    matches = list(re.finditer(r"\S+", text))
    for index, match in enumerate(matches):
        current.append(match.group())
        if index + 1 == len(matches):
            break
        following = matches[index + 1]
        gap = text[match.end() : following.start()]
        if re.search(r"\n[^\S\n]*\n", gap) or sentences_module._ends_sentence(
            match.group(), following.group(), len(current)
        ):
            sentences.append(" ".join(current))
            current = []
    if current:
        sentences.append(" ".join(current))
    return sentences


def test_split_sentences_equals_the_word_by_word_definition():
    rng = random.Random(0)
    for _ in range(3000):
        words = rng.choices(SPLIT_VOCABULARY, k=rng.randrange(1, 30))
        text = "".join(
            rng.choice(["", " ", "\n"]) * (i == 0) + word + rng.choice(SEPARATORS) for i, word in enumerate(words)
        )
        assert split_sentences(text) == _word_by_word_split(text), repr(text)
    assert split_sentences(EDGE_CAPTION) == EDGE_SENTENCES
    assert split_sentences("A title\n\nA paragraph of text") == ["A title", "A paragraph of text"]
    assert split_sentences("") == [] and split_sentences(" \n\n ") == []


def test_ascii_fast_cleaning_matches_open_clip_cleaning(tokenizer):
    rng = random.Random(0)
    alphabet = string.printable + "&&&;#"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 60)))
        assert tokenizer.clean(text) == clean_text(text), repr(text)
    assert tokenizer.clean("Tom &amp; Jerry’s") == "Tom & Jerry's"


def test_caches_give_the_same_ids_and_can_be_off():
    cached = CaptionTokenizer(caption_cache_size=4, word_cache_size=8)
    uncached = CaptionTokenizer(caption_cache_size=0, word_cache_size=0)
    for _ in range(3):  # refills after the small caches overflow
        for captions in (CORPUS[:3], CORPUS[3:], CORPUS):
            got = [[ids.tolist() for ids in s] for s in cached.sentence_ids(captions)]
            want = [[ids.tolist() for ids in s] for s in uncached.sentence_ids(captions)]
            assert got == want
            assert torch.equal(cached.encode(captions), uncached.encode(captions))


def test_tokenizer_input_errors(tokenizer):
    with pytest.raises(TypeError, match="list of strings"):
        tokenizer.encode("a single string")
    with pytest.raises(TypeError, match=r"captions\[1\]"):
        tokenizer.sentence_ids(["ok", None])
    with pytest.raises(ValueError, match="caption 1 is empty"):
        tokenizer.sentence_ids(["ok", "  \n "])
    with pytest.raises(ValueError, match="text 0 is empty"):
        tokenizer.encode([""])
    with pytest.raises(TypeError, match="fast"):
        CaptionTokenizer(object())


# --- the augmentation steps ------------------------------------------------------------------------


def test_remove_summary_edge_cases():
    assert remove_summary(["A.", "B.", "C."]) == ["B.", "C."]
    assert remove_summary(["A.", "B."]) == ["B."]
    assert remove_summary(["Only."]) == ["Only."]  # nothing else to keep
    assert remove_summary([]) == []


def test_sentence_subsets_cover_every_size_and_order():
    sizes, orders = Counter(), Counter()
    generator = _generator()
    for _ in range(200):
        picks = sample_sentence_subsets([4, 0, 1, 3], generator=generator)
        assert picks[1] == [] and picks[2] == [0]
        for pick, count in ((picks[0], 4), (picks[3], 3)):
            assert 1 <= len(pick) <= count and len(set(pick)) == len(pick)
            assert all(0 <= index < count for index in pick)
        sizes[len(picks[0])] += 1
        orders[tuple(picks[3])] += 1
    assert set(sizes) == {1, 2, 3, 4}
    assert min(sizes.values()) > 200 / 4 * 0.5  # roughly uniform n
    assert (0, 1, 2) in orders and (2, 1, 0) in orders and (1,) in orders  # order not kept
    assert len(orders) == 3 + 6 + 6  # every ordered subset of 3 sentences reachable


def test_subsets_are_reproducible_and_seed_dependent():
    counts = [5, 7, 2, 9, 3]
    first = sample_sentence_subsets(counts, generator=_generator(1))
    assert first == sample_sentence_subsets(counts, generator=_generator(1))
    assert first != sample_sentence_subsets(counts, generator=_generator(2))
    assert subsample_sentences(list("abcde"), generator=_generator(3)) == subsample_sentences(
        list("abcde"), generator=_generator(3)
    )


def test_move_padding_exact_layout():
    rows = pack_token_ids([[5, 6, 7], [8]], context_length=8)  # 3 and 5 pads after EOT
    moved = move_padding(rows, [2, 5])
    assert moved.tolist() == [
        [S, 0, 0, 5, 6, 7, E, 0],
        [S, 0, 0, 0, 0, 0, 8, E],
    ]
    assert torch.equal(move_padding(rows, [0, 0]), rows)


def test_move_padding_refuses_to_cut_text():
    rows = pack_token_ids([[5, 6, 7]], context_length=8)
    with pytest.raises(ValueError, match="n_post"):
        move_padding(rows, [4])
    with pytest.raises(ValueError, match="SOT"):
        move_padding(torch.zeros(1, 8, dtype=torch.int64), [0])
    with pytest.raises(TypeError, match="int64"):
        move_padding(rows.int(), [0])


def test_token_padding_reaches_every_position_and_keeps_the_text():
    rows = pack_token_ids([[5], [5, 6, 7, 8, 9, 10], list(range(1, 20))], context_length=8)
    first_text_positions = Counter()
    generator = _generator()
    for _ in range(600):
        padded = random_token_padding(rows, generator=generator)
        for original, row in zip(rows, padded, strict=True):
            assert row[0] == S and (row == E).sum() == 1
            assert _row_text(row) == _row_text(original)  # nothing cut, order kept
        first_text_positions[padded[0].ne(PAD_ID).nonzero()[1].item()] += 1
        assert torch.equal(padded[2], rows[2])  # a full row has no pad to move
        assert padded[1].tolist()[-2:] in ([10, E], [E, 0])
    # one-token caption at context 8: n_post = 5, so its token may sit at positions 1..6.
    assert set(first_text_positions) == set(range(1, 7))
    assert min(first_text_positions.values()) > 600 / 6 * 0.6


def test_generator_is_required():
    rows = pack_token_ids([[5]], context_length=8)
    with pytest.raises(TypeError, match="torch.Generator"):
        random_token_padding(rows, generator=None)
    with pytest.raises(TypeError, match="torch.Generator"):
        sample_sentence_subsets([3], generator=random.Random(0))


# --- the whole DeBias short branch -----------------------------------------------------------------


def test_debias_short_texts_edge_cases():
    augment = DebiasAugment()
    generator = _generator()
    seen = Counter()
    for _ in range(200):
        one, two, three = augment.short_texts(
            ["Only one sentence.", "Summary. Detail.", EDGE_CAPTION], generator=generator
        )
        assert one == "Only one sentence."
        assert two == "Detail."
        seen[three] += 1
    assert set(seen) == {
        "It is 3.5 m tall.",
        "No final period",
        "It is 3.5 m tall. No final period",
        "No final period It is 3.5 m tall.",
    }


def test_debias_rows_are_sub_sampled_sentences_after_padding(tokenizer):
    augment = DebiasAugment()
    sentence_ids = [_text(tokenizer, s) for s in EDGE_SENTENCES]
    allowed = {
        tuple(sentence_ids[1]),
        tuple(sentence_ids[2]),
        tuple(sentence_ids[1] + sentence_ids[2]),
        tuple(sentence_ids[2] + sentence_ids[1]),
    }
    generator = _generator()
    seen, starts = set(), set()
    for _ in range(100):
        (row,) = augment([EDGE_CAPTION], tokenizer, generator=generator)
        text = tuple(_row_text(row))
        assert text in allowed
        seen.add(text)
        starts.add(int(row[1:].ne(PAD_ID).nonzero()[0]) + 1)
    assert seen == allowed
    assert len(starts) > 20  # the text starts at many positions


def test_debias_rows_match_short_texts_for_the_same_seed(tokenizer):
    captions = CORPUS[:4]
    no_padding = DebiasAugment(token_padding=False)
    rows = no_padding(captions, tokenizer, generator=_generator(7))
    texts = no_padding.short_texts(captions, generator=_generator(7))
    assert torch.equal(rows, tokenizer.encode(texts))


def test_debias_rows_equal_the_step_by_step_transform(tokenizer):
    augment = DebiasAugment()
    generator = _generator(11)
    steps = augment.short_sentences(tokenizer.sentence_ids(CORPUS), generator=generator)
    packed = pack_token_ids([np.concatenate(group) for group in steps])
    expected = random_token_padding(packed, generator=generator)
    assert torch.equal(augment(CORPUS, tokenizer, generator=_generator(11)), expected)


def test_debias_is_reproducible(tokenizer):
    augment = DebiasAugment()
    first = augment(CORPUS, tokenizer, generator=_generator(5))
    assert torch.equal(first, augment(CORPUS, tokenizer, generator=_generator(5)))
    assert not torch.equal(first, augment(CORPUS, tokenizer, generator=_generator(6)))


def test_debias_long_sub_sample_is_cut_with_eot_last(tokenizer):
    caption = "Summary first. " + "A red boat rests on the pebbled shore at low tide. " * 30
    generator = _generator()
    for _ in range(20):
        (row,) = DebiasAugment()([caption], tokenizer, generator=generator)
        if row[-1] == E:  # long enough to be cut: no room for padding
            assert (row[1:-1] != PAD_ID).all()
    rows = DebiasAugment(sentence_subsampling=False, token_padding=False)([caption], tokenizer, generator=generator)
    assert rows[0, -1] == E and rows[0, 1:].ne(PAD_ID).all()


def test_debias_ablation_switches(tokenizer):
    captions = [EDGE_CAPTION]
    full = DebiasAugment(summary_removal=False, sentence_subsampling=False, token_padding=False)
    assert torch.equal(full(captions, tokenizer, generator=_generator()), tokenizer.encode(captions))
    no_summary = DebiasAugment(sentence_subsampling=False, token_padding=False)
    assert no_summary.short_texts(captions, generator=_generator()) == ["It is 3.5 m tall. No final period"]


# --- recipes ---------------------------------------------------------------------------------------


def test_builtin_recipes():
    debias, long_clip = get_recipe("debias"), get_recipe("long-clip")
    assert (debias.short_weight, debias.pca_components) == (0.1, 32)
    assert (long_clip.short_weight, long_clip.pca_components) == (0.5, 32)
    assert isinstance(debias.short_branch, DebiasAugment)
    assert isinstance(long_clip.short_branch, FirstSentence)
    assert {"debias", "long-clip"} <= set(recipe_names())


def test_unknown_recipe_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown recipe 'sigclip'.*debias, fix-clip, long-clip"):
        get_recipe("sigclip")


def test_long_clip_short_branch_is_the_first_sentence_or_the_given_one(tokenizer):
    recipe = get_recipe("long-clip")
    captions = [EDGE_CAPTION, "Summary. Detail.", EDGE_CAPTION]
    rows = recipe.short_token_ids(
        captions, tokenizer, generator=_generator(), short_captions=[None, " ", "A tall tower."]
    )
    assert torch.equal(rows, tokenizer.encode(["Dr. Smith stands by a tower.", "Summary.", "A tall tower."]))
    assert torch.equal(recipe.long_token_ids(captions, tokenizer), tokenizer.encode(captions))
    with pytest.raises(ValueError, match="one per caption"):
        recipe.short_token_ids(captions, tokenizer, generator=_generator(), short_captions=["x"])


def test_debias_recipe_short_rows(tokenizer):
    recipe = get_recipe("debias")
    rows = recipe.short_token_ids(["Summary. Detail."], tokenizer, generator=_generator())
    assert _row_text(rows[0]) == _text(tokenizer, "Detail.")


def test_registering_a_recipe():
    recipe = Recipe("test-first-sentence", short_weight=0.3, short_branch=FirstSentence(), pca_components=None)
    try:
        assert register_recipe(recipe) is get_recipe("test-first-sentence")
        with pytest.raises(ValueError, match="already registered"):
            register_recipe(recipe)
        register_recipe(Recipe("test-first-sentence", 0.2, FirstSentence()), replace=True)
        assert get_recipe("test-first-sentence").short_weight == 0.2
    finally:
        from train_encoder import recipes

        recipes._RECIPES.pop("test-first-sentence", None)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"short_weight": 1.5}, ValueError),
        ({"short_weight": "0.1"}, TypeError),
        ({"pca_components": 0}, ValueError),
        ({"short_branch": "first"}, TypeError),
        ({"name": " "}, ValueError),
    ],
)
def test_recipe_validation(kwargs, error):
    fields = {"name": "x", "short_weight": 0.1, "short_branch": FirstSentence(), **kwargs}
    with pytest.raises(error):
        Recipe(**fields)
