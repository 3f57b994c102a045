"""What moves an encoder's states of a mention: its position, or the words before it?

For each unseen (anchor, target) item of the late-detail run, the target's mention after the anchor
sentence ("The picture shows a red square. There is also a blue square.", mention at about token 12)
is the reference. The same target sentence is then placed after other context, and the cosine
between its mention tokens' states and the reference's is averaged over items (the UNet reads these
states; ``late_detail.attention``'s "state similarity"):

- **neutral, same offset**: neutral sentences (the late-detail evaluator's built-in pool) instead of
  the anchor sentence, so the mention lands at about the same offset: the context changes, the
  position hardly does;
- **neutral, offset ~40 / ~110**: the late-detail prompts' own arrangement, the anchor sentence then
  neutral sentences: context and position change;
- **repeated anchor, offset ~40 / ~110**: the anchor sentence repeated until the mention lands there:
  the position changes, the words before the mention hardly do.

Usage: python examples/shapes_world/mention_states.py [-o outputs/shapes_world/mention_states.json]
       [--models DIR] [--items 6] [--encoder 'LABEL=CLIP_FOLDER' ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from debias_diffusion import load_text_encoder
from debias_diffusion.atomic_io import atomic_write_json
from debias_diffusion.cli_arguments import add_output_dir, parse_arguments
from debias_diffusion.errors import DebiasDiffusionError
from debias_diffusion.late_detail.context import NEUTRAL_CONTEXT
from debias_diffusion.late_detail.prompts import DEFAULT_ANCHOR_SENTENCE, DEFAULT_TARGET_SENTENCE
from debias_diffusion.named_arguments import parse_named_values
from debias_diffusion.shapes_world.world_late_detail import world_items
from debias_diffusion.shapes_world.world_models import world_encoders
from debias_diffusion.tokenization import count_tokens

MODELS = Path(__file__).parent / "models"
PLACEMENTS = ("neutral, same offset", "neutral, offset ~40", "repeated anchor, offset ~40", "neutral, offset ~110",
              "repeated anchor, offset ~110")  # fmt: skip


def sentence(pattern: str, phrase: str) -> str:
    from debias_diffusion.articles import with_article

    return pattern.format(object=with_article(phrase))


def fill(tokenizer, sentences: list[str], tokens: int) -> list[str]:
    """Sentences from ``sentences``, in order, until they hold at least ``tokens`` tokens."""
    chosen = []
    for text in sentences:
        if chosen and count_tokens(tokenizer, " ".join(chosen)) >= tokens:
            break
        chosen.append(text)
    return chosen


def prompts(tokenizer, anchor: str, target: str) -> dict[str, str]:
    """The reference prompt and one prompt per placement (the target sentence last in each)."""
    first, mention = sentence(DEFAULT_ANCHOR_SENTENCE, anchor), sentence(DEFAULT_TARGET_SENTENCE, target)
    same = fill(tokenizer, list(NEUTRAL_CONTEXT), count_tokens(tokenizer, first))
    placed = {"reference": [first], "neutral, same offset": same}
    for offset in (40, 110):
        placed[f"neutral, offset ~{offset}"] = [first, *fill(tokenizer, list(NEUTRAL_CONTEXT), offset - 12)]
        placed[f"repeated anchor, offset ~{offset}"] = [first] * (1 + offset // count_tokens(tokenizer, first + " "))
    return {name: " ".join([*context, mention]) for name, context in placed.items()}


def mention_states(loaded, text: str, target: str) -> tuple[torch.Tensor, int] | None:
    """The last mention of ``target``'s tokens in ``text``'s states, and where it starts; ``None`` past the window."""
    tokenizer = loaded.tokenizer
    ids = tokenizer(text, truncation=True, padding="max_length", return_tensors="pt").input_ids
    phrase = tokenizer(target, add_special_tokens=False).input_ids
    row = ids[0].tolist()
    starts = [i for i in range(len(row)) if row[i : i + len(phrase)] == phrase]
    if not starts:
        return None
    with torch.no_grad():
        states = loaded.text_encoder(ids).last_hidden_state[0]
    return states[starts[-1] : starts[-1] + len(phrase)], starts[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_output_dir(parser, default="outputs/shapes_world/mention_states.json", what="the JSON results")
    parser.add_argument("--models", type=Path, default=MODELS)
    parser.add_argument("--items", type=int, default=6)
    parser.add_argument("--encoder", action="append", default=[], metavar="LABEL=CLIP_FOLDER")
    args = parse_arguments(parser, None)
    try:
        encoders = world_encoders(args.models, parse_named_values(args.encoder, "--encoder"))
    except DebiasDiffusionError as error:
        parser.exit(2, f"error: {error}\n")
    items = world_items(args.items)
    results = {}
    for label, folder in encoders.items():
        loaded = load_text_encoder(str(folder), with_projection=False)
        cells = {name: [] for name in PLACEMENTS}
        offsets = {name: [] for name in PLACEMENTS}
        for item in items:
            placed = prompts(loaded.tokenizer, item["anchor"], item["target"])
            reference = mention_states(loaded, placed["reference"], item["target"])
            for name in PLACEMENTS:
                found = mention_states(loaded, placed[name], item["target"])
                if found is None:  # past this encoder's window
                    continue
                states, start = found
                cells[name].append(float(torch.cosine_similarity(states, reference[0], dim=-1).mean()))
                offsets[name].append(start)
        results[label] = {name: {"similarity": sum(v) / len(v) if v else None, "items": len(v),
                                 "mean_offset": sum(offsets[name]) / len(v) if v else None}
                          for name, v in cells.items()}  # fmt: skip
    print("| encoder | " + " | ".join(PLACEMENTS) + " |")
    print("| --- |" + " ---: |" * len(PLACEMENTS))
    for label, row in results.items():
        cells = [
            "past the window" if c["similarity"] is None else f"{c['similarity']:.2f} (@{c['mean_offset']:.0f})"
            for c in row.values()
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")
    output = Path(args.output_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output, {"items": items, "placements": list(PLACEMENTS), "results": results})
    print(f"results: {output}")


if __name__ == "__main__":
    main()
