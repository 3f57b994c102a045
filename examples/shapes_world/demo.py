"""The shapes world end to end, offline, on a CPU: the README's main job.

Every model here was trained by this project on its own synthetic world (coloured shapes on a
white background; ``debias_diffusion.shapes_world``) and ships in ``examples/shapes_world/models``:

* ``clip-77``: a tiny CLIP trained on short captions at 77 positions (the stand-in for OpenAI CLIP);
* ``long-clip-recipe`` / ``debias-recipe``: ``clip-77`` stretched to 248 positions and fine-tuned on
  long captions with ``train_encoder``'s Long-CLIP and DeBias recipes (same data, same steps);
* ``pipeline``: a tiny latent text-to-image model (diffusers AutoencoderKL + UNet2DConditionModel)
  trained on the world conditioned on ``clip-77``'s hidden states, saved as a diffusers folder.
  Swapping a 248-token encoder into it mirrors swapping DeBias-CLIP-L into SD 1.5.

Steps: (1) retrieval in the world with the DeBias paper's probes, per encoder; (2) hidden-state
drift of each long encoder against ``clip-77`` (what the UNet notices); (3) images from long
prompts with the drop-in pipeline for each encoder, every object ordering, measured with the
colour detector (generation quality and prominence by prompt position); (4) one report.

Usage: python examples/shapes_world/demo.py [--output outputs/shapes_world] [--models DIR] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import torch

from debias_diffusion import DeBiasStableDiffusionPipeline
from debias_diffusion.atomic_io import atomic_write_json, atomic_write_text
from debias_diffusion.prominence.detectors import ColourDetector
from debias_diffusion.prominence.metrics import compare_models, records_by_image
from debias_diffusion.prominence.runner import GenerationOptions, evaluate_prominence
from debias_diffusion.shapes_world import SceneConfig, export_dataset, sample_scene
from train_encoder.evaluation import EvalSet, evaluate, text_drift

MODELS = Path(__file__).parent / "models"
ENCODERS = {"CLIP-77": "clip-77", "Long-CLIP recipe": "long-clip-recipe", "DeBias recipe": "debias-recipe"}
PROBES = ("full", "no_summary", "summary_at_4", "shuffled", "first_only", "filler_1", "filler_3", "filler_5")
EVAL_SEED = 1  # the models were trained on seed 0's scenes: these are unseen
CAVEAT = ("These are the project's own tiny models trained on a synthetic world of coloured shapes, not SD 1.5 or "
          "CLIP-L; the numbers show the chain works and how to read the report, not how real models behave.")  # fmt: skip


def world_eval_set(output: Path, scenes: int) -> EvalSet:
    """Unseen world scenes as a retrieval set: each image with its long caption."""
    export = output / "eval_scenes"
    export_dataset(export, scenes, seed=EVAL_SEED, progress=False)
    rows = [json.loads(line) for line in (export / "captions.jsonl").read_text(encoding="utf-8").splitlines()]
    return EvalSet("shapes-world", tuple(export / r["image"] for r in rows), tuple(r["caption"] for r in rows),
                   tuple(range(len(rows))))  # fmt: skip


def object_sets(count: int, objects: int) -> list[list[str]]:
    """Unseen scenes' objects as prominence sets (phrases such as "red circle"; colours distinct)."""
    config = SceneConfig(min_objects=objects, max_objects=objects)
    return [[obj.phrase for obj in sample_scene(EVAL_SEED + 1, index, config).objects] for index in range(count)]


