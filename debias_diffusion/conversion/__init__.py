"""Convert CLIP checkpoints (Long-CLIP, open_clip, OpenAI layout) to Hugging Face format."""

from .canonical import CanonicalCLIP, from_state_dict
from .checkpoint_reading import read_state_dict
from .convert import ConversionResult, convert_to_hf
from .equivalence import EquivalenceReport, compare_text_encoder
from .hf_models import build_clip_model, build_text_encoder
from .open_clip_models import from_open_clip_model
from .openai_layout import TextTowerSpec, VisionTowerSpec, merge_long_clip_positions
from .sources import read_clip_source

__all__ = [
    "CanonicalCLIP",
    "ConversionResult",
    "EquivalenceReport",
    "TextTowerSpec",
    "VisionTowerSpec",
    "build_clip_model",
    "build_text_encoder",
    "compare_text_encoder",
    "convert_to_hf",
    "from_open_clip_model",
    "from_state_dict",
    "merge_long_clip_positions",
    "read_clip_source",
    "read_state_dict",
]
