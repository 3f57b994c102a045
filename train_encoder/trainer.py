"""The training loop: two-caption contrastive fine-tuning of a CLIPModel with ``accelerate``.

Per batch: the long captions are tokenised whole (``recipe.long_token_ids``), the short branch is
built by the recipe with a ``torch.Generator`` seeded from (seed, epoch, batch, rank), images and
both caption branches go through one forward, and ``recipe.step_loss`` (features all-gathered with
gradient) plus the optional distillation term is back-propagated. A recipe with an image side
(``Recipe.image_side``: FIX-CLIP) adds its module to the forward, the optimizer, the checkpoints
and the export, and draws its per-batch random inputs from a generator of their own stream. AdamW, linear warmup, cosine
decay; the learning rate is a pure function of the optimizer step.

Run it on one process (``python -m train_encoder train``) or many (``accelerate launch -m
train_encoder train``: DDP). The data loader is built per process and never handed to
``accelerator.prepare``. Every process must hold the same number of pairs for the all-gather, so
each batch is cut to the smallest one across processes; a batch with fewer than two usable pairs
anywhere (all images bad) is skipped on every process alike.

Exact resume: data order comes from ``ResumableSampler`` (``start_epoch(..., batches_done=...)``),
image crops are seeded per (seed, epoch, sample), caption augmentation per (seed, epoch, batch,
rank), and checkpoints hold weights, optimizer, scaler and RNG state; a run killed after a
checkpoint and resumed from it ends with the same weights as one that never stopped. (Tar shards
resume at the same sample with the same caption augmentation, but their random crops come from
the workers' RNG: set ``random_crop: false`` where bit-exact resume on shards matters.)
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from accelerate import Accelerator
from accelerate.utils import DistributedType, DynamoBackend, set_seed
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from debias_diffusion.atomic_io import atomic_write_json, atomic_write_text
from debias_diffusion.clip_loading import load_clip_model
from debias_diffusion.errors import OutputExistsError
from debias_diffusion.image_preprocessing import ImagePreprocessing, image_transform
from debias_diffusion.text_model_layout import get_context_length

from .augment import CaptionTokenizer
from .checkpointing import (
    RunShape,
    TrainState,
    list_checkpoints,
    load_newest_readable,
    remove_partial_checkpoints,
    save_checkpoint,
)
from .config import TrainConfig, resolved_data_format, save_config
from .data import (
    CaptionImageDataset,
    DataError,
    TarShardDataset,
    build_dataloader,
    derive_seed,
    read_annotations,
    start_epoch,
)
from .errors import ConfigError
from .evaluation import text_drift
from .export import export_model
from .file_names import CHECKPOINTS_DIR, CONFIG_FILE, DRIFT_FILE, FINAL_DIR, METRICS_FILE, STATE_FILE
from .hardware import describe_hardware
from .losses import distillation_loss
from .model_setup import (
    PreparedModel,
    TwoCaptionCLIP,
    build_model,
    clamp_logit_scale,
    compile_towers,
    parameter_groups,
)
from .recipes import Recipe, get_recipe
from .token_states import SD_CONTEXT_LENGTH

__all__ = [
    "MIN_PAIRS",
    "TrainResult",
    "build_optimizer",
    "build_train_loader",
    "forward_backward",
    "lr_factor",
    "resolve_recipe",
    "train",
]

logger = logging.getLogger(__name__)

MIN_PAIRS = 2
"""A step needs at least two pairs per process (contrastive negatives, PCA)."""
DRIFT_CAPTIONS = 256
"""Distinct training captions the end-of-run hidden-state drift report is computed on."""
_CAPTION_STREAM = 2
_IMAGE_SIDE_STREAM = 3
_TRACKER_MODULES = {"tensorboard": ("tensorboard", "tensorboardX"), "comet_ml": ("comet_ml",)}


@dataclass
class TrainResult:
    state: TrainState
    checkpoint: Path
    """The last checkpoint (``OUTPUT/checkpoints/step-N``)."""
    export_dir: Path | None
    """``OUTPUT/final`` when ``export_final``, else ``None``."""


def train(
    config: TrainConfig,
    *,
    resume: str | Path | None = None,
    on_step: Callable[[TrainState], None] | None = None,
) -> TrainResult:
    """Train as ``config`` says; ``resume`` is a checkpoint folder, a run folder or ``"latest"``
    (the newest checkpoint in ``output_dir``; a fresh start when there is none, for requeued jobs).

    ``on_step`` is called on every process after each optimizer step (and its checkpoint, if one
    is due) with the current progress.
    """
    output_dir = Path(config.output_dir)
    accelerator = _accelerator(config)
    resume = _check_resume(resume, output_dir)
    set_seed(config.seed)
    prepared = build_model(config)
    recipe = resolve_recipe(config)
    tokenizer = CaptionTokenizer(context_length=get_context_length(prepared.model))
    loader = build_train_loader(
        config,
        prepared.preprocessing,
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
        pin_memory=accelerator.device.type == "cuda",
    )
    shape, total_steps = _run_shape(config, accelerator, len(loader))

    image_side = recipe.image_side(prepared.model)
    module, optimizer = _prepare_module(config, accelerator, prepared, image_side)
    state = TrainState()
    if resume is not None:
        state = _resume(config, accelerator, prepared, resume, optimizer, shape, image_side)
    if accelerator.is_main_process:
        remove_partial_checkpoints(output_dir)
        save_config(config, output_dir / CONFIG_FILE)
        _trim_metrics(output_dir / METRICS_FILE, state.step)
    if config.trackers:
        accelerator.init_trackers(config.run_name, config=_tracker_config(config))

    run = _Run(config, accelerator, prepared, recipe, tokenizer, module, optimizer, shape, total_steps, image_side)
    run.loop(loader, state, on_step)
    if state.step == 0:
        raise DataError(
            f"trained 0 steps: all {state.batches_skipped} batches were skipped ({state.images_skipped} images "
            f"could not be read), so nothing was saved or exported; check image_root and the images of {config.train_data}"
        )
    last_checkpoint = output_dir / CHECKPOINTS_DIR / f"step-{state.step}"
    if not (last_checkpoint / STATE_FILE).is_file():
        run.checkpoint(state)
    export_dir = None
    if accelerator.is_main_process:
        run.report_drift(loader.dataset.first_captions(DRIFT_CAPTIONS))
        if config.export_final:
            export_dir = _export_final(run, state)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(state, last_checkpoint, export_dir)


def _check_resume(resume: str | Path | None, output_dir: Path) -> str | Path | None:
    """``resume`` as the run will use it: ``"latest"`` without checkpoints starts afresh; a fresh start
    refuses a folder that holds checkpoints."""
    if str(resume) == "latest" and not list_checkpoints(output_dir):
        logger.info("no checkpoint in %s: starting from the beginning", output_dir)
        return None
    if resume is None and list_checkpoints(output_dir):
        raise OutputExistsError(
            f"{output_dir} already holds checkpoints; resume with --resume latest, or choose another output_dir"
        )
    return resume


def _run_shape(config: TrainConfig, accelerator: Accelerator, batches_per_epoch: int) -> tuple[RunShape, int]:
    """The run's shape (what a checkpoint must match to resume) and its number of optimizer steps."""
    if batches_per_epoch == 0:
        raise DataError(
            f"{config.train_data} holds fewer samples than one global batch "
            f"({config.batch_size} x {accelerator.num_processes} processes)"
        )
    total_steps = config.epochs * batches_per_epoch // config.gradient_accumulation_steps
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    if total_steps == 0:
        raise DataError(
            f"{batches_per_epoch} batches per epoch x {config.epochs} epochs make no optimizer step with "
            f"gradient_accumulation_steps={config.gradient_accumulation_steps}"
        )
    shape = RunShape(
        world_size=accelerator.num_processes,
        batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        batches_per_epoch=batches_per_epoch,
        # map-style crops are seeded per sample; only tar shards split their stream by worker
        num_workers=config.num_workers if resolved_data_format(config) == "shards" else 0,
    )
    return shape, total_steps


