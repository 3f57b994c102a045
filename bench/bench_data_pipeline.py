"""Caption pipeline throughput: DeBias-augmented + tokenised captions/s per core, ours vs open_clip's.

Both sides turn a batch of long captions into the two token branches a DeBias-CLIP step needs,
``[B, 248]`` each: the long caption whole, and the short branch (summary removed, a random subset
of the other sentences in random order, random pad tokens moved after SOT).

* ours: ``get_recipe("debias")`` with ``train_encoder.augment.CaptionTokenizer`` (Rust BPE per
  distinct word, cached sentence ids, numpy packing), exactly what the trainer runs per batch;
* peer: the official DeBias-CLIP / Long-CLIP code path: open_clip's Python ``SimpleTokenizer``
  (``open_clip.tokenize``, its own BPE cache) on the long caption and on the short text, sentences
  split on ". " and sampled with Python's ``random``, token padding by rolling each row.

Captions are synthetic ShareGPT4V-like paragraphs (a summary sentence, then 5-9 detail sentences,
about 150-230 tokens), all distinct. "cold" = a fresh tokenizer on captions it never saw (the
first epoch); "warm" = the same captions again (later epochs: both sides cache per word, ours also
per caption). One thread (per core figures), side by side in one process, rounds interleaved.

Usage: python bench/bench_data_pipeline.py [--captions 4096] [--batch 256] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time

import open_clip
import torch

from train_encoder.augment import CaptionTokenizer
from train_encoder.recipes import get_recipe

OBJECTS = ["boat", "house", "tree", "dog", "cat", "bicycle", "lamp", "table", "chair", "window", "door", "car", "bus", "train", "bridge", "tower", "cup", "bottle", "vase", "clock", "book", "guitar", "piano", "flower", "bird", "horse", "cow", "sheep", "kite", "umbrella", "bench", "fence", "river", "mountain", "cloud", "road"]  # fmt: skip
COLOURS = [
    "red",
    "blue",
    "green",
    "yellow",
    "white",
    "black",
    "orange",
    "purple",
    "pink",
    "brown",
    "grey",
    "silver",
    "golden",
    "teal",
    "beige",
]
MATERIALS = [
    "wooden",
    "metal",
    "glass",
    "stone",
    "brick",
    "plastic",
    "ceramic",
    "woven",
    "leather",
    "painted",
    "rusty",
    "polished",
]
PLACES = ["on the left", "on the right", "in the foreground", "in the background", "near the centre",
          "at the top of the frame", "along the bottom edge", "behind the fence", "next to the wall"]  # fmt: skip
DETAILS = ["The surface shows fine scratches and a faded label.", "Soft light from the window falls across it.",
           "A small sign reads 3.5 km to the harbour.", "Its shadow stretches across the ground, e.g. toward the path.",
           "Several smaller items are scattered around it.", "The edges look worn from years of use"]  # fmt: skip


def synthetic_captions(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct multi-sentence captions with a summary first (some without a final period)."""
    rng = random.Random(seed)
    captions = []
    for index in range(count):
        objects = rng.sample(OBJECTS, 4)
        summary = f"A photo of a {objects[0]}, a {objects[1]} and a {objects[2]} in scene number {index}."
        sentences = [summary]
        for _ in range(rng.randint(5, 9)):
            thing = rng.choice(objects)
            sentences.append(
                f"The {rng.choice(COLOURS)} {rng.choice(MATERIALS)} {thing} stands {rng.choice(PLACES)}, "
                f"slightly {rng.choice(['tilted', 'raised', 'shaded', 'blurred'])} and {rng.randint(2, 40)} cm tall."
            )
            if rng.random() < 0.3:
                sentences.append(rng.choice(DETAILS))
        captions.append(" ".join(sentences))
    return captions


