"""Late-detail adherence: does a detail mentioned late in a long prompt reach the image?

The target object is mentioned at controlled token offsets inside neutral context (:mod:`.prompts`,
:mod:`.context`); every condition (an encoder with a long-prompt policy) generates the same prompts
and their no-mention controls with the same seeds; a detector measures the target; the metrics
(:mod:`.metrics`) give presence minus baseline per offset with cluster-bootstrap intervals and an
effective length. :func:`~.runner.evaluate_late_detail` runs it all with prominence's image cache
and detectors (docs/late-detail.md); :mod:`.attention` measures where the chain drops a late mention
(the UNet's cross-attention on it, the encoder's states of it).
"""

from .context import NEUTRAL_CONTEXT, check_context, context_pool
from .prompts import DEFAULT_OFFSETS, LateDetailItem, LateDetailPrompt, build_prompts, read_items

__all__ = [
    "DEFAULT_OFFSETS",
    "NEUTRAL_CONTEXT",
    "LateDetailItem",
    "LateDetailPrompt",
    "build_prompts",
    "check_context",
    "context_pool",
    "read_items",
]