def load_pipe(models: Path, encoder: str) -> DeBiasStableDiffusionPipeline:
    kwargs = {} if encoder == "clip-77" else {"text_encoder": str(models / encoder)}  # a CLIPModel folder
    pipe = DeBiasStableDiffusionPipeline.from_pretrained(models / "pipeline", torch_dtype=torch.float32, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=Path("outputs/shapes_world"))
    parser.add_argument("--models", type=Path, default=MODELS)
    parser.add_argument("--quick", action="store_true", help="fewer scenes and seeds (a smoke run)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    started = time.perf_counter()
    output, models = args.output, args.models
    missing = [name for name in [*ENCODERS.values(), "pipeline"] if not (models / name).is_dir()]
    if missing:
        raise SystemExit(f"error: {models} lacks {', '.join(missing)}; train them: see examples/shapes_world/README.md")

    print("[1/4] retrieval in the world, with the DeBias paper's probes")
    eval_set = world_eval_set(output, 60 if args.quick else 300)
    clips = {label: str(models / name) for label, name in ENCODERS.items()}
    retrieval = evaluate(clips, [eval_set], PROBES, batch_size=64, num_workers=0, output_dir=output / "retrieval",
                         progress=False)  # fmt: skip

    print("[2/4] hidden-state drift of the long encoders vs clip-77 (what the UNet was trained on)")
    captions = list(eval_set.captions[:200])
    drift = {label: text_drift(clips[label], clips["CLIP-77"], captions) for label in list(ENCODERS)[1:]}
    atomic_write_json(output / "drift.json", drift)

    print("[3/4] images from long prompts for each encoder, every ordering, colour detector")
    pipelines = {label: functools.partial(load_pipe, models, name) for label, name in ENCODERS.items()}
    sets = object_sets(4 if args.quick else 8, 2) + object_sets(2 if args.quick else 4, 3)
    run = evaluate_prominence(
        pipelines, sets, detector=ColourDetector(), output_dir=output / "prominence",
        templates=["list", "descriptive"], seeds=(0, 1) if args.quick else (0, 1, 2),
        generation=GenerationOptions(steps=20, guidance_scale=5.0, width=64, height=64, images_per_call=8),
        caveat=CAVEAT, grid_object_sets=3,
    )  # fmt: skip

    print("[4/4] report")
    quality = generation_quality(run.records)
    comparison = compare_models(run.records)
    summary = {"retrieval": retrieval.to_dict()["results"],
               "drift_mean_cosine_first_77": {k: v["mean_cosine_first_77"] for k, v in drift.items()},
               "generation_quality": quality, "prominence": comparison.to_dict(),
               "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    atomic_write_json(output / "summary.json", summary)
    atomic_write_text(output / "report.md", report(retrieval.markdown(), drift, quality, run, summary["seconds"]))
    print(f"done in {summary['seconds']:.0f} s: {output / 'report.md'}")


def generation_quality(records) -> dict[str, dict[str, float]]:
    """Per model and set size: images, images with every requested object detected, and that share."""
    out: dict[str, dict[str, float]] = {}
    for key, members in records_by_image(records).items():
        stats = out.setdefault(key[0], {})
        size = f"{len(members)}-object"
        stats[f"{size} images"] = stats.get(f"{size} images", 0) + 1
        stats[f"{size} all detected"] = stats.get(f"{size} all detected", 0) + all(r.present for r in members)
    for stats in out.values():
        for size in ("2-object", "3-object"):
            if stats.get(f"{size} images"):
                stats[f"{size} share all detected"] = stats[f"{size} all detected"] / stats[f"{size} images"]
    return out


def report(retrieval_md: str, drift: dict, quality: dict, run, seconds: float) -> str:
    lines = [
        "# Shapes world: the whole chain offline", "", f"> {CAVEAT}", "",
        "To run the same measurements on SD 1.5 with real weights (GPU, network):", "",
        "```bash",
        "debias-diffusion evaluate-prominence --objects examples/prominence_objects.yaml \\",
        "    --encoder clip-l=none --encoder longclip-l=longclip-l --encoder debias=exports/debias-clip-l/text_encoder",
        "python -m train_encoder eval --model ... --dataset docci=data/docci --probe full --probe no_summary ...",
        "```", "",
        "## 1. Retrieval in the world (R@1 etc., unseen scenes, long captions)", "", retrieval_md, "",
        "## 2. Hidden-state drift vs clip-77 (mean cosine over positions 0-76; 1 = unchanged)", "",
        "| encoder | mean cosine |", "| --- | ---: |",
        *[f"| {label} | {d['mean_cosine_first_77']:.4f} |" for label, d in drift.items()], "",
        "## 3. Generation quality (colour detector)", "",
        "| model | " + " | ".join(["2-object: all detected", "3-object: all detected"]) + " |", "| --- | ---: | ---: |",
    ]  # fmt: skip
    for model, stats in quality.items():
        cells = [f"{stats.get(f'{n}-object share all detected', float('nan')):.1%}" for n in (2, 3)]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", "## 4. Prominence by prompt position", "",
              f"Full report with definitions, plots and image grids: [{run.report.summary.relative_to(run.output_dir.parent)}]"
              f"({run.report.summary.relative_to(run.output_dir.parent)})", "",
              f"Total time: {seconds:.0f} s."]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
