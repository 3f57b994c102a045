"""Train step time and peak memory: our DeBias-CLIP step vs a straightforward Long-CLIP-style step.

Same CLIP model (random weights, positions stretched to 248 with KPS), same batch of images and
token rows, same optimizer (AdamW), same mixed precision, side by side in one process, steps
interleaved in rounds:

* ours: the trainer's step, ``train_encoder.trainer.forward_backward`` (one text pass over the
  long and short rows together, ``two_caption_loss`` with the PCA by reduced SVD, losses in
  float32) inside ``accelerator.accumulate``, then the optimizer step, the frozen-position restore
  and the logit-scale clamp, on a model from ``train_encoder.model_setup.build_model``;
* peer: the step as Long-CLIP's training script writes it: image, long and short features from
  three separate tower calls, PCA of the image features by full SVD
  (``torch.linalg.svd(full_matrices=True)``), two symmetric cross-entropies, backward, AdamW.

Rows: ``tiny`` (a small CLIP, runs on a CPU) and ``vit-b-16`` / ``vit-l-14`` (the papers' model shapes,
GPU). Peak memory is measured on CUDA only (``torch.cuda.max_memory_allocated``).

Usage: python bench/bench_train_step.py [--models tiny] [--batch 64] [--steps 10] [--rounds 3]
       [--mixed-precision no|bf16|fp16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from transformers import CLIPConfig, CLIPModel

from train_encoder.augment import CaptionTokenizer
from train_encoder.config import TrainConfig
from train_encoder.model_setup import TwoCaptionCLIP, build_model, clamp_logit_scale, parameter_groups
from train_encoder.recipes import get_recipe
from train_encoder.trainer import forward_backward

SHAPES = {
    "tiny": dict(text=(128, 4, 4), vision=(128, 4, 4), image_size=64, patch=16, projection=128),
    "vit-b-16": dict(text=(512, 12, 8), vision=(768, 12, 12), image_size=224, patch=16, projection=512),
    "vit-l-14": dict(text=(768, 12, 12), vision=(1024, 24, 16), image_size=224, patch=14, projection=768),
}


def random_clip(name: str) -> CLIPModel:
    shape = SHAPES[name]
    (text_width, text_layers, text_heads), (vision_width, vision_layers, vision_heads) = shape["text"], shape["vision"]
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(hidden_size=text_width, intermediate_size=4 * text_width, num_hidden_layers=text_layers,
                         num_attention_heads=text_heads, max_position_embeddings=77, hidden_act="quick_gelu"),
        vision_config=dict(hidden_size=vision_width, intermediate_size=4 * vision_width,
                           num_hidden_layers=vision_layers, num_attention_heads=vision_heads,
                           image_size=shape["image_size"], patch_size=shape["patch"], hidden_act="quick_gelu"),
        projection_dim=shape["projection"],
    )  # fmt: skip
    return CLIPModel(config)


def captions(batch: int) -> list[str]:
    parts = ["A red boat rests on a pebbled shore.", "Its hull is streaked with rust.", "Two gulls stand on a post.",
             "A lighthouse rises above the cliffs.", "Small puddles reflect the clouds.", "A coil of rope lies on the bow."]  # fmt: skip
    return [" ".join(parts[i % 6 :] + parts[: i % 6]) + f" Photo {i}." for i in range(batch)]


class OurStep:
    def __init__(self, folder: Path, accelerator: Accelerator) -> None:
        config = TrainConfig(model=str(folder), train_data="unused.jsonl", lr=1e-6)
        self.prepared = build_model(config)
        self.accelerator = accelerator
        self.recipe = get_recipe("debias")
        optimizer = torch.optim.AdamW(parameter_groups(self.prepared.model, config.weight_decay), lr=config.lr)
        self.module, self.optimizer = accelerator.prepare(TwoCaptionCLIP(self.prepared.model), optimizer)

    def __call__(self, images: torch.Tensor, long_ids: torch.Tensor, short_ids: torch.Tensor) -> float:
        with self.accelerator.accumulate(self.module):
            logged = forward_backward(self.accelerator, self.module, self.recipe, images, long_ids, short_ids)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.prepared.frozen_rows.restore()
        clamp_logit_scale(self.prepared.model)
        return logged["loss"]


class LongClipStep:
    """Long-CLIP's ``train.py`` step, written plainly on the same HF model."""

    def __init__(self, folder: Path, device: torch.device, mixed_precision: str) -> None:
        config = TrainConfig(model=str(folder), train_data="unused.jsonl", lr=1e-6)
        self.model = build_model(config).model.to(device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.device = device
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mixed_precision)
        self.scaler = torch.amp.GradScaler(device.type, enabled=mixed_precision == "fp16")

    def __call__(self, images: torch.Tensor, long_ids: torch.Tensor, short_ids: torch.Tensor) -> torch.Tensor:
        model = self.model
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            image = model.visual_projection(model.vision_model(pixel_values=images).pooler_output)
            long = model.text_projection(model.text_model(input_ids=long_ids).pooler_output)
            short = model.text_projection(model.text_model(input_ids=short_ids).pooler_output)
        image, long, short = (F.normalize(x.float(), dim=-1) for x in (image, long, short))
        mean = image.mean(dim=0, keepdim=True)
        _, _, vh = torch.linalg.svd(image - mean, full_matrices=True)
        basis = vh[:32].T
        short_image = (image - mean) @ basis @ basis.T + mean
        scale = model.logit_scale.exp()
        labels = torch.arange(image.shape[0], device=self.device)

        def symmetric(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            logits = scale * a @ b.T
            return (F.cross_entropy(logits, labels, label_smoothing=0.1)
                    + F.cross_entropy(logits.T, labels, label_smoothing=0.1)) / 2  # fmt: skip

        loss = 0.9 * symmetric(image, long) + 0.1 * symmetric(short_image, short)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return loss


def run_model(name: str, batch: int, steps: int, rounds: int, mixed_precision: str) -> dict:
    accelerator = Accelerator(mixed_precision=mixed_precision)
    device = accelerator.device
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / name
        random_clip(name).save_pretrained(folder)
        ours = OurStep(folder, accelerator)
        peer = LongClipStep(folder, device, mixed_precision)
    tokenizer = CaptionTokenizer(context_length=248)
    texts = captions(batch)
    long_ids = tokenizer.encode(texts).to(device)
    short_ids = get_recipe("debias").short_token_ids(texts, tokenizer, generator=torch.Generator().manual_seed(0))
    short_ids = short_ids.to(device)
    size = SHAPES[name]["image_size"]
    images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    times: dict[str, list[float]] = {"ours": [], "long-clip": []}
    memory: dict[str, int | None] = {"ours": None, "long-clip": None}
    for step in (ours, peer):  # warm-up (cuDNN / allocator)
        step(images, long_ids, short_ids)
    for round_index in range(rounds):
        order = [("ours", ours), ("long-clip", peer)][:: 1 if round_index % 2 == 0 else -1]
        for label, step in order:
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            for _ in range(steps):
                loss = step(images, long_ids, short_ids)
            float(loss.detach())  # waits for the device
            times[label].append((time.perf_counter() - start) / steps)
            if device.type == "cuda":
                memory[label] = max(memory[label] or 0, torch.cuda.max_memory_allocated())
    ours_s, peer_s = statistics.median(times["ours"]), statistics.median(times["long-clip"])
    return {
        "model": name,
        "batch": batch,
        "mixed_precision": mixed_precision,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)",
        "ours_step_s": ours_s,
        "long_clip_step_s": peer_s,
        "time_ratio": ours_s / peer_s,
        "per_round_ratios": [o / p for o, p in zip(times["ours"], times["long-clip"], strict=True)],
        "ours_peak_bytes": memory["ours"],
        "long_clip_peak_bytes": memory["long-clip"],
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| model | batch | precision | device | ours s/step | Long-CLIP-style s/step | time ratio (target <= 1.0) "
        "| peak memory ours / peer |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        memory = "n/a (CPU)"
        if row["ours_peak_bytes"] is not None:
            memory = f"{row['ours_peak_bytes'] / 2**30:.2f} / {row['long_clip_peak_bytes'] / 2**30:.2f} GiB"
        spread = ", ".join(f"{value:.3f}" for value in row["per_round_ratios"])
        lines.append(
            f"| {row['model']} | {row['batch']} | {row['mixed_precision']} | {row['device']} | {row['ours_step_s']:.4f} "
            f"| {row['long_clip_step_s']:.4f} | {row['time_ratio']:.3f} ({spread}) | {memory} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["tiny"], choices=sorted(SHAPES))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mixed-precision", default="no", choices=("no", "bf16", "fp16"))
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    rows = [run_model(name, args.batch, args.steps, args.rounds, args.mixed_precision) for name in args.models]
    print(f"torch {torch.__version__}, {platform.machine()}")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
