"""Read prompts given on the command line as text or as ``@FILE``."""

from __future__ import annotations

from pathlib import Path

from .errors import PromptError


def read_prompt_argument(value: str) -> str:
    """Return ``value``, or the text of the file it names when it starts with ``@``.

    Raises:
        PromptError: the file is missing, a folder, unreadable, not UTF-8 text, or empty.
    """
    if not value.startswith("@"):
        return value
    path = Path(value[1:])
    if not value[1:]:
        raise PromptError("'@' must be followed by a file name (@prompt.txt), or quote the prompt text")
    if path.is_dir():
        raise PromptError(f"prompt file {path} is a folder; give a text file (@prompt.txt)")
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError as err:
        raise PromptError(f"prompt file not found: {path}") from err
    except UnicodeDecodeError as err:
        raise PromptError(f"prompt file {path} is not UTF-8 text; save it as UTF-8") from err
    except OSError as err:
        raise PromptError(f"prompt file {path} cannot be read: {err.strerror or err}") from err
    if not text:
        raise PromptError(f"prompt file {path} is empty; write the prompt into it")
    return text
