"""Late details in the shapes world: does an object mentioned late in a long prompt reach the image?

Runs ``debias_diffusion.shapes_world.world_late_detail.run_world_late_detail`` on the shipped world models: the
pipeline with its own ``clip-77`` (policies ``truncate`` and ``chunk``) and with the 248-token
fine-tunes swapped in, with the colour detector. Items are unseen scenes' objects: an anchor
(mentioned first) and a target of another colour, mentioned at token offsets 12 ... 215 inside
context sentences that name no object; controls replace the target's sentence with context.

Usage: python examples/shapes_world/late_detail.py [-o outputs/shapes_world/late_detail]
       [--models DIR] [--items 6] [--seeds 0 1] [--encoder 'LABEL=CLIP_FOLDER' ...] [--attention]
       [--neutral-context] [--context FILE]
The context sentences are the world's own words (``WORLD_CONTEXT``); ``--neutral-context`` uses the
evaluator's built-in English pool instead (words the world's encoders never learned).
``--attention`` also measures where each condition drops a late mention (the UNet's cross-attention
on it, the encoder's states of it): ``report/attention.md`` (and ``.json``, ``.csv``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from debias_diffusion.cli_arguments import add_output_dir, parse_arguments
from debias_diffusion.errors import DebiasDiffusionError
from debias_diffusion.late_detail.context import read_context_file
from debias_diffusion.named_arguments import parse_named_values
from debias_diffusion.shapes_world.world_late_detail import (
    OFFSETS,
    WORLD_CONTEXT,
    WorldLateDetailSettings,
    run_world_late_detail,
)
from debias_diffusion.shapes_world.world_models import world_encoders

MODELS = Path(__file__).parent / "models"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_output_dir(parser, default="outputs/shapes_world/late_detail", old=["--output"])
    parser.add_argument("--models", type=Path, default=MODELS)
    parser.add_argument("--items", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--offsets", type=int, nargs="+", default=list(OFFSETS))
    parser.add_argument("--conditions", nargs="+", metavar="LABEL",
                        help="run only these conditions, in this order (default: all; e.g. 'CLIP-77' 'DeBias recipe')")  # fmt: skip
    parser.add_argument("--encoder", action="append", default=[], metavar="LABEL=CLIP_FOLDER")
    parser.add_argument("--neutral-context", action="store_true",
                        help="the evaluator's built-in neutral pool instead of the world's own words (WORLD_CONTEXT)")  # fmt: skip
    parser.add_argument("--context", metavar="FILE", help="more context sentences, one a line")
    parser.add_argument("--attention", action="store_true",
                        help="also measure the UNet's cross-attention on each mention and the encoder's states of it")  # fmt: skip
    args = parse_arguments(parser, None)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    try:
        context = () if args.neutral_context else WORLD_CONTEXT
        if args.context:
            context = (*context, *read_context_file(args.context))
        settings = WorldLateDetailSettings(args.items, tuple(args.seeds), tuple(args.offsets),
                                           None if args.conditions is None else tuple(args.conditions),
                                           args.attention, context, args.neutral_context)  # fmt: skip
        encoders = world_encoders(args.models, parse_named_values(args.encoder, "--encoder"))
        run = run_world_late_detail(Path(args.output_dir), args.models, encoders, settings)
    except DebiasDiffusionError as error:
        parser.exit(2, f"error: {error}\n")
    for curve in run.curves:
        cells = " ".join(
            f"{o}:{p.value:.2f}/{b.value:.2f}"
            for o, p, b in zip(curve.offsets, curve.presence, curve.baseline, strict=True)
        )
        print(f"{curve.condition} (window {curve.window}, {curve.policy}): effective length "
              f"{curve.effective_length}; offset:presence/baseline {cells}")  # fmt: skip
    print(f"report: {run.report.summary}")
    if run.attention:
        print(f"attention: {run.report.summary.parent / 'attention.md'}")


if __name__ == "__main__":
    main()
