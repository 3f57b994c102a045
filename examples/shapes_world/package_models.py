"""Copy trained shapes-world models into ``examples/shapes_world/models`` as they ship: float16 safetensors.

The CLIP folders ship without tokenizer files (loaders rebuild the identical CLIP tokenizer from
open_clip's vocabulary); the pipeline folder ships whole. Each encoder keeps its training metrics
(``training_metrics.jsonl``), the pipeline its training summaries. ``MANIFEST.json`` lists every
file with its size and SHA-256, and the commands that made the models. The folder is replaced
atomically, and refused if it would exceed 25 MiB.

Usage: python examples/shapes_world/package_models.py --source models_work [--dest examples/shapes_world/models]
``SOURCE`` holds ``clip-77``, ``long-clip-recipe``, ``debias-recipe`` (``train_encoders.py``
outputs), ``pipeline`` and its work folders ``pipeline-stage1-train`` / ``pipeline-train``.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

import torch
from transformers import CLIPModel

from debias_diffusion import DeBiasStableDiffusionPipeline
from debias_diffusion.atomic_io import atomic_directory, atomic_write_json

ENCODERS = ("clip-77", "long-clip-recipe", "debias-recipe")  # fix-clip-recipe too would pass 25 MB
CLIP_EXTRAS = ("preprocessor_config.json", "train_encoder_export.json")
PIPELINE_RUNS = {"pipeline-stage1-train": "training_summary_stage1.json", "pipeline-train": "training_summary.json"}
LIMIT_BYTES = 25 * 2**20
COMMANDS = [
    "debias-diffusion shapes-world -o data/shapes_world --scenes 4000 --resolution 64 --seed 0",
    "OMP_NUM_THREADS=1 python examples/shapes_world/train_encoders.py --data data/shapes_world -o models_work "
    "--pretrain-steps 500 --finetune-steps 300",
    "OMP_NUM_THREADS=1 python examples/shapes_world/train_encoders.py --data data/shapes_world "
    "-o models_work/regime-lr2e-4-distill3.0 --clip-77 models_work/clip-77/clip --finetune-steps 300 "
    "--finetune-lr 2e-4 --distill-weight 3.0  # the shipped Long-CLIP / DeBias fine-tunes (SD-compatible regime)",
    "debias-diffusion shapes-world -o data/shapes_world_t2i --scenes 8000 --resolution 64 --seed 3 "
    "--min-objects 2 --max-objects 3",
    "python examples/shapes_world/train_text_to_image.py --data data/shapes_world "
    "--encoder models_work/clip-77/text_encoder -o models_work/pipeline-stage1 "
    "--caption-forms summary --object-weight 0 --vae-steps 600 --unet-steps 1463 --batch-size 64",
    "OMP_NUM_THREADS=1 python examples/shapes_world/train_text_to_image.py --data data/shapes_world_t2i "
    "--encoder models_work/clip-77/text_encoder -o models_work/pipeline "
    "--init-from models_work/pipeline-stage1-train --unet-steps 3500 --batch-size 32 --unet-lr 5e-4 --threads 1 "
    "--max-minutes 75",
    "python examples/shapes_world/package_models.py --source models_work",
]


def package(source: Path, dest: Path) -> dict:
    """Write the shipped folder (see the module docstring); returns the manifest."""
    missing = [name for name in (*ENCODERS, "pipeline") if not (source / name).is_dir()]
    if missing:
        raise SystemExit(f"error: {source} lacks {', '.join(missing)}; see examples/shapes_world/README.md")
    with atomic_directory(dest, overwrite=True) as scratch:
        for name in ENCODERS:
            CLIPModel.from_pretrained(source / name / "clip").half().save_pretrained(scratch / name)
            for extra in CLIP_EXTRAS:
                shutil.copy(source / name / "clip" / extra, scratch / name / extra)
            shutil.copy(source / name / "run" / "metrics.jsonl", scratch / name / "training_metrics.jsonl")
        pipe = DeBiasStableDiffusionPipeline.from_pretrained(source / "pipeline")
        pipe.to(dtype=torch.float16).save_pretrained(scratch / "pipeline", safe_serialization=True)
        for run, summary in PIPELINE_RUNS.items():
            if (source / run / "training_summary.json").is_file():
                shutil.copy(source / run / "training_summary.json", scratch / "pipeline" / summary)
        files = {
            str(path.relative_to(scratch)): {
                "bytes": path.stat().st_size,
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            }
            for path in sorted(scratch.rglob("*"))
            if path.is_file()
        }
        total = sum(entry["bytes"] for entry in files.values())
        if total > LIMIT_BYTES:
            raise SystemExit(f"error: the models take {total / 2**20:.1f} MiB, over the 25 MiB budget")
        manifest = {"total_bytes": total, "files": files, "commands": COMMANDS}
        atomic_write_json(scratch / "MANIFEST.json", manifest)
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--dest", type=Path, default=Path(__file__).parent / "models")
    args = parser.parse_args()
    manifest = package(args.source, args.dest)
    print(f"{len(manifest['files'])} files, {manifest['total_bytes'] / 2**20:.1f} MiB -> {args.dest}")


if __name__ == "__main__":
    main()
