"""Pieces shared by the text and image probes of "CLIP Under the Microscope" (CVPR 2025).

:mod:`.retrieval`: conditioned single-object retrieval per slot (TOR, IOR); :mod:`.linear`: one
linear probe per slot on frozen embeddings (TOC, IOC); :mod:`.tables`: percentage cells and
markdown tables; :mod:`.outputs`: the output-folder check made before any model is loaded.
"""

from .linear import LinearProbe, SlotProbeResult, fit_linear_probe, slot_probes, split_indices
from .outputs import check_output_dir
from .retrieval import SlotRetrievalResult, slot_retrieval
from .tables import markdown_table, percent

__all__ = [
    "LinearProbe",
    "SlotProbeResult",
    "SlotRetrievalResult",
    "check_output_dir",
    "fit_linear_probe",
    "markdown_table",
    "percent",
    "slot_probes",
    "slot_retrieval",
    "split_indices",
]