class OpenClipPipeline:
    """The peer: open_clip's Python tokenizer with DeBias-CLIP's augmentation written plainly."""

    def __init__(self, context_length: int = 248, seed: int = 0) -> None:
        self.tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=context_length)
        self.rng = random.Random(seed)

    def __call__(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        long_ids = self.tokenizer(captions)
        shorts = []
        for caption in captions:
            sentences = [s for s in caption.split(". ") if s][1:] or [caption]
            picked = self.rng.sample(sentences, self.rng.randint(1, len(sentences)))
            shorts.append(". ".join(picked))
        short_ids = self.tokenizer(shorts)
        for row in short_ids:  # token padding: move n_pre of the trailing pads after SOT
            n_post = int((row == 0).sum())
            n_pre = self.rng.randint(0, n_post)
            if n_pre:
                row[1:] = torch.roll(row[1:], n_pre)
        return long_ids, short_ids


class OursPipeline:
    """The trainer's per-batch caption work (``recipe.long_token_ids`` + ``recipe.short_token_ids``)."""

    def __init__(self, context_length: int = 248, seed: int = 0) -> None:
        self.tokenizer = CaptionTokenizer(context_length=context_length)
        self.recipe = get_recipe("debias")
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        long_ids = self.recipe.long_token_ids(captions, self.tokenizer)
        short_ids = self.recipe.short_token_ids(captions, self.tokenizer, generator=self.generator)
        return long_ids, short_ids


def epoch_seconds(pipeline, captions: list[str], batch: int) -> float:
    start = time.perf_counter()
    for first in range(0, len(captions), batch):
        long_ids, short_ids = pipeline(captions[first : first + batch])
        assert long_ids.shape == short_ids.shape == (len(captions[first : first + batch]), 248)
    return time.perf_counter() - start


def run(captions: int, batch: int, rounds: int) -> dict:
    torch.set_num_threads(1)
    texts = synthetic_captions(captions)
    timings = {(name, phase): [] for name in ("ours", "open_clip") for phase in ("cold", "warm")}
    for round_index in range(rounds):
        for name, factory in (("ours", OursPipeline), ("open_clip", OpenClipPipeline))[
            :: 1 if round_index % 2 == 0 else -1
        ]:
            pipeline = factory(seed=round_index)
            timings[name, "cold"].append(epoch_seconds(pipeline, texts, batch))
            timings[name, "warm"].append(epoch_seconds(pipeline, texts, batch))
    rows = {}
    for phase in ("cold", "warm"):
        ours, peer = (statistics.median(timings[name, phase]) for name in ("ours", "open_clip"))
        rows[phase] = {
            "ours_captions_per_s": captions / ours,
            "open_clip_captions_per_s": captions / peer,
            "speedup": peer / ours,
            "per_round_speedups": [
                p / o for p, o in zip(timings["open_clip", phase], timings["ours", phase], strict=True)
            ],
        }
    tokens = OursPipeline().tokenizer.encode(texts[:256])
    return {
        "captions": captions,
        "batch": batch,
        "rounds": rounds,
        "mean_tokens_per_caption": float((tokens != 0).sum(dim=1).float().mean()),
        "threads": 1,
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "rows": rows,
    }


def table(result: dict) -> str:
    lines = [
        f"captions: {result['captions']} distinct, ~{result['mean_tokens_per_caption']:.0f} tokens each, "
        f"batch {result['batch']}, 1 thread, median of {result['rounds']} rounds",
        "| epoch | ours captions/s | open_clip captions/s | speed-up (target >= 5x) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for phase, label in (("cold", "first (unseen captions)"), ("warm", "later (captions seen)")):
        row = result["rows"][phase]
        spread = ", ".join(f"{value:.2f}" for value in row["per_round_speedups"])
        lines.append(
            f"| {label} | {row['ours_captions_per_s']:.0f} | {row['open_clip_captions_per_s']:.0f} | "
            f"{row['speedup']:.2f}x ({spread}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--captions", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    result = run(args.captions, args.batch, args.rounds)
    print(table(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(result, file, indent=2)


if __name__ == "__main__":
    main()
