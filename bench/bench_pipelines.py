"""Generation cost of long prompts: stock SD 1.5 vs DeBiasStableDiffusionPipeline vs compel.

Variants, side by side in one process on the same UNet, VAE and CLIP-L-shaped text encoder
(12 layers x 768, random weights: time and memory do not depend on the values):
  a   stock StableDiffusionPipeline, 77-position encoder, a 75-token prompt (77 with SOT/EOT);
  b   DeBiasStableDiffusionPipeline on the same components and prompt: the drop-in overhead
      (its images must equal a's bit for bit);
  b'  DeBiasStableDiffusionPipeline with the encoder stretched to 248 positions (KPS), same
      prompt: what a short prompt costs once a long encoder is installed;
  c   as b', with a 200-token prompt (encoded whole: one 248-position pass);
  d   compel (truncate_long_prompts=False) on the 77-position encoder, the same 200-token prompt:
      77-token chunks concatenated, negative "" padded with pad_conditioning_tensors_to_same_length,
      passed as prompt_embeds to the stock pipeline; its time/image includes compel's encoding.

Configurations: ``small`` (small UNet and VAE, so the text side is a visible share) and ``sd15``
(SD 1.5's UNet and VAE configs, written below, at reduced resolution). Timing: one warm-up call
per variant, then rounds that run every variant once in a rotated order; time/image is the median,
the ratio the median of per-round ratios to (a) (paired, so drift cancels). encode_prompt is timed
alone the same way. On a shared machine a call during which other processes used more than
--quiet cores is retaken (--retries; the quietest take is kept) and the load is reported.
Peak memory is measured on separate calls per variant (see ``PeakMemory``).

The components are built here rather than imported from tests/pipeline_builders.py: those are
32-wide toys (the wrong sizes to time), and bench/ must run without tests/ on the path.

Usage: python bench/bench_pipelines.py [--configs small sd15] [--steps N] [--rounds N]
       [--encode-rounds 10] [--threads N] [--device cpu|cuda] [--dtype float32|float16] [--json PATH]
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import gc
import importlib.metadata
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import compel
import diffusers
import numpy as np
import torch
import transformers
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from debias_diffusion import DeBiasStableDiffusionPipeline
from debias_diffusion.atomic_io import atomic_write_json
from debias_diffusion.stretching import stretch_text_encoder
from debias_diffusion.tokenization import build_clip_tokenizer, count_tokens

SHORT_TOKENS, LONG_TOKENS = 75, 200
MEMORY_STEPS = 1  # the peak is reached in the first step or the VAE decode (1, 4, 10 steps: same tensor peak)
CAPTION = (
    "A weathered red fishing boat rests on the pebbled shore at low tide. "
    "Its hull is streaked with rust and flaking paint, and a coil of blue rope lies on the bow. "
    "Behind it, a row of pastel houses climbs a steep hill under a pale morning sky. "
    "Two gulls stand on a wooden post, one of them with its wings half open. "
    "In the far distance a lighthouse with a black and white spiral stripe rises above the cliffs. "
    "Soft light catches small puddles between the stones, reflecting the clouds. "
    "A child in a yellow raincoat crouches near the water, holding a green bucket full of shells. "
    "Fishing nets hang from a rack beside an overturned rowing boat painted teal and white. "
    "A black dog runs along the tide line, scattering a flock of small brown sandpipers. "
    "Smoke rises from the chimney of the nearest cottage, drifting slowly toward the sea. "
    "On the harbour wall an old man in a grey cap mends a lobster pot with careful hands. "
    "The sea is calm and silver, with a few sailboats far out near the horizon. "
    "A faded sign above the café door reads fresh crab in hand-painted blue letters. "
)
SD15_SCHEDULER = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
    steps_offset=1, clip_sample=False, set_alpha_to_one=False,
)  # fmt: skip


@dataclass(frozen=True)
class Config:
    """UNet / VAE sizes and the run settings of one configuration."""

    name: str
    description: str
    unet: dict[str, Any]
    vae: dict[str, Any]
    resolution: int
    steps: int
    rounds: int


CONFIGS = {
    "small": Config(
        "small",
        "small UNet (64/128/256 channels, 1 layer per block, cross-attention 768) and small VAE (32/64/64/64)",
        unet=dict(
            block_out_channels=(64, 128, 256),
            layers_per_block=1,
            sample_size=32,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=768,
            attention_head_dim=8,
            norm_num_groups=32,
        ),
        vae=dict(
            block_out_channels=(32, 64, 64, 64),
            layers_per_block=1,
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            norm_num_groups=32,
            sample_size=256,
        ),
        resolution=256,
        steps=10,
        rounds=7,
    ),  # fmt: skip
    "sd15": Config(
        "sd15",
        "SD 1.5 UNet config (320/640/1280/1280, 2 layers per block, 8 heads, cross-attention 768) and SD VAE config",
        unet=dict(
            block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
            sample_size=64,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=768,
            attention_head_dim=8,
            norm_num_groups=32,
            norm_eps=1e-5,
            act_fn="silu",
            center_input_sample=False,
            downsample_padding=1,
            flip_sin_to_cos=True,
            freq_shift=0,
            mid_block_scale_factor=1,
        ),
        vae=dict(
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            norm_num_groups=32,
            sample_size=512,
            act_fn="silu",
        ),
        resolution=128,
        steps=4,
        rounds=4,
    ),  # fmt: skip
}


def clip_l_text_encoder() -> CLIPTextModel:
    """A CLIP-L-shaped text encoder (SD 1.5's) with random weights and 77 positions."""
    config = CLIPTextConfig(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
        bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
    )  # fmt: skip
    return CLIPTextModel(config).eval()


def prompt_of(tokens: int, tokenizer: Any) -> str:
    """Words of ``CAPTION`` (cycled) that make exactly ``tokens`` BPE tokens."""
    words, picked = CAPTION.split() * 4, []
    for word in words:
        candidate = " ".join([*picked, word])
        count = count_tokens(tokenizer, candidate)
        if count <= tokens:
            picked.append(word)
        if count == tokens:
            break
    text = " ".join(picked)
    if count_tokens(tokenizer, text) != tokens:
        raise RuntimeError(f"could not build a {tokens}-token prompt")
    return text


class PeakMemory:
    """Peak memory one call adds above what was held just before it, two ways.

    ``tensors``: the peak of live tensor bytes during the call. CUDA: ``max_memory_allocated``
    after ``reset_peak_memory_stats``, less ``memory_allocated`` before. CPU: torch has no
    allocator statistics, so the call runs under ``torch.profiler`` with ``profile_memory=True``
    and the peak is the running sum of its allocation/free events, in time order. Exact and
    repeatable; it counts tensors only (not oneDNN scratch, not the profiler's own buffers).
    ``rss`` (CPU, Linux, glibc): freed heap pages are handed back to the kernel (``malloc_trim``),
    the resident-set high-water mark is reset (``echo 5 > /proc/self/clear_refs``), the call runs
    without a profiler, and the figure is VmHWM less the RSS before: whole-process, but the
    allocator's slack makes it vary by about +-10 MiB from call to call.
    Weights are resident before either measurement and are not counted.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._libc: Any = None
        if device.type != "cuda":
            try:
                Path("/proc/self/clear_refs").write_text("5")
                self._libc = ctypes.CDLL("libc.so.6")
            except OSError:
                self._libc = None

    @property
    def method(self) -> str:
        """How the figures are taken, for the printed notes and the JSON."""
        if self.device.type == "cuda":
            return "tensors: torch.cuda.max_memory_allocated - memory_allocated before (peak stats reset per call)"
        rss = (
            "RSS: VmHWM (reset via /proc/self/clear_refs after malloc_trim) - VmRSS before, separate call without profiler"
            if self._libc is not None
            else "RSS: unavailable (needs Linux /proc/self/clear_refs and glibc)"
        )
        return f"tensors: peak of live bytes from torch.profiler(profile_memory=True) allocation events; {rss}"

    def tensors(self, call: Callable[[], object]) -> int:
        """Run ``call``; return the peak tensor bytes it added."""
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            call()
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) - before
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
            call()
        events = sorted(
            (event.start_ns(), event.nbytes())
            for event in prof.profiler.kineto_results.events()
            if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU
        )
        live = peak = 0
        for _, nbytes in events:
            live += nbytes
            peak = max(peak, live)
        return peak

    def rss(self, call: Callable[[], object]) -> int | None:
        """Run ``call``; return the resident-set bytes it added at its peak (None where unavailable)."""
        if self._libc is None:
            return None
        gc.collect()
        self._libc.malloc_trim(0)
        before = _proc_status_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")
        call()
        return (_proc_status_kib("VmHWM") - before) * 1024


def _proc_status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


class OtherLoad:
    """CPU time that other processes used while a block ran, in cores (Linux /proc; None elsewhere).

    Timings on a shared 2-core machine are only as good as the machine was quiet: this is
    printed with every table so a contended run shows itself.
    """

    def __enter__(self) -> OtherLoad:
        self.cores: float | None = None
        self._start = self._snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._snapshot()
        if self._start is not None and end is not None:
            busy, own, wall = (e - s for e, s in zip(end, self._start, strict=True))
            self.cores = max(0.0, (busy - own) / os.sysconf("SC_CLK_TCK") / wall)

    @staticmethod
    def _snapshot() -> tuple[int, int, float] | None:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
            own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields
        return user + nice + system + irq + softirq + steal, int(own[11]) + int(own[12]), time.perf_counter()


@dataclass
class Variant:
    """One row: how to make an image and how to encode its prompt."""

    key: str
    label: str
    pipe: StableDiffusionPipeline
    prompt: str
    tokens: int
    compel_encoder: compel.Compel | None = None
    times: list[float] = field(default_factory=list)
    encode_times: list[float] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    other_load: list[float | None] = field(default_factory=list)
    encode_other_load: list[float | None] = field(default_factory=list)
    peak_tensor_bytes: int | None = None
    peak_rss_bytes: int | None = None

    def encode(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(prompt_embeds, negative_prompt_embeds) as the pipeline call makes them (CFG on)."""
        if self.compel_encoder is None:
            return self.pipe.encode_prompt(self.prompt, self.pipe.device, 1, True)
        with torch.inference_mode():
            positive = self.compel_encoder(self.prompt)
            negative = self.compel_encoder("")
            positive, negative = self.compel_encoder.pad_conditioning_tensors_to_same_length([positive, negative])
        return positive, negative

    def generate(self, steps: int, size: int) -> np.ndarray:
        """One image (batch 1, CFG 7.5, seed 0) as a float array."""
        generator = torch.Generator(self.pipe.device).manual_seed(0)
        run = dict(
            num_inference_steps=steps,
            height=size,
            width=size,
            guidance_scale=7.5,
            generator=generator,
            output_type="np",
        )
        if self.compel_encoder is None:
            return self.pipe(self.prompt, **run).images
        positive, negative = self.encode()
        return self.pipe(prompt_embeds=positive, negative_prompt_embeds=negative, **run).images


def timed(call: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Wall time of ``call`` (synchronised on CUDA) and its result."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = call()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, result


def interleaved(variants: list[Variant], rounds: int, run: Callable[[Variant], None]) -> None:
    """Run every variant once per round, the order rotated each round."""
    for round_index in range(rounds):
        shift = round_index % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            run(variant)


def paired_ratios(variant: Variant, reference: Variant) -> list[float]:
    """Per round: variant time / reference time in the same round."""
    return [t / r for t, r in zip(variant.times, reference.times, strict=True)]


def bench_config(
    config: Config,
    encoders: dict[int, tuple[CLIPTextModel, Any]],
    args: argparse.Namespace,
    device: torch.device,
    dtype: torch.dtype,
    memory: PeakMemory,
) -> dict[str, Any]:
    """Build one configuration's pipelines, time every variant, check the guarantees; return the results."""
    steps, rounds = args.steps or config.steps, args.rounds or config.rounds
    size = args.resolution or config.resolution
    torch.manual_seed(0)
    started = time.perf_counter()
    unet = UNet2DConditionModel(**config.unet).eval().to(device, dtype)
    vae = AutoencoderKL(**config.vae).eval().to(device, dtype)
    build_seconds = time.perf_counter() - started
    (encoder77, tokenizer77), (encoder248, tokenizer248) = encoders[77], encoders[248]
    shared = dict(vae=vae, unet=unet, safety_checker=None, feature_extractor=None, requires_safety_checker=False)

    def scheduler() -> DDIMScheduler:
        return DDIMScheduler(**SD15_SCHEDULER)

    stock = StableDiffusionPipeline(text_encoder=encoder77, tokenizer=tokenizer77, scheduler=scheduler(), **shared)
    ours77 = DeBiasStableDiffusionPipeline(
        text_encoder=encoder77, tokenizer=tokenizer77, scheduler=scheduler(), **shared
    )
    ours248 = DeBiasStableDiffusionPipeline(
        text_encoder=encoder248, tokenizer=tokenizer248, scheduler=scheduler(), **shared
    )
    for pipe in (stock, ours77, ours248):
        pipe.set_progress_bar_config(disable=True)
    short, long = prompt_of(SHORT_TOKENS, tokenizer77), prompt_of(LONG_TOKENS, tokenizer77)
    chunker = compel.Compel(
        tokenizer=tokenizer77,
        text_encoder=encoder77,
        truncate_long_prompts=False,
        dtype_for_device_getter=lambda _: dtype,
    )
    variants = [
        Variant("a", "stock SD, 77-pos encoder", stock, short, SHORT_TOKENS),
        Variant("b", "DeBias pipeline, same 77-pos encoder", ours77, short, SHORT_TOKENS),
        Variant("b'", "DeBias pipeline, 248-pos encoder (KPS)", ours248, short, SHORT_TOKENS),
        Variant("c", "DeBias pipeline, 248-pos encoder (KPS)", ours248, long, LONG_TOKENS),
        Variant("d", "compel chunks -> stock SD, 77-pos", stock, long, LONG_TOKENS, compel_encoder=chunker),
    ]
    print(f"[{config.name}] built in {build_seconds:.1f}s; warm-up, {rounds} generation rounds, "
          f"{args.encode_rounds} encode rounds ...", flush=True)  # fmt: skip

    with torch.inference_mode():
        for variant in variants:  # warm-up: every shape and lazy initialisation once
            variant.generate(1, size)
            variant.encode()

        def quietest(call: Callable[[], Any]) -> tuple[float, float | None, Any]:
            """Time ``call``; retake it (up to --retries times) while other processes were busy."""
            best: tuple[float, float | None, Any] | None = None
            for _ in range(1 + args.retries):
                with OtherLoad() as load:
                    seconds, output = timed(call, device)
                if best is None or (load.cores or 0.0) < (best[1] or 0.0):
                    best = (seconds, load.cores, output)
                if load.cores is None or load.cores <= args.quiet:
                    break
            assert best is not None
            return best

        def generation_round(variant: Variant) -> None:
            seconds, other, image = quietest(lambda: variant.generate(steps, size))
            variant.times.append(seconds)
            variant.other_load.append(other)
            variant.images.append(image)

        def encode_round(variant: Variant) -> None:
            seconds, other, _ = quietest(variant.encode)
            variant.encode_times.append(seconds)
            variant.encode_other_load.append(other)

        with OtherLoad() as load:
            interleaved(variants, rounds, generation_round)
            interleaved(variants, args.encode_rounds, encode_round)
        if not args.no_memory:
            for variant in variants:
                variant.peak_tensor_bytes = memory.tensors(lambda v=variant: v.generate(MEMORY_STEPS, size))
            if device.type != "cuda":
                for variant in variants:
                    variant.peak_rss_bytes = memory.rss(lambda v=variant: v.generate(MEMORY_STEPS, size))
        embeds = {variant.key: variant.encode() for variant in variants}
        tail = _tail_check(ours248, long)

    a, b = variants[0], variants[1]
    drop_in_equal = all(np.array_equal(x, y) for x, y in zip(a.images, b.images, strict=True))
    a_deterministic = all(np.array_equal(a.images[0], x) for x in a.images)
    rows = []
    for variant in variants:
        positive, negative = embeds[variant.key]
        rows.append(dict(
            key=variant.key, label=variant.label, prompt_tokens=variant.tokens,
            tokens_conditioned=_tokens_conditioned(variant),
            embedding_length=int(positive.shape[1]), negative_embedding_length=int(negative.shape[1]),
            seconds_per_image=statistics.median(variant.times), seconds_per_image_samples=variant.times,
            ratio_vs_a=statistics.median(paired_ratios(variant, a)), ratio_vs_a_per_round=paired_ratios(variant, a),
            encode_prompt_seconds=statistics.median(variant.encode_times),
            encode_prompt_samples=variant.encode_times, other_processes_cores_per_sample=variant.other_load,
            encode_other_processes_cores_per_sample=variant.encode_other_load, peak_tensor_bytes=variant.peak_tensor_bytes,
            peak_rss_bytes=variant.peak_rss_bytes,
        ))  # fmt: skip
    c_over_d = paired_ratios(variants[3], variants[4])
    overhead = (rows[1]["encode_prompt_seconds"] - rows[0]["encode_prompt_seconds"]) / rows[0]["seconds_per_image"]
    vae_scale = 2 ** (len(config.vae["block_out_channels"]) - 1)
    result = dict(
        config=config.name, description=config.description, resolution=size, latent_size=size // vae_scale,
        steps=steps, rounds=rounds, memory_steps=MEMORY_STEPS, encode_rounds=args.encode_rounds, guidance_scale=7.5,
        unet_parameters=sum(p.numel() for p in unet.parameters()), vae_parameters=sum(p.numel() for p in vae.parameters()),
        rows=rows, b_over_a_from_encode_prompt=1 + overhead, c_over_d_per_round=c_over_d,
        c_over_d_encode_prompt=rows[3]["encode_prompt_seconds"] / rows[4]["encode_prompt_seconds"], drop_in_images_equal=drop_in_equal, stock_images_deterministic=a_deterministic,
        other_processes_cores=load.cores, quiet_threshold=args.quiet, long_prompt_check=tail, compel_chunks=rows[4]["embedding_length"] // 77, wall_seconds=time.perf_counter() - started,
    )  # fmt: skip
    del stock, ours77, ours248, variants, unet, vae, chunker
    gc.collect()
    return result


def _tokens_conditioned(variant: Variant) -> int:
    """Prompt tokens that reach the embedding: all for compel's chunks, else what one pass holds."""
    if variant.compel_encoder is not None:
        return variant.tokens
    return min(variant.tokens, variant.pipe.tokenizer.model_max_length - 2)


def _tail_check(pipe: DeBiasStableDiffusionPipeline, prompt: str) -> dict[str, Any]:
    """Does the last word of the 200-token prompt (far past token 77) change the embedding?"""
    words = prompt.split()
    changed = " ".join([*words[:-1], "zebra" if words[-1] != "zebra" else "giraffe"])
    first, _ = pipe.encode_prompt(prompt, pipe.device, 1, False)
    second, _ = pipe.encode_prompt(changed, pipe.device, 1, False)
    difference = (first - second).abs().amax(dim=(0, 2))
    changed_positions = torch.nonzero(difference).flatten().tolist()
    return dict(
        embedding_length=int(first.shape[1]),
        first_changed_position=changed_positions[0] if changed_positions else None,
        max_abs_difference_past_77=float(difference[77:].max()),
        prefix_unchanged=bool(changed_positions) and changed_positions[0] > 77,
    )


def table(result: dict[str, Any], device_label: str, memory_method: str) -> str:
    """The Markdown table and check lines printed for one configuration."""
    size, latent = result["resolution"], result["latent_size"]
    lines = [
        f"### {result['config']}: {result['description']}",
        f"UNet {result['unet_parameters'] / 1e6:.1f}M params, VAE {result['vae_parameters'] / 1e6:.1f}M; "
        f"{size}x{size} ({latent}x{latent} latents), {result['steps']} DDIM steps, CFG 7.5, batch 1; "
        f"device {device_label}; median of {result['rounds']} rounds (encode_prompt: {result['encode_rounds']})",
        "",
        "| variant | prompt tokens conditioned | embedding length | time/image | ratio vs (a) [range over rounds] | encode_prompt "
        "| peak memory (tensors) | peak RSS delta |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["rows"]:
        lines.append(
            f"| ({row['key']}) {row['label']} | {row['tokens_conditioned']} of {row['prompt_tokens']} | "
            f"{row['embedding_length']} | {row['seconds_per_image']:.3f} s | {row['ratio_vs_a']:.3f} "
            f"[{min(row['ratio_vs_a_per_round']):.2f}-{max(row['ratio_vs_a_per_round']):.2f}] | "
            f"{row['encode_prompt_seconds'] * 1000:.1f} ms | {_mib(row['peak_tensor_bytes'])} | {_mib(row['peak_rss_bytes'])} |"
        )
    tail, rounds, c_over_d = result["long_prompt_check"], result["rounds"], result["c_over_d_per_round"]
    lines += [
        "",
        f"- drop-in: (b) images equal (a) bit for bit in all {rounds} rounds: "
        f"{'yes' if result['drop_in_images_equal'] else 'NO'} ((a) repeatable across rounds: "
        f"{'yes' if result['stock_images_deterministic'] else 'no'})",
        f"- (b)/(a) from encode_prompt alone (the denoising loop and VAE are the same stock code): "
        f"1 + ((b) - (a) encode_prompt) / (a) time/image = {result['b_over_a_from_encode_prompt']:.4f}",
        f"- (c) conditions on all {LONG_TOKENS} tokens: embedding length {tail['embedding_length']}; changing the "
        f"last word moves the embedding first at position {tail['first_changed_position']} "
        f"(max |diff| past 77: {tail['max_abs_difference_past_77']:.3g}), positions before it unchanged: "
        f"{'yes' if tail['prefix_unchanged'] else 'NO'}",
        f"- (d) compel: {result['compel_chunks']} chunks of 77; (d)'s time/image includes compel's encoding",
        f"- (c)/(d), paired per round: time/image {statistics.median(c_over_d):.3f} [{min(c_over_d):.2f}-"
        f"{max(c_over_d):.2f}]; encode_prompt {result['c_over_d_encode_prompt']:.3f}",
        f"- peak memory ({MEMORY_STEPS} denoising step, separate calls): {memory_method}",
        f"- wall time for this configuration: {result['wall_seconds']:.0f} s; other processes used "
        f"{_cores(result['other_processes_cores'])} cores on average during the timed rounds; timed calls kept "
        f"that ran while others used <= {result['quiet_threshold']} cores: {_quiet_share(result)}",
    ]
    return "\n".join(lines)


def _quiet_share(result: dict[str, Any]) -> str:
    loads = [
        load
        for row in result["rows"]
        for load in row["other_processes_cores_per_sample"] + row["encode_other_processes_cores_per_sample"]
    ]
    if any(load is None for load in loads):
        return "n/a"
    return f"{sum(load <= result['quiet_threshold'] for load in loads)} of {len(loads)}"


def _cores(cores: float | None) -> str:
    return "n/a" if cores is None else f"{cores:.2f}"


def _mib(nbytes: int | None) -> str:
    return "n/a" if nbytes is None else f"{nbytes / 2**20:,.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=["small", "sd15"])
    parser.add_argument("--steps", type=int, help="denoising steps for every configuration (default: small 10, sd15 4)")
    parser.add_argument("--resolution", type=int, help="image side in pixels (default: small 256, sd15 128)")
    parser.add_argument(
        "--rounds", type=int, help="timed generation rounds after the warm-up (default: small 7, sd15 4)"
    )
    parser.add_argument("--encode-rounds", type=int, default=10, help="timed encode_prompt rounds")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, one per core)")
    parser.add_argument(
        "--quiet",
        type=float,
        default=0.25,
        help="retake a timed call during which other processes used more than this many cores",
    )
    parser.add_argument("--retries", type=int, default=2, help="retakes per timed call at most (the quietest is kept)")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory calls")
    parser.add_argument("--json", default="outputs/bench/bench_pipelines.json", help="machine-readable results")
    args = parser.parse_args()
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the CPU profiler's "no GPU" error line is expected
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        device_label = f"CUDA ({torch.cuda.get_device_name(device)}), {args.dtype}"
    else:
        device_label = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads of {os.cpu_count()} cores), {args.dtype}"
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()

    torch.manual_seed(0)
    encoder77 = clip_l_text_encoder()
    encoder248 = stretch_text_encoder(copy.deepcopy(encoder77), keep=20, ratio=4)
    encoders = {
        77: (encoder77.to(device, dtype), build_clip_tokenizer(77)),
        248: (encoder248.to(device, dtype), build_clip_tokenizer(248)),
    }
    memory = PeakMemory(device)
    memory_method = "not measured" if args.no_memory else memory.method
    started = time.perf_counter()
    results = []
    for name in args.configs:
        result = bench_config(CONFIGS[name], encoders, args, device, dtype, memory)
        results.append(result)
        print(table(result, device_label, memory_method) + "\n", flush=True)
    total = time.perf_counter() - started
    print(f"total wall time {total:.0f} s; text encoder: CLIP-L-shaped (12 x 768, random), 77 positions and the same "
          f"weights stretched to 248 (KPS keep=20 ratio=4); torch {torch.__version__}, diffusers {diffusers.__version__}, "
          f"transformers {transformers.__version__}, compel {importlib.metadata.version('compel')}")  # fmt: skip
    atomic_write_json(args.json, dict(
        benchmark="bench_pipelines", date=date.today().isoformat(), command=" ".join(sys.argv), device=device_label,
        memory_method=memory_method, total_wall_seconds=total,
        versions=dict(torch=torch.__version__, diffusers=diffusers.__version__, transformers=transformers.__version__,
                      compel=importlib.metadata.version("compel")),
        configs=results,
    ))  # fmt: skip
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