def build_optimizer(config: TrainConfig, module: nn.Module) -> torch.optim.AdamW:
    """AdamW over ``module``'s trainable parameters (decay groups, betas, eps and kernels as ``config`` says)."""
    kernels = {} if config.optimizer_impl == "default" else {config.optimizer_impl: True}
    return torch.optim.AdamW(
        parameter_groups(module, config.weight_decay, decay_all=config.decay_all_parameters),
        lr=config.lr,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_eps,
        **kernels,
    )


def _prepare_module(config: TrainConfig, accelerator: Accelerator, prepared: PreparedModel, image_side):
    """The accelerate-prepared :class:`TwoCaptionCLIP` and its optimizer; the distillation reference on the device."""
    distilling = prepared.reference_text is not None and config.distill_weight > 0
    two_caption = TwoCaptionCLIP(prepared.model, image_side, hidden_positions=SD_CONTEXT_LENGTH if distilling else 0)
    module, optimizer = accelerator.prepare(two_caption, build_optimizer(config, two_caption))
    if config.compile_towers:  # after prepare, as accelerate compiles: in place, so DDP and checkpoints see no wrapper
        compile_towers(prepared.model, backend=config.compile_backend)
    if prepared.reference_text is not None:
        prepared.reference_text.to(accelerator.device)
    return module, optimizer


