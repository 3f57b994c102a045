"""Late details in the shapes world: does an object mentioned late in a long prompt reach the image?

Runs ``debias_diffusion.late_detail.evaluate_late_detail`` on the shipped world models: the
pipeline with its own ``clip-77`` (policies ``truncate`` and ``chunk``) and with the 248-token
fine-tunes swapped in, with the colour detector. Items are unseen scenes' objects: an anchor
(mentioned first) and a target of another colour, mentioned at token offsets 12 ... 215 inside the
built-in neutral context; controls replace the target's sentence with context.

Usage: python examples/shapes_world/late_detail.py [--output outputs/shapes_world/late_detail]
       [--models DIR] [--items 6] [--seeds 0 1] [--encoder 'LABEL=CLIP_FOLDER' ...]
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import torch
from demo import CAVEAT, ENCODERS, EVAL_SEED, MODELS, load_pipe  # a sibling script: run this file as a script

from debias_diffusion.errors import UsageError
from debias_diffusion.late_detail.runner import LateDetailCondition, LateDetailRun, evaluate_late_detail
from debias_diffusion.named_arguments import parse_named_values
from debias_diffusion.prominence.detectors import ColourDetector
from debias_diffusion.prominence.runner import GenerationOptions
from debias_diffusion.shapes_world import SceneConfig, sample_scene

OFFSETS = (12, 40, 75, 110, 145, 180, 215)
GENERATION = GenerationOptions(steps=15, guidance_scale=5.0, width=64, height=64, images_per_call=8)


def world_items(count: int) -> list[dict[str, str]]:
    """Unseen 2-object scenes as (anchor, target) pairs of distinct colours."""
    config = SceneConfig(min_objects=2, max_objects=2)
    scenes = [sample_scene(EVAL_SEED + 2, index, config).objects for index in range(count)]
    return [{"anchor": objects[0].phrase, "target": objects[1].phrase} for objects in scenes]


def late_detail_conditions(models: Path, clips: dict[str, Path]) -> dict[str, LateDetailCondition]:
    """CLIP-77 with truncate and chunk, then every other encoder (one pass, truncate past 248)."""
    loaders = {label: functools.partial(load_pipe, models, None if label == "CLIP-77" else folder)
               for label, folder in clips.items()}  # fmt: skip
    conditions = {label: LateDetailCondition(loader, "truncate") for label, loader in loaders.items()}
    return conditions | {"CLIP-77 (chunk)": LateDetailCondition(loaders["CLIP-77"], "chunk")}


def run_world_late_detail(
    output: Path, models: Path, clips: dict[str, Path], items: int, seeds, offsets=OFFSETS, only=None
) -> LateDetailRun:
    conditions = late_detail_conditions(models, clips)
    unknown = sorted(set(only or ()) - set(conditions))
    if unknown:
        raise SystemExit(f"error: unknown condition(s) {unknown}; choose from {list(conditions)}")
    return evaluate_late_detail(
        {label: conditions[label] for label in only} if only else conditions,
        world_items(items),
        detector=ColourDetector(),
        output_dir=output,
        offsets=tuple(offsets),
        seeds=tuple(seeds),
        generation=GENERATION,
        caveat=CAVEAT,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=Path("outputs/shapes_world/late_detail"))
    parser.add_argument("--models", type=Path, default=MODELS)
    parser.add_argument("--items", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--offsets", type=int, nargs="+", default=list(OFFSETS))
    parser.add_argument("--conditions", nargs="+", metavar="LABEL",
                        help="run only these conditions, in this order (default: all; e.g. 'CLIP-77' 'DeBias recipe')")  # fmt: skip
    parser.add_argument("--encoder", action="append", default=[], metavar="LABEL=CLIP_FOLDER")
    args = parser.parse_args()
    try:
        extra = {label: Path(folder) for label, folder in parse_named_values(args.encoder, "--encoder").items()}
    except UsageError as error:
        parser.error(str(error))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    clips = {label: args.models / name for label, name in ENCODERS.items()} | extra
    run = run_world_late_detail(args.output, args.models, clips, args.items, args.seeds, args.offsets, args.conditions)
    for curve in run.curves:
        cells = " ".join(
            f"{o}:{p.value:.2f}/{b.value:.2f}"
            for o, p, b in zip(curve.offsets, curve.presence, curve.baseline, strict=True)
        )
        print(f"{curve.condition} (window {curve.window}, {curve.policy}): effective length "
              f"{curve.effective_length}; offset:presence/baseline {cells}")  # fmt: skip
    print(f"report: {run.report.summary}")


if __name__ == "__main__":
    main()
