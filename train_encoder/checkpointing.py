"""Periodic, atomic, exactly resumable training checkpoints.

Layout of ``OUTPUT/checkpoints/step-N/`` (written to a scratch folder beside it, then renamed)::

    model/               the CLIPModel (config.json, model.safetensors, preprocessor_config.json):
                         a Hugging Face folder that `eval` and `export` read directly
    recipe_extras.safetensors   a recipe's image-side parameters (FIX-CLIP: mask token, regional prompts,
                         hierarchical heads); only for recipes that have them
    optimizer.pt         AdamW state (tensors and numbers only: loaded with weights_only=True)
    scaler.pt            the fp16 GradScaler state (fp16 runs only)
    rng.pt               every process's torch / CUDA / numpy / python RNG state
    config.yaml          the run's TrainConfig
    trainer_state.json   progress (step, epoch, batches done in the epoch, counters), the run shape
                         exact resume needs, and provenance; written last

The learning-rate schedule is a pure function of the optimizer step, so ``step`` restores it.
Checkpoints are always taken right after an optimizer step, so no gradient-accumulation window is
open. Only the main process writes; the other processes hand it their RNG state. Supported for a
single process and DDP (accelerate's MULTI_GPU); sharded modes (FSDP, DeepSpeed) are refused by the
trainer because their optimizer state is not a plain ``state_dict``.
"""

from __future__ import annotations

import json
import logging
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import CLIPModel

from debias_diffusion.atomic_io import atomic_directory, atomic_write_json
from debias_diffusion.errors import CheckpointError
from debias_diffusion.image_preprocessing import ImagePreprocessing, clip_image_processor
from debias_diffusion.scratch_folders import Recovery, recover_interrupted_writes, remove_atomically

from .config import TrainConfig, save_config
from .errors import UnreadableCheckpointError
from .file_names import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    EXTRAS_FILE,
    MODEL_DIR,
    OPTIMIZER_FILE,
    RNG_FILE,
    SCALER_FILE,
    STATE_FILE,
)
from .hardware import describe_hardware

