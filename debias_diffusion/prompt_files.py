"""Read prompts given on the command line as text or as ``@FILE``."""

from __future__ import annotations

from pathlib import Path

from .errors import PromptError


def read_prompt_argument(value: str) -> str:
    """Return ``value``, or the text of the file it names when it starts with ``@``."""
    if not value.startswith("@"):
        return value
    path = Path(value[1:])
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError as err:
        raise PromptError(f"prompt file not found: {path}") from err
    except UnicodeDecodeError as err:
        raise PromptError(f"prompt file {path} is not UTF-8 text") from err
