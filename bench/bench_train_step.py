"""Train step time and memory: our DeBias-CLIP step vs Long-CLIP's step (its own code, and a re-implementation).

Steps compared (``--steps-of``), on the same shapes, batch of images and token rows, and precision:

* ``ours``: the trainer's step, ``train_encoder.trainer.forward_backward`` (one text pass over the
  long and short rows together, ``two_caption_loss`` with the PCA by reduced SVD, losses in
  float32) inside ``accelerator.accumulate``, then the optimizer step, the frozen-position restore
  and the logit-scale clamp, on a model from ``train_encoder.model_setup.build_model``;
* ``long-clip-own``: Long-CLIP's own model and loss code, imported at run time from a local
  checkout of github.com/beichenzbc/Long-CLIP (``--longclip-src``; nothing of it is in this
  repository): ``model/model_longclip.py``'s ``CLIP`` built with random weights at the same shapes,
  its ``forward(image, text_long, text_short, rank)`` (three tower calls, PCA, all-gathers,
  two symmetric cross-entropies), ``loss_long + loss_short`` backward and AdamW, as its
  ``train/train.py`` does (a one-process ``gloo`` / ``nccl`` group stands in for its DDP);
* ``long-clip-style``: that step re-implemented plainly on our HF model (three tower calls, PCA by
  full SVD, λ-weighted losses).

``--measure time`` (default): seconds per step, steps interleaved in rounds, peak memory on CUDA.
``--measure layer``: the same per-pair slope for one encoder layer of each tower, built alone (ours: a
transformers ``CLIPEncoderLayer`` with the knobs of ``--set``; Long-CLIP's own: its ``ResidualAttentionBlock``
with its causal mask), under ``--mixed-precision`` autocast on the CPU; cheap enough for ViT-L/14 layers.
``--measure memory``: activation memory per pair and the predicted peak. One forward + backward per
batch size (``--batches``; ``--accumulate K``: K of them on ``1 / K`` of the pairs, held bytes taken at the
first; ``--set compile_towers=true``: compiled by one unprofiled call first); on a CPU the torch profiler's allocation events (summed in time order)
give the bytes held when the backward starts (what the forward saved for it) and the peak, on CUDA
``torch.cuda.memory_allocated`` / ``max_memory_allocated``. Activation memory per pair is the
least-squares slope of the held bytes over the batch sizes. ``--depth V T`` builds the towers with
V vision / T text layers (the same widths, heads and sequence lengths), so that ViT-L/14-shaped
layers can be measured on a CPU; ``--depth-fit`` measures the depths (1, 1), (2, 1), (1, 2) and
extrapolates the per-pair slope linearly to the real depth (a layer's saved activations do not
depend on its index). Weights, AdamW's two moments and the gradients are counted from the
parameters; the predicted peak at ``--predict`` pairs is their sum plus the held bytes there.

Usage: python bench/bench_train_step.py [--models tiny] [--steps-of ours long-clip-style]
       [--longclip-src PATH] [--measure time|memory] [--batch 64] [--batches 2 4] [--depth V T]
       [--depth-fit] [--accumulate K] [--steps 10] [--rounds 3] [--mixed-precision no|bf16|fp16] [--json out.json]
       [--set KEY=VALUE ...]  (TrainConfig knobs for ``ours``, e.g. --set lean_activations=false)
       python bench/bench_train_step.py --render out.json [more.json ...] [--predict 256]  (reprint tables)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import socket
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from accelerate import Accelerator
from torch._C._profiler import _EventType
from torch.profiler import ProfilerActivity, profile, record_function
from transformers import CLIPConfig, CLIPModel

from train_encoder.augment import CaptionTokenizer
from train_encoder.config import TrainConfig, parse_override
from train_encoder.model_setup import TwoCaptionCLIP, build_model, clamp_logit_scale, compile_towers
from train_encoder.recipes import get_recipe
from train_encoder.trainer import build_optimizer, forward_backward

SHAPES = {
    "tiny": dict(text=(128, 4, 2), vision=(128, 4, 2), image_size=64, patch=16, projection=128),
    "vit-b-16": dict(text=(512, 12, 8), vision=(768, 12, 12), image_size=224, patch=16, projection=512),
    "vit-l-14": dict(text=(768, 12, 12), vision=(1024, 24, 16), image_size=224, patch=14, projection=768),
}
"""(width, layers, heads) per tower; heads are width / 64, as OpenAI's and Long-CLIP's code set them."""
CONTEXT = 248
STEP_KINDS = ("ours", "long-clip-own", "long-clip-style")
LONGCLIP_LR, LONGCLIP_WEIGHT_DECAY, LONGCLIP_LOG_SCALE = 1e-6, 1e-2, 4.6052  # train/train.py's defaults
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def layer_counts(name: str, depth: tuple[int, int] | None) -> tuple[int, int]:
    """(vision layers, text layers) of the model built for ``name``."""
    return depth or (SHAPES[name]["vision"][1], SHAPES[name]["text"][1])


def random_clip(name: str, depth: tuple[int, int] | None = None) -> CLIPModel:
    shape = SHAPES[name]
    (text_width, _, text_heads), (vision_width, _, vision_heads) = shape["text"], shape["vision"]
    vision_layers, text_layers = layer_counts(name, depth)
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


def step_inputs(name: str, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images, long token rows and DeBias short rows (248 positions), the same for every step kind."""
    tokenizer = CaptionTokenizer(context_length=CONTEXT)
    texts = captions(batch)
    long_ids = tokenizer.encode(texts)
    short_ids = get_recipe("debias").short_token_ids(texts, tokenizer, generator=torch.Generator().manual_seed(0))
    size = SHAPES[name]["image_size"]
    images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    return images.to(device), long_ids.to(device), short_ids.to(device)


