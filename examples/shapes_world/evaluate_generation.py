"""Check that the shapes-world text-to-image pipeline follows its prompts, with the colour detector.

For ``--pairs`` random pairs of objects (two distinct colours, any shapes), generate one image from
a two-object prompt and measure both objects with ``ColourDetector`` (labels ``"red circle"``,
``"blue star"``; it finds objects by colour). Reported:

- ``all_objects_rate``: share of images in which every requested object is detected;
- ``object_recall``: share of requested objects detected (``first_object_rate`` and
  ``second_object_rate`` split it by mention order);
- ``colour_precision``: share of coloured pixels (any palette colour) that have a requested colour;
- ``extra_colour_rate``: share of images with a palette colour that was not requested.

Prompt styles: ``summary`` (the training form: "A picture of a large red circle and a small blue
star on a white background.") and ``list`` ("a red circle and a blue star").

Usage: python examples/shapes_world/evaluate_generation.py --pipeline PIPELINE
       [--pairs 40] [--steps 25] [--guidance 5] [--style summary] [--report PIPELINE_quality.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from PIL import Image

from debias_diffusion.shapes_world.quality import pair_prompt, pair_quality, random_pairs
from debias_diffusion.shapes_world.world_models import load_world_pipeline


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", type=Path, required=True)
    parser.add_argument("--encoder", type=Path, help="swap in this text encoder (same width) before generating")
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--style", choices=("summary", "list"), default="summary")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--report", type=Path, help="JSON report (default: PIPELINE_quality.json beside it)")
    parser.add_argument("--samples", type=Path, help="grid of the generated images (default: PIPELINE_samples.png)")
    parser.add_argument("--quick", action="store_true", help="8 pairs, 10 steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.steps = 8, 10
    stem = args.pipeline.with_name(args.pipeline.name + ("_quick" if args.quick else ""))
    args.report = args.report or stem.with_name(stem.name + "_quality.json")
    args.samples = args.samples or stem.with_name(stem.name + "_samples.png")
    return args


def evaluate(args) -> dict:
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    pipe = load_world_pipeline(args.pipeline, args.encoder)
    pairs = random_pairs(args.pairs, args.seed)
    prompts = [pair_prompt(pair, args.style) for pair in pairs]
    images = []
    for start in range(0, len(prompts), 20):
        generator = torch.Generator().manual_seed(args.seed + start)
        out = pipe(
            prompts[start : start + 20], num_inference_steps=args.steps, guidance_scale=args.guidance,
            height=64, width=64, generator=generator,
        )  # fmt: skip
        images.extend(out.images)
    report = {
        "pipeline": str(args.pipeline),
        "encoder": str(args.encoder) if args.encoder else "pipeline's own",
        "prompt_style": args.style,
        "example_prompt": prompts[0],
        "pairs": len(pairs),
        "steps": args.steps,
        "guidance_scale": args.guidance,
        "scheduler": type(pipe.scheduler).__name__,
        **pair_quality(images, pairs),
        "seconds": round(time.perf_counter() - started, 1),
    }
    save_grid(images, args.samples)
    args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def save_grid(images, path: Path, columns: int = 10) -> None:
    size = images[0].size[0]
    rows = (len(images) + columns - 1) // columns
    grid = Image.new("RGB", (columns * size, rows * size), "white")
    for i, image in enumerate(images):
        grid.paste(image, ((i % columns) * size, (i // columns) * size))
    grid.save(path)


def main(argv=None) -> dict:
    args = parse_args(argv)
    report = evaluate(args)
    print(json.dumps(report, indent=2))
    print(f"report: {args.report}; samples: {args.samples}")
    return report


if __name__ == "__main__":
    main()
