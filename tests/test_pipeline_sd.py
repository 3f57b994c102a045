"""DeBiasStableDiffusionPipeline: the drop-in guarantee, long prompts, policies, embeddings, loading."""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path

import pytest
import torch
import transformers
from diffusers import DiffusionPipeline, StableDiffusionPipeline
from packaging.version import Version
from pipeline_builders import LONG_HEAD, SHORT_PROMPT, TAILS, sd_components, seeded, tiny_text_encoder

from debias_diffusion import DeBiasStableDiffusionPipeline, use_long_text_encoder
from debias_diffusion.errors import EncoderMismatchError, PromptError
from debias_diffusion.tokenization import build_clip_tokenizer, split_into_chunks, truncate_prompt

PIPELINE_FILE = Path(__file__).parents[1] / "pipelines" / "pipeline_debias_stable_diffusion.py"
RUN = dict(num_inference_steps=2, height=16, width=16, output_type="np")
STOCK_WARNINGS = ("truncated because CLIP can only handle", "Token indices sequence length is longer")


def _images(pipe, prompt, **kwargs):
    return pipe(prompt, generator=seeded(), **RUN, **kwargs).images


def _encode(pipe, prompt, **kwargs):
    kwargs.setdefault("negative_prompt", None)
    return pipe.encode_prompt(prompt, "cpu", 1, True, **kwargs)


@pytest.fixture(scope="module")
def long_pipe():
    return DeBiasStableDiffusionPipeline(**sd_components(248))


@pytest.mark.parametrize(
    "call",
    [
        dict(prompt=SHORT_PROMPT),
        dict(prompt=SHORT_PROMPT, negative_prompt="blurry, low quality"),
        dict(prompt=[SHORT_PROMPT, "A green cone."], negative_prompt=["blurry", "dark"], num_images_per_prompt=2),
        dict(prompt=SHORT_PROMPT, guidance_scale=1.0),
    ],
    ids=["prompt", "negative", "batch", "no-guidance"],
)
def test_short_prompts_give_the_stock_images_bit_for_bit(call):
    components = sd_components(77)
    stock = StableDiffusionPipeline(**components)(generator=seeded(), **RUN, **call).images
    ours = DeBiasStableDiffusionPipeline(**components)(generator=seeded(), **RUN, **call).images
    assert (stock == ours).all()


def test_prompt_embeds_path_matches_stock():
    components = sd_components(77)
    stock, ours = StableDiffusionPipeline(**components), DeBiasStableDiffusionPipeline(**components)
    embeds, negative = stock.encode_prompt(SHORT_PROMPT, "cpu", 1, True, negative_prompt="dark")
    for got, want in zip(
        ours.encode_prompt(SHORT_PROMPT, "cpu", 1, True, negative_prompt="dark"), (embeds, negative), strict=True
    ):
        assert torch.equal(got, want)
    a = stock(prompt_embeds=embeds, negative_prompt_embeds=negative, generator=seeded(), **RUN).images
    b = ours(prompt_embeds=embeds, negative_prompt_embeds=negative, generator=seeded(), **RUN).images
    assert (a == b).all()


def test_details_past_token_77_reach_the_embeddings_and_the_image(long_pipe):
    prompts = [LONG_HEAD + tail for tail in TAILS]
    head_tokens = len(long_pipe.tokenizer(LONG_HEAD.strip()).input_ids) - 1  # SOT + head
    assert 77 < head_tokens < 240
    (a, _), (b, _) = (_encode(long_pipe, prompt) for prompt in prompts)
    assert a.shape == (1, 248, 32)
    assert torch.equal(a[:, :head_tokens], b[:, :head_tokens])  # causal: the shared head is identical
    assert (a[:, head_tokens:] - b[:, head_tokens:]).abs().amax() > 1e-3
    assert not (_images(long_pipe, prompts[0]) == _images(long_pipe, prompts[1])).all()

    stock = StableDiffusionPipeline(**sd_components(77))  # 77 tokens: the tails are cut off
    (c, _), (d, _) = (_encode(stock, prompt) for prompt in prompts)
    assert torch.equal(c, d)


