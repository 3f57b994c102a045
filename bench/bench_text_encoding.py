"""Text-side throughput: a 248-token prompt batch vs a 77-token one, and tokenizer speed.

Rows (one process, side by side):
  * tokenize + encode a batch padded to 248 positions (stretched encoder) vs 77 positions
    (the same encoder, prompts cut to 77) -> time ratio and tokens/s;
  * captions/s of our tokenizer (transformers' Rust CLIP tokenizer built from open_clip's
    vocabulary, plus open_clip's ftfy/HTML cleaning so ids are equal), the same without the
    cleaning (stock HF behaviour), and open_clip's Python tokenizer, on the same long captions,
    padded to 248. transformers >= 5 has no slow Python CLIP tokenizer, so open_clip's is the
    slow row.

Random CLIP-L-shaped weights (width 768, 12 layers): timing does not depend on the values.
Usage: python bench/bench_text_encoding.py [--batch 8] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import open_clip
import torch
from transformers import CLIPTextConfig, CLIPTextModel

from debias_diffusion import build_clip_tokenizer, stretch_text_encoder

SENTENCES = [
    "A weathered red fishing boat rests on the pebbled shore at low tide.",
    "Its hull is streaked with rust and flaking paint, and a coil of blue rope lies on the bow.",
    "Behind it, a row of pastel houses climbs a steep hill under a pale morning sky.",
    "Two gulls stand on a wooden post, one of them with its wings half open.",
    "In the far distance a lighthouse with a black and white spiral stripe rises above the cliffs.",
    "Soft light catches small puddles between the stones, reflecting the clouds.",
]


def long_captions(n: int) -> list[str]:
    """n distinct multi-sentence captions of roughly 150-230 tokens."""
    out = []
    for i in range(n):
        order = SENTENCES[i % 6 :] + SENTENCES[: i % 6]
        out.append(" ".join(order * 2) + f" Photo number {i}.")
    return out


def time_call(fn, repeats: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--captions", type=int, default=2000, help="captions for the tokenizer rows")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.manual_seed(0)

    config = CLIPTextConfig(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        max_position_embeddings=77,
        eos_token_id=49407,
    )
    encoder = CLIPTextModel(config).eval()
    tokenizer = build_clip_tokenizer(context_length=77)
    stretch_text_encoder(encoder, tokenizer)
    prompts = long_captions(args.batch)

    def run(length: int):
        ids = tokenizer(
            prompts, padding="max_length", max_length=length, truncation=True, return_tensors="pt"
        ).input_ids
        with torch.inference_mode():
            encoder(input_ids=ids)

    t248 = time_call(lambda: run(248), args.repeats)
    t77 = time_call(lambda: run(77), args.repeats)

    captions = long_captions(args.captions)
    fast = time_call(lambda: tokenizer(captions, padding="max_length", max_length=248, truncation=True), 1)
    stock = build_clip_tokenizer(context_length=248, clean=False)
    raw = time_call(lambda: stock(captions, padding="max_length", max_length=248, truncation=True), 1)
    simple = open_clip.get_tokenizer("ViT-L-14", context_length=248)
    slow = time_call(lambda: simple(captions), 1)

    rows = [
        ("tokenize+encode, 248 positions", f"{t248 * 1000:.0f} ms/batch", f"{args.batch * 248 / t248:,.0f} tokens/s"),
        ("tokenize+encode, 77 positions", f"{t77 * 1000:.0f} ms/batch", f"{args.batch * 77 / t77:,.0f} tokens/s"),
        ("ratio 248 / 77 (time per batch)", f"{t248 / t77:.2f}x", f"{248 / 77:.2f}x the positions"),
        (
            "tokenizer: ours (Rust BPE + open_clip cleaning)",
            f"{len(captions) / fast:,.0f} captions/s",
            "ids equal open_clip's",
        ),
        ("tokenizer: ours, clean=False (stock HF)", f"{len(captions) / raw:,.0f} captions/s", "no ftfy/HTML cleaning"),
        ("tokenizer: open_clip (Python BPE)", f"{len(captions) / slow:,.0f} captions/s", ""),
        ("ratio ours / open_clip", f"{slow / fast:.1f}x", f"clean=False: {slow / raw:.1f}x"),
    ]
    device = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"device: {device}; encoder: CLIP-L-shaped text tower, fp32, batch {args.batch}")
    width = max(len(r[0]) for r in rows)
    for name, a, b in rows:
        print(f"{name:<{width}}  {a:>22}  {b}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": device, "batch": args.batch, "seconds_248": t248, "seconds_77": t77,
                       "captions_per_s_ours": len(captions) / fast, "captions_per_s_stock_hf": len(captions) / raw, "captions_per_s_open_clip": len(captions) / slow}, handle, indent=2)  # fmt: skip


if __name__ == "__main__":
    main()