def _resume(config, accelerator, prepared: PreparedModel, resume, optimizer, shape: RunShape, image_side) -> TrainState:
    """Load the newest readable checkpoint of ``resume`` into the model, optimizer and recipe extras."""
    checkpoint, state = load_newest_readable(  # an unreadable newest checkpoint falls back to the one before
        resume, config.output_dir, accelerator, model=prepared.model, optimizer=optimizer, shape=shape,
        extras=image_side,
    )  # fmt: skip
    if prepared.frozen_rows is not None and not prepared.frozen_rows.unchanged():
        raise ConfigError(f"{checkpoint} was not trained from model={config.model!r}: its frozen position rows differ")
    _log(accelerator, "resumed from %s at step %d (epoch %d, batch %d)", checkpoint, state.step, state.epoch,
         state.batches_done)  # fmt: skip
    return state


def _export_final(run: _Run, state: TrainState) -> Path:
    """Export the trained model to ``output_dir/final`` (main process only)."""
    metadata = {
        "recipe": run.recipe.name,
        "source": run.prepared.source,
        "step": state.step,
        "epoch": state.epoch,
        "samples_seen": state.samples_seen,
        "hardware": describe_hardware(run.accelerator),
    }
    export_dir = run.output_dir / FINAL_DIR
    extras = None if run.image_side is None else run.image_side.state_dict()
    export_model(run.prepared.model, export_dir, preprocessing=run.prepared.preprocessing, metadata=metadata,
                 overwrite=True, extras=extras, run_dir=run.output_dir)  # fmt: skip
    _log(run.accelerator, "exported the final model to %s", export_dir)
    return export_dir


