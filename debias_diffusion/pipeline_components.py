"""Fit long text encoders into diffusers pipelines: resolve, check and swap them.

Used by the pipelines in ``pipelines/`` when they are built or loaded, and by
``use_long_text_encoder`` to upgrade any existing Stable Diffusion / SDXL pipeline in place.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from .conditioning import PromptPlan, check_long_prompt_policy, plan_prompts
from .errors import EncoderMismatchError
from .prompt_fitting import PromptTruncation
from .renamed import renamed_attributes
from .stretching import LONG_CLIP_KEEP, stretch_to_context_length
from .text_model_layout import get_context_length, hidden_width

logger = logging.getLogger(__name__)

LONG_CLIP_L = "BeichenZhang/LongCLIP-L/longclip-L.pt"
"""The default long encoder for SD 1.x and SDXL's first encoder: Long-CLIP-L, converted on load
(``positional_embedding_res`` merged). Replace it with DeBias-CLIP-L weights exported by
``train_encoder`` when you have them."""

ENCODER_ALIASES = {"longclip-l": LONG_CLIP_L}


def sync_tokenizer_length(tokenizer: Any, text_encoder: nn.Module | None) -> None:
    """Make the tokenizer pad/truncate to the encoder's context length (e.g. 248)."""
    if tokenizer is not None and text_encoder is not None:
        tokenizer.model_max_length = get_context_length(text_encoder)  # transformers' name for it


def record_tokenizers_as_clip(pipe: Any) -> None:
    """Name ``OpenCLIPTokenizer`` components as transformers' ``CLIPTokenizer`` in the pipeline config.

    They save the same files, and ``model_index.json`` then loads with any diffusers install
    (a custom tokenizer class would not). A reloaded tokenizer is the stock class, without
    open_clip's ftfy/HTML cleaning.
    """
    from .tokenization import OpenCLIPTokenizer

    for name in ("tokenizer", "tokenizer_2"):
        if isinstance(getattr(pipe, name, None), OpenCLIPTokenizer):
            pipe.register_to_config(**{name: ("transformers", "CLIPTokenizer")})


def check_cross_attention_width(unet: nn.Module | None, text_encoders: Sequence[nn.Module | None]) -> None:
    """The encoders' widths (summed, for SDXL) must equal the UNet's ``cross_attention_dim``."""
    present = [encoder for encoder in text_encoders if encoder is not None]
    if unet is None or not present or len(present) != len(text_encoders):
        return
    needed = unet.config.cross_attention_dim
    widths = [hidden_width(encoder) for encoder in present]
    if isinstance(needed, int) and sum(widths) != needed:
        described = (
            f"the text encoder gives {widths[0]}-wide"
            if len(widths) == 1
            else f"the text encoders give {' + '.join(map(str, widths))} = {sum(widths)}-wide"
        )
        raise EncoderMismatchError(
            f"{described} hidden states "
            f"but the UNet cross-attends to {needed}: SD 1.x needs a 768-wide CLIP-L encoder, SD 2.x 1024 "
            "(OpenCLIP-H), SDXL 768 (CLIP-L) + 1280 (OpenCLIP-bigG); a ViT-B encoder (512) fits none of them"
        )


def check_equal_context_lengths(text_encoder: nn.Module | None, text_encoder_2: nn.Module | None) -> None:
    """SDXL concatenates both encoders' states per token, so their context lengths must agree."""
    if text_encoder is None or text_encoder_2 is None:
        return
    first, second = get_context_length(text_encoder), get_context_length(text_encoder_2)
    if first != second:
        raise EncoderMismatchError(
            f"SDXL's text encoders must read the same number of tokens, but text_encoder has {first} positions "
            f"and text_encoder_2 {second}: stretch the shorter one with knowledge-preserved stretching "
            f"(use_long_text_encoder(pipe, ..., stretch_text_encoder_2=True), or "
            f"debias_diffusion.stretch_text_encoder(pipe.text_encoder_2, pipe.tokenizer_2)), "
            "or load a fine-tuned long pair"
        )


def stretch_to_match(text_encoder: nn.Module, tokenizer: Any, context_length: int) -> bool:
    """Stretch ``text_encoder`` in place (KPS, Long-CLIP's keep=20) to ``context_length``; True if it did."""
    have = get_context_length(text_encoder)
    if not stretch_to_context_length(text_encoder, context_length, tokenizer):
        return False
    logger.info(
        "stretched a %d-position text encoder to %d positions (KPS, keep=%d)", have, context_length, LONG_CLIP_KEEP
    )
    return True


