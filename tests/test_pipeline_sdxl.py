"""DeBiasStableDiffusionXLPipeline: drop-in guarantee, long pairs, layers, pooling, lengths, loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import DiffusionPipeline, StableDiffusionXLPipeline
from pipeline_builders import LONG_HEAD, SHORT_PROMPT, TAILS, sdxl_components, seeded, tiny_text_encoder

from debias_diffusion import DeBiasStableDiffusionXLPipeline, use_long_text_encoder
from debias_diffusion.errors import EncoderMismatchError

PIPELINE_FILE = Path(__file__).parents[1] / "pipelines" / "pipeline_debias_stable_diffusion_xl.py"
RUN = dict(num_inference_steps=2, height=16, width=16, output_type="np")


@pytest.fixture(scope="module")
def long_pipe():
    """A 248-token CLIP-L stand-in with a KPS-stretched bigG stand-in: Long-CLIP's SDXL recipe."""
    return DeBiasStableDiffusionXLPipeline(**sdxl_components(77, stretch_second_to=248))


@pytest.mark.parametrize("negative", [None, "blurry"], ids=["zeros-negative", "text-negative"])
def test_short_prompts_give_the_stock_images_bit_for_bit(negative):
    components = sdxl_components(77)
    call = dict(prompt=[SHORT_PROMPT, "A green cone."], negative_prompt=negative and [negative] * 2)
    stock = StableDiffusionXLPipeline(**components)(generator=seeded(), **RUN, **call).images
    ours = DeBiasStableDiffusionXLPipeline(**components)(generator=seeded(), **RUN, **call).images
    assert (stock == ours).all()


def test_details_past_token_77_reach_both_encoders(long_pipe):
    head_tokens = len(long_pipe.tokenizer(LONG_HEAD.strip()).input_ids) - 1
    (a, _, pooled_a, _), (b, _, pooled_b, _) = (
        long_pipe.encode_prompt(LONG_HEAD + tail, device="cpu", do_classifier_free_guidance=False) for tail in TAILS
    )
    assert a.shape == (1, 248, 64) and head_tokens > 77
    assert torch.equal(a[:, :head_tokens], b[:, :head_tokens])
    for half in (slice(0, 32), slice(32, 64)):  # CLIP-L and bigG both see the tail
        assert (a[:, head_tokens:, half] - b[:, head_tokens:, half]).abs().amax() > 1e-3
    assert not torch.equal(pooled_a, pooled_b)  # encoder 2's EOT sits after the tail


def test_layers_and_pooled_embedding_follow_sdxl(long_pipe):
    prompt = LONG_HEAD + TAILS[0]
    ids = [
        tok(prompt, padding="max_length", max_length=248, return_tensors="pt").input_ids
        for tok in (long_pipe.tokenizer, long_pipe.tokenizer_2)
    ]
    out_1 = long_pipe.text_encoder(ids[0], output_hidden_states=True)
    out_2 = long_pipe.text_encoder_2(ids[1], output_hidden_states=True)
    embeds, _, pooled, _ = long_pipe.encode_prompt(prompt, device="cpu", do_classifier_free_guidance=False)
    assert torch.equal(embeds, torch.cat([out_1.hidden_states[-2], out_2.hidden_states[-2]], dim=-1))  # penultimate
    assert torch.equal(pooled, out_2.text_embeds)  # projected EOT of encoder 2
    skipped, _, _, _ = long_pipe.encode_prompt(prompt, device="cpu", do_classifier_free_guidance=False, clip_skip=1)
    assert torch.equal(skipped, torch.cat([out_1.hidden_states[-3], out_2.hidden_states[-3]], dim=-1))
    final = DeBiasStableDiffusionXLPipeline.from_pipe(long_pipe, encoder_layer="final")
    embeds, _, _, _ = final.encode_prompt(prompt, device="cpu", do_classifier_free_guidance=False)
    assert torch.equal(embeds, torch.cat([out_1.last_hidden_state, out_2.last_hidden_state], dim=-1))


def test_chunks_prompt_2_and_negatives_meet_in_one_length(long_pipe):
    out = long_pipe.encode_prompt(
        LONG_HEAD * 3, prompt_2=SHORT_PROMPT, device="cpu", negative_prompt="dark", long_prompt="chunk"
    )
    embeds, negative, pooled, negative_pooled = out
    assert embeds.shape == negative.shape == (1, 496, 64)
    assert pooled.shape == negative_pooled.shape == (1, 32)
    given = torch.randn(1, 77, 64)
    embeds, negative, _, _ = long_pipe.encode_prompt(
        None, device="cpu", prompt_embeds=given, pooled_prompt_embeds=torch.randn(1, 32), negative_prompt="dark"
    )
    assert embeds.shape == negative.shape == (1, 248, 64) and torch.equal(embeds[:, :77], given)
    latents = long_pipe(
        LONG_HEAD * 3, negative_prompt="dark", long_prompt="chunk", num_inference_steps=1, output_type="latent"
    ).images
    assert latents.shape == (1, 4, 8, 8)


def test_encoders_of_different_lengths_are_refused_or_stretched():
    components = sdxl_components(77)
    components["text_encoder"] = tiny_text_encoder(248, seed=2)
    with pytest.raises(EncoderMismatchError, match="text_encoder has 248 positions and text_encoder_2 77"):
        DeBiasStableDiffusionXLPipeline(**components)
    stock = StableDiffusionXLPipeline(**sdxl_components(77))
    use_long_text_encoder(stock, tiny_text_encoder(248, seed=2))  # bigG stretched by KPS to match
    assert stock.text_encoder_2.config.max_position_embeddings == 248 == stock.tokenizer_2.model_max_length
    ours = DeBiasStableDiffusionXLPipeline.from_pipe(stock)
    assert ours(LONG_HEAD, num_inference_steps=1, output_type="latent").images.shape == (1, 4, 8, 8)


def test_save_load_and_custom_pipeline_file(tmp_path, long_pipe):
    long_pipe.save_pretrained(tmp_path / "pipe")
    loaded = DeBiasStableDiffusionXLPipeline.from_pretrained(tmp_path / "pipe")
    custom = DiffusionPipeline.from_pretrained(
        tmp_path / "pipe", custom_pipeline=str(PIPELINE_FILE), trust_remote_code=True
    )
    assert type(custom).__name__ == "DeBiasStableDiffusionXLPipeline"
    want = long_pipe.encode_prompt(LONG_HEAD, device="cpu", negative_prompt="dark")
    for pipe in (loaded, custom):
        for got, expected in zip(
            pipe.encode_prompt(LONG_HEAD, device="cpu", negative_prompt="dark"), want, strict=True
        ):
            torch.testing.assert_close(got, expected)  # reloaded models may pick another attention kernel
