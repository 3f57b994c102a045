"""``from_pipe`` from a DeBias pipeline into stock img2img, inpaint and ControlNet pipelines (SD and SDXL).

The stock pipeline shares the long encoder and its 248-token tokenizer, so a ~200-token prompt
conditions it whole: its embeddings equal the DeBias pipeline's, and words past token 77 change them.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import (
    ControlNetModel,
    StableDiffusionControlNetPipeline,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionXLControlNetPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLInpaintPipeline,
)
from pipeline_builders import LONG_HEAD, TAILS, sd_components, sdxl_components, seeded

from debias_diffusion import DeBiasStableDiffusionPipeline, DeBiasStableDiffusionXLPipeline, count_tokens

PROMPTS = [LONG_HEAD * 2 + tail for tail in TAILS]  # ~215 tokens; they differ only at the end
IMAGE = torch.rand(1, 3, 16, 16, generator=seeded(5))
MASK = torch.zeros(1, 1, 16, 16).index_fill_(2, torch.arange(8), 1.0)


def _controlnet(unet) -> ControlNetModel:
    torch.manual_seed(0)  # one conditioning block: the tiny VAE does not downsample either
    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8,))


TARGETS = {
    "img2img": (StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline, dict(image=IMAGE, strength=0.6)),
    "inpaint": (StableDiffusionInpaintPipeline, StableDiffusionXLInpaintPipeline, dict(image=IMAGE, mask_image=MASK, strength=0.6)),
    "controlnet": (StableDiffusionControlNetPipeline, StableDiffusionXLControlNetPipeline, dict(image=IMAGE)),
}  # fmt: skip


def _embeds(pipe, prompt: str, xl: bool) -> torch.Tensor:
    if xl:
        return pipe.encode_prompt(prompt, device="cpu", do_classifier_free_guidance=False)[0]
    return pipe.encode_prompt(prompt, "cpu", 1, False)[0]


@pytest.mark.parametrize("xl", [False, True], ids=["sd", "sdxl"])
@pytest.mark.parametrize("target", list(TARGETS))
def test_from_pipe_keeps_the_long_encoder_and_conditions_on_200_tokens(target, xl):
    sd_class, xl_class, inputs = TARGETS[target]
    if xl:
        debias = DeBiasStableDiffusionXLPipeline(**sdxl_components(77, stretch_second_to=248))
    else:
        debias = DeBiasStableDiffusionPipeline(**sd_components(248))
    extra = {"controlnet": _controlnet(debias.unet)} if target == "controlnet" else {}
    stock = (xl_class if xl else sd_class).from_pipe(debias, **extra)

    assert stock.text_encoder is debias.text_encoder and stock.tokenizer.model_max_length == 248
    if xl:
        assert stock.text_encoder_2 is debias.text_encoder_2 and stock.tokenizer_2.model_max_length == 248
    assert 200 <= count_tokens(stock.tokenizer, PROMPTS[0]) <= 246
    first, second = (_embeds(stock, prompt, xl) for prompt in PROMPTS)
    assert first.shape[1] == 248
    torch.testing.assert_close(first, _embeds(debias, PROMPTS[0], xl), rtol=0, atol=0)
    assert (first[:, 200:] - second[:, 200:]).abs().amax() > 1e-3  # the tails, past token 200, condition it

    run = dict(num_inference_steps=2, height=16, width=16, output_type="np", generator=seeded())
    images = [stock(prompt, **inputs, **run).images for prompt in PROMPTS]
    assert images[0].shape == (1, 16, 16, 3)
    assert not (images[0] == images[1]).all()  # a different tail gives a different image
