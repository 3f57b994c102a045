"""Smoke-test an installed (non-editable) debias-diffusion from outside the source tree.

``.ci/wheel_smoke.sh`` runs it with the fresh environment's python, from a temporary folder, so
only the installed packages are importable. It checks that:

1. ``debias_diffusion`` and ``train_encoder`` come from that environment's site-packages;
2. every installed module imports (``__main__`` modules are run with ``--help`` instead);
3. every console script and subcommand answers ``--help`` (``debias-diffusion``, ``train-encoder``,
   ``python -m train_encoder``, ``python -m debias_diffusion.shapes_world``);
4. a tiny chain runs: ``train-encoder train`` (a random 32-wide CLIP, 16 captioned shapes, 4 steps)
   -> ``python -m train_encoder export`` -> ``debias-diffusion generate`` with the exported
   248-token encoder in a tiny SD 1.x pipeline, whose tokenizer folder loads with every CLIP
   tokenizer class the installed transformers has.

The tiny pipeline's components come from the checkout's ``tests/pipeline_builders.py`` (that
folder alone is put on ``sys.path``; it imports the installed package).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("debias_diffusion", "train_encoder")
BIN = Path(sys.executable).parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}


def run(*command: str | Path) -> str:
    """Run a command of the installed environment; fail with its output if it fails."""
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True, env=ENV, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"FAILED: {' '.join(map(str, command))}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    return done.stdout


def check_installed_location() -> None:
    site = Path(sysconfig.get_path("purelib")).resolve()
    for name in PACKAGES:
        where = Path(importlib.import_module(name).__file__).resolve()
        if site not in where.parents:
            raise SystemExit(f"FAILED: {name} imported from {where}, not from the installed {site}")
    print(f"ok   packages come from {site}")


def import_every_module() -> list[str]:
    """Import every installed module; return the ``__main__`` modules (run later with --help)."""
    mains, count = [], 0
    for name in PACKAGES:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            if module.name.endswith(".__main__"):
                mains.append(module.name.removesuffix(".__main__"))
                continue
            importlib.import_module(module.name)
            count += 1
    if "debias_diffusion.pipelines" not in sys.modules or "train_encoder.fix_clip" not in sys.modules:
        raise SystemExit("FAILED: debias_diffusion.pipelines or train_encoder.fix_clip is not installed")
    print(f"ok   {count} modules import; __main__ in {', '.join(mains)}")
    return mains


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    return [
        name for action in parser._actions if isinstance(action, argparse._SubParsersAction) for name in action.choices
    ]


def check_help(mains: list[str]) -> None:
    from debias_diffusion.cli import _parser as debias_parser
    from train_encoder.cli import build_parser as train_parser

    commands = [[BIN / "debias-diffusion"], [BIN / "train-encoder"], *([sys.executable, "-m", name] for name in mains)]
    commands += [[BIN / "debias-diffusion", name] for name in _subcommands(debias_parser())]
    for entry in ([BIN / "train-encoder"], [sys.executable, "-m", "train_encoder"]):
        commands += [[*entry, name] for name in _subcommands(train_parser())]
    for command in commands:
        if "usage:" not in run(*command, "--help"):
            raise SystemExit(f"FAILED: {command} --help printed no usage")
    print(f"ok   {len(commands)} commands answer --help")


def _tiny_clip_folder(folder: Path) -> Path:
    """A random CLIP (both towers 32 wide, 77 positions), the width of the tiny UNet's cross-attention."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    tower = dict(
        hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, hidden_act="quick_gelu"
    )
    config = CLIPConfig(text_config=dict(tower, max_position_embeddings=77),
                        vision_config=dict(tower, image_size=32, patch_size=16), projection_dim=16)  # fmt: skip
    CLIPModel(config).save_pretrained(folder)
    return folder


def _shapes_data(folder: Path) -> Path:
    from PIL import Image, ImageDraw

    (folder / "images").mkdir(parents=True)
    rows = []
    for index, (colour, rgb) in enumerate([("red", (220, 30, 30)), ("green", (30, 180, 40))] * 8):
        image = Image.new("RGB", (40, 40), "white")
        ImageDraw.Draw(image).ellipse((4 + index, 4, 36, 36 - index), fill=rgb)
        image.save(folder / "images" / f"{index}.png")
        caption = f"A {colour} disc number {index}. It is drawn on white. The disc is {colour}. Nothing else is there."
        rows.append(json.dumps({"image": f"{index}.png", "caption": caption}))
    (folder / "captions.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def check_tokenizer_folder(folder: Path) -> None:
    """The exported tokenizer loads with every CLIP tokenizer class transformers has (slow and fast in 4.x)."""
    import transformers

    names = ("CLIPTokenizer", "CLIPTokenizerFast", "AutoTokenizer")
    reference = None
    for name in names:
        if not hasattr(transformers, name):
            continue
        ids = getattr(transformers, name).from_pretrained(folder)("a red disc")["input_ids"]
        if reference is not None and ids != reference:
            raise SystemExit(f"FAILED: {name} tokenizes {folder} differently: {ids} != {reference}")
        reference = ids
    print(f"ok   the exported tokenizer loads with {', '.join(n for n in names if hasattr(transformers, n))}")


def check_train_export_generate(work: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from diffusers import StableDiffusionPipeline
    from pipeline_builders import LONG_HEAD, sd_components

    model, data, run_dir = _tiny_clip_folder(work / "clip"), _shapes_data(work / "data"), work / "run"
    run(BIN / "train-encoder", "train", "--config", "tiny", "--clip-model", model, "--train-data", data / "captions.jsonl",
        "--image-root", data / "images", "--output-dir", run_dir, "--max-steps", "4", "--batch-size", "4",
        "--checkpoint-every", "4", "--export-final", "false")  # fmt: skip
    run(sys.executable, "-m", "train_encoder", "export", run_dir, "-o", work / "export")
    encoder = work / "export" / "text_encoder"
    check_tokenizer_folder(encoder)
    StableDiffusionPipeline(**sd_components(77)).save_pretrained(work / "sd")
    run(BIN / "debias-diffusion", "generate", LONG_HEAD, "--model", work / "sd", "--encoder", encoder,
        "--steps", "2", "--size", "16x16", "--seed", "3", "-o", work / "images")  # fmt: skip
    sidecar = json.loads((work / "images" / "seed-3.json").read_text(encoding="utf-8"))
    if not (work / "images" / "seed-3.png").is_file() or sidecar["encoder_tokens"] != 246:
        raise SystemExit(f"FAILED: generate wrote no image or did not use the 248-token encoder: {sidecar}")
    print("ok   train-encoder train -> python -m train_encoder export -> debias-diffusion generate (248 tokens)")


def main() -> None:
    if Path.cwd().resolve() == ROOT or ROOT in Path.cwd().resolve().parents:
        raise SystemExit("run this from outside the source tree (the checkout must not be importable)")
    check_installed_location()
    check_help(import_every_module())
    with tempfile.TemporaryDirectory(prefix="wheel-smoke-") as work:
        check_train_export_generate(Path(work))
    print("wheel smoke test passed")


if __name__ == "__main__":
    main()
