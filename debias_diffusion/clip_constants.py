"""CLIP's fixed numbers: the BPE vocabulary's special token ids, the two context lengths, OpenAI's image normalisation.

Every OpenAI-vocabulary CLIP (OpenAI, open_clip, Long-CLIP, DeBias-CLIP) shares them; the tokenizer
(:mod:`debias_diffusion.tokenization`) gives the same ids.
"""

from __future__ import annotations

from .renamed import renamed_attributes

__all__ = [
    "CLIP_VOCAB_SIZE",
    "EOT_ID",
    "LONG_CLIP_CONTEXT_LENGTH",
    "OPENAI_CLIP_CONTEXT_LENGTH",
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "PAD_ID",
    "SOT_ID",
]

CLIP_VOCAB_SIZE = 49408
SOT_ID = 49406
"""``<|startoftext|>``: the first token of every row."""
EOT_ID = 49407
"""``<|endoftext|>``: ends the text; OpenAI CLIP pools the final state at (the first) EOT."""
PAD_ID = 0
"""open_clip's padding (``"!"``); never EOT, since pooling takes the first EOT."""

OPENAI_CLIP_CONTEXT_LENGTH = 77
"""OpenAI CLIP's context length: what Stable Diffusion's UNets were trained on."""
LONG_CLIP_CONTEXT_LENGTH = 248
"""Long-CLIP / DeBias-CLIP's context length: 77 rows stretched with keep=20, ratio=4."""

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
"""Per-channel mean OpenAI CLIP normalises images with (open_clip's and transformers' default)."""
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
"""Per-channel standard deviation OpenAI CLIP normalises images with."""

__getattr__ = renamed_attributes(
    __name__,
    {"OPENAI_CLIP_POSITIONS": "OPENAI_CLIP_CONTEXT_LENGTH", "LONG_CLIP_POSITIONS": "LONG_CLIP_CONTEXT_LENGTH"},
    globals(),
)
