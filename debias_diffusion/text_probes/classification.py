"""Text-based object classification (TOC): one linear probe per caption position.

TOC is :func:`debias_diffusion.probing.linear.slot_probes` with the object positions of each
caption as slots; the probe, split and result type are shared with the image probes' IOC.
"""

from __future__ import annotations

from ..probing.linear import LinearProbe, fit_linear_probe, split_indices
from ..probing.linear import SlotProbeResult as TOCResult
from ..probing.linear import slot_probes as toc_probe

__all__ = ["LinearProbe", "TOCResult", "fit_linear_probe", "split_indices", "toc_probe"]
