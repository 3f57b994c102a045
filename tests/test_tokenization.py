"""The offline CLIP tokenizer against open_clip's, and the prompt-length helpers."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import pytest
import torch
import transformers

from debias_diffusion import tokenization
from debias_diffusion.errors import EncoderMismatchError, PromptError
from debias_diffusion.sentences import split_sentences
from debias_diffusion.tokenization import (
    OpenCLIPTokenizer,
    PromptTruncation,
    build_clip_tokenizer,
    clean_text,
    clip_vocab_path,
    count_tokens,
    encoder_capacity,
    split_into_chunks,
    truncate_prompt,
)

SOT, EOT = 49406, 49407
LONG_CAPTION = (
    "A young woman with curly red hair, wearing a green knitted sweater and round glasses, sits "
    "at a wooden table in a sunlit kitchen. She is reading a thick book while a grey tabby cat "
    "sleeps next to a steaming mug of tea. Through the window behind her, a garden full of tulips "
    "and a small apple tree can be seen. The scene is warm, cosy and calm."
)
CORPUS = [
    "a photo of a cat",
    "A PHOTO OF A CAT",
    "A Photo Of A Cat Sitting On A Red Mat.",
    "a doctor talking to a nurse in a busy hospital corridor",
    "Mr. Smith walks his dog. Dr. Jones waves from across St. Mary's street.",
    "The tower is 3.5 m tall and was renamed in v1.2 of the map, i.e. last year.",
    "What is that? A bird! No, a plane... Actually, it's Superman!!!",
    "  lots   of\twhitespace\n\nand newlines   here  ",
    "well-known, state-of-the-art, long-term high-quality portrait",
    "\"quoted text\" and 'single quotes' and (brackets) [square] {curly}",
    "she's, he'll, they've, we're, I'm, you'd, can't, won't, SHE'S",
    "café, naïve, résumé, jalapeño, Zürich, São Paulo, Kraków",
    "emoji 🐱🐶🚀 and 👩‍⚕️ doctor",
    "numbers 1234567890 and 3.14159 and 1,000,000 and 50%",
    "a 1920s jazz band playing at 8 p.m. on 5th Avenue",
    "an e-mail from john.doe@example.com about https://example.com/page?id=3",
    LONG_CAPTION,
    LONG_CAPTION * 3,
    "Two men and three women, of different ages and ethnicities, stand in front of a glass "
    "office building; one holds a laptop, another points at a chart on a tablet.",
    "hashtags #sunset #beach and @mentions and $100 bills & coins",
    "C++ and C# code on a monitor, with <html> tags and x = y + z * 2",
    "under_score and back\\slash and forward/slash and pipe|char",
    "mixed CaSe WoRdS like iPhone, YouTube, McDonald's and NASA",
    'a sign that says "OPEN 24/7"',
    "Ελληνικά γράμματα and Кириллица and 日本語のテキスト and 中文字符",
    "Fig. 3 shows approx. 20 birds vs. 12 cats, etc.",
    "J. R. R. Tolkien writing The Lord of the Rings at his desk",
    "ellipsis… unicode ellipsis and em—dash and en–dash",
    "trailing punctuation!!!??? wow!",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z",
    "x" * 40,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "a portrait, 4k, 8k, uhd, hdr, trending on artstation, by greg rutkowski",
    "(masterpiece:1.2), best quality, ((detailed)), [low quality]",
    "temperature 25°C, angle 45°, price €20 or £15 or ¥300",
    "a nurse. a ceo. a firefighter. a teacher. a programmer.",
    "No. 5 is the best! Is it? Yes.",
    "the year 2023-10-05 at 12:30:45",
    "Tom &amp; Jerry",
    "fish &amp;amp; chips &lt;3 &quot;yum&quot; &#39;ok&#39; &nbsp;spaced",
    "the dog’s toy and “smart quotes” and ‘single’",
    "wow! a cat!! typed <|endoftext|> and <|startoftext|> markup",
]
# Inputs on which the stock transformers CLIPTokenizer (no ftfy/HTML cleaning) differs from
# open_clip, as the module docstring claims; the built tokenizer cleans them like open_clip.
NEEDS_CLEANING = [
    "Tom &amp; Jerry",
    "fish &amp;amp; chips &lt;3 &quot;yum&quot;",
    "the dog’s toy and “smart quotes”",
    "ﬁne ﬂowers in a ﬁeld",
    "ＦＵＬＬＷＩＤＴＨ text",
    "mojibake: cafÃ© and donâ€™t",
    "control\x00chars\x07here",
    "a ǅ titlecase digraph",
]
SHORT_IDS = [repr(text)[:30] for text in CORPUS]


def open_clip_ids(reference, text: str) -> list[int]:
    return [SOT, *reference.encode(text), EOT]


def normalised(text: str) -> str:
    return " ".join(text.split())


# --- the vocabulary and the tokenizer -----------------------------------------------------------


def test_clip_vocab_path_is_open_clips_bpe_file():
    path = clip_vocab_path()
    assert path.name == "bpe_simple_vocab_16e6.txt.gz"
    assert path.parent.name == "open_clip"
    assert gzip.decompress(path.read_bytes()).decode("utf-8").startswith('"bpe_simple_vocab')


def test_clip_vocab_path_names_the_package_when_missing(monkeypatch):
    monkeypatch.setattr(tokenization.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install open_clip_torch"):
        clip_vocab_path()


def test_vocabulary_matches_open_clip(clip_tokenizer, open_clip_tokenizer):
    vocab = clip_tokenizer.get_vocab()
    assert len(vocab) == len(clip_tokenizer) == 49408
    assert vocab["<|startoftext|>"] == SOT and vocab["<|endoftext|>"] == EOT
    reference = open_clip_tokenizer.encoder  # names its specials <start_of_text>/<end_of_text>
    assert {t: i for t, i in vocab.items() if i < SOT} == {t: i for t, i in reference.items() if i < SOT}
    assert (clip_tokenizer.bos_token_id, clip_tokenizer.eos_token_id) == (SOT, EOT)
    assert clip_tokenizer.model_max_length == 248
    assert isinstance(clip_tokenizer, OpenCLIPTokenizer)


@pytest.mark.parametrize("text", CORPUS, ids=SHORT_IDS)
def test_ids_equal_open_clip(text, clip_tokenizer, open_clip_tokenizer):
    expected = open_clip_ids(open_clip_tokenizer, text)
    assert clip_tokenizer(text).input_ids == expected
    assert clip_tokenizer.encode(text) == expected
    assert clip_tokenizer.convert_tokens_to_ids(clip_tokenizer.tokenize(text)) == expected[1:-1]


def test_padded_batches_equal_open_clip_tokenize(clip_tokenizer_77_zero_pad, open_clip_tokenizer):
    # open_clip pads with zeros and truncates to SOT + 75 tokens + EOT, like "!"-padding (SD 2.x).
    for length, tokenizer in [(77, clip_tokenizer_77_zero_pad), (248, None)]:
        tokenizer = tokenizer or build_clip_tokenizer(length, pad_token="!")
        ids = tokenizer(CORPUS, padding="max_length", max_length=length, truncation=True, return_tensors="pt").input_ids
        assert torch.equal(ids, open_clip_tokenizer(CORPUS, context_length=length))


@pytest.mark.parametrize(("pad_token", "pad_id"), [("<|endoftext|>", EOT), ("!", 0)], ids=["sd1-eot", "sd2-bang"])
def test_pad_token_pads_without_changing_text_ids(pad_token, pad_id, open_clip_tokenizer):
    tokenizer = build_clip_tokenizer(8, pad_token=pad_token)
    assert tokenizer.pad_token_id == pad_id
    ids = tokenizer("wow! cats!!", padding="max_length", max_length=8).input_ids
    assert ids == [SOT, 2781, 256, 3989, 748, EOT] + [pad_id] * 2  # "!</w>" 256, "!!</w>" 748
    assert ids[:6] == open_clip_ids(open_clip_tokenizer, "wow! cats!!")


@pytest.mark.parametrize("text", NEEDS_CLEANING, ids=[repr(t)[:25] for t in NEEDS_CLEANING])
def test_cleaning_is_what_makes_these_inputs_match(text, clip_tokenizer, open_clip_tokenizer):
    expected = open_clip_ids(open_clip_tokenizer, text)
    stock = build_clip_tokenizer(248, clean=False)
    assert not isinstance(stock, OpenCLIPTokenizer)
    assert stock(text).input_ids != expected
    assert stock(clean_text(text)).input_ids == expected
    assert clip_tokenizer(text).input_ids == expected


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("fish &amp;amp; chips", "fish & chips"),
        ("the dog’s “toy”", 'the dog\'s "toy"'),
        ("ﬁne", "fine"),
        ("  Keeps  CASE\n\tand\u00a0collapses ", "Keeps CASE and collapses"),
    ],
)
def test_clean_text(raw, cleaned):
    assert clean_text(raw) == cleaned


def test_open_clips_own_special_names_are_plain_text_here(clip_tokenizer, open_clip_tokenizer):
    # The one documented difference: open_clip maps these literal strings to SOT/EOT.
    text = "a <start_of_text> b <end_of_text> c"
    assert open_clip_tokenizer.encode(text) == [320, SOT, 321, EOT, 322]
    ids = clip_tokenizer(text, add_special_tokens=False).input_ids
    assert SOT not in ids and EOT not in ids and len(ids) == 17


def test_batches_are_cleaned_too(clip_tokenizer, open_clip_tokenizer):
    batch = clip_tokenizer(["Tom &amp; Jerry", "dog’s"]).input_ids
    assert batch == [open_clip_ids(open_clip_tokenizer, t) for t in ["Tom &amp; Jerry", "dog’s"]]


def test_saved_folder_loads_anywhere_and_keeps_cleaning_with_our_class(tmp_path, open_clip_tokenizer):
    build_clip_tokenizer(77, pad_token="!").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "CLIPTokenizer"  # not our subclass: AutoTokenizer can load

    text = "Tom &amp; Jerry’s fine! <|endoftext|>"
    reloaded = OpenCLIPTokenizer.from_pretrained(tmp_path)
    assert reloaded(text).input_ids == open_clip_ids(open_clip_tokenizer, text)
    assert (reloaded.model_max_length, reloaded.pad_token_id) == (77, 0)

    stock = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert not isinstance(stock, OpenCLIPTokenizer)
    plain = "wow! a cat on a mat, 3.5 m wide"
    assert stock(plain).input_ids == open_clip_ids(open_clip_tokenizer, plain)
    assert stock(text).input_ids != open_clip_ids(open_clip_tokenizer, text)  # no cleaning


@pytest.mark.parametrize("keep_tokenizer_json", [True, False], ids=["all-files", "vocab-and-merges-only"])
def test_saved_folder_loads_with_the_slow_and_the_fast_clip_tokenizer(
    tmp_path, open_clip_tokenizer, keep_tokenizer_json
):
    # transformers 5 writes only tokenizer.json; the slow CLIPTokenizer of transformers 4.x (and any
    # loader without tokenizer.json support) needs vocab.json + merges.txt, saved alongside.
    saved = build_clip_tokenizer(77, pad_token="!").save_pretrained(tmp_path)
    assert {"vocab.json", "merges.txt", "tokenizer.json"} <= {Path(name).name for name in saved}
    assert (tmp_path / "merges.txt").read_text(encoding="utf-8").startswith("#version: 0.2\n")
    # tokenizers < 0.20 (transformers < 4.45) reads merges only as "a b" strings, not as [a, b] pairs.
    assert json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))["model"]["merges"][:2] == [
        "i n",
        "t h",
    ]
    if not keep_tokenizer_json:
        (tmp_path / "tokenizer.json").unlink()
    classes = {transformers.CLIPTokenizer, getattr(transformers, "CLIPTokenizerFast", transformers.CLIPTokenizer)}
    plain = "wow! a cat on a mat, 3.5 m wide, next to a zebra-striped armchair"
    for cls in classes:
        reloaded = cls.from_pretrained(tmp_path)
        assert reloaded(plain).input_ids == open_clip_ids(open_clip_tokenizer, plain), cls
        assert (reloaded.model_max_length, reloaded.pad_token_id, reloaded.eos_token_id) == (77, 0, EOT), cls


def test_use_fast_false(open_clip_tokenizer):
    has_slow = getattr(transformers, "CLIPTokenizerFast", None) not in (
        None,
        transformers.CLIPTokenizer,
    )
    if not has_slow:
        with pytest.raises(ValueError, match="ships only the fast .*CLIPTokenizer"):
            build_clip_tokenizer(use_fast=False)
        return
    slow = build_clip_tokenizer(77, pad_token="!", use_fast=False)
    assert not slow.is_fast
    ids = slow(CORPUS, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    assert torch.equal(ids.input_ids, open_clip_tokenizer(CORPUS, context_length=77))


@pytest.mark.parametrize(
    ("length", "error", "message"),
    [(2, ValueError, "at least 3"), (77.0, TypeError, "must be an int"), (True, TypeError, "int")],
)
def test_build_rejects_bad_lengths(length, error, message):
    with pytest.raises(error, match=message):
        build_clip_tokenizer(length)


# --- counting ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", CORPUS, ids=SHORT_IDS)
def test_count_tokens_equals_open_clip(text, clip_tokenizer, open_clip_tokenizer):
    assert count_tokens(clip_tokenizer, text) == len(open_clip_tokenizer.encode(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a photo of a cat", 5),
        ("A cat sleeps.", 4),  # a / cat / sleeps / .
        ("A dog barks loudly.", 6),  # a / dog / bar ks / loudly / .
        ("A cat sleeps. " * 100, 400),  # past 248 positions: nothing is truncated
    ],
)
def test_count_tokens_hand_checked(text, expected, clip_tokenizer):
    assert count_tokens(clip_tokenizer, text) == expected


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        (None, "prompt must be a string, got NoneType"),
        (42, "prompt must be a string, got int"),
        (b"a cat", "prompt must be a string, got bytes"),
        (["a cat"], "prompt must be a string, got list"),
        ("", "prompt is empty or only whitespace"),
        (" \n\t ", "prompt is empty or only whitespace"),
    ],
)
def test_bad_prompts_raise_prompt_error(prompt, message, clip_tokenizer):
    for call in (
        lambda: count_tokens(clip_tokenizer, prompt),
        lambda: truncate_prompt(prompt, clip_tokenizer),
        lambda: split_into_chunks(prompt, clip_tokenizer),
    ):
        with pytest.raises(PromptError, match=message):
            call()


def test_encoder_capacity(clip_tokenizer, clip_tokenizer_77_zero_pad):
    assert encoder_capacity(clip_tokenizer) == 246
    assert encoder_capacity(clip_tokenizer_77_zero_pad) == 75
    unbounded = build_clip_tokenizer(77)
    unbounded.model_max_length = int(1e30)  # what transformers sets when no length is known
    with pytest.raises(EncoderMismatchError, match="no usable model_max_length"):
        encoder_capacity(unbounded)


# --- truncation ----------------------------------------------------------------------------------

THREE = "A cat sleeps.  A dog barks loudly.\nThe bird sings."  # 4 + 6 + 4 = 14 tokens


@pytest.mark.parametrize(
    ("max_tokens", "kept", "dropped", "kept_tokens", "cut_at"),
    [
        (14, "A cat sleeps. A dog barks loudly. The bird sings.", "", 14, "none"),
        (100, "A cat sleeps. A dog barks loudly. The bird sings.", "", 14, "none"),
        (13, "A cat sleeps. A dog barks loudly.", "The bird sings.", 10, "sentence"),
        (10, "A cat sleeps. A dog barks loudly.", "The bird sings.", 10, "sentence"),
        (9, "A cat sleeps.", "A dog barks loudly. The bird sings.", 4, "sentence"),
        (4, "A cat sleeps.", "A dog barks loudly. The bird sings.", 4, "sentence"),
        (3, "A cat", "sleeps. A dog barks loudly. The bird sings.", 2, "word"),
        (1, "A", "cat sleeps. A dog barks loudly. The bird sings.", 1, "word"),
    ],
)
def test_truncate_prompt_hand_checked(max_tokens, kept, dropped, kept_tokens, cut_at, clip_tokenizer):
    result = truncate_prompt(THREE, clip_tokenizer, max_tokens)
    assert result == PromptTruncation(kept, dropped, kept_tokens, 14, cut_at)
    assert result.was_truncated is (cut_at != "none")


def test_truncate_cuts_inside_a_word_only_when_it_alone_is_too_long(clip_tokenizer):
    text = "A supercalifragilisticexpialidocious cat naps."  # the long word is 9 tokens
    result = truncate_prompt(text, clip_tokenizer, max_tokens=9)
    assert (result.text, result.kept_tokens, result.cut_at) == ("A", 1, "word")
    word = "supercalifragilisticexpialidocious"
    cut = truncate_prompt(f"{word} cat", clip_tokenizer, max_tokens=5)
    assert cut.cut_at == "character" and cut.text + cut.dropped == f"{word} cat"
    assert word.startswith(cut.text) and cut.kept_tokens == count_tokens(clip_tokenizer, cut.text) <= 5
    assert count_tokens(clip_tokenizer, word[: len(cut.text) + 1]) > 5  # the longest prefix that fits


def test_truncate_defaults_to_the_encoder_capacity(clip_tokenizer, clip_tokenizer_77_zero_pad):
    text = "A cat sleeps. " * 100
    assert truncate_prompt(text, clip_tokenizer).kept_tokens == 244  # 61 sentences of 4 <= 246
    short = truncate_prompt(text, clip_tokenizer_77_zero_pad)
    assert (short.kept_tokens, short.total_tokens, short.cut_at) == (72, 400, "sentence")
    assert short.text == " ".join(["A cat sleeps."] * 18)


@pytest.mark.parametrize("max_tokens", [1, 5, 12, 30, 75, 246])
def test_truncate_invariants_on_the_corpus(max_tokens, clip_tokenizer):
    for text in CORPUS:
        try:
            result = truncate_prompt(text, clip_tokenizer, max_tokens)
        except PromptError as err:  # text cannot hold part of a character: only max_tokens < 4 may refuse
            assert "too small for even one character" in str(err) and max_tokens < 4
            continue
        assert result.kept_tokens == count_tokens(clip_tokenizer, result.text) <= max_tokens
        assert result.total_tokens == count_tokens(clip_tokenizer, text)
        whole = normalised(text)
        sentences = split_sentences(text)
        if result.cut_at in ("punctuation", "character"):  # the first word alone is too long
            assert result.text + result.dropped == whole
            assert count_tokens(clip_tokenizer, whole.split(" ")[0]) > max_tokens
            continue
        assert " ".join(filter(None, [result.text, result.dropped])) == whole
        if result.cut_at == "none":
            assert result.text == whole and result.kept_tokens == result.total_tokens
        elif result.cut_at == "sentence":  # a boundary, and the next sentence would not fit
            k = len(split_sentences(result.text))
            assert sentences[:k] == split_sentences(result.text)
            assert count_tokens(clip_tokenizer, " ".join(sentences[: k + 1])) > max_tokens
        else:  # the first sentence alone is too long: whole words of it
            assert count_tokens(clip_tokenizer, sentences[0]) > max_tokens
            assert sentences[0].startswith(result.text + " ")


def test_warning_message(clip_tokenizer):
    result = truncate_prompt(THREE, clip_tokenizer, max_tokens=10)
    assert result.warning_message() == (
        'Prompt truncated from 14 to 10 tokens at a sentence boundary; dropped 4 tokens: "The bird sings."'
    )
    long = truncate_prompt("A cat sleeps. " * 100, clip_tokenizer)
    message = long.warning_message()
    assert "dropped 156 tokens" in message
    quoted = message.split(": ", 1)[1]
    assert quoted.startswith('"A cat sleeps.') and quoted.endswith('..."')
    assert len(quoted) <= 82
    fits = truncate_prompt("a cat", clip_tokenizer)
    assert fits.warning_message() == "Prompt fits: 2 tokens, nothing dropped."


def test_truncation_is_frozen(clip_tokenizer):
    result = truncate_prompt("a cat", clip_tokenizer)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.text = "a dog"


@pytest.mark.parametrize(
    ("max_tokens", "error", "message"),
    [(0, ValueError, "at least 1"), (-3, ValueError, "at least 1"), ("5", TypeError, "int")],
)
def test_bad_max_tokens(max_tokens, error, message, clip_tokenizer):
    with pytest.raises(error, match=message):
        truncate_prompt("a cat", clip_tokenizer, max_tokens)
    with pytest.raises(error, match=message):
        split_into_chunks("a cat", clip_tokenizer, max_tokens)


# --- chunking ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_tokens", "chunks"),
    [
        (246, ["A cat sleeps. A dog barks loudly. The bird sings."]),
        (10, ["A cat sleeps. A dog barks loudly.", "The bird sings."]),
        (9, ["A cat sleeps.", "A dog barks loudly.", "The bird sings."]),
        (5, ["A cat sleeps.", "A dog barks", "loudly.", "The bird sings."]),
        (3, ["A cat", "sleeps.", "A dog", "barks", "loudly.", "The bird", "sings."]),
    ],
)
def test_split_into_chunks_hand_checked(max_tokens, chunks, clip_tokenizer):
    assert split_into_chunks(THREE, clip_tokenizer, max_tokens) == chunks


@pytest.mark.parametrize("max_tokens", [9, 20, 75])
def test_chunks_fit_and_rebuild_the_text(max_tokens, clip_tokenizer):
    for text in CORPUS:
        chunks = split_into_chunks(text, clip_tokenizer, max_tokens)
        if max(count_tokens(clip_tokenizer, word) for word in text.split()) > max_tokens:
            assert "".join(chunks).replace(" ", "") == normalised(text).replace(" ", "")
        else:
            assert " ".join(chunks) == normalised(text)
        assert all(0 < count_tokens(clip_tokenizer, chunk) <= max_tokens for chunk in chunks)


def test_chunks_default_to_the_encoder_capacity(clip_tokenizer_77_zero_pad):
    chunks = split_into_chunks("A cat sleeps. " * 40, clip_tokenizer_77_zero_pad)
    assert [len(split_sentences(chunk)) for chunk in chunks] == [18, 18, 4]


def test_chunking_splits_a_word_longer_than_a_chunk(clip_tokenizer):
    word = "supercalifragilisticexpialidocious"  # 9 tokens
    chunks = split_into_chunks(f"A cat. {word} naps.", clip_tokenizer, 4)
    assert chunks[0] == "A cat."
    pieces, last = chunks[1:-1], chunks[-1]
    assert "".join(pieces) + last.split(" ")[0] == word and last.endswith(" naps.")
    assert all(count_tokens(clip_tokenizer, chunk) <= 4 for chunk in chunks)
