"""Train a tiny latent text-to-image model on the shapes world: the stand-in for Stable Diffusion 1.5.

Two stages, then a standard diffusers pipeline folder:

1. a tiny ``AutoencoderKL`` (64x64 RGB -> 16x16x4 latents) trained on the world's images
   (L1 + MSE reconstruction, a small KL term); its ``scaling_factor`` is set from the latent
   standard deviation, as SD does;
2. a tiny ``UNet2DConditionModel`` trained with the DDPM epsilon loss, conditioned on the frozen
   text encoder's ``last_hidden_state`` of a caption of the scene: its **summary** ("A picture of a
   large red circle and a small blue star on a white background.") or its **list** prompt ("a red
   circle and a blue star"), drawn per sample (``--caption-forms``). Both mention the large object
   first, like web captions, so the model learns what SD learns from them: first mentioned, larger.
   The **sentences** form is SD's regime of captions of every length: a random subset of the long
   caption's sentences in random order (the summary kept half the time), with up to four neutral
   context sentences (lighting, style, composition: the late-detail evaluator's built-in pool)
   mixed in, as CLIP-77 sees it, i.e. truncated at 77 tokens; objects are first mentioned anywhere
   in the window, and sentences past it are lost, as LAION captions were for SD. Each repetition of
   the form in ``--caption-forms`` is another seeded variant per scene. The **named-sentences** form
   is the same sampler redrawn until the 77 tokens CLIP-77 reads name every object of the scene:
   captions of every length, objects first mentioned anywhere in the window, but no object drawn
   that its caption does not name (with ``sentences`` the UNet learns to draw unnamed objects).
   The **long-named-sentences** form is a long-caption fine-tune's regime: the same
   sampler with up to ``LONG_CONTEXT_SENTENCES`` neutral sentences, so captions run to the
   encoder's whole window (248 tokens for the world's fine-tunes), redrawn until that window names
   every object: objects first mentioned anywhere in it, also past token 77.
   None of the sentence forms' samples are flipped: their sentences name positions.
   The condition is replaced by the empty prompt's states 10% of the time, for classifier-free
   guidance. The loss of latent cells covered by objects is weighted up (``--object-weight``): on a
   white background most cells are trivially predictable, and the small objects cover a few cells.

The text embeddings are computed once with the pipeline's own ``encode_prompt`` (so training sees
exactly what inference feeds the UNet) and cached. The result is saved with
``DeBiasStableDiffusionPipeline.save_pretrained`` (UNet and VAE as float16 safetensors, a
``DDIMScheduler`` for inference). Any encoder of the same width (32) can be swapped in afterwards,
such as the 248-position Long-CLIP and DeBias fine-tunes of the same ``clip-77``.

Given several ``--encoder`` folders (of one width and context length, e.g. the Long-CLIP and
DeBias fine-tunes), each sample's condition comes from one of them, drawn uniformly: a UNet adapted
to a family of encoders rather than to one recipe's. The pipeline is saved with the first, or with
``--pipeline-encoder`` (e.g. ``clip-77``, so that the pipeline's own encoder stays the 77-token one).

Training checkpoints (``WORK/state.pt``, written atomically) are resumed when the script is run
again with the same ``--work-dir``; a finished run only re-exports the pipeline (or, given more
``--unet-steps``, continues from its EMA weights). ``--init-from OTHER_WORK_DIR`` starts a new run
from another run's VAE (kept as it is) and EMA UNet: a second stage on other data.

Usage: python examples/shapes_world/train_text_to_image.py --data DATA --encoder ENCODER [--encoder ...] -o OUT
       [--vae-steps 1500] [--unet-steps 6000] [--batch-size 64] [--caption-forms summary,list]
       [--object-weight 4] [--init-from WORK_OR_PIPELINE] [--seed 0] [--quick] [--evaluate]
``DATA`` is a shapes-world export (``debias-diffusion shapes-world -o DATA --scenes 4000``),
``ENCODER`` a text-encoder folder (e.g. ``clip-77/text_encoder``). ``--quick`` is a smoke run
(a few hundred scenes, a few dozen steps) that finishes in about two minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from PIL import Image
from tqdm.auto import tqdm

from debias_diffusion.cli_arguments import add_output_dir, parse_arguments

# SD 1.x noise schedule
SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64, 64), layers_per_block=1,
    down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
    norm_num_groups=16, sample_size=64,
)  # fmt: skip
UNET_CONFIG = dict(
    sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 64, 96), layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    attention_head_dim=8, norm_num_groups=16,
)  # fmt: skip
KL_WEIGHT = 1e-6
DROP_CONDITION = 0.1
EMA_DECAY = 0.999
CAPTION_FORMS = ("summary", "list", "sentences", "named-sentences", "long-named-sentences")
#: Forms whose captions hold for the mirrored image too (no left / right in them).
FLIPPABLE_FORMS = ("summary", "list")
MAX_CONTEXT_SENTENCES = 4
LONG_CONTEXT_SENTENCES = 24
"""The long form's most neutral sentences: about 7 tokens each, on captions of about 75, fill 248."""
CLIP_77_WINDOW = 77
OBJECT_THRESHOLD = 48
"""A pixel belongs to an object when a channel differs from the background (the corner pixel) by more."""
FIRST_STEPS = 5
"""The summaries' ``*_first_loss``: the mean loss of a run's first steps."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="shapes-world export (captions.jsonl, images/)")
    parser.add_argument("--encoder", type=Path, action="append", required=True,
                        help="text-encoder folder (CLIPTextModel + tokenizer); repeat it to draw one per sample")  # fmt: skip
    parser.add_argument("--pipeline-encoder", type=Path,
                        help="text encoder saved in the pipeline folder (default: the first --encoder)")  # fmt: skip
    add_output_dir(parser, what="pipeline folder to write", old=["--output"])
    parser.add_argument("--work-dir", type=Path, help="checkpoints and caches (default: the output folder + -train)")
    parser.add_argument("--vae-steps", type=int, default=1500)
    parser.add_argument("--unet-steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--vae-lr", type=float, default=1e-3)
    parser.add_argument("--unet-lr", type=float, default=1e-3)
    parser.add_argument(
        "--caption-forms",
        default="summary,list",
        help=f"comma-separated captions drawn per sample: {', '.join(CAPTION_FORMS)}",
    )
    parser.add_argument(
        "--object-weight",
        type=float,
        default=4.0,
        help="extra loss weight of latent cells covered by objects (0: plain epsilon loss)",
    )
    parser.add_argument("--init-from", type=Path,
                        help="work dir of a finished run, or a saved pipeline folder: start from its VAE and (EMA) UNet")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, help="use only the first N scenes")
    parser.add_argument("--checkpoint-every", type=int, default=250, help="steps between checkpoints")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--max-minutes", type=float, help="stop UNet training (checkpointed) after this long")
    parser.add_argument("--embeddings-only", action="store_true", help="only compute the text-embedding cache")
    parser.add_argument("--train-only", action="store_true", help="train (and checkpoint) but do not export")
    parser.add_argument("--evaluate", action="store_true", help="run evaluate_generation.py on the result")
    parser.add_argument("--quick", action="store_true", help="smoke run: 256 scenes, 40 VAE + 100 UNet steps, batch 16")
    args = parse_arguments(parser, argv)
    args.output_dir = Path(args.output_dir)
    if args.quick:  # defaults for a smoke run; explicit options still win
        defaults = dict(scenes=256, vae_steps=40, unet_steps=100, batch_size=16, checkpoint_every=50)
        for name, value in defaults.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    args.work_dir = args.work_dir or args.output_dir.with_name(args.output_dir.name + "-train")
    args.caption_forms = tuple(form.strip() for form in args.caption_forms.split(",") if form.strip())
    unknown = sorted(set(args.caption_forms) - set(CAPTION_FORMS)) or (not args.caption_forms and ["(none)"])
    if unknown:
        parser.error(f"--caption-forms: unknown {', '.join(unknown)}; use a comma-separated subset of "
                     f"{', '.join(CAPTION_FORMS)}")  # fmt: skip
    if args.object_weight < 0:
        parser.error(f"--object-weight must be >= 0, got {args.object_weight}")
    init = args.init_from
    if init is not None and not (init / "state.pt").is_file() and not (init / "model_index.json").is_file():
        parser.error(
            f"--init-from {init}: neither a run's work dir (state.pt) nor a pipeline folder (model_index.json)"
        )
    return args


# ---------------------------------------------------------------- data


def load_dataset(
    data: Path, scenes: int | None, forms: tuple[str, ...], window: int = CLIP_77_WINDOW
) -> tuple[torch.Tensor, list[list[str]]]:
    """Images as uint8 ``(N, 3, 64, 64)`` and, per image, one caption per form (see the module docstring);
    ``window`` is the encoders' context length (the long form names every object within it)."""
    from debias_diffusion.shapes_world import list_prompt, read_scenes

    rows = [json.loads(line) for line in (data / "captions.jsonl").read_text(encoding="utf-8").splitlines() if line]
    world = read_scenes(data / "scenes.jsonl")
    if len(world) != len(rows):
        raise SystemExit(f"error: {data} has {len(rows)} captions but {len(world)} scenes; re-export it")
    count = scenes or len(rows)
    images = np.stack([np.asarray(Image.open(data / row["image"]).convert("RGB")) for row in rows[:count]])
    make = {"summary": lambda row, scene, index, variant: row["short_caption"],
            "list": lambda row, scene, index, variant: list_prompt(scene, "size"),
            "sentences": lambda row, scene, index, variant: sentences_caption(row, index, variant),
            "named-sentences": lambda row, scene, index, variant: named_sentences_caption(row, scene, index, variant),
            "long-named-sentences": lambda row, scene, index, variant: named_sentences_caption(
                row, scene, index, variant, window=window, context=LONG_CONTEXT_SENTENCES, stream="long-named")}  # fmt: skip
    captions = [
        [make[form](row, scene, index, forms[:column].count(form)) for column, form in enumerate(forms)]
        for index, (row, scene) in enumerate(zip(rows[:count], world[:count], strict=True))
    ]
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), captions


