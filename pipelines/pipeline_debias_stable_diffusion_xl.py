"""SDXL with long prompts: the stock pipeline, with both prompt encoders reading e.g. 248 tokens.

Installed as ``debias_diffusion.pipelines.pipeline_debias_stable_diffusion_xl``; this file also
works on its own as ``DiffusionPipeline.from_pretrained(..., custom_pipeline=<this file>,
trust_remote_code=True)`` when ``debias_diffusion`` is installed.
"""

import functools
from typing import Any, Literal

import torch
from diffusers import AutoencoderKL, StableDiffusionXLPipeline, UNet2DConditionModel
from diffusers.loaders import StableDiffusionXLLoraLoaderMixin, TextualInversionLoaderMixin
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils.torch_utils import get_module_execution_device
from transformers import (
    CLIPImageProcessor,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionModelWithProjection,
)

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
from debias_diffusion.errors import EncoderMismatchError
from debias_diffusion.pipeline_components import (
    LongPromptPipelineMixin,
    check_cross_attention_width,
    check_equal_context_lengths,
    lora_scale_applied,
    record_tokenizers_as_clip,
    sync_tokenizer_length,
)
from debias_diffusion.transformers_logging import quiet_transformers

EncoderLayer = Literal["penultimate", "final"]


class DeBiasStableDiffusionXLPipeline(LongPromptPipelineMixin, StableDiffusionXLPipeline):
    r"""``StableDiffusionXLPipeline`` whose prompts are encoded whole by long text encoders.

    Both encoders must read the same number of tokens (their states are concatenated per token):
    a Long-CLIP / DeBias-CLIP CLIP-L with OpenCLIP-bigG stretched by knowledge-preserved
    stretching (Long-CLIP's SDXL recipe; ``use_long_text_encoder`` does it), or a fine-tuned
    long pair. Everything else is the stock pipeline. Differences in prompt encoding:

    - tokenizers pad to the encoders' length; longer prompts follow ``long_prompt``
      (``"truncate"`` | ``"chunk"`` | ``"error"``); ``pipe.prompt_truncations`` holds what the last
      call dropped;
    - ``encoder_layer``: ``"penultimate"`` hidden states (stock SDXL) or ``"final"`` (the
      final layer with its LayerNorm, as Long-CLIP's SDXL demo uses);
    - the pooled embedding is encoder 2's projected end-of-text state of the prompt (its first
      chunk when chunked, as A1111 does);
    - positive and negative embeddings always match in length; ``clip_skip`` applies to both.

    With 77-position encoders and prompts that fit, outputs equal the stock pipeline's bit for bit.
    ``from_pretrained(..., text_encoder=..., text_encoder_2=...)`` takes a fine-tuned long pair by
    name; to pair a long CLIP-L with stock bigG, load the stock pipeline and call
    ``debias_diffusion.use_long_text_encoder`` (it stretches bigG).

    Args:
        vae: the autoencoder between images and latents.
        text_encoder: the CLIP-L ``CLIPTextModel`` (e.g. a 248-position long encoder).
        text_encoder_2: the OpenCLIP-bigG ``CLIPTextModelWithProjection``, of the same context length.
        tokenizer, tokenizer_2: their CLIP tokenizers; each is resized to its encoder's context length.
        unet: the denoising ``UNet2DConditionModel``.
        scheduler: any diffusers scheduler.
        image_encoder: IP-Adapter's image encoder, or ``None``.
        feature_extractor: IP-Adapter's image processor, or ``None``.
        force_zeros_for_empty_prompt, add_watermarker: as ``StableDiffusionXLPipeline``.
        long_prompt: default policy for prompts longer than the encoders (overridable per call).
        encoder_layer: ``"penultimate"`` or ``"final"`` hidden states (see above).
    """

    _encoder_kwargs = (("text_encoder", "tokenizer", False), ("text_encoder_2", "tokenizer_2", True))

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        text_encoder_2: CLIPTextModelWithProjection,
        tokenizer: CLIPTokenizer,
        tokenizer_2: CLIPTokenizer,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        image_encoder: CLIPVisionModelWithProjection = None,
        feature_extractor: CLIPImageProcessor = None,
        force_zeros_for_empty_prompt: bool = True,
        add_watermarker: bool | None = None,
        long_prompt: str = "truncate",
        encoder_layer: str = "penultimate",
    ):
        if text_encoder is not None:
            check_cross_attention_width(unet, [text_encoder, text_encoder_2])
        check_equal_context_lengths(text_encoder, text_encoder_2)
        if encoder_layer not in ("penultimate", "final"):
            raise ValueError(f"encoder_layer must be 'penultimate' or 'final', got {encoder_layer!r}")
        super().__init__(
            vae=vae,
            text_encoder=text_encoder,
            text_encoder_2=text_encoder_2,
            tokenizer=tokenizer,
            tokenizer_2=tokenizer_2,
            unet=unet,
            scheduler=scheduler,
            image_encoder=image_encoder,
            feature_extractor=feature_extractor,
            force_zeros_for_empty_prompt=force_zeros_for_empty_prompt,
            add_watermarker=add_watermarker,
        )
        self.register_to_config(long_prompt=check_long_prompt_policy(long_prompt), encoder_layer=encoder_layer)
        sync_tokenizer_length(tokenizer, text_encoder)
        sync_tokenizer_length(tokenizer_2, text_encoder_2)
        record_tokenizers_as_clip(self)

    def encode_prompt(
        self,
        prompt: str | list[str],
        prompt_2: str | list[str] | None = None,
        device: torch.device | None = None,
        num_images_per_prompt: int = 1,
        do_classifier_free_guidance: bool = True,
        negative_prompt: str | list[str] | None = None,
        negative_prompt_2: str | list[str] | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        pooled_prompt_embeds: torch.Tensor | None = None,
        negative_pooled_prompt_embeds: torch.Tensor | None = None,
        lora_scale: float | None = None,
        clip_skip: int | None = None,
        long_prompt: LongPromptPolicy | None = None,
    ):
        r"""Encode prompts: ``(prompt_embeds, negative_prompt_embeds, pooled, negative_pooled)``.

        Same arguments and results as the stock method, plus ``long_prompt``.
        """
        device = device or self._execution_device
        policy = self.long_prompt_policy(long_prompt)
        self.prompt_truncations = ()
        layer = OutputLayer.stable_diffusion_xl(
            clip_skip, getattr(self.config, "encoder_layer", "penultimate") == "final"
        )
        prompts = [prompt] if isinstance(prompt, str) else prompt
        batch_size = len(prompts) if prompts is not None else prompt_embeds.shape[0]
        encoders = [self.text_encoder, self.text_encoder_2]
        encode = functools.partial(self._encode_strings, layer=layer, policy=policy)
        with lora_scale_applied(self, encoders, lora_scale, StableDiffusionXLLoraLoaderMixin):
            empty = functools.cache(lambda: self._empty_states(layer))  # per encoder
            empty_joined = functools.cache(lambda: torch.cat(empty(), dim=-1))  # for concatenated embeddings
            positive = negative = None
            if prompt_embeds is None:
                prompts_2 = prompt_2 or prompt
                positive, pooled = encode(prompts, [prompts_2] if isinstance(prompts_2, str) else prompts_2)
                pooled_prompt_embeds = pooled if pooled_prompt_embeds is None else pooled_prompt_embeds
            zero_negative = negative_prompt is None and self.config.force_zeros_for_empty_prompt
            if do_classifier_free_guidance and negative_prompt_embeds is None and not zero_negative:
                negatives = negative_prompt_list(negative_prompt, batch_size)
                negatives_2 = negative_prompt_list(negative_prompt_2 or negative_prompt, batch_size)
                negative, negative_pooled = encode(negatives, negatives_2)
                if negative_pooled_prompt_embeds is None:
                    negative_pooled_prompt_embeds = negative_pooled
            length = common_length(prompt_embeds, negative_prompt_embeds, *(positive or ()), *(negative or ()))
            prompt_embeds = self._join(positive, length, empty) if prompt_embeds is None else prompt_embeds
            prompt_embeds = to_length(prompt_embeds, length, empty_joined)
            if do_classifier_free_guidance:
                if negative is not None:
                    negative_prompt_embeds = self._join(negative, length, empty)
                elif negative_prompt_embeds is None:  # stock SDXL: zeros for an absent negative prompt
                    negative_prompt_embeds = torch.zeros_like(prompt_embeds)
                    negative_pooled_prompt_embeds = torch.zeros_like(pooled_prompt_embeds)
                negative_prompt_embeds = to_length(negative_prompt_embeds, length, empty_joined)

        dtype = self.text_encoder_2.dtype if self.text_encoder_2 is not None else self.unet.dtype
        prompt_embeds = repeat_for_images(prompt_embeds.to(dtype=dtype, device=device), num_images_per_prompt)
        pooled_prompt_embeds = repeat_for_images(pooled_prompt_embeds, num_images_per_prompt)
        if do_classifier_free_guidance:
            negative_prompt_embeds = negative_prompt_embeds.to(dtype=dtype, device=device)
            negative_prompt_embeds = repeat_for_images(negative_prompt_embeds, num_images_per_prompt)
            negative_pooled_prompt_embeds = repeat_for_images(negative_pooled_prompt_embeds, num_images_per_prompt)
        return prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds, negative_pooled_prompt_embeds

    def _pairs(self) -> list[tuple[Any, Any]]:
        """(tokenizer, encoder) of each text encoder present, in concatenation order."""
        pairs = [(self.tokenizer, self.text_encoder), (self.tokenizer_2, self.text_encoder_2)]
        return [(tokenizer, encoder) for tokenizer, encoder in pairs if encoder is not None]

    def _encode_strings(
        self, prompts: list[str], prompts_2: list[str], *, layer: OutputLayer, policy: LongPromptPolicy
    ):
        """Per-encoder lists of per-prompt states, and encoder 2's pooled embeddings."""
        pairs = self._pairs()
        texts = [prompts, prompts_2][-len(pairs) :]
        states, pooled = [], None
        for (tokenizer, encoder), batch in zip(pairs, texts, strict=True):
            if isinstance(self, TextualInversionLoaderMixin):
                with quiet_transformers():  # it tokenizes without truncation: a long prompt would warn
                    batch = self.maybe_convert_prompt(batch, tokenizer)
            device = get_module_execution_device(encoder)
            encoded = encode_plans(
                encoder, tokenizer, self.plan_and_record(batch, tokenizer, policy), device=device, layer=layer
            )
            states.append(encoded.hidden)
            pooled = encoded.pooled
        if pooled is None:
            raise EncoderMismatchError(
                "SDXL needs a pooled prompt embedding from text_encoder_2: load it as a "
                "CLIPTextModelWithProjection (a text-only export of this project already is one)"
            )
        return states, pooled

    def _empty_states(self, layer: OutputLayer) -> list[torch.Tensor]:
        """Each encoder's empty-prompt states (on encoder 2's device), for padding."""
        target = get_module_execution_device(self.text_encoder_2)
        return [
            empty_prompt_states(encoder, tokenizer, device=get_module_execution_device(encoder), layer=layer).to(target)
            for tokenizer, encoder in self._pairs()
        ]

    @staticmethod
    def _join(per_encoder: list[list[torch.Tensor]], length: int, empty) -> torch.Tensor:
        """Bring every encoder's per-prompt states to ``length`` and concatenate them per token."""
        stacked = [
            to_length(states, length, lambda index=index: empty()[index]) for index, states in enumerate(per_encoder)
        ]
        return torch.cat([tensor.to(stacked[-1].device) for tensor in stacked], dim=-1)
