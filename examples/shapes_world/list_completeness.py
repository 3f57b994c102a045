"""List-prompt completeness of world encoders swapped into the world's UNet, paired against CLIP-77.

The SD-compatibility measure of docs/shapes-world.md: the demo's unseen object sets (8 pairs in both
orders, 4 triples in all 6 orders) as ``list`` prompts, one image per seed, the colour detector;
per encoder the share of images with every object detected and its difference from CLIP-77's on the
same prompts and seeds, with a 95% cluster-bootstrap interval over (object set, seed).

Usage: python examples/shapes_world/list_completeness.py [--output outputs/shapes_world/list_completeness]
       [--models DIR] [--seeds 0 1 2 3 4 5] [--encoder 'LABEL=CLIP_FOLDER' ...] [--only-extra]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from debias_diffusion.atomic_io import atomic_write_json
from debias_diffusion.errors import DebiasDiffusionError
from debias_diffusion.named_arguments import parse_named_values
from debias_diffusion.prominence.detectors import ColourDetector
from debias_diffusion.prominence.runner import evaluate_prominence
from debias_diffusion.shapes_world.quality import completeness_vs_reference
from debias_diffusion.shapes_world.world_models import WORLD_GENERATION, world_encoders, world_pipeline_loaders
from debias_diffusion.shapes_world.world_prominence import world_object_sets

MODELS = Path(__file__).parent / "models"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output-dir", type=Path, default=Path("outputs/shapes_world/list_completeness"))
    parser.add_argument("--models", type=Path, default=MODELS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--encoder", action="append", default=[], metavar="LABEL=CLIP_FOLDER",
                        help="also measure this CLIPModel folder (repeatable)")  # fmt: skip
    parser.add_argument("--only-extra", action="store_true",
                        help="measure CLIP-77 and the --encoder folders only, not the shipped fine-tunes")  # fmt: skip
    args = parser.parse_args()
    try:
        extra = parse_named_values(args.encoder, "--encoder")
        encoders = world_encoders(args.models, extra)
    except DebiasDiffusionError as error:
        parser.error(str(error))
    if args.only_extra:
        encoders = {label: folder for label, folder in encoders.items() if label == "CLIP-77" or label in extra}
    run = evaluate_prominence(
        world_pipeline_loaders(args.models, encoders), world_object_sets(8, 2) + world_object_sets(4, 3),
        detector=ColourDetector(), output_dir=args.output_dir, templates=["list"], seeds=tuple(args.seeds),
        generation=WORLD_GENERATION,
    )  # fmt: skip
    result = completeness_vs_reference(run.records, "CLIP-77")
    atomic_write_json(args.output_dir / "completeness.json", result)
    print("| encoder | all detected | vs CLIP-77 [95% CI] | images |\n| --- | ---: | ---: | ---: |")
    for label, row in result.items():
        print(f"| {label} | {row['complete']:.1%} | {100 * row['difference']:+.1f} "
              f"[{100 * row['ci_low']:+.1f}, {100 * row['ci_high']:+.1f}] | {row['images']} |")  # fmt: skip


if __name__ == "__main__":
    main()
