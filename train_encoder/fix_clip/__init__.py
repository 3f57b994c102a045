"""FIX-CLIP (ICCV 2025), implemented from the paper: the ``fix-clip`` recipe (docs/fix-clip.md).

``settings`` (the knobs the paper leaves open), ``masking`` (the short branch's masked patches),
``regions`` (regional prompts' one-way attention mask), ``hierarchy`` (Gaussian layer weights, group
heads), ``vision`` (the image tower's forward with those additions), ``image_side`` (the trainable
extras as one module), ``loss`` and ``recipe`` (registered as ``fix-clip`` on import).
"""

from .image_side import FixClipImageSide, ImageSideOutput
from .recipe import FIX_CLIP, FixClipRecipe
from .settings import FixClipSettings

__all__ = ["FIX_CLIP", "FixClipImageSide", "FixClipRecipe", "FixClipSettings", "ImageSideOutput"]