def test_stock_77_token_warnings_never_fire(long_pipe, caplog):
    caplog.set_level(logging.WARNING)
    _encode(long_pipe, LONG_HEAD + TAILS[0])
    _encode(long_pipe, LONG_HEAD * 3, long_prompt="chunk")
    assert not [r for r in caplog.records if any(text in r.getMessage() for text in STOCK_WARNINGS)]


def test_truncate_policy_keeps_whole_sentences_and_names_what_it_dropped(long_pipe, caplog):
    prompt = LONG_HEAD * 3 + "A purple teapot glows in the corner."
    cut = truncate_prompt(prompt, long_pipe.tokenizer)
    assert cut.was_truncated
    with caplog.at_level(logging.WARNING, logger="debias_diffusion"):
        embeds, _ = _encode(long_pipe, prompt)
    assert cut.warning_message() in [record.getMessage() for record in caplog.records]
    assert "dropped" in cut.warning_message() and cut.dropped.endswith("A purple teapot glows in the corner.")
    expected, _ = _encode(long_pipe, cut.text)
    assert torch.equal(embeds, expected)


def test_chunk_policy_concatenates_sentence_aligned_chunks(long_pipe):
    prompt = LONG_HEAD * 3 + "A purple teapot glows in the corner."
    chunks = split_into_chunks(prompt, long_pipe.tokenizer)
    assert len(chunks) == 2
    embeds, negative = _encode(long_pipe, prompt, long_prompt="chunk")
    assert embeds.shape == negative.shape == (1, 2 * 248, 32)
    first, _ = _encode(long_pipe, chunks[0])
    second, _ = _encode(long_pipe, chunks[1])
    torch.testing.assert_close(embeds, torch.cat([first, second], dim=1))  # one batched pass vs two
    empty, _ = _encode(long_pipe, "")
    assert torch.equal(negative, torch.cat([empty, empty], dim=1))  # "" padded with empty-prompt chunks


def test_error_policy_refuses_and_pipeline_default_can_be_set():
    pipe = DeBiasStableDiffusionPipeline(**sd_components(77), long_prompt="error")
    with pytest.raises(PromptError, match="long_prompt='truncate'"):
        pipe(LONG_HEAD, **RUN)
    assert pipe(LONG_HEAD, long_prompt="truncate", num_inference_steps=1, output_type="latent").images.shape[1] == 4
    with pytest.raises(ValueError, match="long_prompt must be one of"):
        DeBiasStableDiffusionPipeline(**sd_components(77), long_prompt="drop")


@pytest.mark.parametrize(
    "positive, negative",
    [
        ("long", "short"), ("short", "long"), ("long", None), ("embeds154", "short"), ("short", "embeds154"),
        ("embeds77", "embeds154"), ("embeds300", None), ("batch", "batch"),
    ],
)  # fmt: skip
def test_positive_and_negative_always_match_in_length(positive, negative):
    pipe = DeBiasStableDiffusionPipeline(**sd_components(77), long_prompt="chunk")
    texts = {"long": LONG_HEAD, "short": SHORT_PROMPT, "batch": [SHORT_PROMPT, LONG_HEAD]}
    kwargs = {}
    for side, kind in (("prompt", positive), ("negative_prompt", negative)):
        if kind in texts:
            kwargs[side] = texts[kind]
        elif kind is not None:  # user-made embeddings of any length, e.g. compel's multiples of 77
            kwargs[side.replace("prompt", "prompt_embeds")] = torch.randn(1, int(kind[6:]), 32)
    embeds, negative_embeds = pipe.encode_prompt(
        kwargs.get("prompt"), "cpu", 1, True, negative_prompt=kwargs.get("negative_prompt"),
        prompt_embeds=kwargs.get("prompt_embeds"), negative_prompt_embeds=kwargs.get("negative_prompt_embeds"),
    )  # fmt: skip
    assert embeds.shape == negative_embeds.shape
    for given, got in ((kwargs.get("prompt_embeds"), embeds), (kwargs.get("negative_prompt_embeds"), negative_embeds)):
        if given is not None:  # user embeddings are kept as they are, then padded with the empty prompt
            assert torch.equal(got[:, : given.shape[1]], given)
            empty, _ = _encode(pipe, "")
            rest = got.shape[1] - given.shape[1]
            assert torch.equal(got[0, given.shape[1] :], torch.cat([empty[0]] * 4)[:rest])
    latents = pipe(generator=seeded(), num_inference_steps=1, output_type="latent", **kwargs).images
    assert latents.shape[0] == (2 if positive == "batch" else 1)


