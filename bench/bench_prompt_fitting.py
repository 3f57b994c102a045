"""Time to truncate and to chunk very long prompts: the work must grow linearly with the length.

Prompts are unpunctuated (one "sentence"), the case that used to be quadratic: a run of words
drawn from a fixed vocabulary (spaces, no sentence ends), and a run of Chinese characters without
spaces or punctuation (one "word" longer than the window, cut between characters). Each size is
timed once after a warm-up on the smallest; the window is SD's 248-position encoder (246 tokens).

Usage: python bench/bench_prompt_fitting.py [--tokens 1000 10000 20000 100000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time

from debias_diffusion.prompt_fitting import count_tokens, split_into_chunks, truncate_prompt
from debias_diffusion.tokenization import build_clip_tokenizer

WORDS = [
    "red",
    "blue",
    "green",
    "small",
    "large",
    "cube",
    "sphere",
    "cone",
    "table",
    "lamp",
    "window",
    "garden",
    "river",
    "stone",
    "wooden",
    "glass",
    "shiny",
    "old",
]
HANZI = "猫狗鸟树花山水云红蓝绿大小桌灯窗"


def _words_prompt(tokenizer, tokens: int) -> str:
    rng = random.Random(0)
    return " ".join(rng.choice(WORDS) for _ in range(tokens))  # each of these words is one token


def _hanzi_prompt(tokenizer, tokens: int) -> str:
    rng = random.Random(0)
    per_character = count_tokens(tokenizer, HANZI) / len(HANZI)
    return "".join(rng.choice(HANZI) for _ in range(int(tokens / per_character)))


def _seconds(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[1000, 10000, 20000, 100000])
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    tokenizer = build_clip_tokenizer(248)
    rows = []
    for kind, make in (("words", _words_prompt), ("hanzi, no spaces", _hanzi_prompt)):
        _seconds(split_into_chunks, make(tokenizer, min(args.tokens)), tokenizer)  # warm-up
        for tokens in args.tokens:
            prompt = make(tokenizer, tokens)
            actual = count_tokens(tokenizer, prompt)
            row = dict(
                prompt=kind,
                tokens=actual,
                truncate_s=round(_seconds(truncate_prompt, prompt, tokenizer), 3),
                chunk_s=round(_seconds(split_into_chunks, prompt, tokenizer), 3),
            )
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        report = dict(device=f"{platform.machine()} CPU", python=platform.python_version(), rows=rows)
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=2)


if __name__ == "__main__":
    main()