def sentences_caption(
    row: dict, index: int, variant: int, *, stream: str = "sentences", context: int = MAX_CONTEXT_SENTENCES
) -> str:
    """The ``sentences`` form: a seeded random subset of the long caption's sentences in random order
    (the summary kept half the time), with 0 to ``context`` neutral sentences mixed in."""
    import random

    from debias_diffusion.late_detail.context import NEUTRAL_CONTEXT
    from debias_diffusion.sentences import join_sentences, split_sentences

    rng = random.Random(f"{stream}-{index}-{variant}")
    summary, *details = split_sentences(row["caption"])
    chosen = rng.sample(details, rng.randint(1, len(details))) if details else []
    if not chosen or rng.random() < 0.5:
        chosen.insert(rng.randint(0, len(chosen)), summary)
    for sentence in rng.sample(NEUTRAL_CONTEXT, rng.randint(0, context)):
        chosen.insert(rng.randint(0, len(chosen)), sentence)
    return join_sentences(chosen)


NAMED_SENTENCES_ATTEMPTS = 50


def named_sentences_caption(
    row: dict, scene, index: int, variant: int, *, window: int = CLIP_77_WINDOW,
    context: int = MAX_CONTEXT_SENTENCES, stream: str = "named",
) -> str:  # fmt: skip
    """The ``named-sentences`` form: a ``sentences`` caption (with up to ``context`` neutral sentences)
    whose first ``window`` tokens (77: what CLIP-77 reads) name every object of the scene, redrawn
    until they do. Captions of every length with objects first mentioned anywhere in the window, but
    never an object drawn and not named."""
    tokenizer = _window_tokenizer()
    phrases = [obj.phrase for obj in scene.objects]
    for attempt in range(NAMED_SENTENCES_ATTEMPTS):
        caption = sentences_caption(row, index, variant, stream=f"{stream}-{attempt}", context=context)
        ids = tokenizer(caption, truncation=True, max_length=window).input_ids
        read = " ".join(tokenizer.decode(ids, skip_special_tokens=True).lower().split())
        if all(phrase in read for phrase in phrases):
            return caption
    return row["short_caption"]  # the summary names every object