__all__ = [
    "RunShape",
    "TrainState",
    "list_checkpoints",
    "load_checkpoint",
    "load_newest_readable",
    "prune_checkpoints",
    "read_checkpoint_metadata",
    "remove_partial_checkpoints",
    "resolve_checkpoint",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

FORMAT = "train_encoder.checkpoint/1"
_STEP_DIR = re.compile(r"step-(\d+)")


@dataclass
class TrainState:
    """Progress of a run. ``batches_done``: loader batches of ``epoch`` each process has consumed."""

    step: int = 0
    epoch: int = 0
    batches_done: int = 0
    samples_seen: int = 0
    images_skipped: int = 0
    batches_skipped: int = 0
    samples_trimmed: int = 0


@dataclass(frozen=True)
class RunShape:
    """What must not change between a run and its resumption for the batches to continue exactly."""

    world_size: int
    batch_size: int
    gradient_accumulation_steps: int
    batches_per_epoch: int
    num_workers: int
    """DataLoader workers of tar-shard data (0 for annotation files, whose crops are seeded per sample)."""


def save_checkpoint(
    accelerator: Accelerator,
    output_dir: str | Path,
    *,
    model: CLIPModel,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    config: TrainConfig,
    shape: RunShape,
    preprocessing: ImagePreprocessing,
    source: str,
    extras: nn.Module | None = None,
) -> Path:
    """Write ``OUTPUT/checkpoints/step-N`` (every process must call this; only the main one writes).

    ``extras``: the recipe's image side (``Recipe.image_side``), saved as ``recipe_extras.safetensors``.
    Keeps the last ``config.keep_checkpoints``. Returns the checkpoint folder.
    """
    rng_states = gather_object([capture_rng_state()])
    destination = Path(output_dir) / CHECKPOINTS_DIR / f"step-{state.step}"
    if accelerator.is_main_process:
        with atomic_directory(destination, overwrite=True) as scratch:
            model.save_pretrained(scratch / MODEL_DIR)
            clip_image_processor(preprocessing).save_pretrained(scratch / MODEL_DIR)
            if extras is not None:
                save_extras(extras.state_dict(), scratch / EXTRAS_FILE)
            torch.save(optimizer.state_dict(), scratch / OPTIMIZER_FILE)
            if accelerator.scaler is not None:
                torch.save(accelerator.scaler.state_dict(), scratch / SCALER_FILE)
            torch.save(rng_states, scratch / RNG_FILE)
            save_config(config, scratch / CONFIG_FILE)
            atomic_write_json(
                scratch / STATE_FILE,
                {
                    "format": FORMAT,
                    "state": asdict(state),
                    "shape": asdict(shape),
                    "recipe": config.recipe,
                    "source": source,
                    "preprocessing": asdict(preprocessing),
                    "hardware": describe_hardware(accelerator),
                },
            )
        prune_checkpoints(output_dir, config.keep_checkpoints)
    accelerator.wait_for_everyone()
    return destination


def load_checkpoint(
    checkpoint: str | Path,
    accelerator: Accelerator,
    *,
    model: CLIPModel,
    optimizer: torch.optim.Optimizer,
    shape: RunShape,
    extras: nn.Module | None = None,
) -> TrainState:
    """Restore weights (and the recipe's ``extras``), optimizer, scaler and this process's RNG state; return
    the progress to continue from.

    Every file is read before anything is restored, so a checkpoint that cannot be read
    (:class:`UnreadableCheckpointError`: truncated or corrupt files) leaves the model and optimizer as they were.
    """
    checkpoint = Path(checkpoint)
    metadata = read_checkpoint_metadata(checkpoint)
    saved = RunShape(**metadata["shape"])
    if saved != shape:
        changed = ", ".join(
            f"{key} {value} -> {getattr(shape, key)}"
            for key, value in asdict(saved).items()
            if getattr(shape, key) != value
        )
        raise CheckpointError(
            f"{checkpoint} cannot resume exactly in this run: {changed}. Resume with the same number of "
            "processes, batch size, gradient accumulation, data and workers, or start a new run"
        )
    _check_extras_present(checkpoint, extras, metadata.get("recipe"))
    if accelerator.scaler is not None and not (checkpoint / SCALER_FILE).is_file():
        raise CheckpointError(f"{checkpoint} has no {SCALER_FILE}: it was not an fp16 run; keep its mixed_precision")
    weights = _read_model_weights(checkpoint / MODEL_DIR)
    extras_state = _read_safetensors(checkpoint / EXTRAS_FILE) if extras is not None else None
    optimizer_state = _load(checkpoint / OPTIMIZER_FILE)
    scaler_state = _load(checkpoint / SCALER_FILE) if accelerator.scaler is not None else None
    rng_states = _load(checkpoint / RNG_FILE)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{checkpoint} holds weights of another model than config.model: {error}") from None
    if extras is not None:
        try:
            extras.load_state_dict(extras_state, strict=True)
        except RuntimeError as error:
            raise CheckpointError(
                f"{checkpoint / EXTRAS_FILE} does not fit this run's fix_clip / recipe settings: {error}"
            ) from None
    optimizer.load_state_dict(optimizer_state)
    if scaler_state is not None:
        accelerator.scaler.load_state_dict(scaler_state)
    restore_rng_state(rng_states[accelerator.process_index])
    return TrainState(**metadata["state"])


def load_newest_readable(
    spec: str | Path, output_dir: str | Path, accelerator: Accelerator, **restore: Any
) -> tuple[Path, TrainState]:
    """:func:`load_checkpoint` the checkpoint ``spec`` names (see :func:`resolve_checkpoint`).

    When ``spec`` is ``"latest"`` or a run folder, a checkpoint that cannot be read (truncated weights,
    a corrupt pickle) is skipped with a warning and the one before it is tried. Returns the checkpoint
    used and its progress. ``restore``: ``model``, ``optimizer``, ``shape``, ``extras``.
    """
    newest = resolve_checkpoint(spec, output_dir)
    named = str(spec) != "latest" and (Path(spec) / STATE_FILE).is_file()
    candidates = [newest] if named else list(reversed(list_checkpoints(newest.parent.parent)))
    for checkpoint in candidates[:-1]:
        try:
            return checkpoint, load_checkpoint(checkpoint, accelerator, **restore)
        except UnreadableCheckpointError as error:
            logger.warning("skipping checkpoint %s, it cannot be read: %s; trying the one before it", checkpoint, error)
    return candidates[-1], load_checkpoint(candidates[-1], accelerator, **restore)


def save_extras(state: dict[str, torch.Tensor], path: Path) -> None:
    """A recipe's extra parameters as safetensors (contiguous copies)."""
    save_file({name: tensor.detach().contiguous().cpu() for name, tensor in state.items()}, str(path))


def _check_extras_present(checkpoint: Path, extras: nn.Module | None, recipe: str | None) -> None:
    path = checkpoint / EXTRAS_FILE
    if extras is None and path.is_file():
        raise CheckpointError(
            f"{checkpoint} holds {EXTRAS_FILE} (recipe {recipe!r}) but this run's recipe has no image side; "
            f"resume with recipe: {recipe}"
        )
    if extras is not None and not path.is_file():
        raise CheckpointError(
            f"{checkpoint} has no {EXTRAS_FILE}: it was trained with recipe {recipe!r}, whose image side this run "
            "needs; resume with that recipe or start a new run"
        )


def read_checkpoint_metadata(checkpoint: str | Path) -> dict[str, Any]:
    """The ``trainer_state.json`` of a checkpoint folder (checked to be one)."""
    path = Path(checkpoint) / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{checkpoint} is not a training checkpoint (no {STATE_FILE})")
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UnreadableCheckpointError(f"{path} is not valid JSON: {error}") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {metadata.get('format')!r}, expected {FORMAT!r}")
    return metadata


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    folder = Path(output_dir) / CHECKPOINTS_DIR
    if not folder.is_dir():
        return []
    found = [
        (int(match.group(1)), path)
        for path in folder.iterdir()
        if (match := _STEP_DIR.fullmatch(path.name)) and (path / STATE_FILE).is_file()
    ]
    return [path for _, path in sorted(found)]


def resolve_checkpoint(spec: str | Path, output_dir: str | Path | None = None) -> Path:
    """``"latest"`` (the newest in ``output_dir``), a checkpoint folder, or a run folder (its newest)."""
    if str(spec) == "latest":
        if output_dir is None:
            raise CheckpointError("resume='latest' needs the run's output_dir")
        found = list_checkpoints(output_dir)
        if not found:
            raise CheckpointError(f"no checkpoint in {Path(output_dir) / CHECKPOINTS_DIR} to resume from")
        return found[-1]
    path = Path(spec)
    if (path / STATE_FILE).is_file():
        return path
    found = list_checkpoints(path)
    if found:
        return found[-1]
    raise CheckpointError(
        f"{path} is neither a checkpoint folder (with {STATE_FILE}) nor a run folder with checkpoints"
    )


def prune_checkpoints(output_dir: str | Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` checkpoints (``0`` keeps all)."""
    if keep_last > 0:
        for path in list_checkpoints(output_dir)[:-keep_last]:
            remove_atomically(path)


def remove_partial_checkpoints(output_dir: str | Path) -> Recovery:
    """Recover the scratch a killed run left behind (``.step-N.partial-*``, ``.step-N.old-*``)."""
    return recover_interrupted_writes(Path(output_dir) / CHECKPOINTS_DIR)


def capture_rng_state() -> dict[str, Any]:
    """This process's RNG states as tensors and plain numbers (loadable with ``weights_only=True``)."""
    name, keys, position, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(gauss)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _load(path: Path) -> Any:
    if not path.is_file():
        raise UnreadableCheckpointError(f"checkpoint file {path} is missing")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign pickle: never fall back to weights_only=False
        raise UnreadableCheckpointError(f"cannot read {path} (weights_only=True): {error}") from None


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except Exception as error:  # safetensors raises its own error type for truncated headers and data
        raise UnreadableCheckpointError(f"cannot read {path}: {type(error).__name__}: {error}") from None


def _read_model_weights(folder: Path) -> dict[str, torch.Tensor]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise UnreadableCheckpointError(f"{folder} holds no .safetensors weights")
    weights: dict[str, torch.Tensor] = {}
    for file in files:
        weights.update(_read_safetensors(file))
    return weights
