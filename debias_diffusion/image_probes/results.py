"""The records ``probe_image`` returns: settings, the images and captions used, and IOR/IOC/matching per model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..argument_types import bounded_float
from ..argument_types import seed as parse_seed
from ..probing.linear import SlotProbeResult
from ..probing.retrieval import SlotRetrievalResult
from ..settings_arguments import flag, no_flag
from ..text_probes.vocabulary import Vocabulary
from .data import ProbeImage, slot_labels
from .ior import RetrievalDiagnostics
from .matching import MatchingCaptions, MatchingResult

__all__ = ["ImageProbeResults", "ImageProbeSettings", "ModelImageProbeResult"]


@dataclass(frozen=True)
class ImageProbeSettings:
    """Everything besides the models that changes the numbers."""

    source: str = field(metadata=no_flag("the data's: the shapes world or --images/--references folders"))
    vocabulary: str = field(metadata=no_flag("the data's object names"))
    vocabulary_size: int = field(metadata=no_flag("the data's number of object names"))
    num_objects: int = field(metadata=no_flag("the data's objects per image (--objects chooses the data)"))
    num_images: int = field(metadata=no_flag("the data's number of images"))
    slot_order: str = field(metadata=no_flag("the data's slot order"))
    seed: int = field(
        metadata=flag("seed of the scenes, the absent objects and the IOC train/test split", type=parse_seed)
    )
    test_fraction: float = field(metadata=flag("images held out for IOC", type=bounded_float(above=0, below=1)))
    l2: float = field(metadata=flag("IOC probes' L2 penalty", type=bounded_float(0)))
    articles: bool = field(metadata=flag("matching captions 'a cat and a dog' instead of 'cat and dog'"))
    protocol: str = field(
        default="ours",
        metadata=flag("paper: clip-oscope's RGB-first image loading and matching pairs (every absent object; its "
                      "second-scenario captions)", choices=("ours", "paper")),
    )  # fmt: skip
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
