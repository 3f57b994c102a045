"""Drop-in diffusers pipelines for long prompts (installed as ``debias_diffusion.pipelines``).

One pipeline per file; each file also works alone as a diffusers ``custom_pipeline=``.
"""

from .pipeline_debias_stable_diffusion import DeBiasStableDiffusionPipeline
from .pipeline_debias_stable_diffusion_xl import DeBiasStableDiffusionXLPipeline

__all__ = ["DeBiasStableDiffusionPipeline", "DeBiasStableDiffusionXLPipeline"]