def is_encoder_source(value: object) -> bool:
    """True for what ``load_text_encoder`` accepts by name: a path, Hub id, alias or open_clip spec."""
    return isinstance(value, (str, os.PathLike))


def load_encoder_component(
    source: str | os.PathLike,
    *,
    with_projection: bool,
    torch_dtype: torch.dtype | None = None,
    stretch_to: int | None = None,
    revision: str | None = None,
) -> tuple[nn.Module, Any]:
    """``(text_encoder, tokenizer)`` for a pipeline from a folder, file, Hub id or alias."""
    from .loading import load_text_encoder

    source = ENCODER_ALIASES.get(str(source).lower(), source)
    loaded = load_text_encoder(
        source, with_projection=with_projection, torch_dtype=torch_dtype, stretch_to=stretch_to, revision=revision
    )
    return loaded.text_encoder, loaded.tokenizer


def resolve_encoder_kwargs(
    kwargs: dict[str, Any], pairs: Sequence[tuple[str, str, bool]], revision_key: str = "text_encoder_revision"
) -> None:
    """Replace encoder *names* in ``from_pretrained`` kwargs by loaded encoders (+ their tokenizers).

    ``pairs`` lists ``(encoder_kwarg, tokenizer_kwarg, with_projection)``. A tokenizer the caller
    passed explicitly is kept.
    """
    dtype = kwargs.get("torch_dtype", kwargs.get("dtype"))
    dtype = dtype if isinstance(dtype, torch.dtype) else None
    revision = kwargs.pop(revision_key, None)
    for encoder_key, tokenizer_key, with_projection in pairs:
        source = kwargs.get(encoder_key)
        if not is_encoder_source(source):
            continue
        encoder, tokenizer = load_encoder_component(
            source, with_projection=with_projection, torch_dtype=dtype, revision=revision
        )
        kwargs[encoder_key] = encoder
        kwargs.setdefault(tokenizer_key, tokenizer)


def use_long_text_encoder(
    pipe: Any,
    text_encoder: str | os.PathLike | nn.Module,
    *,
    tokenizer: Any = None,
    text_encoder_2: str | os.PathLike | nn.Module | None = None,
    tokenizer_2: Any = None,
    stretch_text_encoder_2: bool = True,
    revision: str | None = None,
) -> Any:
    """Swap a long text encoder into an existing SD 1.x/2.x or SDXL pipeline, in place.

    ``text_encoder`` is anything ``load_text_encoder`` accepts (or ``"longclip-l"``) or a
    loaded module (then pass its ``tokenizer``, or the pipeline's is resized). The new encoder
    takes the pipeline's dtype and device; tokenizers follow the encoders' lengths. For SDXL,
    ``text_encoder_2`` replaces OpenCLIP-bigG; if it is not given and is shorter than the new
    first encoder, it is stretched with KPS (Long-CLIP's SDXL recipe) unless
    ``stretch_text_encoder_2=False``. Widths are checked against the UNet. Returns ``pipe``.
    Works on stock pipelines too (their ``encode_prompt`` then pads to the new length); use the
    DeBias pipelines (``from_pipe``) for the long-prompt policies.

    Args:
        pipe: an SD 1.x / 2.x or SDXL pipeline (changed in place).
        text_encoder: the long encoder, by name or as a module.
        tokenizer: its tokenizer, for a module (else the pipeline's, resized).
        text_encoder_2, tokenizer_2: SDXL's second encoder and tokenizer.
        stretch_text_encoder_2: stretch SDXL's own second encoder to the first's length.
        revision: the Hub revision for encoders given by Hub id.
    """
    old = getattr(pipe, "text_encoder", None) or getattr(pipe, "text_encoder_2", None)
    dtype = old.dtype if old is not None else None
    device = old.device if old is not None else None
    is_xl = hasattr(pipe, "text_encoder_2")
    encoder, tokenizer = _component(text_encoder, tokenizer, pipe.tokenizer, False, dtype, revision)
    encoder_2, tokenizer_2 = pipe.text_encoder_2 if is_xl else None, pipe.tokenizer_2 if is_xl else None
    if text_encoder_2 is not None:
        encoder_2, tokenizer_2 = _component(text_encoder_2, tokenizer_2, tokenizer_2, True, dtype, revision)
    elif is_xl and stretch_text_encoder_2 and encoder_2 is not None:
        stretch_to_match(encoder_2, tokenizer_2, get_context_length(encoder))
    check_cross_attention_width(pipe.unet, [encoder, encoder_2] if is_xl else [encoder])
    if is_xl:
        check_equal_context_lengths(encoder, encoder_2)
    if device is not None:
        encoder.to(device)
        if encoder_2 is not None:
            encoder_2.to(device)
    sync_tokenizer_length(tokenizer, encoder)
    components: dict[str, Any] = {"text_encoder": encoder, "tokenizer": tokenizer}
    if is_xl:
        sync_tokenizer_length(tokenizer_2, encoder_2)
        components.update(text_encoder_2=encoder_2, tokenizer_2=tokenizer_2)
    pipe.register_modules(**components)
    record_tokenizers_as_clip(pipe)
    return pipe


