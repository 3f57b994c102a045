"""Image-side probes from "CLIP Under the Microscope" (CVPR 2025): IOR, IOC and order-sensitive matching.

``probe_image`` embeds multi-object images and single-object references with each CLIP model
(both towers) and measures, per size slot (large, small 1, ...), how often the image embedding
retrieves that object (IOR) and how well a linear probe reads it back (IOC), and how often the
right caption beats one naming an absent object when the large object is named first or last.
Data: the shapes world (:func:`shapes_world_data`) or a ComCO/SimCO-named folder
(:func:`read_image_folder`). See ``docs/image-probes.md``.
"""

from .data import ImageProbeData, ProbeImage, slot_labels
from .folder import parse_image_name, read_image_folder
from .ioc import ioc_probe
from .ior import RetrievalDiagnostics, ior_diagnostics, ior_metric, ior_probe, ior_similarity
from .matching import (
    MatchingCaptions,
    MatchingResult,
    ScenarioResult,
    absent_objects,
    matching_accuracy,
    matching_captions,
    paper_matching_captions,
)
from .report import markdown_report, matching_table, slot_table, write_report
from .results import ImageProbeResults, ImageProbeSettings, ModelImageProbeResult
from .runner import build_matching_captions, probe_image
from .shapes import shapes_world_data, shapes_world_vocabulary

__all__ = [
    "ImageProbeData",
    "ImageProbeResults",
    "ImageProbeSettings",
    "MatchingCaptions",
    "MatchingResult",
    "ModelImageProbeResult",
    "ProbeImage",
    "RetrievalDiagnostics",
    "ScenarioResult",
    "absent_objects",
    "build_matching_captions",
    "ioc_probe",
    "ior_diagnostics",
    "ior_metric",
    "ior_probe",
    "ior_similarity",
    "markdown_report",
    "matching_accuracy",
    "matching_captions",
    "paper_matching_captions",
    "matching_table",
    "parse_image_name",
    "probe_image",
    "read_image_folder",
    "shapes_world_data",
    "shapes_world_vocabulary",
    "slot_labels",
    "slot_table",
    "write_report",
]
