"""What moves an encoder's states of a mention: its position, or the words before it?

Runs ``debias_diffusion.shapes_world.world_mention_states.measure_mention_states`` on the world's
encoders and the late-detail run's unseen items; prints a table and writes the JSON results.

Usage: python examples/shapes_world/mention_states.py [-o outputs/shapes_world/mention_states.json]
       [--models DIR] [--items 6] [--encoder 'LABEL=CLIP_FOLDER' ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from debias_diffusion.atomic_io import atomic_write_json
from debias_diffusion.cli_arguments import add_output_dir, parse_arguments
from debias_diffusion.errors import DebiasDiffusionError
from debias_diffusion.named_arguments import parse_named_values
from debias_diffusion.shapes_world.world_late_detail import world_items
from debias_diffusion.shapes_world.world_mention_states import (
    PLACEMENTS,
    measure_mention_states,
    mention_states_markdown,
)
from debias_diffusion.shapes_world.world_models import world_encoders

MODELS = Path(__file__).parent / "models"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_output_dir(parser, default="outputs/shapes_world/mention_states.json", what="the JSON results")
    parser.add_argument("--models", type=Path, default=MODELS)
    parser.add_argument("--items", type=int, default=6)
    parser.add_argument("--encoder", action="append", default=[], metavar="LABEL=CLIP_FOLDER")
    args = parse_arguments(parser, None)
    try:
        encoders = world_encoders(args.models, parse_named_values(args.encoder, "--encoder"))
    except DebiasDiffusionError as error:
        parser.exit(2, f"error: {error}\n")
    items = world_items(args.items)
    results = measure_mention_states(encoders, items)
    print(mention_states_markdown(results))
    output = Path(args.output_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output, {"items": items, "placements": list(PLACEMENTS), "results": results})
    print(f"results: {output}")


if __name__ == "__main__":
    main()
