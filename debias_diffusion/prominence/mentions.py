"""Which objects of a prompt reach the text encoder: a truncated prompt no longer asks for the objects it lost.

The pipeline's tokenizer and long-prompt policy decide what is encoded. DeBias pipelines
(``long_prompt_policy``) truncate at sentence (else word) boundaries, or chunk (everything is
kept); stock pipelines cut the tokens past ``model_max_length``. An object counts as
*conditioned* when its whole mention (its label's first occurrence after the previous object's)
lies in the kept text. SDXL's two tokenizers cut at the shorter length.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..errors import ProminenceDataError
from ..tokenization import count_tokens, encoder_capacity, truncate_prompt

__all__ = ["conditioned_objects", "mention_ends"]


def mention_ends(prompt: str, ordering: Sequence[str]) -> list[int]:
    """Character offset just past each object's mention in ``prompt`` (whitespace collapsed), in prompt order."""
    text = " ".join(prompt.split())
    ends, start = [], 0
    for label in ordering:
        pattern = re.compile(rf"(?<!\w){re.escape(' '.join(label.split()))}(?!\w)", re.IGNORECASE)
        found = pattern.search(text, start)
        if found is None:
            raise ProminenceDataError(
                f"the prompt {prompt!r} does not name {label!r} after the objects before it: a template must "
                "contain every object's label, in order"
            )
        start = found.end()
        ends.append(start)
    return ends


def _tokenizers(pipe: Any) -> list[Any]:
    return [t for t in (getattr(pipe, "tokenizer", None), getattr(pipe, "tokenizer_2", None)) if t is not None]


def conditioned_objects(pipe: Any, prompt: str, ordering: Sequence[str], call_policy: str | None) -> list[bool] | None:
    """For each object of ``ordering``, whether ``pipe`` encodes its mention; ``None`` for a pipeline without a tokenizer.

    Args:
        pipe: the text-to-image pipeline that will be called with ``prompt``.
        prompt: the prompt.
        ordering: the objects in the order the prompt names them.
        call_policy: the ``long_prompt`` passed with the call, if any.
    """
    tokenizers = _tokenizers(pipe)
    if not tokenizers:
        return None
    ends = mention_ends(prompt, ordering)
    tokenizer = min(tokenizers, key=encoder_capacity)
    text = " ".join(prompt.split())
    policy_of = getattr(pipe, "long_prompt_policy", None)
    if callable(policy_of):
        policy = policy_of(call_policy)
        if policy != "truncate" or count_tokens(tokenizer, text) <= encoder_capacity(tokenizer):
            return [True] * len(ordering)  # chunked, fits, or refused by the pipeline itself ("error")
        kept = len(truncate_prompt(text, tokenizer).text)
        return [end <= kept for end in ends]
    capacity = encoder_capacity(tokenizer)  # stock pipelines: the tokens past the encoder's length are cut
    return [count_tokens(tokenizer, text[:end]) <= capacity for end in ends]