@functools.cache
def _window_tokenizer():
    """The CLIP tokenizer (built once, 248 positions; callers truncate at their window): what decides
    which words fall inside a window."""
    from debias_diffusion.tokenization import build_clip_tokenizer

    return build_clip_tokenizer(248)


def object_cells(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Share of each latent cell's pixels that belong to objects, ``(N, 1, H / factor, W / factor)``."""
    background = images[:, :, :1, :1].int()
    objects = ((images.int() - background).abs().amax(dim=1, keepdim=True) > OBJECT_THRESHOLD).float()
    return F.avg_pool2d(objects, factor)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def encoder_digest(encoder: Path) -> str:
    weights = sorted(encoder.glob("*.safetensors")) or sorted(encoder.glob("*.bin"))
    return "-".join(file_digest(path) for path in weights) or str(encoder.resolve())


def caption_embeddings(
    encoder: Path, captions: list[list[str]], cache: Path
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(unique caption states, empty prompt states, (N, forms) index of each caption)``; cached by content."""
    unique = sorted({caption for row in captions for caption in row})
    key = hashlib.sha256(("\n".join(unique) + encoder_digest(encoder)).encode()).hexdigest()[:16]
    if cache.is_file():
        stored = torch.load(cache, weights_only=True)
        if stored["key"] == key:
            print(f"text embeddings: cached ({len(unique)} captions)")
            return stored["states"].float(), stored["empty"].float(), caption_indices(unique, captions)
    pipe = build_pipeline(encoder, vae=AutoencoderKL(**VAE_CONFIG), unet=UNet2DConditionModel(**unet_config(32)))
    states = []
    # captions past 77 tokens are truncated on purpose (the sentences form): one log line each would flood the output
    logging.getLogger("debias_diffusion").setLevel(logging.ERROR)
    with torch.no_grad():
        for start in tqdm(range(0, len(unique), 256), desc="text embeddings"):
            states.append(pipe.encode_prompt(unique[start : start + 256], "cpu", 1, False)[0])
        empty = pipe.encode_prompt([""], "cpu", 1, False)[0][0]
    states = torch.cat(states)
    atomic_torch_save({"key": key, "states": states.half(), "empty": empty.half()}, cache)
    return states.half().float(), empty.half().float(), caption_indices(unique, captions)


def encoder_shape(encoder: Path, flag: str = "--encoder") -> tuple[int, int]:
    """``(context length, width)`` from a text-encoder (or CLIPModel) folder's ``config.json``."""
    config_file = encoder / "config.json"
    if not config_file.is_file():
        raise SystemExit(f"error: {flag} {encoder}: no config.json; give a text-encoder folder")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config = config.get("text_config", config)
    return config["max_position_embeddings"], config["hidden_size"]  # transformers' names


def encoders_window(encoders: list[Path], pipeline_encoder: Path | None = None) -> int:
    """The context length the ``--encoder`` folders share (the long form's window); refuses a mix of
    context lengths or widths, which one UNet cannot be trained on, and a ``--pipeline-encoder`` of
    another width (checked before any training, not at export)."""
    shapes = {encoder: encoder_shape(encoder) for encoder in encoders}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{encoder} (context length {n}, width {d})" for encoder, (n, d) in shapes.items())
        raise SystemExit(f"error: the --encoder folders must share context length and width: {listed}")
    window, width = next(iter(shapes.values()))
    if pipeline_encoder is not None and encoder_shape(pipeline_encoder, "--pipeline-encoder")[1] != width:
        raise SystemExit(f"error: --pipeline-encoder {pipeline_encoder} is not {width} wide like the --encoder folders")
    return window


def all_caption_embeddings(
    encoders: list[Path], captions: list[list[str]], work_dir: Path
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`caption_embeddings` of every encoder, stacked: ``(encoders, unique, L, D)`` states,
    ``(encoders, L, D)`` empty-prompt states and the ``(N, forms)`` caption index."""
    computed = [
        caption_embeddings(encoder, captions, work_dir / ("embeddings.pt" if i == 0 else f"embeddings-{i}.pt"))
        for i, encoder in enumerate(encoders)
    ]
    return torch.stack([c[0] for c in computed]), torch.stack([c[1] for c in computed]), computed[0][2]


def caption_indices(unique: list[str], captions: list[list[str]]) -> torch.Tensor:
    lookup = {caption: i for i, caption in enumerate(unique)}
    return torch.tensor([[lookup[caption] for caption in row] for row in captions])


def build_pipeline(encoder: Path, *, vae, unet, scheduler=None):
    from debias_diffusion import DeBiasStableDiffusionPipeline, load_text_encoder

    loaded = load_text_encoder(str(encoder), with_projection=False)
    return DeBiasStableDiffusionPipeline(
        vae=vae, text_encoder=loaded.text_encoder, tokenizer=loaded.tokenizer, unet=unet,
        scheduler=scheduler or inference_scheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip


def unet_config(cross_attention_dim: int) -> dict:
    return dict(UNET_CONFIG, cross_attention_dim=cross_attention_dim)


def inference_scheduler() -> DDIMScheduler:
    return DDIMScheduler(**SCHEDULE, clip_sample=False, set_alpha_to_one=False, steps_offset=1)


# ---------------------------------------------------------------- checkpoints


def atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, scratch)
    os.replace(scratch, path)


def lr_at(step: int, total: int, peak: float, warmup: int = 100) -> float:
    """Linear warm-up (``warmup`` steps, at most a fifth of the run), then cosine decay to 10% of the peak."""
    warmup = max(1, min(warmup, total // 5))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


def to_unit(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1.0


def random_flip(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Horizontal flips: the summary names no positions, so a mirrored scene has the same caption."""
    flip = torch.rand(batch.shape[0], generator=generator) < 0.5
    return torch.where(flip[:, None, None, None].to(batch.device), batch.flip(-1), batch)


# ---------------------------------------------------------------- stages


def train_vae(args, state: dict, images: torch.Tensor, device: torch.device) -> AutoencoderKL:
    torch.manual_seed(args.seed)
    vae = AutoencoderKL(**VAE_CONFIG).to(device)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, weight_decay=0.0)
    if "vae" in state:
        vae.load_state_dict(state["vae"])
        if "vae_optimizer" in state:
            optimizer.load_state_dict(state["vae_optimizer"])
    step = state.get("vae_step", 0)
    if step >= args.vae_steps:
        print(f"VAE: trained ({step} steps), kept")
        return vae.eval()
    generator = torch.Generator().manual_seed(args.seed * 1000 + step)
    vae.train()
    bar = tqdm(range(step, args.vae_steps), desc="VAE", initial=step, total=args.vae_steps)
    smoothed = None
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args.vae_steps, args.vae_lr)
        index = torch.randint(0, len(images), (args.batch_size,), generator=generator)
        batch = random_flip(to_unit(images[index]).to(device), generator)
        posterior = vae.encode(batch).latent_dist
        reconstruction = vae.decode(posterior.sample()).sample
        rec = F.l1_loss(reconstruction, batch) + F.mse_loss(reconstruction, batch)
        kl = posterior.kl().mean() / batch[0].numel()
        loss = rec + KL_WEIGHT * batch[0].numel() * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        smoothed = rec.item() if smoothed is None else 0.95 * smoothed + 0.05 * rec.item()
        if step < FIRST_STEPS:
            state["vae_first_loss"] = (state.get("vae_first_loss", 0.0) * step + rec.item()) / (step + 1)
        bar.set_postfix(rec=f"{smoothed:.4f}", kl=f"{kl.item():.3f}")
        done = step + 1
        if done % max(1, args.vae_steps // 10) == 0 or done == args.vae_steps:
            tqdm.write(f"VAE step {done}: reconstruction {smoothed:.4f} (L1+MSE), KL/dim {kl.item():.4f}")
        if done % args.checkpoint_every == 0 or done == args.vae_steps:
            state.update(vae=vae.state_dict(), vae_optimizer=optimizer.state_dict(), vae_step=done, vae_loss=smoothed)
            atomic_torch_save(state, args.work_dir / "state.pt")
    state.pop("vae_optimizer", None)
    atomic_torch_save(state, args.work_dir / "state.pt")
    return vae.eval()


@torch.no_grad()
def encode_latents(vae: AutoencoderKL, images: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and standard deviations of every image (flipped copies are encoded on the fly)."""
    means, stds = [], []
    for start in range(0, len(images), 256):
        posterior = vae.encode(to_unit(images[start : start + 256]).to(device)).latent_dist
        means.append(posterior.mean.cpu())
        stds.append(posterior.std.cpu())
    return torch.cat(means), torch.cat(stds)


def train_unet(args, state, latents, embeddings, device) -> UNet2DConditionModel:
    means, stds, flipped_means, flipped_stds, scale, cells, flipped_cells = latents
    states, empty, caption_index = embeddings
    flippable = torch.tensor([form in FLIPPABLE_FORMS for form in args.caption_forms])
    torch.manual_seed(args.seed + 1)
    unet = UNet2DConditionModel(**unet_config(states.shape[-1])).to(device)
    ema = UNet2DConditionModel(**unet_config(states.shape[-1])).to(device)
    ema.load_state_dict(unet.state_dict())
    ema.requires_grad_(False)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=args.unet_lr, weight_decay=0.01)
    if "ema" in state:
        ema.load_state_dict(state["ema"])
    if "unet" in state:
        unet.load_state_dict(state["unet"])
        if "unet_optimizer" in state:
            optimizer.load_state_dict(state["unet_optimizer"])
    elif "ema" in state:  # a finished run given more steps, or --init-from: continue from the EMA weights
        unet.load_state_dict(state["ema"])
    step = state.get("unet_step", 0)
    if step >= args.unet_steps:
        print(f"UNet: trained ({step} steps), kept")
        return ema.eval()
    noise_scheduler = DDPMScheduler(**SCHEDULE)
    alphas = noise_scheduler.alphas_cumprod.to(device)
    states, empty = states.to(device), empty.to(device)
    generator = torch.Generator().manual_seed(args.seed * 1000 + 7 + step)
    unet.train()
    bar = tqdm(range(step, args.unet_steps), desc="UNet", initial=step, total=args.unet_steps)
    smoothed = None
    # --max-minutes: a time budget; the learning-rate schedule follows whichever of steps and time runs out first
    budget = 60 * args.max_minutes if args.max_minutes else math.inf
    begun, first = time.perf_counter(), step
    for step in bar:
        elapsed = time.perf_counter() - begun
        if elapsed > budget:
            tqdm.write(f"UNet: --max-minutes reached at step {step}: training ends there")
            args.unet_steps = step
            break
        progress = max(step / args.unet_steps, first / args.unet_steps + elapsed / budget)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(round(progress * args.unet_steps), args.unet_steps, args.unet_lr, warmup=200)
        # random draws in the order of the runs before the sentences form (their results reproduce)
        index = torch.randint(0, len(means), (args.batch_size,), generator=generator)
        flip = (torch.rand(args.batch_size, generator=generator) < 0.5)[:, None, None, None]
        unit_noise = torch.randn(means[index].shape, generator=generator)
        noise = torch.randn(unit_noise.shape, generator=generator).to(device)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (args.batch_size,), generator=generator)
        form = torch.randint(0, caption_index.shape[1], (args.batch_size,), generator=generator)
        flip = flip & flippable[form][:, None, None, None]
        mean = torch.where(flip, flipped_means[index], means[index])
        std = torch.where(flip, flipped_stds[index], stds[index])
        weight = (1 + args.object_weight * torch.where(flip, flipped_cells[index], cells[index])).to(device)
        x0 = (mean + std * unit_noise).to(device) * scale
        t = t.to(device)
        a = alphas[t][:, None, None, None]
        noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise
        # one encoder per sample; drawn only with several, so single-encoder runs keep their draws
        which = torch.randint(0, len(states), (args.batch_size,), generator=generator) if len(states) > 1 else 0
        which = torch.as_tensor(which).expand(args.batch_size).to(device)
        cond = states[which, caption_index[index, form].to(device)]
        drop = (torch.rand(args.batch_size, generator=generator) < DROP_CONDITION).to(device)
        cond = torch.where(drop[:, None, None], empty[which], cond)
        prediction = unet(noisy, t, encoder_hidden_states=cond).sample
        loss = ((prediction - noise).square() * weight).mean() / weight.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        decay = min(EMA_DECAY, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), unet.parameters(), strict=True):
                e.lerp_(p, 1 - decay)
        smoothed = loss.item() if smoothed is None else 0.98 * smoothed + 0.02 * loss.item()
        if step < FIRST_STEPS:  # what the loss started from, to show that it falls
            state["unet_first_loss"] = (state.get("unet_first_loss", 0.0) * step + loss.item()) / (step + 1)
        bar.set_postfix(loss=f"{smoothed:.4f}")
        done = step + 1
        if done % max(1, args.unet_steps // 20) == 0 or done == args.unet_steps:
            tqdm.write(f"UNet step {done}: epsilon MSE {smoothed:.4f}")
        if done % args.checkpoint_every == 0 or done == args.unet_steps:
            state.update(
                unet=unet.state_dict(), ema=ema.state_dict(), unet_optimizer=optimizer.state_dict(),
                unet_step=done, unet_loss=smoothed,
            )  # fmt: skip
            atomic_torch_save(state, args.work_dir / "state.pt")
    if step + 1 >= args.unet_steps or args.unet_steps == step:  # finished: drop what only resuming needs
        state.update(ema=ema.state_dict(), unet_step=args.unet_steps, unet_loss=smoothed)
        state.pop("unet_optimizer", None)
        state.pop("unet", None)
        atomic_torch_save(state, args.work_dir / "state.pt")
    return ema.eval()


def initial_state(init_from: Path) -> dict:
    """A new run's state from a finished one: its VAE and scale, its EMA UNet as the starting point.
    ``init_from`` may also be a saved pipeline folder (its VAE, UNet and ``scaling_factor``)."""
    if (init_from / "model_index.json").is_file() and not (init_from / "state.pt").is_file():
        return pipeline_state(init_from)
    previous = torch.load(init_from / "state.pt", map_location="cpu", weights_only=True)
    if "ema" not in previous or "vae" not in previous:
        raise SystemExit(f"error: {init_from / 'state.pt'} has no trained VAE and UNet; finish that run first")
    summary = init_from / "training_summary.json"
    scale = previous.get("scaling_factor") or json.loads(summary.read_text(encoding="utf-8"))["scaling_factor"]
    print(f"starting from {init_from}: its VAE ({previous['vae_step']} steps, kept) and EMA UNet "
          f"({previous['unet_step']} steps)")  # fmt: skip
    return {
        "vae": previous["vae"], "vae_step": previous["vae_step"], "vae_loss": previous.get("vae_loss"),
        "ema": previous["ema"], "scaling_factor": float(scale),
        "init_from": {"work_dir": str(init_from), "vae_steps": previous["vae_step"], "unet_steps": previous["unet_step"]},
    }  # fmt: skip


def pipeline_state(folder: Path) -> dict:
    """A new run's state from a saved pipeline folder; its training summary says how it was trained."""
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32)
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32)
    summary_file = folder / "training_summary.json"
    summary = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.is_file() else {}
    print(f"starting from the pipeline {folder}: its VAE (kept) and UNet ({summary.get('unet_steps', '?')} steps)")
    return {
        "vae": vae.state_dict(), "vae_step": summary.get("vae_steps", 0), "vae_loss": summary.get("vae_reconstruction_loss"),
        "ema": unet.state_dict(), "scaling_factor": float(vae.config.scaling_factor),
        "init_from": {"pipeline": str(folder), "vae_steps": summary.get("vae_steps"), "unet_steps": summary.get("unet_steps")},
    }  # fmt: skip


def export(args, vae: AutoencoderKL, unet: UNet2DConditionModel, scale: float) -> None:
    from debias_diffusion.atomic_io import atomic_directory

    vae.register_to_config(scaling_factor=scale)
    pipe = build_pipeline(args.pipeline_encoder or args.encoder[0], vae=vae.cpu().half(), unet=unet.cpu().half())
    with atomic_directory(args.output_dir, overwrite=True) as scratch:
        pipe.save_pretrained(scratch, safe_serialization=True)
    size = sum(path.stat().st_size for path in args.output_dir.rglob("*") if path.is_file())
    parts = {
        name: sum(p.stat().st_size for p in (args.output_dir / name).rglob("*") if p.is_file())
        for name in ("unet", "vae")
    }
    print(
        f"saved {args.output_dir} ({size / 1e6:.1f} MB; unet {parts['unet'] / 1e6:.2f} MB, vae {parts['vae'] / 1e6:.2f} MB)"
    )


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))  # fmt: skip
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    started = time.perf_counter()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    images, captions = load_dataset(
        args.data, args.scenes, args.caption_forms, encoders_window(args.encoder, args.pipeline_encoder)
    )
    print(f"{len(images)} scenes from {args.data} ({', '.join(args.caption_forms)} captions); device {device}")
    state_file = args.work_dir / "state.pt"
    state = torch.load(state_file, map_location="cpu", weights_only=True) if state_file.is_file() else {}
    if state:
        print(f"resuming from {state_file}: VAE step {state.get('vae_step', 0)}, UNet step {state.get('unet_step', 0)}")
    elif args.init_from is not None:
        state = initial_state(args.init_from)
    if "init_from" in state:  # the VAE of the run this one continues is kept as it is
        args.vae_steps = state["vae_step"]
    embeddings = all_caption_embeddings(args.encoder, captions, args.work_dir)
    if args.embeddings_only:
        return

    vae = train_vae(args, state, images, device)
    means, stds = encode_latents(vae, images, device)
    flipped_means, flipped_stds = encode_latents(vae, images.flip(-1), device)
    # SD's rule: unit-variance latents; a continued run keeps the scale its UNet was trained with
    state.setdefault("scaling_factor", float(1.0 / means.std()))
    scale = state["scaling_factor"]
    print(f"latents {tuple(means.shape[1:])}: std {means.std().item():.3f}; scaling_factor {scale:.4f}")
    cells = object_cells(images, images.shape[-1] // means.shape[-1])
    latents = (means, stds, flipped_means, flipped_stds, scale, cells, cells.flip(-1))
    unet = train_unet(args, state, latents, embeddings, device)
    minutes = (time.perf_counter() - started) / 60
    summary = {
        "vae_steps": state.get("vae_step"), "vae_first_loss": state.get("vae_first_loss"),
        "vae_reconstruction_loss": state.get("vae_loss"), "unet_steps": state.get("unet_step"),
        "unet_first_loss": state.get("unet_first_loss"), "unet_weighted_epsilon_mse": state.get("unet_loss"),
        "scaling_factor": scale, "init_from": state.get("init_from"), "minutes_this_run": round(minutes, 2),
        "device": str(device),
    }  # fmt: skip
    print(json.dumps(summary))
    if args.train_only:
        return
    export(args, vae, unet, scale)
    (args.work_dir / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if args.evaluate:
        sys.path.insert(0, str(Path(__file__).parent))
        from evaluate_generation import main as evaluate

        evaluate(
            ["--pipeline", str(args.output_dir), "--threads", str(args.threads)] + (["--quick"] if args.quick else [])
        )


if __name__ == "__main__":
    main()
