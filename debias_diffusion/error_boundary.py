"""The command lines' error boundary: every failure a user can cause ends as one ``error:`` line.

``run_guarded`` runs a command and turns exceptions into a message and an exit status: 2 for
bad input or an unusable environment (the project's own errors, and the foreign ones bad input
raises: OSError, ValueError, KeyError, JSON / YAML / safetensors / pickle errors, a missing
optional package, a device that is not there, running out of memory), 130 for Ctrl-C, and 1 with
a short "internal error" line for anything else. ``--debug`` or ``DEBIAS_DIFFUSION_DEBUG=1``
re-raises instead, with the full traceback.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import sys
from collections.abc import Callable

from .errors import DebiasDiffusionError

__all__ = ["DEBUG_ENV", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_USER_ERROR", "describe_error", "run_guarded"]

DEBUG_ENV = "DEBIAS_DIFFUSION_DEBUG"
EXIT_USER_ERROR = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130

_DEBUG_HINT = f"re-run with --debug (or {DEBUG_ENV}=1) for the traceback"

_OS_HINTS = {
    errno.ENOENT: "no such file or folder; check the path",
    errno.EACCES: "permission denied; check the permissions, or choose another path",
    errno.EPERM: "operation not permitted; check the permissions, or choose another path",
    errno.EISDIR: "is a folder where a file was expected; give a file",
    errno.ENOTDIR: "a part of the path is a file where a folder was expected; check the path",
    errno.ENOSPC: "no space left on the device; free some disk space or choose another output folder",
    errno.EROFS: "the file system is read-only; choose another output folder",
    errno.EDQUOT: "disk quota exceeded; free some space or choose another output folder",
    errno.ENAMETOOLONG: "the file name is too long; choose a shorter path",
    errno.EEXIST: "already exists; remove it or choose another path",
}


def debug_requested(flag: bool = False) -> bool:
    """True when ``--debug`` was given or ``DEBIAS_DIFFUSION_DEBUG`` is set to a true value."""
    return flag or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def run_guarded(run: Callable[[], int], *, debug: bool = False) -> int:
    """Run ``run()`` and return its exit status; failures print one ``error:`` line to stderr.

    Args:
        run: the command, returning its exit status.
        debug: re-raise every exception with its traceback instead (also ``DEBIAS_DIFFUSION_DEBUG=1``).
    """
    if debug_requested(debug):
        return run()
    try:
        return run()
    except KeyboardInterrupt:
        print("interrupted: files already written are complete (each is written atomically)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout closed early (`| head`): nothing to report
        _silence_stdout()
        return EXIT_USER_ERROR
    except Exception as err:  # noqa: BLE001 - this is the one place that turns failures into messages
        message = describe_error(err)
        if message is None:
            print(f"internal error: {type(err).__name__}: {_first_line(err)} ({_DEBUG_HINT}, and please report it)",
                  file=sys.stderr)  # fmt: skip
            return EXIT_INTERNAL
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR


def describe_error(err: BaseException) -> str | None:
    """What went wrong and what to do, for an error bad input or the environment can cause; else None."""
    if isinstance(err, DebiasDiffusionError):
        return str(err)
    if isinstance(err, OSError):
        return _describe_os_error(err)
    if isinstance(err, MemoryError):
        return "out of memory; use a smaller size, batch or model, or free memory"
    if isinstance(err, (ImportError, ModuleNotFoundError)):
        name = getattr(err, "name", None) or _first_line(err)
        return f"a required package is missing or broken ({name}): install it (pip install ...) and retry"
    return _describe_format_error(err) or _describe_value_error(err) or _describe_runtime_error(err)


def _describe_os_error(err: OSError) -> str:
    if err.errno is None or err.strerror is None:  # a library's own OSError ("cannot find the model"): its words
        return _first_line(err)
    hint = _OS_HINTS.get(err.errno, err.strerror)
    if err.filename is None:
        return hint
    path = err.filename if err.filename2 is None else f"{err.filename} -> {err.filename2}"
    return f"{path}: {hint}"


def _describe_format_error(err: Exception) -> str | None:
    from safetensors import SafetensorError

    if isinstance(err, json.JSONDecodeError):
        return f"malformed JSON ({err.msg} at line {err.lineno}, column {err.colno}); fix or replace the file"
    if isinstance(err, UnicodeError):
        return f"a file is not UTF-8 text ({_first_line(err)}); save it as UTF-8"
    if isinstance(err, SafetensorError):
        return f"not a readable safetensors file (truncated or corrupted?): {_first_line(err)}"
    if isinstance(err, (pickle.UnpicklingError, EOFError)):
        return f"not a readable PyTorch checkpoint (truncated, corrupted or not a checkpoint): {_first_line(err)}"
    if type(err).__module__.startswith("yaml"):
        return f"malformed YAML: {_first_line(err)}"
    return None


def _describe_value_error(err: Exception) -> str | None:
    if isinstance(err, KeyError):
        key = err.args[0] if err.args else "?"
        return f"an input is missing the entry {key!r} (an incomplete config, index or checkpoint?)"
    if isinstance(err, ValueError):
        return _first_line(err)
    return None


def _describe_runtime_error(err: Exception) -> str | None:
    if not isinstance(err, RuntimeError):
        return None
    text = _first_line(err)
    lowered = text.lower()
    if "out of memory" in lowered:
        return f"out of memory on the device ({text}); use a smaller size or batch, float16, or another device"
    if "not implemented for 'half'" in lowered or "not implemented for 'bfloat16'" in lowered:
        return f"this device cannot compute in that dtype ({text}); use --dtype float32"
    if any(part in lowered for part in ("nvidia driver", "device type", "cuda", "mps", "invalid device")):
        return f"the torch device cannot be used ({text}); pick one that exists, e.g. --device cpu"
    return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
