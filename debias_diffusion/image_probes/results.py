"""The records ``probe_image`` returns: settings, the images and captions used, and IOR/IOC/matching per model."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..probing.linear import SlotProbeResult
from ..probing.retrieval import SlotRetrievalResult
from ..text_probes.vocabulary import Vocabulary
from .data import ProbeImage, slot_labels
from .ior import RetrievalDiagnostics
from .matching import MatchingCaptions, MatchingResult

__all__ = ["ImageProbeResults", "ImageProbeSettings", "ModelImageProbeResult"]


@dataclass(frozen=True)
class ImageProbeSettings:
    """Everything besides the models that changes the numbers."""

    source: str
    vocabulary: str
    vocabulary_size: int
    num_objects: int
    num_images: int
    slot_order: str
    seed: int
    test_fraction: float
    l2: float
    articles: bool
    protocol: str = "ours"
    """``"ours"`` or ``"paper"`` (clip-oscope's RGB-first loading and matching pairs)."""


@dataclass(frozen=True)
class ModelImageProbeResult:
    """One CLIP model's IOR, IOC and matching accuracies."""

    name: str
    source: str
    identity: str
    """Hash of the weights and image preprocessing (``LoadedCLIP.identity``)."""
    context_length: int
    image_size: int
    ior: SlotRetrievalResult
    ior_all: RetrievalDiagnostics
    """Unconditioned retrieval over all images (our addition; see :mod:`.ior`)."""
    ioc: SlotProbeResult
    matching: MatchingResult

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "identity": self.identity,
            "context_length": self.context_length,
            "image_size": self.image_size,
            "ior": self.ior.to_json(),
            "ior_all": self.ior_all.to_json(),
            "ioc": self.ioc.to_json(),
            "matching": self.matching.to_json(),
        }


@dataclass(frozen=True)
class ImageProbeResults:
    """Several models probed on the same images, references, captions and split."""

    settings: ImageProbeSettings
    vocabulary: Vocabulary
    images: tuple[ProbeImage, ...]
    captions: tuple[MatchingCaptions, ...]
    models: tuple[ModelImageProbeResult, ...]

    @property
    def slots(self) -> list[str]:
        return slot_labels(self.settings.num_objects)

    def to_json(self) -> dict[str, Any]:
        """Settings, vocabulary, slot names and per-model results (images are written separately)."""
        return {
            "settings": asdict(self.settings),
            "vocabulary": list(self.vocabulary.objects),
            "slots": self.slots,
            "models": [model.to_json() for model in self.models],
        }
