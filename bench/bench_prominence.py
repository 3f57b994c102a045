"""Prominence evaluator overhead: detection + metrics + report per image, as a share of generating it.

One process, the same images: ``evaluate_prominence`` first generates them (SD 1.5's UNet and
VAE configs, CLIP-L-shaped text encoder, random weights: time does not depend on the values) with
a detector that measures nothing, then runs again on the cached images with an OWLv2-base-sized
detector (ViT-B/16 image tower, 12 layers x 768, random weights) at a reduced detector resolution,
writing the full report (metrics with 1000 bootstrap resamples, CSV/JSON, plots, image grids).
overhead = second run / first run. The detector is batched (``--detector-batch``).

Usage: python bench/bench_prominence.py [--size 512] [--steps 30] [--detector-size 768] [--seeds 2]
       [--threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
from bench_pipelines import CONFIGS, SD15_SCHEDULER, clip_l_text_encoder
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

from debias_diffusion import DeBiasStableDiffusionPipeline
from debias_diffusion.prominence.detectors import Owlv2Detector
from debias_diffusion.prominence.measurement import ObjectMeasurement
from debias_diffusion.prominence.prompts import ObjectSet
from debias_diffusion.prominence.runner import SamplingSettings, evaluate_prominence
from debias_diffusion.tokenization import build_clip_tokenizer

OBJECT_SETS = [ObjectSet(("cat", "teapot")), ObjectSet(("dog", "red umbrella"))]


class MeasuresNothing:
    """Reports every object absent at no cost: the first run then times generation alone."""

    name = "none"

    def settings(self) -> dict:
        return {}

    def measure(self, images, labels):
        return [[ObjectMeasurement(label, False, 0.0, None, 0.0, None) for label in names] for names in labels]


def sd15_pipeline() -> DeBiasStableDiffusionPipeline:
    config = CONFIGS["sd15"]
    torch.manual_seed(0)
    pipe = DeBiasStableDiffusionPipeline(
        vae=AutoencoderKL(**config.vae),
        text_encoder=clip_l_text_encoder(),
        tokenizer=build_clip_tokenizer(context_length=77),
        unet=UNet2DConditionModel(**config.unet),
        scheduler=DDIMScheduler(**SD15_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def owlv2_base_detector(size: int, batch: int) -> Owlv2Detector:
    torch.manual_seed(0)
    config = Owlv2Config(vision_config={"image_size": size})  # base: ViT-B/16 12 x 768, text 12 x 512
    processor = Owlv2Processor(
        image_processor=Owlv2ImageProcessor(size={"height": size, "width": size}),
        tokenizer=build_clip_tokenizer(context_length=16),
    )
    return Owlv2Detector.from_components(Owlv2ForObjectDetection(config).eval(), processor, batch_size=batch)


def run(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = sd15_pipeline()
    generation = SamplingSettings(steps=args.steps, width=args.size, height=args.size, images_per_call=args.seeds)
    seeds = tuple(range(args.seeds))
    with tempfile.TemporaryDirectory() as scratch:
        common = dict(output_dir=scratch, seeds=seeds, generation=generation, progress=False)
        start = time.perf_counter()
        first = evaluate_prominence({"sd15": pipe}, OBJECT_SETS, detector=MeasuresNothing(), report=False, **common)
        generate_s = time.perf_counter() - start
        detector = owlv2_base_detector(args.detector_size, args.detector_batch)
        start = time.perf_counter()
        second = evaluate_prominence({"sd15": pipe}, OBJECT_SETS, detector=detector, **common)
        evaluate_s = time.perf_counter() - start
        assert second.generated == 0 and second.measured == first.generated
        report_files = len(second.report.all())
    images = first.generated
    return {
        "images": images,
        "generation": {"size": args.size, "steps": args.steps, "guidance_scale": 7.5},
        "detector_size": args.detector_size,
        "detector_batch": args.detector_batch,
        "generate_s_per_image": generate_s / images,
        "evaluate_s_per_image": evaluate_s / images,
        "overhead": evaluate_s / generate_s,
        "report_files": report_files,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} CPU, torch {torch.__version__}",
    }


def table(result: dict) -> str:
    return "\n".join(
        [
            f"{result['images']} images, SD 1.5 configs at {result['generation']['size']} px, "
            f"{result['generation']['steps']} steps; OWLv2-base-sized detector at {result['detector_size']} px, "
            f"batch {result['detector_batch']}; {result['threads']} CPU threads",
            "| generation s/image | detection + metrics + report s/image | overhead (target <= 10%) |",
            "| ---: | ---: | ---: |",
            f"| {result['generate_s_per_image']:.2f} | {result['evaluate_s_per_image']:.2f} | "
            f"{100 * result['overhead']:.1f}% |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512, help="generated image side (default 512)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=2, help="seeds per prompt (default 2: 8 images)")
    parser.add_argument("--detector-size", type=int, default=768, help="OWLv2 input side (the released model: 960)")
    parser.add_argument("--detector-batch", type=int, default=4)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    result = run(args)
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