def _component(value, tokenizer, fallback_tokenizer, with_projection, dtype, revision):
    if is_encoder_source(value):
        encoder, loaded_tokenizer = load_encoder_component(
            value, with_projection=with_projection, torch_dtype=dtype, revision=revision
        )
        return encoder, tokenizer or loaded_tokenizer
    if not isinstance(value, nn.Module):
        raise TypeError(
            f"text_encoder must be a path, Hub id, 'longclip-l' or a transformers CLIP text model, "
            f"got {type(value).__name__}"
        )
    return (value.to(dtype) if dtype is not None else value), tokenizer or fallback_tokenizer


@contextmanager
def lora_scale_applied(
    pipe: Any, text_encoders: Sequence[nn.Module | None], lora_scale: float | None, mixin: type
) -> Iterator[None]:
    """Scale the text encoders' LoRA layers for one ``encode_prompt`` call, as stock diffusers does."""
    from diffusers.models.lora import adjust_lora_scale_text_encoder
    from diffusers.utils import USE_PEFT_BACKEND, scale_lora_layers, unscale_lora_layers

    encoders = [encoder for encoder in text_encoders if encoder is not None]
    if lora_scale is not None and isinstance(pipe, mixin):
        pipe._lora_scale = lora_scale
        for encoder in encoders:
            if USE_PEFT_BACKEND:
                scale_lora_layers(encoder, lora_scale)
            else:
                adjust_lora_scale_text_encoder(encoder, lora_scale)
    try:
        yield
    finally:
        if isinstance(pipe, mixin) and USE_PEFT_BACKEND:
            for encoder in encoders:
                unscale_lora_layers(encoder, lora_scale)


