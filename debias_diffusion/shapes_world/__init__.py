"""A procedural world of coloured shapes (in the spirit of SimCO) with exact ground truth.

Seeded scenes of 2-5 shapes (:mod:`.scenes`), anti-aliased rendering with per-object masks
(:mod:`.render`), long and short captions and order-controlled prompts (:mod:`.captions`), and a
resumable dataset export (:mod:`.dataset`). See ``docs/shapes-world.md``.
"""

from ..errors import ShapesWorldError
from .captions import (
    SENTENCE_TEMPLATES,
    Caption,
    caption_scene,
    descriptive_prompt,
    list_prompt,
    mention_order,
    object_sentence,
    summary_sentence,
)
from .dataset import ExportResult, export_dataset, image_name, read_scenes, scene_record
from .geometry import SHAPES, rasterize, shape_extent, shape_outline
from .render import Rendering, background_pixels, render_scene
from .scenes import (
    BACKGROUNDS,
    COLOURS,
    POSITIONS,
    SIZE_CLASSES,
    TEXTURES,
    Background,
    Scene,
    SceneConfig,
    SceneObject,
    sample_scene,
    sample_scenes,
    scene_rng,
)

__all__ = [
    "BACKGROUNDS",
    "COLOURS",
    "POSITIONS",
    "SENTENCE_TEMPLATES",
    "SHAPES",
    "SIZE_CLASSES",
    "TEXTURES",
    "Background",
    "Caption",
    "ExportResult",
    "Rendering",
    "Scene",
    "SceneConfig",
    "SceneObject",
    "ShapesWorldError",
    "background_pixels",
    "caption_scene",
    "descriptive_prompt",
    "export_dataset",
    "image_name",
    "list_prompt",
    "mention_order",
    "object_sentence",
    "rasterize",
    "read_scenes",
    "render_scene",
    "sample_scene",
    "sample_scenes",
    "scene_record",
    "scene_rng",
    "shape_extent",
    "shape_outline",
    "summary_sentence",
]
