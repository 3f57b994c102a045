"""End-to-end, offline: checkpoint -> verified HF conversion with KPS -> long-prompt conditioning.

What this runs, plainly: it creates a SMALL RANDOMLY INITIALISED CLIP (OpenAI layout, 77
positions) because no real weights can be downloaded here. Everything after that is the real
code path a user runs on Long-CLIP-L / OpenAI CLIP-L:
  1. save it as an OpenAI-layout ``.pt`` (what Long-CLIP and OpenAI state dicts look like);
  2. ``debias-diffusion convert --stretch-to 248 --text-only``: KPS to 248 positions, conversion to
     Hugging Face format, checked against open_clip's forward of the same weights;
  3. ``load_text_encoder``: the folder back as a ready (encoder, tokenizer) pair;
  4. encode two long prompts that differ only after token 77, with the real CLIP tokenizer:
     the 248-position encoder sees the difference, a 77-token encoder (what stock Stable
     Diffusion conditions on) cannot;
  5. put the encoder into a ``DeBiasStableDiffusionPipeline`` with a SMALL RANDOM UNet/VAE,
     save it as a diffusers folder and run ``debias-diffusion generate`` on both prompts, at
     248 tokens and at 77: the images (noise-like: nothing here is trained) differ only at 248.
With real weights: ``debias-diffusion convert longclip-L.pt longclip-L-hf --text-only`` and
``debias-diffusion generate @prompt.txt --model stable-diffusion-v1-5/stable-diffusion-v1-5``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from open_clip.model import CLIP

from debias_diffusion import count_tokens, load_text_encoder, truncate_prompt
from debias_diffusion.atomic_io import atomic_write_json
from debias_diffusion.cli import main as cli
from debias_diffusion.cli_arguments import add_output_dir, parse_arguments

HEAD = (
    "A cosy reading corner in the late afternoon. A deep green armchair stands beside a tall window "
    "with thin white curtains. A knitted grey blanket hangs over one arm of the chair, and a stack of "
    "old hardcover books leans against its legs. On a small round side table there is a ceramic mug "
    "of tea, a pair of reading glasses and a brass lamp with a pleated shade. The wooden floor is "
    "covered by a faded red rug with a geometric border, and a potted fern grows in a woven basket "
    "near the radiator. Warm sunlight falls across the wall, where a framed map of an old harbour "
    "town hangs slightly crooked above a low bookshelf. "
)
TAILS = ("A sleeping orange cat is curled up on the seat.", "A black umbrella is propped against the wall.")


def main() -> int:
    parser = argparse.ArgumentParser(description="debias-diffusion foundation demo (offline, tiny random CLIP)")
    add_output_dir(parser, default="outputs/demo", old=["--output"])
    out = Path(parse_arguments(parser, None).output_dir)
    out.mkdir(parents=True, exist_ok=True)
    print("debias-diffusion demo: a small RANDOM CLIP made here (no real weights, no network).\n")

    torch.manual_seed(0)
    model = CLIP(
        embed_dim=256,
        vision_cfg=dict(layers=2, width=256, patch_size=16, image_size=64),
        text_cfg=dict(context_length=77, vocab_size=49408, width=256, heads=4, layers=4),
        quick_gelu=True,
    )
    checkpoint = out / "random-clip-openai-layout.pt"
    torch.save(model.state_dict(), checkpoint)
    print(f"[1/5] wrote an OpenAI-layout checkpoint with 77 positions: {checkpoint}")

    encoder_dir = out / "random-clip-248-hf"
    print(f"[2/5] debias-diffusion convert {checkpoint} -o {encoder_dir} --stretch-to 248 --text-only --overwrite")
    if cli(["convert", str(checkpoint), "-o", str(encoder_dir), "--stretch-to", "248", "--text-only", "--overwrite"]):
        return 1

    loaded = load_text_encoder(encoder_dir, with_projection=False, expected_context_length=248)
    print(f"[3/5] loaded {type(loaded.text_encoder).__name__}: {loaded.context_length} positions, width {loaded.width}")

    tokenizer = loaded.tokenizer
    prompts = [HEAD + tail for tail in TAILS]
    n_tokens = [count_tokens(tokenizer, p) for p in prompts]
    cut = truncate_prompt(prompts[0], tokenizer, max_tokens=75)
    print(f"[4/5] two prompts of {n_tokens} tokens that differ only in their last sentence.")
    print(f"      Fitting one into 77 positions (75 + SOT/EOT) without cutting a sentence: {cut.warning_message()}")

    def embed(max_length: int) -> torch.Tensor:
        ids = tokenizer(
            prompts, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt"
        ).input_ids
        with torch.inference_mode():
            return loaded.text_encoder(input_ids=ids).last_hidden_state

    long_states, short_states = embed(248), embed(77)
    long_gap = float((long_states[0] - long_states[1]).abs().max())
    short_gap = float((short_states[0] - short_states[1]).abs().max())
    print(f"      max |difference| between the two prompts' conditioning, 248 positions: {long_gap:.4f}")
    print(f"      max |difference| between the two prompts' conditioning,  77 positions: {short_gap:.4f}")
    verdict = "the last sentence reaches the conditioning" if long_gap > 0 and short_gap == 0 else "UNEXPECTED"
    print(f"      -> {verdict} only with the long encoder.")

    images = _generate_with_pipeline(out, loaded, prompts)
    same_at_77 = images[("77", 0)] == images[("77", 1)]
    differ_at_248 = images[("248", 0)] != images[("248", 1)]
    print(f"      generated images differ between the prompts: 248 tokens {differ_at_248}, 77 tokens {not same_at_77}")
    if not (same_at_77 and differ_at_248):
        verdict = "UNEXPECTED"

    report = {
        "what_ran": "tiny random CLIP and UNet/VAE (no real weights); real conversion, stretching, loading, "
        "tokenisation and the DeBias pipeline + generate CLI",
        "images_differ_248": differ_at_248,
        "images_differ_77": not same_at_77,
        "image_grid": str(out / "generated" / "grid.png"),
        "prompt_tokens": n_tokens,
        "kept_by_sentence_aware_truncation_to_75": cut.kept_tokens,
        "max_abs_difference_248": long_gap,
        "max_abs_difference_77": short_gap,
        "encoder_folder": str(encoder_dir),
    }
    atomic_write_json(out / "demo_report.json", report)
    print(f"\nwrote {out / 'demo_report.json'}")
    return 0 if verdict != "UNEXPECTED" else 1


def _generate_with_pipeline(out: Path, loaded, prompts: list[str]) -> dict[tuple[str, int], bytes]:
    """Step 5: a tiny random SD-style pipeline around the encoder, saved and run through the CLI."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from PIL import Image

    from debias_diffusion import DeBiasStableDiffusionPipeline

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, cross_attention_dim=loaded.width,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8, attention_head_dim=8,
    )  # fmt: skip
    vae = AutoencoderKL(
        block_out_channels=(32, 32), latent_channels=4, norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
    )  # fmt: skip
    pipe = DeBiasStableDiffusionPipeline(
        vae=vae, unet=unet, text_encoder=loaded.text_encoder, tokenizer=loaded.tokenizer,
        scheduler=DDIMScheduler(steps_offset=1, clip_sample=False), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
    pipeline_dir = out / "random-sd-248"
    pipe.save_pretrained(pipeline_dir)
    print(f"[5/5] saved a random SD-style pipeline with the 248-token encoder: {pipeline_dir}")
    images, tiles = {}, []
    encoder_77 = out / "random-clip-77-hf"  # the same weights unstretched: what stock SD conditions on
    if cli(["convert", str(out / "random-clip-openai-layout.pt"), str(encoder_77), "--text-only", "--overwrite"]):
        raise SystemExit(1)
    for length, encoder in (("248", "none"), ("77", str(encoder_77))):
        for index, prompt in enumerate(prompts):
            folder = out / "generated" / f"{length}-tokens-prompt-{index}"
            (out / "prompt.txt").write_text(prompt)
            print(f"      debias-diffusion generate @prompt.txt --model {pipeline_dir} --encoder {encoder}")
            args = ["generate", f"@{out / 'prompt.txt'}", "--model", str(pipeline_dir), "--encoder", encoder,
                    "--steps", "4", "--size", "64x64", "-o", str(folder), "--overwrite"]  # fmt: skip
            if cli(args):
                raise SystemExit(1)
            images[(length, index)] = (folder / "seed-0.png").read_bytes()
            tiles.append(Image.open(folder / "seed-0.png").convert("RGB"))
    grid = Image.new("RGB", (64 * 2, 64 * 2))
    for position, tile in enumerate(tiles):
        grid.paste(tile, ((position % 2) * 64, (position // 2) * 64))
    grid.save(out / "generated" / "grid.png")  # rows: 248 tokens, 77 tokens; columns: the two prompts
    return images


if __name__ == "__main__":
    sys.exit(main())