def test_mismatched_embeds_that_cannot_be_paired_fail_clearly():
    pipe = DeBiasStableDiffusionPipeline(**sd_components(77))
    with pytest.raises(ValueError, match="batch size and width"):
        pipe(prompt_embeds=torch.randn(1, 77, 32), negative_prompt_embeds=torch.randn(2, 77, 32), **RUN)
    with pytest.raises(ValueError, match="Cannot forward both"):
        pipe(
            prompt_embeds=torch.randn(1, 77, 32),
            negative_prompt="x",
            negative_prompt_embeds=torch.randn(1, 154, 32),
            **RUN,
        )


def test_clip_skip_works_on_flattened_text_models_for_both_prompts():
    pipe = DeBiasStableDiffusionPipeline(**sd_components(248))
    embeds, negative = pipe.encode_prompt(SHORT_PROMPT, "cpu", 1, True, negative_prompt="dark", clip_skip=1)
    encoder = pipe.text_encoder
    for text, got in ((SHORT_PROMPT, embeds), ("dark", negative)):
        ids = pipe.tokenizer(text, padding="max_length", max_length=248, return_tensors="pt").input_ids
        hidden = encoder(ids, output_hidden_states=True).hidden_states[-2]
        assert torch.equal(got, encoder.final_layer_norm(hidden))  # flattened CLIPTextModel (transformers >= 5.6)
    full, _ = pipe.encode_prompt(SHORT_PROMPT, "cpu", 1, True)
    assert not torch.equal(full, embeds)
    assert pipe(SHORT_PROMPT, clip_skip=2, num_inference_steps=1, output_type="latent").images.shape[0] == 1


def test_width_mismatch_fails_clearly():
    components = sd_components(77)
    components["text_encoder"] = tiny_text_encoder(77).__class__(tiny_text_encoder(77).config.__class__(
        vocab_size=49408, hidden_size=16, intermediate_size=20, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=77, eos_token_id=49407,
    ))  # fmt: skip
    with pytest.raises(EncoderMismatchError, match="16-wide hidden states but the UNet cross-attends to 32"):
        DeBiasStableDiffusionPipeline(**components)
    stock = StableDiffusionPipeline(**sd_components(77))
    with pytest.raises(EncoderMismatchError, match="768-wide CLIP-L"):
        use_long_text_encoder(stock, components["text_encoder"])


def test_use_long_text_encoder_upgrades_a_stock_pipeline_in_place(tmp_path):
    stock = StableDiffusionPipeline(**sd_components(77))
    long_encoder = tiny_text_encoder(248, seed=3)
    long_encoder.save_pretrained(tmp_path / "encoder")
    build_clip_tokenizer(248).save_pretrained(tmp_path / "encoder")
    assert use_long_text_encoder(stock, tmp_path / "encoder") is stock
    assert stock.tokenizer.model_max_length == 248
    assert torch.equal(
        stock.text_encoder.embeddings.position_embedding.weight, long_encoder.embeddings.position_embedding.weight
    )
    embeds, _ = stock.encode_prompt(SHORT_PROMPT, "cpu", 1, False)  # the stock encode_prompt now pads to 248
    assert embeds.shape == (1, 248, 32)


def test_from_pipe_shares_components_and_keeps_results():
    stock = StableDiffusionPipeline(**sd_components(77))
    ours = DeBiasStableDiffusionPipeline.from_pipe(stock, long_prompt="chunk")
    assert ours.unet is stock.unet and ours.text_encoder is stock.text_encoder
    assert ours.config.long_prompt == "chunk"
    assert (_images(stock, SHORT_PROMPT) == _images(ours, SHORT_PROMPT)).all()


