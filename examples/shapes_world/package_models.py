"""Copy trained shapes-world models into ``examples/shapes_world/models`` as they ship: float16 safetensors.

The CLIP folders ship without tokenizer files (loaders rebuild the identical CLIP tokenizer from
open_clip's vocabulary); the pipeline folder ships whole. ``MANIFEST.json`` lists every file with
its size and SHA-256, and the commands that made the models.

Usage: python examples/shapes_world/package_models.py --source models_work [--dest examples/shapes_world/models]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

from diffusers import DiffusionPipeline
from transformers import CLIPModel

from debias_diffusion.atomic_io import atomic_write_json

ENCODERS = ("clip-77", "long-clip-recipe", "debias-recipe")
CLIP_EXTRAS = ("preprocessor_config.json", "train_encoder_export.json")
LIMIT_BYTES = 25 * 2**20
COMMANDS = [
    "python -m debias_diffusion.shapes_world data/shapes_world --scenes 4000 --size 64 --seed 0",
    "OMP_NUM_THREADS=1 python examples/shapes_world/train_encoders.py --data data/shapes_world --output models_work "
    "--pretrain-steps 500 --finetune-steps 300",
    "python examples/shapes_world/train_text_to_image.py --data data/shapes_world "
    "--encoder models_work/clip-77/text_encoder --output models_work/pipeline",
    "python examples/shapes_world/package_models.py --source models_work",
]


def package(source: Path, dest: Path) -> dict:
    if dest.exists():
        shutil.rmtree(dest)
    for name in ENCODERS:
        model = CLIPModel.from_pretrained(source / name / "clip")
        model.half().save_pretrained(dest / name)
        for extra in CLIP_EXTRAS:
            shutil.copy(source / name / "clip" / extra, dest / name / extra)
    pipe = DiffusionPipeline.from_pretrained(source / "pipeline")
    pipe.to(dtype=__import__("torch").float16).save_pretrained(dest / "pipeline")
    files = {
        str(path.relative_to(dest)): {
            "bytes": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
        for path in sorted(dest.rglob("*"))
        if path.is_file()
    }
    total = sum(entry["bytes"] for entry in files.values())
    if total > LIMIT_BYTES:
        raise SystemExit(
            f"error: the models take {total / 2**20:.1f} MiB, over the {LIMIT_BYTES / 2**20:.0f} MiB budget"
        )
    for name in (*ENCODERS, "pipeline"):
        quality = source / name / "run" / "metrics.jsonl"
        if quality.is_file():
            shutil.copy(quality, dest / name / "training_metrics.jsonl")
    manifest = {"total_bytes": total, "files": files, "commands": COMMANDS}
    atomic_write_json(dest / "MANIFEST.json", manifest)
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