class OurStep:
    def __init__(self, folder: Path, accelerator: Accelerator, overrides: dict) -> None:
        config = TrainConfig(model=str(folder), train_data="unused.jsonl", lr=1e-6, **overrides)
        self.prepared = build_model(config)
        self.accelerator = accelerator
        self.recipe = get_recipe("debias")
        module = TwoCaptionCLIP(self.prepared.model, hidden_positions=0)  # as the trainer's, without distillation
        self.module, self.optimizer = accelerator.prepare(module, build_optimizer(config, module))
        if config.compile_towers:  # where the trainer compiles: after prepare
            compile_towers(self.prepared.model, backend=config.compile_backend)
        self.micro_batches = accelerator.gradient_accumulation_steps
        self.model = self.prepared.model
        accelerator.backward = marked_backward(accelerator.backward)  # the profiler sees where the backward starts

    def forward_backward(self, images: torch.Tensor, long_ids: torch.Tensor, short_ids: torch.Tensor) -> torch.Tensor:
        """``--accumulate K`` micro-batches of ``batch / K`` pairs, each inside ``accelerator.accumulate`` as the
        trainer runs them; no optimizer step."""
        for chunk in zip(*(x.chunk(self.micro_batches) for x in (images, long_ids, short_ids)), strict=True):
            with self.accelerator.accumulate(self.module):
                loss = forward_backward(self.accelerator, self.module, self.recipe, *chunk)["loss"]
        return loss

    def __call__(self, images: torch.Tensor, long_ids: torch.Tensor, short_ids: torch.Tensor) -> torch.Tensor:
        """One optimizer step (the last micro-batch left ``sync_gradients`` set, so AdamW steps)."""
        loss = self.forward_backward(images, long_ids, short_ids)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.prepared.frozen_rows.restore()
        clamp_logit_scale(self.prepared.model)
        return loss


