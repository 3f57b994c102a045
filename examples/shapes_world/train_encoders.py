"""Train the shapes world's text encoders with ``train_encoder``: a 77-token CLIP, then 248-token fine-tunes.

1. ``clip-77``: a tiny CLIP trained from random weights on (image, short caption) pairs at 77
   positions: the stand-in for OpenAI CLIP (short web captions).
2. ``long-clip-recipe``, ``debias-recipe`` and ``fix-clip-recipe``: the same ``clip-77`` stretched to
   248 positions (KPS) and fine-tuned on (image, long caption) pairs with the Long-CLIP, DeBias and
   FIX-CLIP recipes: same data, same steps, same seed. FIX-CLIP's layer groups are scaled to the
   world's 3-layer image tower (one group of the two intermediate layers).

Each model is exported as ``OUT/<name>/clip`` (CLIPModel) and ``OUT/<name>/text_encoder``.

Usage: python examples/shapes_world/train_encoders.py --data DATA -o OUT
       [--pretrain-steps 1500] [--finetune-steps 600] [--batch-size 64]
       [--finetune-lr 2e-4] [--distill-weight 3] [--clip-77 FOLDER]
``DATA`` is a shapes-world export (``debias-diffusion shapes-world -o DATA --scenes 4000``).
``--finetune-lr`` and ``--distill-weight`` set the fine-tuning regime, the same for every recipe (the
SD-compatibility sweep in docs/shapes-world.md; the defaults are the regime it chose, in which the
shipped fine-tunes were trained; before it, lr 5e-4 without distillation); ``--clip-77`` starts the fine-tunes from an existing
``clip-77`` CLIPModel folder (e.g. the shipped ``models/clip-77``) instead of pre-training one.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPModel

from debias_diffusion.atomic_io import atomic_write_text
from debias_diffusion.cli_arguments import add_output_dir, parse_arguments
from train_encoder.config import load_config
from train_encoder.trainer import train

TEXT = dict(hidden_size=32, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4)
VISION = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4, patch_size=8)
COMMON = dict(logit_scale=10.0, lr=1e-3, weight_decay=0.1, warmup_steps=50, lr_schedule="cosine", epochs=1000,
              num_workers=0, checkpoint_every=100, keep_checkpoints=1, log_every=50, random_crop=False)  # fmt: skip
RECIPES = ("long-clip", "debias", "fix-clip")
#: Recipe settings the world's small image tower needs (3 layers: 2 intermediate ones, an 8x8 patch grid).
RECIPE_OPTIONS = {"fix-clip": dict(fix_clip=dict(groups=1, group_size=2, prompts=4, region_grid=2))}


def random_clip(image_size: int, seed: int) -> CLIPModel:
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(**TEXT, max_position_embeddings=77, hidden_act="quick_gelu"),
        vision_config=dict(**VISION, image_size=image_size, hidden_act="quick_gelu"),
        projection_dim=64,
    )
    return CLIPModel(config)


def short_caption_file(data: Path) -> Path:
    """``captions.jsonl`` with the short caption (the summary) as the caption: what clip-77 learns from."""
    rows = [json.loads(line) for line in (data / "captions.jsonl").read_text(encoding="utf-8").splitlines()]
    path = data / "short_captions.jsonl"
    atomic_write_text(
        path, "".join(json.dumps({"image": r["image"], "caption": r["short_caption"]}) + "\n" for r in rows)
    )
    return path


def run(name: str, output: Path, **values) -> Path:
    """One ``train_encoder`` run into ``output/name/run``, exported to ``output/name/{clip,text_encoder}``."""
    run_dir = output / name / "run"
    if (output / name / "clip").is_dir():
        print(f"{name}: already trained, kept")
        return output / name / "clip"
    config = load_config(None, {**COMMON, **values, "output_dir": str(run_dir), "run_name": name})
    result = train(config, resume="latest")
    for part in ("clip", "text_encoder"):
        shutil.copytree(result.export_dir / part, output / name / part, dirs_exist_ok=True)
    return output / name / "clip"


def train_world_encoders(
    data: Path,
    output: Path,
    *,
    pretrain_steps: int = 1500,
    finetune_steps: int = 600,
    batch_size: int = 64,
    image_size: int = 64,
    seed: int = 0,
    recipes: Sequence[str] = RECIPES,
    finetune_lr: float = 2e-4,
    distill_weight: float = 3.0,
    clip_77: Path | None = None,
) -> dict[str, Path]:
    """Train (or keep, when already there) clip-77 and its 248-token fine-tunes (``<recipe>-recipe``, one per
    ``recipes``, all with ``finetune_lr`` and ``distill_weight``); their ``clip`` folders. ``clip_77``: fine-tune
    this existing CLIPModel folder instead of pre-training one."""
    common = dict(batch_size=batch_size, seed=seed, image_root=str(data))
    if clip_77 is not None:
        if not (Path(clip_77) / "config.json").is_file():
            raise SystemExit(f"error: --clip-77 {clip_77} is not a CLIPModel folder (no config.json)")
        trained = {"clip-77": Path(clip_77)}
    else:
        source = output / "random-clip"
        if not source.is_dir():
            random_clip(image_size, seed).save_pretrained(source)
        trained = {"clip-77": run("clip-77", output, model=str(source), train_data=str(short_caption_file(data)),
                                  stretch_to=None, keep=0, recipe="long-clip", short_weight=0.0, pca_components=0,
                                  max_steps=pretrain_steps, **common)}  # fmt: skip
    for recipe in recipes:
        trained[f"{recipe}-recipe"] = run(
            f"{recipe}-recipe", output, model=str(trained["clip-77"]), train_data=str(data / "captions.jsonl"),
            stretch_to=248, keep=20, recipe=recipe, max_steps=finetune_steps, lr=finetune_lr,
            distill_weight=distill_weight, **common, **RECIPE_OPTIONS.get(recipe, {}),
        )  # fmt: skip
    return trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a shapes-world export (captions.jsonl, images/)")
    add_output_dir(parser, what="the runs' folder", old=["--output"])
    parser.add_argument("--pretrain-steps", type=int, default=1500)
    parser.add_argument("--finetune-steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES,
                        help="fine-tunes to train (default: all)")  # fmt: skip
    parser.add_argument("--finetune-lr", type=float, default=2e-4, help="fine-tunes' peak lr (default: 2e-4)")
    parser.add_argument(
        "--distill-weight",
        type=float,
        default=3.0,
        help="fine-tunes' SD-compatibility term (hidden states vs clip-77 on 77 positions; default: 3, the "
        "regime the shipped fine-tunes were trained in; 0 turns it off)",
    )
    parser.add_argument(
        "--clip-77", type=Path, help="fine-tune this existing clip-77 CLIPModel folder (no pre-training)"
    )
    args = parse_arguments(parser, None)
    train_world_encoders(args.data, Path(args.output_dir), pretrain_steps=args.pretrain_steps,
                         finetune_steps=args.finetune_steps, batch_size=args.batch_size,
                         image_size=args.image_size, seed=args.seed, recipes=args.recipes,
                         finetune_lr=args.finetune_lr, distill_weight=args.distill_weight,
                         clip_77=args.clip_77)  # fmt: skip


if __name__ == "__main__":
    main()
