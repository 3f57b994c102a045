"""A converted 248-position encoder loads into a stock diffusers pipeline folder and conditions on it."""

from __future__ import annotations

import torch
from clip_builders import long_clip_state_dict
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from debias_diffusion.conversion import convert_to_hf


def _tiny_unet_and_vae():
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=4, attention_head_dim=2,
    )  # fmt: skip
    vae = AutoencoderKL(
        block_out_channels=(8,), in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",), latent_channels=4, norm_num_groups=4, sample_size=16,
    )  # fmt: skip
    return unet, vae


def test_converted_encoder_in_a_saved_and_reloaded_stock_pipeline(tmp_path):
    state, _ = long_clip_state_dict()
    torch.save(state, tmp_path / "longclip.pt")
    convert_to_hf(tmp_path / "longclip.pt", tmp_path / "encoder", text_only=True, num_heads=2)
    unet, vae = _tiny_unet_and_vae()
    pipe = StableDiffusionPipeline(
        vae=vae, unet=unet, scheduler=DDIMScheduler(), safety_checker=None, feature_extractor=None,
        text_encoder=CLIPTextModel.from_pretrained(tmp_path / "encoder"),
        tokenizer=CLIPTokenizer.from_pretrained(tmp_path / "encoder"),
        requires_safety_checker=False,
    )  # fmt: skip
    pipe.save_pretrained(tmp_path / "pipe")
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path / "pipe", safety_checker=None)
    assert pipe.tokenizer.model_max_length == 248

    head = "A red cube sits on a wooden table. " * 10
    tail_a, tail_b = "A small blue sphere hides behind it.", "A tall green cone stands beside it."
    embeds_a, _ = pipe.encode_prompt(head + tail_a, "cpu", 1, False)
    embeds_b, _ = pipe.encode_prompt(head + tail_b, "cpu", 1, False)
    n_head = len(pipe.tokenizer(head.strip()).input_ids) - 1  # SOT + head tokens
    assert n_head > 77 and embeds_a.shape == (1, 248, 32)
    torch.testing.assert_close(embeds_a[:, :n_head], embeds_b[:, :n_head])  # causal: the shared head is identical
    assert (embeds_a[:, n_head:] - embeds_b[:, n_head:]).abs().max() > 1e-3  # details past token 77 count

    image = pipe(
        head + tail_a,
        num_inference_steps=2,
        height=16,
        width=16,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    ).images
    assert image.shape == (1, 16, 16, 3)
