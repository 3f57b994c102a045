"""A pipeline saved with the pinned versions must load with other transformers / diffusers releases.

``save FOLDER`` (run with ``.venv``, the pinned versions) saves a tiny ``DeBiasStableDiffusionPipeline``
with a 248-token encoder and the offline CLIP tokenizer, as ``use_long_text_encoder`` leaves it.
``load FOLDER`` (run with a newest/oldest environment, see ``.ci/ranges.sh``) loads it with the stock
``StableDiffusionPipeline``, loads its tokenizer with every CLIP tokenizer class that transformers
release has (slow and fast in 4.x), checks that they tokenize like a freshly built one, and
generates one image. The tiny components come from the checkout's ``tests/pipeline_builders.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

PROMPT = "A red cube sits on a wooden table in a quiet kitchen. " * 8


def save(folder: Path) -> None:
    from pipeline_builders import sd_components, tiny_text_encoder

    from debias_diffusion import DeBiasStableDiffusionPipeline
    from debias_diffusion.tokenization import build_clip_tokenizer

    components = sd_components(77)
    components.update(text_encoder=tiny_text_encoder(248), tokenizer=build_clip_tokenizer(248))
    DeBiasStableDiffusionPipeline(**components).save_pretrained(folder)


def load(folder: Path) -> None:
    import torch
    import transformers
    from diffusers import StableDiffusionPipeline

    from debias_diffusion.tokenization import build_clip_tokenizer

    expected = build_clip_tokenizer(248, clean=False)(PROMPT).input_ids
    names = [name for name in ("CLIPTokenizer", "CLIPTokenizerFast") if hasattr(transformers, name)]
    for name in names:
        tokenizer = getattr(transformers, name).from_pretrained(folder / "tokenizer")
        if tokenizer(PROMPT).input_ids != expected or tokenizer.model_max_length != 248:
            raise SystemExit(f"FAILED: {name} reads {folder / 'tokenizer'} differently")
    pipe = StableDiffusionPipeline.from_pretrained(folder)
    image = pipe(PROMPT, num_inference_steps=1, height=16, width=16, output_type="np",
                 generator=torch.Generator().manual_seed(0)).images  # fmt: skip
    if image.shape != (1, 16, 16, 3) or pipe.tokenizer.model_max_length != 248:
        raise SystemExit(f"FAILED: the stock pipeline did not run the saved 248-token pipeline: {image.shape}")
    print(f"ok   a pipeline saved with the pinned versions loads here ({', '.join(names)}, StableDiffusionPipeline)")


if __name__ == "__main__":
    action, target = sys.argv[1], Path(sys.argv[2])
    {"save": save, "load": load}[action](target)