def resolve_recipe(config: TrainConfig) -> Recipe:
    """The registered recipe configured by ``config`` (λ / PCA overrides, ``pca_components: 0`` = no PCA, and
    recipe-specific settings such as ``fix_clip``)."""
    return get_recipe(config.recipe).configured(config)


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, schedule: str = "cosine") -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based).

    Linear warmup ``(step + 1) / warmup_steps``, then constant or cosine decay to 0 at ``total_steps``
    (open_clip's / Long-CLIP's ``cosine_lr``).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_train_loader(
    config: TrainConfig,
    preprocessing: ImagePreprocessing,
    *,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> DataLoader:
    """This process's DataLoader of :class:`~train_encoder.data.Batch` objects, as the config says."""
    transform = image_transform(preprocessing, train=config.random_crop)
    data_format = resolved_data_format(config)
    if data_format == "shards":
        dataset = TarShardDataset(config.train_data, transform, samples_per_epoch=config.samples_per_epoch)
    else:
        records = read_annotations(
            config.train_data, format=data_format, skip_first=config.skip_first, limit=config.limit
        )
        if not records:
            raise DataError(f"{config.train_data} holds no training pairs (after skip_first={config.skip_first})")
        dataset = CaptionImageDataset(records, transform, image_root=config.image_root, seed=config.seed)
        dataset.check_readable(MIN_PAIRS * world_size)  # a wrong image_root fails here, not as 0 steps
    return build_dataloader(
        dataset,
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        seed=config.seed,
        rank=rank,
        world_size=world_size,
        pin_memory=pin_memory,
    )


def forward_backward(
    accelerator: Accelerator,
    module: nn.Module,
    recipe: Recipe,
    images: torch.Tensor,
    long_ids: torch.Tensor,
    short_ids: torch.Tensor,
    *,
    label_smoothing: float = 0.1,
    reference_text: nn.Module | None = None,
    distill_weight: float = 0.0,
    image_inputs: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """One micro-batch: a :class:`TwoCaptionCLIP` forward, the recipe's loss (+ distillation), backward.

    ``image_inputs``: the recipe image side's per-batch inputs (``ImageSide.batch_inputs``), if it has one.
    Returns the detached-able loss parts for logging. The optimizer step is the caller's.
    """
    out = module(images, long_ids, short_ids, **(image_inputs or {}))
    logged = recipe.step_loss(out, label_smoothing=label_smoothing)  # float32 features inside
    loss = logged["loss"]
    if reference_text is not None and distill_weight > 0:
        positions = min(SD_CONTEXT_LENGTH, long_ids.shape[1])
        with torch.no_grad(), accelerator.autocast():
            reference = reference_text(input_ids=long_ids[:, :positions]).last_hidden_state
        distill = distillation_loss(out.long_hidden_states, reference, long_ids, positions=positions)
        loss = loss + distill_weight * distill
        logged.update(loss=loss, loss_distill=distill)
    accelerator.backward(loss)
    return logged


class _Window:
    """Loss parts and counts since the last log line (tensors: no device sync per step)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.micro_batches = 0
        self.samples = 0
        self.started = time.perf_counter()

    def add(self, parts: dict[str, torch.Tensor], samples: int) -> None:
        for name, value in parts.items():
            self.sums[name] = self.sums.get(name, 0) + value.detach().float()
        self.micro_batches += 1
        self.samples += samples


class _Run:
    """One run's loop state: the pieces built by ``train`` and the step/log/checkpoint logic."""

    def __init__(
        self,
        config,
        accelerator,
        prepared: PreparedModel,
        recipe,
        tokenizer,
        module,
        optimizer,
        shape,
        total_steps,
        image_side: nn.Module | None = None,
    ):
        self.config, self.accelerator, self.prepared = config, accelerator, prepared
        self.recipe, self.tokenizer, self.module, self.optimizer = recipe, tokenizer, module, optimizer
        self.shape, self.total_steps, self.image_side = shape, total_steps, image_side
        self.output_dir = Path(config.output_dir)

    def report_drift(self, captions: list[str]) -> None:
        """Write ``drift.json``: the trained text tower's hidden states vs the source's, on training ``captions``."""
        if not captions:
            return
        reference = self.prepared.reference_text
        if reference is None:
            reference = load_clip_model(self.config.model, hidden_act=self.config.hidden_act).model.text_model
        model = self.prepared.model
        was_training = model.training
        with torch.compiler.set_stance("force_eager"):  # a compiled tower would compile again for inference
            drift = text_drift(model.text_model, reference, captions, device=self.accelerator.device)
        model.train(was_training)
        atomic_write_json(self.output_dir / DRIFT_FILE, {"reference": self.config.model, **drift})
        _log(
            self.accelerator,
            "hidden-state drift vs %s: mean cosine over positions 0-76 = %.4f (%s)",
            self.config.model,
            drift["mean_cosine_first_77"],
            self.output_dir / DRIFT_FILE,
        )

    def loop(self, loader: DataLoader, state: TrainState, on_step) -> None:
        config, accelerator = self.config, self.accelerator
        self._set_lr(state.step)
        window = _Window()
        progress = tqdm(
            total=self.total_steps, initial=state.step, disable=not accelerator.is_main_process, desc="train"
        )
        self.module.train()
        while state.epoch < config.epochs and state.step < self.total_steps:
            start_epoch(loader, state.epoch, batches_done=state.batches_done)
            for batch in loader:
                batch_index = state.batches_done
                state.batches_done += 1
                if not self._micro_step(batch, batch_index, state, window):
                    continue
                state.step += 1
                self.step_lr = self.optimizer.param_groups[0]["lr"]  # the rate of the step just taken
                self._set_lr(state.step)
                progress.update(1)
                if state.step % config.log_every == 0 or state.step == self.total_steps:
                    self._log_metrics(state, window, progress)
                    window = _Window()
                if config.checkpoint_every and state.step % config.checkpoint_every == 0:
                    self.checkpoint(state)
                if on_step is not None:
                    on_step(state)
                if state.step >= self.total_steps:
                    break
            else:
                state.epoch += 1
                state.batches_done = 0
        progress.close()

    def _micro_step(self, batch, batch_index: int, state: TrainState, window: _Window) -> bool:
        """Forward/backward one batch; True when it completed an optimizer step."""
        config, accelerator = self.config, self.accelerator
        device = accelerator.device
        counts = torch.tensor([[len(batch), batch.num_skipped]])
        if accelerator.num_processes > 1:  # the one host sync per batch, and only where processes must agree
            counts = accelerator.gather(counts.to(device)).cpu()
        usable = int(counts[:, 0].min())
        state.images_skipped += int(counts[:, 1].sum())
        if usable < MIN_PAIRS:
            state.batches_skipped += 1
            _log(
                accelerator,
                "skipping batch %d of epoch %d: a process has fewer than %d usable pairs",
                batch_index,
                state.epoch,
                MIN_PAIRS,
            )
            return False
        state.samples_trimmed += int(counts[:, 0].sum()) - usable * accelerator.num_processes
        captions = batch.long_captions[:usable]
        generator = torch.Generator().manual_seed(
            derive_seed(config.seed, state.epoch, batch_index, accelerator.process_index, _CAPTION_STREAM)
        )
        long_ids = self.recipe.long_token_ids(captions, self.tokenizer)
        short_ids = self.recipe.short_token_ids(
            captions, self.tokenizer, generator=generator, short_captions=batch.short_captions[:usable]
        )
        images = batch.images[:usable].to(device, non_blocking=True)
        image_inputs = {}
        if self.image_side is not None:
            image_generator = torch.Generator().manual_seed(
                derive_seed(config.seed, state.epoch, batch_index, accelerator.process_index, _IMAGE_SIDE_STREAM)
            )
            drawn = self.image_side.batch_inputs(usable, generator=image_generator)
            image_inputs = {name: value.to(device) for name, value in drawn.items()}
        with accelerator.accumulate(self.module):
            logged = forward_backward(
                accelerator,
                self.module,
                self.recipe,
                images,
                long_ids.to(device),
                short_ids.to(device),
                label_smoothing=config.label_smoothing,
                reference_text=self.prepared.reference_text,
                distill_weight=config.distill_weight,
                image_inputs=image_inputs,
            )
            if accelerator.sync_gradients and config.max_grad_norm is not None:
                accelerator.clip_grad_norm_(self.module.parameters(), config.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        window.add(logged, usable * accelerator.num_processes)
        state.samples_seen += usable * accelerator.num_processes
        if not accelerator.sync_gradients:
            return False
        if self.prepared.frozen_rows is not None:
            self.prepared.frozen_rows.restore()
        clamp_logit_scale(self.prepared.model)
        return True

    def _set_lr(self, step: int) -> None:
        factor = lr_factor(
            step, warmup_steps=self.config.warmup_steps, total_steps=self.total_steps, schedule=self.config.lr_schedule
        )
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * factor

    def _log_metrics(self, state: TrainState, window: _Window, progress) -> None:
        accelerator = self.accelerator
        elapsed = max(time.perf_counter() - window.started, 1e-9)
        metrics = {
            name: accelerator.reduce(value / max(1, window.micro_batches), reduction="mean").item()
            for name, value in window.sums.items()
        }
        metrics.update(
            step=state.step,
            epoch=state.epoch + state.batches_done / self.shape.batches_per_epoch,
            lr=self.step_lr,
            logit_scale=self.prepared.model.logit_scale.exp().item(),
            samples_per_second=window.samples / elapsed,
            images_skipped=state.images_skipped,
            batches_skipped=state.batches_skipped,
            samples_trimmed=state.samples_trimmed,
        )
        if accelerator.is_main_process:
            with (self.output_dir / METRICS_FILE).open("a", encoding="utf-8") as file:
                file.write(json.dumps(metrics) + "\n")
            progress.set_postfix(loss=f"{metrics.get('loss', float('nan')):.4f}", lr=f"{metrics['lr']:.2e}")
            logger.info(
                "step %d: %s", state.step, ", ".join(f"{k}={_short(v)}" for k, v in metrics.items() if k != "step")
            )
        if self.config.trackers:
            accelerator.log({k: v for k, v in metrics.items() if k != "step"}, step=state.step)

    def checkpoint(self, state: TrainState) -> Path:
        path = save_checkpoint(
            self.accelerator,
            self.output_dir,
            model=self.prepared.model,
            optimizer=self.optimizer,
            state=state,
            config=self.config,
            shape=self.shape,
            preprocessing=self.prepared.preprocessing,
            source=self.prepared.source,
            extras=self.image_side,
        )
        _log(self.accelerator, "saved checkpoint %s", path)
        return path


def _accelerator(config: TrainConfig) -> Accelerator:
    """The run's Accelerator, refusing setups whose checkpoints would not resume exactly."""
    _check_trackers(config.trackers)
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=config.trackers or None,
        project_dir=config.output_dir,
    )
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() != accelerator.num_processes:
        raise ConfigError(
            f"torch.distributed runs {dist.get_world_size()} processes but accelerate sees "
            f"{accelerator.num_processes}: on a machine without GPUs set ACCELERATE_USE_CPU=1 for multi-process runs"
        )
    if config.compile_towers and accelerator.state.dynamo_plugin.backend != DynamoBackend.NO:
        raise ConfigError(
            f"compile_towers: true and accelerate's dynamo_backend={accelerator.state.dynamo_plugin.backend.value} "
            "would compile the model twice; keep one (unset dynamo_backend in `accelerate config` / "
            "ACCELERATE_DYNAMO_BACKEND, or set compile_towers: false)"
        )
    if accelerator.distributed_type not in (DistributedType.NO, DistributedType.MULTI_GPU, DistributedType.MULTI_CPU):
        raise ConfigError(
            f"accelerate is set up for {accelerator.distributed_type}: checkpoints and exact resume support one "
            "process or DDP (multi-GPU / multi-CPU) only; run `accelerate config` without FSDP / DeepSpeed "
            "(DDP fits every model up to ViT-g/14 on 80 GB cards: docs/training.md, 'Memory, batch size per GPU, sharding')"
        )
    return accelerator


def _check_trackers(trackers: list[str]) -> None:
    import importlib.util

    for name in trackers:
        modules = _TRACKER_MODULES.get(name, (name,))
        if not any(importlib.util.find_spec(module) for module in modules):
            raise ConfigError(
                f"trackers: {name!r} is not installed (pip install {modules[0]}), or remove it from trackers; "
                f"metrics are always written to {METRICS_FILE}"
            )


def _tracker_config(config: TrainConfig) -> dict:
    """The config as flat scalars (TensorBoard's hparams refuse lists and None)."""
    return {
        key: value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
        for key, value in asdict(config).items()
    }


def _trim_metrics(path: Path, step: int) -> None:
    """Drop metric lines past ``step`` (a resumed run logs those steps again), and a last line torn by a kill."""
    if not path.is_file():
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    kept = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # killed while appending: the step is logged again after the resume
                logger.warning("dropping the torn last line of %s", path)
                continue
            raise DataError(f"{path} line {number} is not JSON: repair or delete the file to resume") from None
        if record.get("step", 0) <= step:
            kept.append(line)
    if len(kept) != len(lines) or not text.endswith("\n"):
        atomic_write_text(path, "".join(line + "\n" for line in kept))


def _log(accelerator: Accelerator, message: str, *args) -> None:
    if accelerator.is_main_process:
        logger.info(message, *args)


def _short(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
