"""argparse ``type=`` checkers shared by the command lines: bad values fail while parsing, before any work."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["bounded_float", "bounded_int", "non_empty_text", "seed"]

MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed takes unsigned 64-bit seeds


def bounded_int(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An int in ``[low, high]`` (either bound optional)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        _check_range(value, low, high, text)
        return value

    parse.__name__ = "integer"
    return parse


def bounded_float(
    low: float | None = None, high: float | None = None, *, above: float | None = None, below: float | None = None
) -> Callable[[str], float]:
    """A finite float in ``[low, high]``, and ``> above`` / ``< below`` where given (NaN and inf refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        _check_range(value, low, high, text)
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be greater than {above}, got {text}")
        if below is not None and value >= below:
            raise argparse.ArgumentTypeError(f"must be less than {below}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def seed(text: str) -> int:
    """A random seed: a whole number from 0 to 2**64 - 1."""
    return bounded_int(0, MAX_SEED)(text)


def non_empty_text(text: str) -> str:
    """Text that is not empty or only whitespace."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _check_range(value: float, low: float | None, high: float | None, text: str) -> None:
    if low is not None and value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {text}")
    if high is not None and value > high:
        raise argparse.ArgumentTypeError(f"must be at most {high}, got {text}")
