"""Read checkpoint files safely into a flat ``{name: tensor}`` dict.

Pickles are opened with ``torch.load(weights_only=True)`` so a file that carries code is
refused, never run; safetensors files are read with ``safetensors``. Training checkpoints
(``{"state_dict": ..., "optimizer": ...}``) are unwrapped and DDP's ``module.`` prefix removed.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from ..errors import CheckpointError

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load the model weights stored in ``path`` as a flat dict of CPU tensors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint file is empty: {path}")
    if path.suffix == SAFETENSORS_SUFFIX:
        raw = _read_safetensors(path)
    elif path.suffix in PICKLE_SUFFIXES:
        raw = _read_pickle(path)
    else:
        raise CheckpointError(
            f"don't know how to read {path.name!r}: expected one of "
            f"{', '.join(PICKLE_SUFFIXES + (SAFETENSORS_SUFFIX,))}, or a Hugging Face folder"
        )
    return _unwrap(raw, path)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupted?): {err}") from err


def _read_pickle(path: Path) -> object:
    if _is_torchscript(path):
        raise CheckpointError(
            f"{path} is a TorchScript archive (like OpenAI's original CLIP .pt files). Load it "
            "with open_clip (`open_clip.create_model(..., pretrained=PATH)`) and convert the "
            "model object, or convert the `open_clip:ARCH/PRETRAINED` spec instead."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" not in str(err):  # not an object reference: random, truncated or foreign bytes
            raise CheckpointError(
                f"{path} is not a PyTorch checkpoint (random, truncated or corrupted bytes?): {_detail(err)}"
            ) from err
        raise CheckpointError(
            f"refusing to load {path}: it contains Python objects other than tensors and plain "
            "containers, and unpickling them could run code (loaded with weights_only=True). "
            "Re-save only the state dict (`torch.save(model.state_dict(), ...)`) or use "
            f"safetensors. Detail: {_detail(err)}"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} could not be read as a PyTorch checkpoint (truncated or corrupted file?): {_first_line(err)}"
        ) from err


def _detail(err: pickle.UnpicklingError) -> str:
    """The line of torch's weights-only error that names the problem (its first line is boilerplate)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    named = [line for line in lines if "GLOBAL" in line or line.lower().startswith("unsupported")]
    return (named or lines or [type(err).__name__])[0]


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("constants.pkl") for name in archive.namelist())
    except zipfile.BadZipFile:
        return False


def _unwrap(raw: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict) or not raw:
        raise CheckpointError(
            f"{path} holds {type(raw).__name__}, not a state dict of tensors "
            "(nor a training checkpoint with a 'state_dict' entry)"
        )
    tensors = {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path} holds a dict with no tensors in it")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
