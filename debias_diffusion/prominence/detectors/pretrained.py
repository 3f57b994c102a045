"""Loading detector models and processors with ``from_pretrained``, failing clearly when one is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import torch

from ...errors import CheckpointError
from ...model_sources import missing_model_error


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


def built_model_placement(model: Any, given_name: str | None) -> dict[str, Any]:
    """``model=``, ``device=``, ``dtype=`` for wrapping an already built model where it is.

    The name is ``given_name``, else where the model was loaded from, else ``"in-memory"``; device
    and dtype are those of its first floating parameter (CPU / float32 for a model without any).
    """
    device, dtype = torch.device("cpu"), torch.float32
    for parameter in model.parameters() if hasattr(model, "parameters") else ():
        if parameter.is_floating_point():
            device, dtype = parameter.device, parameter.dtype
            break
    return {"model": given_name or getattr(model, "name_or_path", "") or "in-memory", "device": device, "dtype": dtype}


_Parts = TypeVar("_Parts", bound="PretrainedParts")


class PretrainedParts:
    """A transformers model + processor named by a Hub id or folder: loaded on first use, or adopted built.

    Subclasses name the transformers classes (``model_class``, ``processor_class``) and ``what``
    they are (for messages); a ``masker`` set on a detector is loaded with it.
    """

    model_class: str
    processor_class: str
    what: str
    masker: Any = None

    def _set_parts(self, model: str, device: str | torch.device, dtype: torch.dtype) -> None:
        self.model_name = model
        self.device = torch.device(device)
        self.dtype = dtype
        self._model: Any = None
        self._processor: Any = None

    def _adopt(self: _Parts, model: Any, processor: Any) -> _Parts:
        self._model, self._processor = model.eval(), processor
        return self

    def load(self: _Parts) -> _Parts:
        """Load the model and processor now (``ModelNotFoundError`` when missing offline)."""
        if self._model is None:
            import transformers

            processor_class, model_class = (getattr(transformers, n) for n in (self.processor_class, self.model_class))
            self._processor = load_pretrained(processor_class, self.model_name, f"{self.what} processor")
            self._model = load_model(model_class, self.model_name, f"{self.what} model", self.device, self.dtype)
        if self.masker is not None:
            self.masker.load()
        return self
