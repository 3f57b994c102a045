"""The evaluate_prominence run the kill -9 tests interrupt and compare: a tiny real diffusers pipeline.

Four seeds of each prompt are generated in one call of four: on CPU a batch of four changes pixels
against smaller batches (checked on this machine: seed 3 of "A red cube and a blue cube" at 64 x 64
differs by one level), so a resume that regenerated a half-finished batch at a smaller size would not
give the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import torch
from pipeline_builders import sd_components

from debias_diffusion import DeBiasStableDiffusionPipeline
from debias_diffusion.prominence.detectors import ColourDetector
from debias_diffusion.prominence.runner import ProminenceRun, SamplingSettings, evaluate_prominence

SETS = [["red cube", "blue cube"]]
SEEDS = (0, 1, 2, 3)


def run(output_dir: Path) -> ProminenceRun:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same maths in the test process and in the killed subprocesses
    try:
        pipe = DeBiasStableDiffusionPipeline(**sd_components(248))
        pipe.set_progress_bar_config(disable=True)
        return evaluate_prominence(
            {"tiny": pipe},
            SETS,
            detector=ColourDetector(),
            output_dir=output_dir,
            seeds=SEEDS,
            generation=SamplingSettings(steps=2, width=64, height=64, images_per_call=4),
            detection_batch_size=3,
            grid_object_sets=1,
            progress=False,
        )
    finally:
        torch.set_num_threads(threads)
