"""Loading detector models and processors with ``from_pretrained``, failing clearly when one is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...errors import CheckpointError
from ...loading import missing_model_error


def load_pretrained(cls: Any, model: str, what: str, **kwargs: Any) -> Any:
    """``cls.from_pretrained(model)`` for a Hub id or a local folder.

    Weights load from ``model.safetensors`` where the repository has one (transformers prefers it
    over pickled ``.bin`` files); remote code is never trusted. A Hub id that cannot be fetched
    (offline and not cached, misspelt, no network) raises ``ModelNotFoundError`` saying how to get
    it; a local folder that does not load raises ``CheckpointError``.
    """
    try:
        return cls.from_pretrained(model, **kwargs)
    except OSError as err:
        if Path(model).exists():
            raise CheckpointError(f"could not load the {what} from {model}: {err}") from err
        raise missing_model_error(model, err) from err


def load_model(cls: Any, model: str, what: str, device: str | torch.device, dtype: torch.dtype) -> Any:
    """The model in eval mode on ``device`` in ``dtype``."""
    return load_pretrained(cls, model, what).to(device=device, dtype=dtype).eval()


def model_id(model: Any, given: str | None) -> str:
    """The id recorded in ``settings()``: ``given``, else where the model was loaded from, else ``"in-memory"``."""
    return given or getattr(model, "name_or_path", "") or "in-memory"


def model_placement(model: Any) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of a model's first parameter (CPU / float32 for a model without any)."""
    for parameter in model.parameters() if hasattr(model, "parameters") else ():
        if parameter.is_floating_point():
            return parameter.device, parameter.dtype
    return torch.device("cpu"), torch.float32
