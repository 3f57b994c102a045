"""Tiny Stable Diffusion / SDXL components built in code, the way diffusers' own tests build them."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DDIMScheduler, EulerDiscreteScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from debias_diffusion.stretching import stretch_ratio, stretch_text_encoder
from debias_diffusion.tokenization import build_clip_tokenizer

TEXT_WIDTH = 32


def tiny_text_encoder(positions: int = 77, *, projection: bool = False, layers: int = 3, seed: int = 0):
    """A random CLIP text encoder over the real 49408-token vocabulary (EOT pooling at id 49407)."""
    torch.manual_seed(seed)
    config = CLIPTextConfig(
        vocab_size=49408, hidden_size=TEXT_WIDTH, intermediate_size=37, num_hidden_layers=layers,
        num_attention_heads=4, max_position_embeddings=positions, projection_dim=TEXT_WIDTH,
        bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, hidden_act="quick_gelu",
    )  # fmt: skip
    model = CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)
    return model.eval()


def tiny_unet(cross_attention_dim: int = TEXT_WIDTH, *, xl: bool = False) -> UNet2DConditionModel:
    torch.manual_seed(0)
    extra = {}
    if xl:  # SDXL: time ids + pooled text embedding added to the timestep embedding
        extra = dict(
            addition_embed_type="text_time", addition_time_embed_dim=4,
            projection_class_embeddings_input_dim=6 * 4 + TEXT_WIDTH,
        )  # fmt: skip
    return UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim, norm_num_groups=4, attention_head_dim=2, **extra,
    ).eval()  # fmt: skip


def tiny_vae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(
        block_out_channels=(8,), in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",), latent_channels=4, norm_num_groups=4, sample_size=16,
    ).eval()  # fmt: skip


def sd_components(positions: int = 77, *, layers: int = 3) -> dict:
    """Components of a tiny SD 1.x-style pipeline (no safety checker)."""
    return dict(
        vae=tiny_vae(), unet=tiny_unet(), scheduler=DDIMScheduler(steps_offset=1, clip_sample=False), safety_checker=None, feature_extractor=None,
        text_encoder=tiny_text_encoder(positions, layers=layers), tokenizer=build_clip_tokenizer(positions, clean=False),
        requires_safety_checker=False,
    )  # fmt: skip


def sdxl_components(positions: int = 77, *, stretch_second_to: int | None = None) -> dict:
    """Components of a tiny SDXL-style pipeline; optionally the second encoder stretched by KPS."""
    text_encoder_2 = tiny_text_encoder(positions, projection=True, seed=1)
    tokenizer_2 = build_clip_tokenizer(positions, pad_token="!", clean=False)
    if stretch_second_to is not None:
        stretch_text_encoder(
            text_encoder_2, tokenizer_2, keep=20, ratio=stretch_ratio(positions, stretch_second_to, 20)
        )
    return dict(
        vae=tiny_vae(), unet=tiny_unet(2 * TEXT_WIDTH, xl=True), scheduler=EulerDiscreteScheduler(),
        text_encoder=tiny_text_encoder(stretch_second_to or positions, seed=2),
        tokenizer=build_clip_tokenizer(stretch_second_to or positions, clean=False),
        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2,
    )  # fmt: skip


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


SHORT_PROMPT = "A red cube on a wooden table."
LONG_HEAD = "A red cube sits on a wooden table in a quiet kitchen. " * 8
TAILS = ("A small blue sphere hides behind it.", "A tall green cone stands beside it.")
