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
from evaluate_generation import ColourCounts  # a sibling script: run this file as a script
from PIL import Image

from debias_diffusion import DeBiasStableDiffusionPipeline
from debias_diffusion.atomic_io import atomic_write_json, atomic_write_text
from debias_diffusion.errors import UsageError
from debias_diffusion.named_arguments import parse_named_values
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
REAL_MODELS = """\
debias-diffusion evaluate-prominence --model stable-diffusion-v1-5/stable-diffusion-v1-5 \\
    --objects examples/prominence_objects.yaml --detector owlv2 \\
    --encoder clip-l=none --encoder longclip-l=longclip-l --encoder debias=exports/debias-clip-l/text_encoder
python -m train_encoder eval --model debias=exports/debias-clip-l/clip --dataset urban1k=data/urban1k \\
    --probe full --probe no_summary --probe shuffled"""
TARGET_ALL_DETECTED = 0.70


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


def load_pipe(models: Path, encoder: Path | None) -> DeBiasStableDiffusionPipeline:
    """The shipped pipeline, with ``encoder`` (a CLIPModel folder) swapped in; ``None``: its own (clip-77)."""
    kwargs = {} if encoder is None else {"text_encoder": str(encoder)}
    pipe = DeBiasStableDiffusionPipeline.from_pretrained(models / "pipeline", torch_dtype=torch.float32, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=Path("outputs/shapes_world"))
    parser.add_argument("--models", type=Path, default=MODELS)
    parser.add_argument("--quick", action="store_true", help="fewer scenes and seeds (a smoke run)")
    parser.add_argument("--late-detail", action="store_true",
                        help="also run the late-detail curves (CLIP-77 truncate / chunk, Long-CLIP and DeBias recipes; "
                             "docs/late-detail.md); off by default until its time fits the 5-minute budget")  # fmt: skip
    parser.add_argument("--encoder", action="append", default=[], metavar="LABEL=CLIP_FOLDER",
                        help="also measure this CLIPModel folder, e.g. 'FIX-CLIP recipe=models_work/fix-clip-recipe/clip'")  # fmt: skip
    args = parser.parse_args()
    try:
        extra = {label: Path(folder) for label, folder in parse_named_values(args.encoder, "--encoder").items()}
    except UsageError as error:
        parser.error(str(error))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    started = time.perf_counter()
    output, models = args.output, args.models
    missing = [name for name in [*ENCODERS.values(), "pipeline"] if not (models / name).is_dir()]
    missing += [str(folder) for folder in extra.values() if not folder.is_dir()]
    if missing:
        raise SystemExit(f"error: missing {', '.join(missing)} (in {models}); see examples/shapes_world/README.md")
    clips = {label: models / name for label, name in ENCODERS.items()} | extra

    print(f"{CAVEAT}\nThe same on SD 1.5 with real weights (GPU, network):\n{REAL_MODELS}\n")
    print("[1/4] retrieval in the world, with the DeBias paper's probes")
    eval_set = world_eval_set(output, 60 if args.quick else 300)
    retrieval = evaluate({label: str(folder) for label, folder in clips.items()}, [eval_set], PROBES, batch_size=64, num_workers=0, output_dir=output / "retrieval",
                         progress=False)  # fmt: skip

    print("[2/4] hidden-state drift of the long encoders vs clip-77 (what the UNet was trained on)")
    captions = list(eval_set.captions[:200])
    drift = {label: text_drift(str(clips[label]), str(clips["CLIP-77"]), captions) for label in list(clips)[1:]}
    atomic_write_json(output / "drift.json", drift)

    print("[3/4] images from long prompts for each encoder, every ordering, colour detector")
    pipelines = {label: functools.partial(load_pipe, models, None if label == "CLIP-77" else folder)
                 for label, folder in clips.items()}  # fmt: skip
    sets = object_sets(4 if args.quick else 8, 2) + object_sets(2 if args.quick else 4, 3)
    run = evaluate_prominence(
        pipelines, sets, detector=ColourDetector(), output_dir=output / "prominence",
        templates=["list", "descriptive"], seeds=(0,) if args.quick else (0, 1),
        generation=GenerationOptions(steps=15, guidance_scale=5.0, width=64, height=64, images_per_call=8),
        caveat=CAVEAT, grid_object_sets=3,
    )  # fmt: skip

    late = None
    if args.late_detail:
        print("[3b] late details: the target mentioned at token 12 and 110, against no-mention controls")
        from late_detail import run_world_late_detail  # a sibling script that imports this one: import late

        late = run_world_late_detail(output / "late_detail", models, clips, 3, (0, 1, 2, 3), offsets=(12, 110),
                                     only=["CLIP-77", "CLIP-77 (chunk)", "Long-CLIP recipe", "DeBias recipe"])  # fmt: skip

    print("[4/4] report")
    quality = generation_quality(run)
    comparison = compare_models(run.records)
    summary = {"retrieval": retrieval.to_dict()["results"],
               "drift_mean_cosine_first_77": {k: v["mean_cosine_first_77"] for k, v in drift.items()},
               "generation_quality": quality, "prominence": comparison.to_dict(),
               **({"late_detail": {c.condition: c.to_dict() for c in late.curves}} if late else {}),
               "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    atomic_write_json(output / "summary.json", summary)
    text = report(retrieval.markdown(), drift, quality, comparison, run, summary["seconds"], late)
    atomic_write_text(output / "report.md", text)
    print(f"done in {summary['seconds']:.0f} s: {output / 'report.md'}")


def generation_quality(run) -> dict[str, dict[str, float]]:
    """Per model, and per model and template (``"MODEL / TEMPLATE"``): for each set size, the share of
    images with every requested object detected; colour precision (share of coloured pixels in a
    requested colour) and the share of images with an extra colour."""
    detector = ColourDetector()
    counts: dict[str, dict[str, list[int]]] = {}
    colours: dict[str, ColourCounts] = {}
    for (model, _, template, *_), members in records_by_image(run.records).items():
        masks = detector.colour_masks(Image.open(run.output_dir / members[0].image).convert("RGB"))
        wanted = {r.object.split()[0] for r in members}
        for group in (model, f"{model} / {template}"):
            found = counts.setdefault(group, {}).setdefault(f"{len(members)}-object", [0, 0])
            found[0] += all(r.present for r in members)
            found[1] += 1
            colours.setdefault(group, ColourCounts()).add(masks, wanted, detector.min_area)
    return {
        model: {
            **{f"{size} all detected": found / total for size, (found, total) in sorted(sizes.items())},
            **{f"{size} images": total for size, (_, total) in sorted(sizes.items())},
            "colour precision": colours[model].precision,
            "images with an extra colour": colours[model].extra_rate,
        }
        for model, sizes in counts.items()
    }


def position_table(comparison) -> list[str]:
    """Mean area share and presence by prompt position, and the first-mention advantage, per model."""
    positions = sorted({row.position for row in comparison.positions})
    lines = [
        "| model | " + " | ".join(f"area share @{p}" for p in positions) + " | "
        + " | ".join(f"presence @{p}" for p in positions) + " | first-mention advantage (area share, 95% CI) |",
        "| --- |" + " ---: |" * (2 * len(positions) + 1),
    ]  # fmt: skip
    for first in comparison.first_mention:
        rows = {row.position: row for row in comparison.positions if row.model == first.model}
        shares = [f"{rows[p].mean_area_share.value:.3f}" if p in rows else "" for p in positions]
        presence = [f"{rows[p].presence_rate.value:.0%}" if p in rows else "" for p in positions]
        advantage = first.area_share
        lines.append(f"| {first.model} | " + " | ".join(shares + presence)
                     + f" | {advantage.value:+.3f} [{advantage.low:+.3f}, {advantage.high:+.3f}] |")  # fmt: skip
    return lines


def report(retrieval_md: str, drift: dict, quality: dict, comparison, run, seconds: float, late=None) -> str:
    summary_md = run.report.summary.relative_to(run.output_dir.parent)
    lines = [
        "# Shapes world: the whole chain offline", "", f"> {CAVEAT}", "",
        "The same measurements on SD 1.5 with real weights (GPU, network; see docs/prominence.md):", "",
        "```bash", REAL_MODELS, "```", "",
        "## 1. Retrieval in the world (R@1 etc., unseen scenes, long captions)", "", retrieval_md, "",
        "## 2. Hidden-state drift vs clip-77 (mean cosine over positions 0-76; 1 = unchanged)", "",
        "| encoder | mean cosine |", "| --- | ---: |",
        *[f"| {label} | {d['mean_cosine_first_77']:.4f} |" for label, d in drift.items()], "",
        "## 3. Generation quality (colour detector, list and descriptive prompts)", "",
        f"Target: every object detected in at least {TARGET_ALL_DETECTED:.0%} of 2-object images.", "",
        "| model | 2-object: all detected | 3-object: all detected | colour precision | images with an extra colour |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]  # fmt: skip
    for model, stats in quality.items():
        cells = [stats.get(f"{n}-object all detected", float("nan")) for n in (2, 3)]
        cells += [stats["colour precision"], stats["images with an extra colour"]]
        lines.append(f"| {model} | " + " | ".join(f"{value:.1%}" for value in cells) + " |")
    lines += [
        "", "## 4. Prominence by prompt position", "",
        "Area share: an object's detected area over the sum of its set's detected areas in that image; "
        "first-mention advantage: position 1's share minus the mean of the later positions' (cluster bootstrap).", "",
        *position_table(comparison), "",
        f"Full report with definitions, plots and image grids: [{summary_md}]({summary_md})", "",
    ]  # fmt: skip
    if late is not None:
        from debias_diffusion.late_detail.report import curves_markdown

        late_md = late.report.summary.relative_to(run.output_dir.parent)
        lines += ["## 5. Late details: the target mentioned at a token offset, against no-mention controls", "",
                  *curves_markdown(late.curves), "", f"Curves, grid and definitions: [{late_md}]({late_md})", ""]  # fmt: skip
    lines += [f"Total time: {seconds:.0f} s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
