"""Prompt plans and length alignment: the pieces the pipelines build on."""

from __future__ import annotations

import pytest
import torch
from pipeline_builders import LONG_HEAD, tiny_text_encoder

from debias_diffusion.conditioning import (
    OutputLayer,
    empty_prompt_states,
    encode_hidden_states,
    encode_plans,
    filler,
    plan_prompt,
    stack_to_length,
)
from debias_diffusion.errors import EncoderMismatchError, PromptError
from debias_diffusion.tokenization import build_clip_tokenizer


def test_plans_fit_truncate_chunk_and_refuse(clip_tokenizer_factory):
    tokenizer = clip_tokenizer_factory(77)
    fits = plan_prompt("A red cube.", tokenizer)
    assert fits.segments == ("A red cube.",) and fits.fits and fits.truncation is None
    assert plan_prompt("", tokenizer).segments == ("",)  # the empty negative prompt is allowed
    cut = plan_prompt(LONG_HEAD, tokenizer, "truncate")
    assert len(cut.segments) == 1 and cut.truncation.was_truncated and cut.token_count > 75
    chunked = plan_prompt(LONG_HEAD, tokenizer, "chunk")
    assert " ".join(chunked.segments) == " ".join(LONG_HEAD.split())
    with pytest.raises(PromptError, match=r"the prompt is \d+ tokens but the text encoder reads 75"):
        plan_prompt(LONG_HEAD, tokenizer, "error")
    with pytest.raises(ValueError, match="long_prompt must be one of"):
        plan_prompt("x", tokenizer, "cut")


def test_filler_rows_are_what_the_encoder_gives_for_a_shorter_empty_prompt():
    """The causal-attention fact that padding with empty-prompt states relies on."""
    encoder, layer = tiny_text_encoder(77), OutputLayer()
    tokenizer = build_clip_tokenizer(77)
    empty = empty_prompt_states(encoder, tokenizer, device="cpu", layer=layer)
    for rows in (1, 2, 30):
        tokenizer.model_max_length = rows
        short, _ = encode_hidden_states(encoder, tokenizer, [""], device="cpu", layer=layer)
        torch.testing.assert_close(filler(empty, rows), short[0] if rows > 1 else empty[:1])
    assert filler(empty, 77 * 2 + 5).shape == (159, 32)
    assert torch.equal(filler(empty, 159)[154:], empty[:5])


def test_stacking_pads_with_empty_states_and_refuses_what_it_cannot_pad():
    empty = torch.arange(8.0).view(4, 2)
    stacked = stack_to_length([torch.ones(4, 2), torch.ones(6, 2)], 8, empty)
    assert torch.equal(stacked[0, 4:], empty) and torch.equal(stacked[1, 6:], empty[:2])
    with pytest.raises(ValueError, match="longer than the target"):
        stack_to_length([torch.ones(9, 2)], 8, empty)
    with pytest.raises(ValueError, match="no empty-prompt states"):
        stack_to_length([torch.ones(4, 2)], 8, None)


def test_output_layers_and_tokenizer_checks():
    assert OutputLayer.stable_diffusion(None) == OutputLayer(0, True)
    assert OutputLayer.stable_diffusion(2) == OutputLayer(2, True)
    assert OutputLayer.stable_diffusion_xl(None) == OutputLayer(1, False)
    assert OutputLayer.stable_diffusion_xl(1) == OutputLayer(2, False)
    assert OutputLayer.stable_diffusion_xl(None, final_layer=True) == OutputLayer(0, True)
    with pytest.raises(ValueError, match="clip_skip must be"):
        OutputLayer.stable_diffusion(-1)
    with pytest.raises(ValueError, match="encoder has 3"):
        encode_hidden_states(tiny_text_encoder(77), build_clip_tokenizer(77), ["x"], device="cpu", layer=OutputLayer(3))
    with pytest.raises(EncoderMismatchError, match="pads to 248 tokens but the text encoder has 77"):
        encode_plans(tiny_text_encoder(77), build_clip_tokenizer(248), [], device="cpu", layer=OutputLayer())
