"""The records ``probe_text`` returns: the settings, the captions, and TOR/TOC per encoder."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from ..argument_types import bounded_float, bounded_int
from ..argument_types import seed as parse_seed
from ..settings_arguments import flag, no_flag
from .captions import Caption
from .classification import TOCResult
from .paper_protocol import paper_captions
from .retrieval import TORResult
from .vocabulary import Vocabulary

__all__ = ["EncoderProbeResult", "ProbeSettings", "TextProbeResults"]


@dataclass(frozen=True)
class ProbeSettings:
    """Everything besides the encoders that changes the numbers."""

    vocabulary: str = field(
        metadata=flag("coco (80 COCO names), comco (the paper's 90), simco (18 shapes), shapes (64 colour-shape "
                      "phrases) or a .txt/.json/.yaml file (default: coco; comco with --protocol paper)",
                      default_in_help=False)
    )  # fmt: skip
    vocabulary_size: int = field(metadata=no_flag("measured: the vocabulary's number of objects"))
    num_objects: int = field(
        metadata=flag("objects per caption, 2..5 in the paper", "--objects", type=bounded_int(1), metavar="N")
    )
    num_captions: int = field(
        metadata=flag("number of captions, --protocol ours", "--captions", type=bounded_int(1), metavar="M",
                      default_text="1000")
    )  # fmt: skip
    style: str = field(
        metadata=flag("short: 'cat and dog and ...'; long: one sentence per object", choices=("short", "long"))
    )
    articles: bool = field(metadata=flag("'a cat and a dog' instead of 'cat and dog' (objects too)"))
    summary: bool = field(metadata=flag("long style: start with a summary sentence naming no object"))
    seed: int = field(metadata=flag("seed of the captions and of the TOC train/test split", type=parse_seed))
    test_fraction: float = field(metadata=flag("captions held out for TOC", type=bounded_float(above=0, below=1)))
    l2: float = field(metadata=flag("TOC probes' L2 penalty", type=bounded_float(0)))
    on_long: str = field(
        metadata=flag("captions longer than an encoder: cut to its first tokens as CLIP does (counted in the report) "
                      "or error", "--long-captions", choices=("truncate", "error"), old=("--long-prompt",))
    )  # fmt: skip
    protocol: str = field(
        default="ours",
        metadata=flag("ours: seeded ordered captions, exact top-n, TOR + TOC; paper: clip-oscope's TOR (every "
                      "combination in vocabulary order, substring qualification, no TOC)", choices=("ours", "paper")),
    )  # fmt: skip
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
