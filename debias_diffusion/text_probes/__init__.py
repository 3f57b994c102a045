"""Text-side prompt-order probes from "CLIP Under the Microscope" (CVPR 2025): TOR and TOC.

``probe_text`` builds seeded multi-object captions from a vocabulary, embeds them with each text
encoder, and measures per object position how often the caption embedding retrieves that object
(TOR) and how well a linear probe reads it back (TOC). ``protocol="paper"`` runs the paper's own
TOR instead (clip-oscope's caption set and qualification). See ``docs/text-probes.md``.
"""

from ..renamed import renamed_attributes
from .captions import CAPTION_STYLES, Caption, build_captions, long_caption, sample_object_sets, short_caption
from .classification import LinearProbe, TOCResult, fit_linear_probe, split_indices, toc_probe
from .embedding import TextEmbeddings, encode_pooled_texts
from .paper_protocol import PROTOCOLS, PaperTORResult, count_paper_captions, paper_captions, paper_tor
from .report import markdown_report, markdown_table, write_report
from .results import EncoderProbeResult, ProbeSettings, TextProbeResults
from .retrieval import TORResult, tor_metric, tor_probe
from .runner import EncoderSource, probe_text
from .vocabulary import (
    COCO_OBJECTS,
    COMCO_OBJECTS,
    SIMCO_OBJECTS,
    Vocabulary,
    coco_vocabulary,
    comco_vocabulary,
    read_vocabulary,
    resolve_vocabulary,
    shapes_vocabulary,
    simco_vocabulary,
)

__all__ = [
    "CAPTION_STYLES",
    "COCO_OBJECTS",
    "COMCO_OBJECTS",
    "PROTOCOLS",
    "SIMCO_OBJECTS",
    "Caption",
    "EncoderProbeResult",
    "EncoderSource",
    "LinearProbe",
    "PaperTORResult",
    "ProbeSettings",
    "TOCResult",
    "TORResult",
    "TextEmbeddings",
    "TextProbeResults",
    "Vocabulary",
    "build_captions",
    "coco_vocabulary",
    "comco_vocabulary",
    "count_paper_captions",
    "encode_pooled_texts",
    "fit_linear_probe",
    "long_caption",
    "markdown_report",
    "markdown_table",
    "paper_captions",
    "paper_tor",
    "probe_text",
    "read_vocabulary",
    "resolve_vocabulary",
    "sample_object_sets",
    "shapes_vocabulary",
    "simco_vocabulary",
    "short_caption",
    "split_indices",
    "toc_probe",
    "tor_metric",
    "tor_probe",
    "write_report",
]

__getattr__ = renamed_attributes(__name__, {"embed_texts": "encode_pooled_texts"}, globals())
