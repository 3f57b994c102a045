"""Old Python names kept for one release: a module ``__getattr__`` that warns and returns the new object."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["renamed_attributes"]


def renamed_attributes(module: str, renamed: Mapping[str, str], namespace: Mapping[str, Any]) -> Callable[[str], Any]:
    """A module-level ``__getattr__``: ``module.OLD`` warns (``DeprecationWarning``) and gives ``namespace[NEW]``.

    Args:
        module: the module's ``__name__``, for the messages.
        renamed: old name -> new name.
        namespace: the module's ``globals()``, where the new names live.
    """

    def __getattr__(name: str) -> Any:
        if name not in renamed:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new = renamed[name]
        warnings.warn(f"{module}.{name} is deprecated and goes in the next release; use {new}", DeprecationWarning,
                      stacklevel=2)  # fmt: skip
        return namespace[new]

    return __getattr__
