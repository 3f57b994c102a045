"""Knowledge-preserved stretching: the formula, and resizing transformers models in place."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from debias_diffusion.errors import EncoderMismatchError
from debias_diffusion.stretching import stretch_position_table, stretch_text_encoder, stretched_length
from debias_diffusion.text_model_layout import get_context_length, text_embeddings


def test_long_clip_table_hand_checked_rows():
    old = torch.arange(77, dtype=torch.float32).unsqueeze(1) ** 2  # row i holds i^2: interpolation is visible
    new = stretch_position_table(old)
    assert new.shape == (248, 1)
    assert torch.equal(new[:20], old[:20])
    # new[20 + 4*i + k] = (1 - k/4) old[20+i] + k/4 old[21+i]; i=0: 400, 410.25, 420.5, 430.75
    assert new[20:24, 0].tolist() == [400.0, 410.25, 420.5, 430.75]
    # i=55 (old 75 -> 76): 5625, 5662.75, 5700.5, 5738.25
    assert new[240:244, 0].tolist() == [5625.0, 5662.75, 5700.5, 5738.25]
    # old 76 lands at 244; the last four extrapolate the final step (5776 - 5625 = 151) by quarters
    assert new[244:, 0].tolist() == [5776.0, 5813.75, 5851.5, 5889.25]


@pytest.mark.parametrize(
    ("n", "keep", "ratio", "expected"), [(77, 20, 4, 248), (77, 20, 2, 134), (10, 0, 3, 30), (77, 75, 4, 83)]
)
def test_generalised_lengths(n, keep, ratio, expected):
    table = torch.randn(n, 3, dtype=torch.float64)
    new = stretch_position_table(table, keep, ratio)
    assert new.shape == (expected, 3) == (stretched_length(n, keep, ratio), 3)
    assert torch.equal(new[:keep], table[:keep])
    assert torch.equal(new[keep::ratio][: n - keep], table[keep:])  # every old row survives on the grid


@pytest.mark.parametrize(
    ("keep", "ratio", "message"),
    [(76, 4, "keep must be an integer in"), (-1, 4, "keep"), (20, 0, "ratio must be a positive integer")],
)
def test_bad_stretch_arguments(keep, ratio, message):
    with pytest.raises(EncoderMismatchError, match=message):
        stretch_position_table(torch.randn(77, 4), keep, ratio)


def _text_config() -> CLIPTextConfig:
    return CLIPTextConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        vocab_size=49408,
        max_position_embeddings=77,
        eos_token_id=49407,
    )


def _models():
    torch.manual_seed(0)
    config = _text_config()
    full = CLIPModel(
        CLIPConfig(
            text_config=config.to_dict(),
            vision_config=dict(
                hidden_size=16,
                intermediate_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                image_size=16,
                patch_size=8,
            ),
        )
    )
    return [CLIPTextModel(config), CLIPTextModelWithProjection(config), full]


@pytest.mark.parametrize("model", _models(), ids=lambda m: type(m).__name__)
def test_stretch_text_encoder_resizes_everything_together(model, clip_tokenizer_factory):
    model.eval()
    tokenizer = clip_tokenizer_factory(77)
    ids = tokenizer(["a red cube on a table"], padding="max_length", return_tensors="pt").input_ids
    text = model.text_model if hasattr(model, "text_model") else model
    with torch.no_grad():
        before = text(input_ids=ids).last_hidden_state
    stretch_text_encoder(model, tokenizer)
    embeddings = text_embeddings(model)
    assert get_context_length(model) == 248
    assert embeddings.position_ids.shape == (1, 248)
    assert "embeddings.position_ids" not in "".join(model.state_dict())  # stays non-persistent
    config = model.config.text_config if hasattr(model.config, "text_config") else model.config
    assert config.max_position_embeddings == 248
    assert tokenizer.model_max_length == 248
    long_ids = tokenizer(
        [" ".join(["a red cube on a table."] * 40)], padding="max_length", truncation=True, return_tensors="pt"
    ).input_ids
    assert long_ids.shape == (1, 248)
    with torch.no_grad():
        after = text(input_ids=ids).last_hidden_state
        text(input_ids=long_ids)  # the full 248-token forward runs
    # The prompt is shorter than 20 tokens; causal attention means those positions are unchanged.
    n = int((ids[0] != 49407).sum()) + 1
    torch.testing.assert_close(after[:, :n], before[:, :n], atol=1e-6, rtol=0)


def test_stretching_a_flattened_and_a_nested_model_gives_the_same_table():
    config = _text_config()
    torch.manual_seed(0)
    flat = CLIPTextModel(config)
    nested = CLIPTextModelWithProjection(config)
    text_embeddings(nested).load_state_dict(text_embeddings(flat).state_dict())
    stretch_text_encoder(flat)
    stretch_text_encoder(nested)
    assert torch.equal(
        text_embeddings(flat).position_embedding.weight, text_embeddings(nested).position_embedding.weight
    )


def test_layout_lookup_rejects_non_clip_modules():
    with pytest.raises(TypeError, match="not a CLIP text model"):
        stretch_text_encoder(torch.nn.Linear(2, 2))


def test_stretch_to_context_length_stretches_only_shorter_tables(clip_tokenizer_factory):
    from debias_diffusion.stretching import stretch_to_context_length

    torch.manual_seed(0)
    model = CLIPTextModel(_text_config()).eval()
    original = text_embeddings(model).position_embedding.weight.detach().clone()
    tokenizer = clip_tokenizer_factory(77)
    assert not stretch_to_context_length(model, None) and not stretch_to_context_length(model, 77)
    assert stretch_to_context_length(model, 248, tokenizer)
    assert get_context_length(model) == 248 == tokenizer.model_max_length
    assert torch.equal(text_embeddings(model).position_embedding.weight, stretch_position_table(original))
    assert not stretch_to_context_length(model, 100)  # longer already: left as it is
    with pytest.raises(EncoderMismatchError, match="cannot stretch a 77-position text tower to 100"):
        stretch_to_context_length(CLIPTextModel(_text_config()), 100)
