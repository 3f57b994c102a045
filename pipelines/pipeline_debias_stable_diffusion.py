"""Stable Diffusion 1.x / 2.x with long prompts: the stock pipeline, with a 248-token prompt encoder.

Installed as ``debias_diffusion.pipelines.pipeline_debias_stable_diffusion``; this file also works
on its own as ``DiffusionPipeline.from_pretrained(..., custom_pipeline=<this file>,
trust_remote_code=True)`` when ``debias_diffusion`` is installed.
"""

import functools

import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.loaders import StableDiffusionLoraLoaderMixin, TextualInversionLoaderMixin
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from diffusers.schedulers import KarrasDiffusionSchedulers
from transformers import CLIPImageProcessor, CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection

from debias_diffusion.conditioning import (
    LongPromptPolicy,
    OutputLayer,
    check_long_prompt_policy,
    common_length,
    empty_prompt_states,
    encode_plans,
    negative_prompt_list,
    repeat_for_images,
    to_length,
)
from debias_diffusion.pipeline_components import (
    LongPromptPipelineMixin,
    check_cross_attention_width,
    lora_scale_applied,
    record_tokenizers_as_clip,
    sync_tokenizer_length,
)
from debias_diffusion.transformers_logging import quiet_transformers


class DeBiasStableDiffusionPipeline(LongPromptPipelineMixin, StableDiffusionPipeline):
    r"""``StableDiffusionPipeline`` whose prompts are encoded whole by a long (e.g. 248-token) text encoder.

    Everything else is the stock pipeline: schedulers, LoRA, textual inversion, IP-Adapter,
    callbacks, ``prompt_embeds``, CPU offload, attention processors, ``from_pipe``,
    ``save_pretrained``. Differences in how prompts become embeddings:

    - the tokenizer pads to the encoder's length (248 for Long-CLIP / DeBias-CLIP encoders);
    - a prompt longer than that follows ``long_prompt``: ``"truncate"`` (at a sentence boundary,
      with a warning naming what was dropped), ``"chunk"`` (sentence-aligned chunks encoded
      separately and concatenated) or ``"error"``; a word longer than the window (tag lists without
      spaces, CJK text) is cut at punctuation, else between characters, never refused, and
      ``pipe.prompt_truncations`` holds what the last call dropped;
    - positive and negative embeddings always have the same length, whatever mix of strings and
      embeddings is passed (the shorter is padded with the empty prompt's states);
    - ``clip_skip`` works on transformers >= 5.6 and applies to the negative prompt too.

    With a 77-position encoder and prompts that fit, outputs equal the stock pipeline's bit for bit.

    Args:
        vae: the autoencoder between images and latents.
        text_encoder: a ``CLIPTextModel`` of any context length (e.g. 248).
        tokenizer: its CLIP tokenizer; it is resized to the encoder's context length.
        unet: the denoising ``UNet2DConditionModel``.
        scheduler: any diffusers scheduler.
        safety_checker: the stock safety checker, or ``None``.
        feature_extractor: the safety checker's image processor.
        image_encoder: IP-Adapter's image encoder, or ``None``.
        requires_safety_checker: as ``StableDiffusionPipeline``.
        long_prompt: default policy for prompts longer than the encoder (overridable per call).
    """

    _encoder_kwargs = (("text_encoder", "tokenizer", False),)

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        safety_checker: StableDiffusionSafetyChecker,
        feature_extractor: CLIPImageProcessor,
        image_encoder: CLIPVisionModelWithProjection = None,
        requires_safety_checker: bool = True,
        long_prompt: str = "truncate",
    ):
        check_cross_attention_width(unet, [text_encoder])
        super().__init__(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            safety_checker=safety_checker,
            feature_extractor=feature_extractor,
            image_encoder=image_encoder,
            requires_safety_checker=requires_safety_checker,
        )
        self.register_to_config(long_prompt=check_long_prompt_policy(long_prompt))
        sync_tokenizer_length(tokenizer, text_encoder)
        record_tokenizers_as_clip(self)

    def encode_prompt(
        self,
        prompt,
        device,
        num_images_per_prompt,
        do_classifier_free_guidance,
        negative_prompt=None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        lora_scale: float | None = None,
        clip_skip: int | None = None,
        long_prompt: LongPromptPolicy | None = None,
    ):
        r"""Encode prompts into text-encoder hidden states ``(prompt_embeds, negative_prompt_embeds)``.

        Same arguments and results as the stock method, plus ``long_prompt``. Both outputs have
        the same length: one encoder pass (e.g. 248 tokens) unless a prompt is chunked.
        """
        policy = self.long_prompt_policy(long_prompt)
        self.prompt_truncations = ()
        layer = OutputLayer.stable_diffusion(clip_skip)
        prompts = [prompt] if isinstance(prompt, str) else prompt
        batch_size = len(prompts) if prompts is not None else prompt_embeds.shape[0]
        with lora_scale_applied(self, [self.text_encoder], lora_scale, StableDiffusionLoraLoaderMixin):
            encode = functools.partial(self._encode_strings, device=device, layer=layer, policy=policy)
            positive = prompt_embeds if prompt_embeds is not None else encode(prompts)
            negative = None
            if do_classifier_free_guidance:
                negative = negative_prompt_embeds
                if negative is None:
                    negative = encode(negative_prompt_list(negative_prompt, batch_size))
            length = common_length(positive, negative)
            empty = functools.cache(
                lambda: empty_prompt_states(self.text_encoder, self.tokenizer, device=device, layer=layer)
            )
            prompt_embeds = to_length(positive, length, empty)
            if negative is not None:
                negative_prompt_embeds = to_length(negative, length, empty)

        dtype = self.text_encoder.dtype if self.text_encoder is not None else self.unet.dtype
        prompt_embeds = repeat_for_images(prompt_embeds.to(dtype=dtype, device=device), num_images_per_prompt)
        if do_classifier_free_guidance:
            negative_prompt_embeds = repeat_for_images(
                negative_prompt_embeds.to(dtype=dtype, device=device), num_images_per_prompt
            )
        return prompt_embeds, negative_prompt_embeds

    def _encode_strings(self, prompts: list[str], *, device, layer: OutputLayer, policy: LongPromptPolicy):
        if isinstance(self, TextualInversionLoaderMixin):
            with quiet_transformers():  # it tokenizes without truncation: a long prompt would warn
                prompts = self.maybe_convert_prompt(prompts, self.tokenizer)
        plans = self.plan_and_record(prompts, self.tokenizer, policy)
        return encode_plans(self.text_encoder, self.tokenizer, plans, device=device, layer=layer).hidden
