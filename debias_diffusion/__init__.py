"""debias-diffusion: long prompts that really condition Stable Diffusion.

The library: knowledge-preserved stretching of CLIP positions, the real CLIP tokenizer built
offline with long-prompt helpers, converters from Long-CLIP / open_clip / OpenAI layouts to
Hugging Face format, one loader for all of them, and drop-in diffusers pipelines that condition
on whole long prompts. Heavy submodules import lazily.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "stretch_position_table": "stretching",
    "stretch_text_encoder": "stretching",
    "stretched_length": "stretching",
    "build_clip_tokenizer": "tokenization",
    "count_tokens": "tokenization",
    "truncate_prompt": "tokenization",
    "split_into_chunks": "tokenization",
    "PromptTruncation": "tokenization",
    "split_sentences": "sentences",
    "convert_to_hf": "conversion",
    "read_clip_source": "conversion",
    "load_text_encoder": "loading",
    "LoadedTextEncoder": "loading",
    "DeBiasStableDiffusionPipeline": "pipelines",
    "DeBiasStableDiffusionXLPipeline": "pipelines",
    "use_long_text_encoder": "pipeline_components",
    "LONG_CLIP_L": "pipeline_components",
    "plan_prompt": "conditioning",
    "PromptPlan": "conditioning",
    "GenerationSettings": "generation",
    "generate": "generation",
    "load_pipeline": "generation",
    "probe_text": "text_probes",
    "probe_image": "image_probes",
    "load_clip_model": "clip_loading",
    "LoadedCLIP": "clip_loading",
    "DebiasDiffusionError": "errors",
    "PromptError": "errors",
    "CheckpointError": "errors",
    "EncoderMismatchError": "errors",
    "ModelNotFoundError": "errors",
    "OutputExistsError": "errors",
    "DetectorError": "errors",
    "ProbeConfigError": "errors",
    "ProminenceDataError": "errors",
    "UsageError": "errors",
    "evaluate_prominence": "prominence.runner",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .clip_loading import LoadedCLIP, load_clip_model
    from .conditioning import PromptPlan, plan_prompt
    from .conversion import convert_to_hf, read_clip_source
    from .errors import (
        CheckpointError,
        DebiasDiffusionError,
        DetectorError,
        EncoderMismatchError,
        ModelNotFoundError,
        OutputExistsError,
        ProbeConfigError,
        ProminenceDataError,
        PromptError,
        UsageError,
    )
    from .generation import GenerationSettings, generate, load_pipeline
    from .image_probes import probe_image
    from .loading import LoadedTextEncoder, load_text_encoder
    from .pipeline_components import LONG_CLIP_L, use_long_text_encoder
    from .pipelines import DeBiasStableDiffusionPipeline, DeBiasStableDiffusionXLPipeline
    from .prominence.runner import evaluate_prominence
    from .sentences import split_sentences
    from .stretching import stretch_position_table, stretch_text_encoder, stretched_length
    from .text_probes import probe_text
    from .tokenization import PromptTruncation, build_clip_tokenizer, count_tokens, split_into_chunks, truncate_prompt


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'debias_diffusion' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
