"""The shapes world end to end, offline, on a CPU: the README's main job.

Every model here was trained by this project on its own synthetic world (coloured shapes on a
white background; ``debias_diffusion.shapes_world``) and ships in ``examples/shapes_world/models``:

* ``clip-77``: a tiny CLIP trained on short captions at 77 positions (the stand-in for OpenAI CLIP);
* ``long-clip-recipe`` / ``debias-recipe``: ``clip-77`` stretched to 248 positions and fine-tuned on
  long captions with ``train_encoder``'s Long-CLIP and DeBias recipes (same data, same steps; the
  FIX-CLIP recipe's world model is measured in docs/shapes-world.md but not shipped: 25 MB budget);
* ``pipeline``: a tiny latent text-to-image model (diffusers AutoencoderKL + UNet2DConditionModel)
  trained on the world conditioned on ``clip-77``'s hidden states, saved as a diffusers folder.
  Swapping a 248-token encoder into it mirrors swapping DeBias-CLIP-L into SD 1.5.

Steps: (1) retrieval in the world with the DeBias paper's probes, per encoder; (2) hidden-state
drift of each long encoder against ``clip-77`` (what the UNet notices); (3) images from long
prompts with the drop-in pipeline for each encoder, every object ordering, measured with the
colour detector (generation quality and prominence by prompt position); (4) one report. Steps 3
and 4 are library code: ``debias_diffusion.shapes_world`` (world_prominence, quality, report).

Usage: python examples/shapes_world/demo.py [-o outputs/shapes_world] [--models DIR] [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from debias_diffusion.atomic_io import atomic_write_json
from debias_diffusion.cli_arguments import add_output_dir, parse_arguments
from debias_diffusion.errors import DebiasDiffusionError
from debias_diffusion.named_arguments import parse_named_values
from debias_diffusion.shapes_world import export_dataset
from debias_diffusion.shapes_world.report import REAL_MODELS, write_world_report
from debias_diffusion.shapes_world.world_late_detail import DEMO_LATE_DETAIL, run_world_late_detail
from debias_diffusion.shapes_world.world_models import CAVEAT, EVAL_SEED, world_encoders, world_pipeline_loaders
from debias_diffusion.shapes_world.world_prominence import run_world_prominence
from train_encoder.evaluation import EvalSet, evaluate, text_drift

MODELS = Path(__file__).parent / "models"
PROBES = ("full", "no_summary", "summary_at_4", "shuffled", "first_only", "filler_1", "filler_3", "filler_5")


def world_eval_set(output: Path, scenes: int) -> EvalSet:
    """Unseen world scenes as a retrieval set: each image with its long caption."""
    export = output / "eval_scenes"
    export_dataset(export, scenes, seed=EVAL_SEED, progress=False)
    rows = [json.loads(line) for line in (export / "captions.jsonl").read_text(encoding="utf-8").splitlines()]
    return EvalSet("shapes-world", tuple(export / r["image"] for r in rows), tuple(r["caption"] for r in rows),
                   tuple(range(len(rows))))  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_output_dir(parser, default="outputs/shapes_world", what="the report's folder", old=["--output"])
    parser.add_argument("--models", type=Path, default=MODELS)
    parser.add_argument("--quick", action="store_true", help="fewer scenes and seeds (a smoke run)")
    parser.add_argument("--late-detail", action=argparse.BooleanOptionalAction, default=True,
                        help="run the late-detail curves (CLIP-77 truncate / chunk, Long-CLIP and DeBias recipes; "
                             "docs/late-detail.md; default: on, --no-late-detail skips them)")  # fmt: skip
    parser.add_argument("--encoder", action="append", default=[], metavar="LABEL=CLIP_FOLDER",
                        help="also measure this CLIPModel folder, e.g. 'FIX-CLIP recipe=models_work/fix-clip-recipe/clip'")  # fmt: skip
    args = parse_arguments(parser, None)
    try:
        args.encoders = world_encoders(args.models, parse_named_values(args.encoder, "--encoder"))
    except DebiasDiffusionError as error:
        parser.error(str(error))
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    started = time.perf_counter()
    output, encoders = Path(args.output_dir), args.encoders

    print(f"{CAVEAT}\nThe same on SD 1.5 with real weights (GPU, network):\n{REAL_MODELS}\n")
    print("[1/4] retrieval in the world, with the DeBias paper's probes")
    eval_set = world_eval_set(output, 60 if args.quick else 300)
    retrieval = evaluate({label: str(folder) for label, folder in encoders.items()}, [eval_set], PROBES, batch_size=64, num_workers=0, output_dir=output / "retrieval",
                         progress=False)  # fmt: skip

    print("[2/4] hidden-state drift of the long encoders vs clip-77 (what the UNet was trained on)")
    captions = list(eval_set.captions[:200])
    drift = {
        label: text_drift(str(encoders[label]), str(encoders["CLIP-77"]), captions) for label in list(encoders)[1:]
    }
    atomic_write_json(output / "drift.json", drift)

    print("[3/4] images from long prompts for each encoder, every ordering, colour detector")
    run = run_world_prominence(output / "prominence", world_pipeline_loaders(args.models, encoders), quick=args.quick)
    late = None
    if args.late_detail:
        print("[3b] late details: the target mentioned at token 12 and 110, against no-mention controls")
        late = run_world_late_detail(output / "late_detail", args.models, encoders, DEMO_LATE_DETAIL)

    print("[4/4] report")
    files = write_world_report(
        output, retrieval_results=retrieval.to_dict()["results"], retrieval_markdown=retrieval.markdown(),
        drift=drift, prominence=run, started=started, late=late,
    )  # fmt: skip
    print(f"done in {files.seconds:.0f} s: {files.report_md}")


if __name__ == "__main__":
    main()
