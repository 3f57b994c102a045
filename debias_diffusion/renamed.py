"""Old Python names kept for one release: each use warns (``DeprecationWarning``) and reaches the new name.

Three kinds of rename: a module attribute (:func:`renamed_attributes`, a module ``__getattr__``), a keyword
argument (:func:`renamed_keywords`, a decorator) and an instance attribute (:func:`renamed_property`).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = ["renamed_attributes", "renamed_keywords", "renamed_property"]

F = TypeVar("F", bound=Callable[..., Any])


def _warn(old: str, new: str, stacklevel: int) -> None:
    warnings.warn(f"{old} is deprecated and goes in the next release; use {new}", DeprecationWarning,
                  stacklevel=stacklevel + 1)  # fmt: skip


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
        _warn(f"{module}.{name}", new, stacklevel=2)
        return namespace[new]

    return __getattr__


def renamed_keywords(**renamed: str) -> Callable[[F], F]:
    """Decorator: a function still accepts its old keyword names (``old=new``), warning and passing them on as the
    new ones. Giving both spellings is a ``TypeError``, as a repeated keyword is. The signature shown is the new one.

    Args:
        renamed: old keyword -> new keyword, e.g. ``renamed_keywords(model_max_length="context_length")``.
    """

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def with_old_keywords(*args: Any, **kwargs: Any) -> Any:
            for old in renamed.keys() & kwargs.keys():
                new = renamed[old]
                if new in kwargs:
                    raise TypeError(
                        f"{function.__qualname__}() got both {new}= and its deprecated spelling {old}=; pass only {new}="
                    )
                _warn(f"{function.__qualname__}({old}=...)", f"{new}=", stacklevel=2)
                kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return with_old_keywords  # type: ignore[return-value]

    return decorate


def renamed_property(old: str, new: str) -> property:
    """A read-only class attribute ``old`` that warns and returns ``self.<new>``.

    Args:
        old: the attribute's earlier name (for the message; assign the result to it in the class body).
        new: the attribute to read instead.
    """

    def read(self: Any) -> Any:
        _warn(f"{type(self).__name__}.{old}", new, stacklevel=2)
        return getattr(self, new)

    return property(read, doc=f"Deprecated spelling of ``{new}`` (goes in the next release).")
