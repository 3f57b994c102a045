"""Export a shapes-world dataset: ``debias-diffusion shapes-world -o OUT --scenes N --resolution 64 --seed 0``.

``python -m debias_diffusion.shapes_world`` takes the same flags.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..argument_types import bounded_float, bounded_int, seed
from ..cli_arguments import add_deprecated_alias, add_output_dir, parse_arguments
from ..error_boundary import run_guarded

DESCRIPTION = (
    "Write a shapes-world dataset: images, captions.jsonl (train-encoder), scenes.jsonl, object_sets.json. "
    "An existing export with the same settings resumes."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The export's flags (shared by ``debias-diffusion shapes-world`` and ``python -m``)."""
    from .geometry import SHAPES
    from .scenes import BACKGROUNDS, COLOURS, TEXTURES

    add_output_dir(parser, what="export folder (created; an export with the same settings resumes)", positional=True)
    parser.add_argument("--scenes", type=bounded_int(1), required=True, metavar="N", help="number of scenes")
    resolution = parser.add_argument(
        "--resolution", type=bounded_int(1), default=64, metavar="PX", help="image side in pixels (default: 64)"
    )
    add_deprecated_alias(parser, resolution, "--size")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the scenes (default: 0)")
    parser.add_argument("--min-objects", type=bounded_int(1), default=2, help="fewest objects a scene (default: 2)")
    parser.add_argument("--max-objects", type=bounded_int(1), default=5, help="most objects a scene (default: 5)")
    parser.add_argument("--size-mode", choices=("one_large", "free"), default="one_large")
    parser.add_argument("--max-overlap", type=bounded_float(0, 1), default=0.0,
                        help="allowed bounding-box overlap, a fraction (default: 0)")  # fmt: skip
    parser.add_argument("--background", choices=tuple(BACKGROUNDS), default="white")
    parser.add_argument("--texture", choices=TEXTURES, action="append", help="repeat to mix (default: none)")
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=SHAPES)
    parser.add_argument("--colours", nargs="+", choices=COLOURS, default=COLOURS)
    parser.add_argument("--caption-order", choices=("size", "random"), default="size")
    parser.add_argument("--fixed-phrasing", action="store_true", help="one sentence template for every object")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Export the dataset ``args`` describe; prints what was written."""
    from .dataset import export_dataset
    from .scenes import SceneConfig

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
        args.output_dir,
        args.scenes,
        size=args.resolution,
        seed=args.seed,
        config=config,
        caption_order=args.caption_order,
        varied=not args.fixed_phrasing,
        progress=not args.no_progress,
    )
    print(
        f"{result.output_dir}: {result.scenes} scenes ({result.images_written} images written, {result.images_skipped} kept)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m debias_diffusion.shapes_world``; returns the exit status (0 ok, 2 bad input)."""
    parser = argparse.ArgumentParser(prog="python -m debias_diffusion.shapes_world", description=DESCRIPTION)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of a failure")
    add_arguments(parser)
    args = parse_arguments(parser, argv)
    return run_guarded(lambda: run(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
