"""``python -m debias_diffusion.shapes_world OUT --scenes N --size 64 --seed 0``: export a shapes-world dataset."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import DebiasDiffusionError
from .dataset import export_dataset
from .geometry import SHAPES
from .scenes import BACKGROUNDS, COLOURS, TEXTURES, SceneConfig


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m debias_diffusion.shapes_world",
        description="Write a shapes-world dataset: images, captions.jsonl (train_encoder), scenes.jsonl, object_sets.json.",
    )
    parser.add_argument("output", help="export folder (created; an existing export with the same settings resumes)")
    parser.add_argument("--scenes", type=int, required=True, help="number of scenes")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-objects", type=int, default=2)
    parser.add_argument("--max-objects", type=int, default=5)
    parser.add_argument("--size-mode", choices=("one_large", "free"), default="one_large")
    parser.add_argument("--max-overlap", type=float, default=0.0, help="allowed bounding-box overlap (fraction)")
    parser.add_argument("--background", choices=tuple(BACKGROUNDS), default="white")
    parser.add_argument("--texture", choices=TEXTURES, action="append", help="repeat to mix (default: none)")
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=SHAPES)
    parser.add_argument("--colours", nargs="+", choices=COLOURS, default=COLOURS)
    parser.add_argument("--caption-order", choices=("size", "random"), default="size")
    parser.add_argument("--fixed-phrasing", action="store_true", help="one sentence template for every object")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        config = SceneConfig(
            min_objects=args.min_objects,
            max_objects=args.max_objects,
            shapes=tuple(args.shapes),
            colours=tuple(args.colours),
            size_mode=args.size_mode,
            max_overlap=args.max_overlap,
            background=args.background,
            textures=tuple(args.texture or ("none",)),
        )
        result = export_dataset(
            args.output,
            args.scenes,
            size=args.size,
            seed=args.seed,
            config=config,
            caption_order=args.caption_order,
            varied=not args.fixed_phrasing,
            progress=not args.no_progress,
        )
    except DebiasDiffusionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"{result.output_dir}: {result.scenes} scenes ({result.images_written} images written, {result.images_skipped} kept)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