def test_save_and_load_round_trip_keeps_the_long_encoder_and_policy(tmp_path, long_pipe):
    pipe = DeBiasStableDiffusionPipeline.from_pipe(long_pipe, long_prompt="chunk")
    pipe.save_pretrained(tmp_path / "pipe")
    loaded = DeBiasStableDiffusionPipeline.from_pretrained(tmp_path / "pipe")
    assert loaded.config.long_prompt == "chunk" and loaded.tokenizer.model_max_length == 248
    for got, want in zip(_encode(loaded, LONG_HEAD * 3), _encode(pipe, LONG_HEAD * 3), strict=True):
        assert torch.equal(got, want)
    stock = StableDiffusionPipeline.from_pretrained(tmp_path / "pipe")  # still a standard folder
    assert stock.tokenizer.model_max_length == 248


def test_from_pretrained_takes_a_text_encoder_by_path(tmp_path):
    StableDiffusionPipeline(**sd_components(77)).save_pretrained(tmp_path / "base")
    tiny_text_encoder(248, seed=4).save_pretrained(tmp_path / "encoder")
    pipe = DeBiasStableDiffusionPipeline.from_pretrained(tmp_path / "base", text_encoder=str(tmp_path / "encoder"))
    assert pipe.text_encoder.config.max_position_embeddings == 248
    assert pipe.tokenizer.model_max_length == 248  # built from open_clip's vocabulary: the folder has none
    pipe.save_pretrained(tmp_path / "saved")  # the cleaning tokenizer is recorded as a CLIPTokenizer
    assert json.loads((tmp_path / "saved" / "model_index.json").read_text())["tokenizer"] == [
        "transformers",
        "CLIPTokenizer",
    ]
    assert StableDiffusionPipeline.from_pretrained(tmp_path / "saved").tokenizer.model_max_length == 248


def test_works_as_a_custom_pipeline_file(tmp_path):
    StableDiffusionPipeline(**sd_components(248)).save_pretrained(tmp_path / "base")
    pipe = DiffusionPipeline.from_pretrained(
        tmp_path / "base", custom_pipeline=str(PIPELINE_FILE), trust_remote_code=True
    )
    assert type(pipe).__name__ == "DeBiasStableDiffusionPipeline"
    embeds, _ = pipe.encode_prompt(LONG_HEAD * 3, "cpu", 1, True, long_prompt="chunk")
    assert embeds.shape == (1, 496, 32)


def test_textual_inversion_tokens_expand_in_long_prompts():
    pipe = DeBiasStableDiffusionPipeline(**sd_components(248))
    pipe.load_textual_inversion({"<teapot>": torch.randn(2, 32)}, token="<teapot>")
    embeds, _ = _encode(pipe, LONG_HEAD + "A <teapot> on the shelf.")
    plain, _ = _encode(pipe, LONG_HEAD + "A teapot on the shelf.")
    assert embeds.shape == plain.shape == (1, 248, 32) and not torch.equal(embeds, plain)


def test_lora_scale_reaches_the_text_encoder_and_is_undone_after_the_call():
    peft = pytest.importorskip("peft")  # a dev dependency; diffusers' LoRA backend
    needed = getattr(importlib.import_module("transformers.integrations.peft"), "MIN_PEFT_VERSION", "0")
    if Version(peft.__version__) < Version(needed):  # e.g. transformers 5.25 wants peft 0.22, unreleased
        pytest.skip(f"transformers {transformers.__version__} needs peft >= {needed}, found {peft.__version__}")
    pipe = DeBiasStableDiffusionPipeline(**sd_components(248))
    base, _ = _encode(pipe, LONG_HEAD)
    config = peft.LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    pipe.text_encoder.add_adapter(config)
    off, _ = _encode(pipe, LONG_HEAD, lora_scale=0.0)
    full, _ = _encode(pipe, LONG_HEAD, lora_scale=1.0)
    half, _ = _encode(pipe, LONG_HEAD, lora_scale=0.5)
    again, _ = _encode(pipe, LONG_HEAD, lora_scale=1.0)  # the previous call's scale was undone
    torch.testing.assert_close(off, base)
    assert not torch.allclose(full, base) and not torch.allclose(half, full)
    assert torch.equal(again, full)