class LongClipStyleStep:
    """Long-CLIP's ``train.py`` step, written plainly on the same HF model."""

    micro_batches = 1

    def __init__(self, folder: Path, device: torch.device, mixed_precision: str) -> None:
        config = TrainConfig(model=str(folder), train_data="unused.jsonl", lr=1e-6, lean_activations=False)
        self.model = build_model(config).model.to(device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.device = device
        self.dtype = AUTOCAST_DTYPES.get(mixed_precision)
        self.scaler = torch.amp.GradScaler(device.type, enabled=mixed_precision == "fp16")

    def forward_backward(self, images: torch.Tensor, long_ids: torch.Tensor, short_ids: torch.Tensor) -> torch.Tensor:
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
        marked_backward(self.scaler.scale(loss).backward)()
        return loss

    def __call__(self, images: torch.Tensor, long_ids: torch.Tensor, short_ids: torch.Tensor) -> torch.Tensor:
        loss = self.forward_backward(images, long_ids, short_ids)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return loss


def load_longclip_model_code(source: Path):
    """Long-CLIP's ``model/model_longclip.py`` from a local checkout, as a module of its own name."""
    path = Path(source) / "model" / "model_longclip.py"
    if not path.is_file():
        raise SystemExit(
            f"--longclip-src {source}: {path} does not exist; give the root folder of a checkout of "
            "https://github.com/beichenzbc/Long-CLIP (the folder that holds model/ and train/)"
        )
    spec = importlib.util.spec_from_file_location("longclip_model_code", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class LongClipOwnStep:
    """Long-CLIP's own model, loss and step (``train/train.py``: autocast, ``loss_long + loss_short``, AdamW)."""

    micro_batches = 1

    def __init__(self, code, name: str, depth: tuple[int, int] | None, device: torch.device, mixed_precision: str):
        shape = SHAPES[name]
        vision_layers, text_layers = layer_counts(name, depth)
        torch.manual_seed(0)
        model = code.CLIP(
            shape["projection"], shape["image_size"], vision_layers, shape["vision"][0], shape["patch"],
            CONTEXT, 49408, shape["text"][0], shape["text"][0] // 64, text_layers, load_from_clip=False,
        )  # fmt: skip
        # as longclip.load_from_clip leaves it: the first table frozen, the second trained; float32 on the CPU
        model.positional_embedding.requires_grad_(False)
        model.logit_scale = torch.nn.Parameter(torch.ones([]) * LONGCLIP_LOG_SCALE)
        self.model = model.float().to(device).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=LONGCLIP_LR, weight_decay=LONGCLIP_WEIGHT_DECAY)
        self.device = device
        self.dtype = AUTOCAST_DTYPES.get(mixed_precision)
        self.scaler = torch.amp.GradScaler(device.type, enabled=mixed_precision == "fp16")

    def forward_backward(self, images: torch.Tensor, long_ids: torch.Tensor, short_ids: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            loss_long, loss_short = self.model(images, long_ids, short_ids, dist.get_rank())
            loss = loss_long + loss_short
        marked_backward(self.scaler.scale(loss).backward)()
        return loss

    def __call__(self, images: torch.Tensor, long_ids: torch.Tensor, short_ids: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad()
        loss = self.forward_backward(images, long_ids, short_ids)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss


def one_process_group(device: torch.device) -> None:
    """Long-CLIP's forward all-gathers with ``torch.distributed.nn``: give it a group of one process."""
    if dist.is_initialized():
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)


def build_steps(args: argparse.Namespace, name: str, accelerator: Accelerator, kinds, depth=None) -> dict:
    """The step objects of ``kinds`` for model ``name`` (one shared random init for the HF-based ones)."""
    device = accelerator.device
    steps = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / name
        random_clip(name, depth).save_pretrained(folder)
        if "ours" in kinds:
            steps["ours"] = OurStep(folder, accelerator, args.overrides)
        if "long-clip-style" in kinds:
            steps["long-clip-style"] = LongClipStyleStep(folder, device, args.mixed_precision)
    if "long-clip-own" in kinds:
        one_process_group(device)
        code = load_longclip_model_code(args.longclip_src)
        steps["long-clip-own"] = LongClipOwnStep(code, name, depth, device, args.mixed_precision)
    return steps


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"


# --- time ------------------------------------------------------------------------------------------


def time_model(args: argparse.Namespace, name: str) -> dict:
    accelerator = Accelerator(mixed_precision=args.mixed_precision, gradient_accumulation_steps=args.accumulate)
    device = accelerator.device
    steps = build_steps(args, name, accelerator, args.steps_of)
    inputs = step_inputs(name, args.batch, device)
    times: dict[str, list[float]] = {kind: [] for kind in steps}
    memory: dict[str, int | None] = dict.fromkeys(steps)
    for step in steps.values():  # warm-up (cuDNN / allocator)
        step(*inputs)
    for round_index in range(args.rounds):
        order = list(steps.items())[:: 1 if round_index % 2 == 0 else -1]
        for kind, step in order:
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            for _ in range(args.steps):
                loss = step(*inputs)
            float(loss.detach())  # waits for the device
            times[kind].append((time.perf_counter() - start) / args.steps)
            if device.type == "cuda":
                memory[kind] = max(memory[kind] or 0, torch.cuda.max_memory_allocated())
    return {
        "model": name,
        "batch": args.batch,
        "accumulate": args.accumulate,
        "mixed_precision": args.mixed_precision,
        "device": device_name(device),
        "step_s": {kind: statistics.median(values) for kind, values in times.items()},
        "per_round_s": times,
        "peak_bytes": memory,
    }


def time_table(rows: list[dict]) -> str:
    kinds = list(rows[0]["step_s"])
    others = [kind for kind in kinds if kind != "ours"]
    reference = "long-clip-own" if "long-clip-own" in kinds else (others or kinds)[0]
    lines = [
        f"| model | batch | precision | device | {' | '.join(f'{k} s/step' for k in kinds)} "
        f"| ours / {reference} (per round) | peak memory {' / '.join(kinds)} |",
        "| --- | ---: | --- | --- |" + " ---: |" * len(kinds) + " ---: | --- |",
    ]
    for row in rows:
        seconds = row["step_s"]
        ratio = "n/a"
        if "ours" in seconds and reference != "ours":
            spread = ", ".join(
                f"{o / p:.3f}" for o, p in zip(row["per_round_s"]["ours"], row["per_round_s"][reference], strict=True)
            )
            ratio = f"{seconds['ours'] / seconds[reference]:.3f} ({spread})"
        peaks = row["peak_bytes"].values()
        memory = "n/a (CPU)" if None in peaks else " / ".join(f"{value / 2**30:.2f}" for value in peaks) + " GiB"
        cells = " | ".join(f"{seconds[k]:.4f}" for k in kinds)
        micro = row.get("accumulate", 1)
        batch = row["batch"] if micro == 1 else f"{row['batch']} ({micro} x {row['batch'] // micro})"
        lines.append(
            f"| {row['model']} | {batch} | {row['mixed_precision']} | {row['device']} | {cells} | {ratio} | {memory} |"
        )
    return "\n".join(lines)


# --- memory ----------------------------------------------------------------------------------------


BACKWARD_MARK = "bench::backward"


def marked_backward(backward):
    """``backward`` inside a profiler range named ``BACKWARD_MARK``: where the forward's activations peak."""

    def run(*args, **kwargs):
        with record_function(BACKWARD_MARK):
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                marked_backward.cuda_held.append(torch.cuda.memory_allocated())
            return backward(*args, **kwargs)

    return run


marked_backward.cuda_held = []
"""CUDA bytes allocated at each marked backward's start (``step_memory`` clears it per measurement)."""


def profiled_events(profiler) -> tuple[list[tuple[int, int]], list[int]]:
    """From a memory profile: the CPU allocations as (time, bytes; frees negative) and the start times of
    the ``BACKWARD_MARK`` ranges."""
    allocations, backward_starts = [], []
    pending = list(profiler.profiler.kineto_results.experimental_event_tree())
    while pending:
        event = pending.pop()
        if event.tag == _EventType.Allocation and event.extra_fields.device.type == "cpu":
            allocations.append((event.start_time_ns, event.extra_fields.alloc_size))
        elif event.name == BACKWARD_MARK:
            backward_starts.append(event.start_time_ns)
        pending.extend(event.children)
    return allocations, backward_starts


def step_memory(step, inputs) -> tuple[int, int]:
    """(held when the backward starts, peak) in bytes above the resident ones, for one forward + backward
    (``--accumulate K``: K of them, on ``1 / K`` of the pairs each).

    Held: what the forward left for the backward (saved activations, outputs, the loss), at the first
    micro-batch's backward (later ones hold the same plus the gradients, counted apart). Peak: the
    highest point of the whole forward + backward (gradients and the backward's buffers included).
    """
    device = inputs[0].device
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        resident = torch.cuda.memory_allocated()
        marked_backward.cuda_held.clear()
        step.forward_backward(*inputs)
        torch.cuda.synchronize()
        held, peak = marked_backward.cuda_held[0] - resident, torch.cuda.max_memory_allocated() - resident
    else:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
            step.forward_backward(*inputs)
        allocations, backward_starts = profiled_events(profiler)
        if len(backward_starts) != step.micro_batches:
            raise RuntimeError(
                f"expected {step.micro_batches} backward calls in the step, the profile holds {len(backward_starts)}"
            )
        total = peak = held = 0
        for start, size in sorted(allocations):
            if start < min(backward_starts):
                held = total + size
            total += size
            peak = max(peak, total)
    step.optimizer.zero_grad(set_to_none=True)
    return held, peak


def resident_bytes(model: torch.nn.Module) -> int:
    """Weights plus AdamW's two float32 moments of every trainable tensor."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    moments = sum(2 * p.numel() * 4 for p in model.parameters() if p.requires_grad)
    return weights + moments


def slope(batches: list[int], values: list[float]) -> tuple[float, float]:
    """Least-squares (slope, intercept) of ``values`` over ``batches``."""
    mean_b, mean_v = statistics.fmean(batches), statistics.fmean(values)
    spread = sum((b - mean_b) ** 2 for b in batches)
    gradient = sum((b - mean_b) * (v - mean_v) for b, v in zip(batches, values, strict=True)) / spread
    return gradient, mean_v - gradient * mean_b


def measure_depth(args: argparse.Namespace, name: str, depth: tuple[int, int] | None) -> dict[str, dict]:
    """Per step kind: held and peak bytes at each batch size, the held bytes' per-pair slope and intercept,
    the resident bytes (weights, AdamW moments) and the gradients' bytes."""
    accelerator = Accelerator(mixed_precision=args.mixed_precision, gradient_accumulation_steps=args.accumulate)
    results = {}
    for kind in args.steps_of:  # one model in memory at a time
        step = build_steps(args, name, accelerator, [kind], depth)[kind]
        measured = []
        for batch in args.batches:
            inputs = step_inputs(name, batch, accelerator.device)
            if kind == "ours" and args.overrides.get("compile_towers"):  # compile (this shape) before profiling
                step.forward_backward(*inputs)
                step.optimizer.zero_grad(set_to_none=True)
            measured.append(step_memory(step, inputs))
        held, peaks = [value[0] for value in measured], [value[1] for value in measured]
        per_pair, intercept = slope(args.batches, held)
        trainable = sum(p.numel() * 4 for p in step.model.parameters() if p.requires_grad)  # float32 gradients
        results[kind] = dict(held=held, peaks=peaks, per_pair=per_pair, intercept=intercept,
                             resident=resident_bytes(step.model), gradients=trainable)  # fmt: skip
        del step
    return results


def memory_model(args: argparse.Namespace, name: str) -> dict:
    device = Accelerator(mixed_precision=args.mixed_precision).device
    vision_layers, text_layers = layer_counts(name, tuple(args.depth) if args.depth else None)
    if args.depth_fit:
        vision_layers, text_layers = layer_counts(name, None)
        fits = {depth: measure_depth(args, name, depth) for depth in ((1, 1), (2, 1), (1, 2))}
        measured = {kind: extrapolated(fits, kind, vision_layers, text_layers) for kind in args.steps_of}
        depth_note = f"{vision_layers} x {text_layers}, fitted from 1 x 1, 2 x 1, 1 x 2"
    else:
        measured = measure_depth(args, name, tuple(args.depth) if args.depth else None)
        depth_note = f"{vision_layers} x {text_layers}"
    return {
        "model": name,
        "depth": depth_note,
        "batches": args.batches,
        "accumulate": args.accumulate,
        "overrides": args.overrides,
        "mixed_precision": args.mixed_precision,
        "device": device_name(device),
        "steps": measured,
    }


def extrapolated(fits: dict, kind: str, vision_layers: int, text_layers: int) -> dict:
    """Depth 1 x 1 plus (layers - 1) times the change one more vision / text layer made, for every figure."""
    base, deeper_vision, deeper_text = (fits[depth][kind] for depth in ((1, 1), (2, 1), (1, 2)))
    figures = {
        key: base[key]
        + (vision_layers - 1) * (deeper_vision[key] - base[key])
        + (text_layers - 1) * (deeper_text[key] - base[key])
        for key in ("per_pair", "intercept", "resident", "gradients")
    }
    figures["per_layer_pair"] = {
        "vision": deeper_vision["per_pair"] - base["per_pair"],
        "text": deeper_text["per_pair"] - base["per_pair"],
    }
    figures["fits"] = {f"{v}x{t}": fits[(v, t)][kind] for v, t in fits}
    return figures


def predicted_peak(figures: dict, pairs: int) -> float:
    """Bytes at ``pairs``: resident (weights, AdamW) + every gradient + what the forward holds (linear fit).

    At large batches the peak is where the backward starts: the activations are all held and the gradients
    begin to appear, so this bounds it but for the backward's buffers of one layer at a time (about one
    layer's activations, ``per_layer_pair``, more). At small batches the peak lies elsewhere (the
    embedding tables' gradients at the end of the backward), which is why the slope is taken from the
    held bytes, not from the peaks."""
    return figures["resident"] + figures["gradients"] + figures["intercept"] + pairs * figures["per_pair"]


def step_label(row: dict, kind: str) -> str:
    """``kind``, and for ours its ``--set`` knobs and ``--accumulate`` (activations are per pair of the step)."""
    if kind != "ours":
        return kind
    notes = [f"{key}={value}" for key, value in row.get("overrides", {}).items()]
    if row.get("accumulate", 1) > 1:
        notes.append(f"{row['accumulate']} micro-batches")
    return f"ours ({', '.join(notes)})" if notes else kind


def memory_table(rows: list[dict], predict: list[int]) -> str:
    mib, gib = 2**20, 2**30
    lines = [
        "| model | layers (vision x text) | precision | device | step | activation MiB / pair "
        "| resident GiB (weights + AdamW) | gradients GiB | predicted peak GiB (pairs) |",
        "| --- | --- | --- | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        for kind, figures in row["steps"].items():
            predicted = ", ".join(f"{predicted_peak(figures, pairs) / gib:.1f} ({pairs})" for pairs in predict)
            lines.append(
                f"| {row['model']} | {row['depth']} | {row['mixed_precision']} | {row['device']} | {step_label(row, kind)} "
                f"| {figures['per_pair'] / mib:.1f} | {figures['resident'] / gib:.2f} | {figures['gradients'] / gib:.2f} "
                f"| {predicted} |"
            )
    return "\n".join(lines)


# --- one layer ---------------------------------------------------------------------------------------


def bytes_held_after(function) -> int:
    """Bytes allocated and not freed when ``function()`` returns (its output and what it saved), from the
    profiler's allocation events (tensors kept by saved-tensor hooks included)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        output = function()
    del output
    return sum(size for _, size in profiled_events(profiler)[0])


def one_layer(kind: str, tower: str, width: int, heads: int, overrides: dict, longclip_src: Path | None):
    """One encoder layer of ``tower`` as ``kind`` builds it, and how to call it on ``[rows, tokens, width]``."""
    torch.manual_seed(0)
    if kind == "ours":
        from transformers import CLIPTextConfig
        from transformers.models.clip.modeling_clip import CLIPEncoderLayer

        from train_encoder.activation_memory import use_lean_activations

        config = CLIPTextConfig(hidden_size=width, intermediate_size=4 * width, num_attention_heads=heads,
                                hidden_act="quick_gelu", attn_implementation="sdpa")  # fmt: skip
        layer = CLIPEncoderLayer(config).train()
        if overrides.get("lean_activations", True):
            use_lean_activations(layer, recompute_fc1=overrides.get("recompute_mlp", False))
        return lambda x: layer(x, None, is_causal=tower == "text")
    code = load_longclip_model_code(longclip_src)
    mask = None
    if tower == "text":  # its text tower's additive causal mask (build_attention_mask)
        mask = torch.full((CONTEXT, CONTEXT), float("-inf")).triu_(1)
    block = code.ResidualAttentionBlock(width, heads, attn_mask=mask).train()
    return lambda x: block(x.transpose(0, 1))  # sequence-first, as its Transformer calls it


def layer_model(args: argparse.Namespace, name: str) -> dict:
    """Held bytes per pair of one encoder layer of each tower (the per-pair slope over ``--batches``), per step
    kind: what a depth fit measures, without building the model (cheap enough for ViT-L/14 on a loaded CPU)."""
    shape = SHAPES[name]
    towers = {  # (width, layers, heads), tokens per sequence, sequences per pair (long + short captions)
        "vision": (shape["vision"], (shape["image_size"] // shape["patch"]) ** 2 + 1, 1),
        "text": (shape["text"], CONTEXT, 2),
    }
    dtype = AUTOCAST_DTYPES.get(args.mixed_precision)
    rows = {}
    for tower, ((width, layers, heads), tokens, sequences) in towers.items():
        for kind in args.steps_of:
            call = one_layer(kind, tower, width, heads, args.overrides, args.longclip_src)
            held = []
            for batch in args.batches:
                x = torch.randn(sequences * batch, tokens, width, requires_grad=True)
                with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                    held.append(bytes_held_after(lambda: call(x)))  # noqa: B023 (called at once)
            per_pair = slope(args.batches, held)[0]
            rows.setdefault(kind, {})[tower] = dict(layers=layers, per_layer_pair=per_pair,
                                                    bytes_per_token_width=per_pair / (sequences * tokens * width))  # fmt: skip
    return {"model": name, "mixed_precision": args.mixed_precision, "device": device_name(torch.device("cpu")),
            "overrides": args.overrides, "layers": rows}  # fmt: skip


def layer_table(rows: list[dict]) -> str:
    mib = 2**20
    lines = [
        "| model | precision | step | knobs | vision MiB / layer / pair (B / token / width) "
        "| text MiB / layer / pair (B / token / width) | all layers MiB / pair |",
        "| --- | --- | --- | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        for kind, towers in row["layers"].items():
            cells = " | ".join(
                f"{towers[t]['per_layer_pair'] / mib:.2f} ({towers[t]['bytes_per_token_width']:.1f})"
                for t in ("vision", "text")
            )
            total = sum(towers[t]["per_layer_pair"] * towers[t]["layers"] for t in towers) / mib
            knobs = ", ".join(f"{k}={v}" for k, v in row["overrides"].items()) if kind == "ours" else "-"
            lines.append(f"| {row['model']} | {row['mixed_precision']} | {kind} | {knobs or 'defaults'} | {cells} "
                         f"| {total:.1f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["tiny"], choices=sorted(SHAPES))
    parser.add_argument("--steps-of", nargs="+", default=["ours", "long-clip-style"], choices=STEP_KINDS)
    parser.add_argument("--longclip-src", type=Path, help="root of a Long-CLIP checkout (for long-clip-own)")
    parser.add_argument("--measure", default="time", choices=("time", "memory", "layer"))
    parser.add_argument("--batch", type=int, default=64, help="pairs per step (time)")
    parser.add_argument("--accumulate", type=int, default=1, metavar="K",
                        help="ours: K micro-batches of batch / K pairs per optimizer step")  # fmt: skip
    parser.add_argument("--batches", type=int, nargs="+", default=[2, 4], help="pairs per step (memory slopes)")
    parser.add_argument("--predict", type=int, nargs="+", default=[256], help="pairs to predict the peak for")
    parser.add_argument("--depth", type=int, nargs=2, metavar=("VISION", "TEXT"), help="layers per tower (memory)")
    parser.add_argument("--depth-fit", action="store_true", help="fit the slope over depths, extrapolate (memory)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mixed-precision", default="no", choices=("no", "bf16", "fp16"))
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="a TrainConfig knob for ours")  # fmt: skip
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--render", nargs="+", metavar="JSON", help="print the table of earlier --json files")
    args = parser.parse_args()
    if "long-clip-own" in args.steps_of and args.longclip_src is None:
        parser.error("long-clip-own needs --longclip-src (a local checkout of github.com/beichenzbc/Long-CLIP)")
    if args.measure in ("memory", "layer") and len(set(args.batches)) < 2:
        parser.error(f"--measure {args.measure} needs two or more different --batches for the per-pair slope")
    if args.batch % args.accumulate:
        parser.error(f"--batch {args.batch} is not a multiple of --accumulate {args.accumulate}")
    if args.measure == "memory" and any(batch % args.accumulate for batch in args.batches):
        parser.error(f"--batches {args.batches}: each must be a multiple of --accumulate {args.accumulate}")
    args.overrides = dict(parse_override(setting) for setting in args.settings)
    if args.render:
        rows = [row for path in args.render for row in json.loads(Path(path).read_text(encoding="utf-8"))]
        render = memory_table if "steps" in rows[0] else layer_table if "layers" in rows[0] else time_table
        print(render(rows, args.predict) if render is memory_table else render(rows))
        return
    if args.measure == "time":
        rows = [time_model(args, name) for name in args.models]
        table = time_table(rows)
    elif args.measure == "layer":
        rows = [layer_model(args, name) for name in args.models]
        table = layer_table(rows)
    else:
        rows = [memory_model(args, name) for name in args.models]
        table = memory_table(rows, args.predict)
    print(f"torch {torch.__version__}, {platform.machine()}, ours with {args.overrides or 'default knobs'}")
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
