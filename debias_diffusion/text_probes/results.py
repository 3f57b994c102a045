"""The records ``probe_text`` returns: the settings, the captions, and TOR/TOC per encoder."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from .captions import Caption
from .classification import TOCResult
from .paper_protocol import paper_captions
from .retrieval import TORResult
from .vocabulary import Vocabulary

__all__ = ["EncoderProbeResult", "ProbeSettings", "TextProbeResults"]


@dataclass(frozen=True)
class ProbeSettings:
    """Everything besides the encoders that changes the numbers."""

    vocabulary: str
    vocabulary_size: int
    num_objects: int
    num_captions: int
    style: str
    articles: bool
    summary: bool
    seed: int
    test_fraction: float
    l2: float
    on_long: str
    protocol: str = "ours"
    """``"ours"`` or ``"paper"`` (clip-oscope's captions and qualification, TOR only)."""


@dataclass(frozen=True)
class EncoderProbeResult:
    """One encoder's TOR and TOC, and how its context length treated the captions."""

    name: str
    source: str
    context_length: int
    projected: bool
    """``False`` for encoders without a text projection (pooled EOT state used instead)."""
    truncated_captions: int
    max_caption_tokens: int
    """Longest caption in tokens, SOT/EOT included, before truncation."""
    tor: TORResult
    toc: TOCResult | None
    """``None`` under the paper protocol (its TOC is a separate experiment; docs/text-probes.md)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "context_length": self.context_length,
            "projected": self.projected,
            "truncated_captions": self.truncated_captions,
            "max_caption_tokens": self.max_caption_tokens,
            "tor": self.tor.to_json(),
            "toc": self.toc.to_json() if self.toc is not None else None,
        }


@dataclass(frozen=True)
class TextProbeResults:
    """Several encoders probed on the same captions and split."""

    settings: ProbeSettings
    vocabulary: Vocabulary
    captions: tuple[Caption, ...]
    """Our protocol's captions; empty under the paper protocol (see ``iter_captions``)."""
    encoders: tuple[EncoderProbeResult, ...]

    def iter_captions(self) -> Iterator[Caption]:
        """The captions probed, in order; the paper protocol's are regenerated, not stored."""
        if self.settings.protocol == "paper":
            return paper_captions(self.vocabulary, self.settings.num_objects)
        return iter(self.captions)

    def to_json(self) -> dict[str, Any]:
        """Settings, vocabulary and per-encoder results (captions are written separately)."""
        return {
            "settings": asdict(self.settings),
            "vocabulary": list(self.vocabulary.objects),
            "positions": list(range(1, self.settings.num_objects + 1)),
            "encoders": [encoder.to_json() for encoder in self.encoders],
        }