def check_inputs_with_unequal_lengths(parent_check: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """Run a stock ``check_inputs``, letting ``prompt_embeds`` and ``negative_prompt_embeds`` differ in length.

    The DeBias pipelines pad the shorter one with empty-prompt states, so only their batch size
    and width must agree; every other stock check still runs.
    """
    bound = inspect.signature(parent_check).bind(*args, **kwargs)
    positive = bound.arguments.get("prompt_embeds")
    negative = bound.arguments.get("negative_prompt_embeds")
    if not (isinstance(positive, torch.Tensor) and isinstance(negative, torch.Tensor)):
        parent_check(*bound.args, **bound.kwargs)
        return
    if positive.ndim != 3 or negative.ndim != 3 or positive.shape[::2] != negative.shape[::2]:
        raise ValueError(
            "`prompt_embeds` and `negative_prompt_embeds` must agree in batch size and width (their lengths may "
            f"differ: the shorter is padded), got {tuple(positive.shape)} and {tuple(negative.shape)}"
        )
    if bound.arguments.get("negative_prompt") is not None:
        raise ValueError(
            "Cannot forward both `negative_prompt` and `negative_prompt_embeds`; pass only one of the two."
        )
    if (
        "negative_pooled_prompt_embeds" in bound.signature.parameters
        and bound.arguments.get("negative_pooled_prompt_embeds") is None
    ):
        raise ValueError(
            "If `negative_prompt_embeds` are provided, `negative_pooled_prompt_embeds` also have to be passed."
        )
    bound.arguments["negative_prompt_embeds"] = None
    parent_check(*bound.args, **bound.kwargs)


_LONG_PROMPT_DOC = """
        long_prompt (`str`, *optional*):
            How a prompt longer than the text encoder is handled for this call: `"truncate"` (whole
            sentences that fit; what is dropped is logged and kept in `pipe.prompt_truncations`), `"chunk"`
            or `"error"`. Defaults to the pipeline's `long_prompt` setting.
"""


def call_with_long_prompt(stock_call: Callable[..., Any]) -> Callable[..., Any]:
    """``stock_call`` with a keyword-only ``long_prompt`` argument, under the stock signature plus it.

    Tools that read the signature (diffusers' own tests, IP-Adapter and callback checks, UIs) see
    every stock parameter; ``long_prompt`` sets the policy for the duration of the call.
    """

    @functools.wraps(stock_call)
    def __call__(self, *args: Any, long_prompt: str | None = None, **kwargs: Any) -> Any:
        self._call_long_prompt = None if long_prompt is None else check_long_prompt_policy(long_prompt)
        try:
            return stock_call(self, *args, **kwargs)
        finally:
            self._call_long_prompt = None

    signature = inspect.signature(stock_call)
    parameters = [parameter for parameter in signature.parameters.values() if parameter.name != "long_prompt"]
    added = inspect.Parameter("long_prompt", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=str | None)
    at = next((i for i, p in enumerate(parameters) if p.kind is inspect.Parameter.VAR_KEYWORD), len(parameters))
    __call__.__signature__ = signature.replace(parameters=[*parameters[:at], added, *parameters[at:]])
    __call__.__doc__ = (stock_call.__doc__ or "").rstrip() + "\n" + _LONG_PROMPT_DOC
    return __call__


class LongPromptPipelineMixin:
    """What both DeBias pipelines add to their stock parent besides ``encode_prompt``.

    Encoders given by name to ``from_pretrained`` / ``from_pipe``, a per-call ``long_prompt``
    override, and ``check_inputs`` that lets embeddings of different lengths meet. Put it before
    the stock pipeline class in the bases; ``_encoder_kwargs`` lists
    ``(encoder_kwarg, tokenizer_kwarg, with_projection)``.
    """

    _encoder_kwargs: tuple[tuple[str, str, bool], ...] = ()
    _call_long_prompt: str | None = None
    prompt_truncations: tuple[PromptTruncation, ...] = ()
    """What the last ``encode_prompt`` call (hence the last ``__call__``) cut from its prompts, positive
    and negative: one ``PromptTruncation`` (kept ``text``, ``dropped`` text, token counts) per prompt."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give each pipeline a ``__call__`` whose signature is its stock parent's plus ``long_prompt``."""
        super().__init_subclass__(**kwargs)
        below_mixin = cls.__mro__[: cls.__mro__.index(LongPromptPipelineMixin)]
        if not any("__call__" in vars(klass) for klass in below_mixin):
            cls.__call__ = call_with_long_prompt(super().__call__)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        r"""Stock ``from_pretrained``; text encoders may also be a folder, ``.pt``/``.safetensors``
        file, Hub id or ``"longclip-l"`` (loaded with ``debias_diffusion.load_text_encoder``; its
        tokenizer is used unless one is given; ``text_encoder_revision`` picks its revision)."""
        resolve_encoder_kwargs(kwargs, cls._encoder_kwargs)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def from_pipe(cls, pipeline, **kwargs):
        r"""Stock ``from_pipe`` (components shared, not copied); encoders may be names as in
        ``from_pretrained``. Like stock, the result is float32 unless ``torch_dtype`` is given."""
        resolve_encoder_kwargs(kwargs, cls._encoder_kwargs)
        return super().from_pipe(pipeline, **kwargs)

    def check_inputs(self, *args: Any, **kwargs: Any) -> None:
        check_inputs_with_unequal_lengths(super().check_inputs, *args, **kwargs)

    def plan_and_record(self, prompts: Sequence[str], tokenizer: Any, policy: str) -> list[PromptPlan]:
        """``plan_prompts``, adding every truncation (once) to ``prompt_truncations``."""
        plans = plan_prompts(prompts, tokenizer, policy)
        cuts = [plan.truncation for plan in plans if plan.truncation is not None and plan.truncation.was_truncated]
        self.prompt_truncations = tuple(dict.fromkeys([*self.prompt_truncations, *cuts]))
        return plans

    def long_prompt_policy(self, long_prompt: str | None = None) -> str:
        """The policy in force: ``long_prompt`` if given, else this call's, else the pipeline's."""
        return long_prompt or self._call_long_prompt or getattr(self.config, "long_prompt", "truncate")


__getattr__ = renamed_attributes(__name__, {"check_equal_positions": "check_equal_context_lengths"}, globals())
