"""Content identities of pipelines: what made an image, as a hash, so a cache never serves another model's output.

* A file or folder (a saved pipeline, a text encoder export, a checkpoint) is identified by the
  sha256 of every file's bytes (hidden files and folders such as ``.cache`` left out). The
  hashes are remembered by (path, size, mtime) in a small JSON file, so re-runs do not re-read
  gigabytes; a file that changed in place gets a new size or mtime and is hashed again.
* A Hub id is identified by the files of its snapshot in the local Hugging Face cache (offline);
  an id that is not cached yet keeps only its name, marked ``unresolved`` (a later run, once it is
  cached, gets a different identity and regenerates: stale images are never served).
* A pipeline object is identified by its components: every tensor of every module (name, dtype,
  shape, bytes), the scheduler's and other components' configs, the tokenizers' vocabularies
  and lengths, the long-prompt policy and the device type.
* A loader (a function or ``functools.partial`` of no arguments) is identified by its function's
  qualified name and its arguments (with the function's defaults filled in), each string argument that names a local path or a cached
  Hub id replaced by that source's identity. A loader may instead carry its own identity as an
  ``identity`` attribute (a string).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..atomic_io import atomic_write_json

__all__ = ["FileHashCache", "is_loader", "pipeline_identity", "source_identity", "loader_identity", "path_identity"]

logger = logging.getLogger(__name__)

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_CHUNK = 1 << 20


class FileHashCache:
    """sha256 of files' bytes, remembered by (absolute path, size, mtime_ns) in a JSON file."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._entries: dict[str, dict[str, Any]] = {}
        self._dirty = False
        if self.path is not None and self.path.is_file():
            try:
                entries = json.loads(self.path.read_text(encoding="utf-8"))
                self._entries = entries if isinstance(entries, dict) else {}
            except ValueError:  # a damaged cache is only a lost speed-up
                self._entries = {}

    def sha256(self, file: Path) -> str:
        file = file.resolve()
        stat = file.stat()
        known = self._entries.get(str(file))
        if known and known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns:
            return known["sha256"]
        digest = hashlib.sha256()
        with open(file, "rb") as handle:
            while block := handle.read(_CHUNK):
                digest.update(block)
        self._entries[str(file)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest.hexdigest()}
        self._dirty = True
        return digest.hexdigest()

    def save(self) -> None:
        """Write the remembered hashes (atomically) if any were added."""
        if self.path is not None and self._dirty:
            atomic_write_json(self.path, self._entries)
            self._dirty = False


def path_identity(path: str | Path, hashes: FileHashCache) -> str:
    """sha256 over the relative names and byte hashes of a file, or of every non-hidden file in a folder."""
    path = Path(path)
    if path.is_file():
        files = [(path.name, path)]
    else:
        files = sorted(
            (file.relative_to(path).as_posix(), file)
            for file in path.rglob("*")
            if file.is_file() and not any(part.startswith(".") for part in file.relative_to(path).parts)
        )
    digest = hashlib.sha256()
    for name, file in files:
        digest.update(f"{name}\0{hashes.sha256(file)}\n".encode())
    return digest.hexdigest()


def _hub_snapshot(repo_id: str) -> Path | None:
    """The local snapshot folder of a cached Hub model, without any network access."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached, not a valid id, or no huggingface_hub: the name is all we have
        return None


def _string_identity(value: str, hashes: FileHashCache) -> str:
    if value and os.path.exists(value):
        return f"content:{path_identity(value, hashes)}"
    if _HUB_ID.fullmatch(value):
        snapshot = _hub_snapshot(value)
        if snapshot is not None:
            return f"hub:{value}:content:{path_identity(snapshot, hashes)}"
        logger.warning("%s is neither a local path nor a cached Hub model: its identity is only its name", value)
        return f"unresolved:{value}"
    return value


def _argument_identity(value: Any, hashes: FileHashCache) -> Any:
    if isinstance(value, str):
        return _string_identity(value, hashes)
    if isinstance(value, Path):
        return _string_identity(str(value), hashes)
    if isinstance(value, (list, tuple)):
        return [_argument_identity(item, hashes) for item in value]
    if isinstance(value, Mapping):
        return {str(k): _argument_identity(v, hashes) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, torch.dtype):
        return str(value)
    if isinstance(value, torch.device):
        return value.type
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if inspect.isroutine(value) or isinstance(value, functools.partial):
        return loader_identity(value, hashes)
    return f"{type(value).__module__}.{type(value).__qualname__}:{value!r}"


def loader_identity(loader: Any, hashes: FileHashCache) -> dict[str, Any]:
    """The function's qualified name and its (bound) arguments, paths and Hub ids replaced by their content."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    while isinstance(loader, functools.partial):  # partial(partial(f, a), b) calls f(a, b)
        args[:0] = loader.args
        kwargs = {**loader.keywords, **kwargs}
        loader = loader.func
    name = f"{getattr(loader, '__module__', '?')}.{getattr(loader, '__qualname__', repr(loader))}"
    try:  # the defaults too: load_pipeline's default model is as much a part of what it loads as a given one
        bound = inspect.signature(loader).bind(*args, **kwargs)
        bound.apply_defaults()
        args, kwargs = list(bound.args), dict(bound.kwargs)
    except (TypeError, ValueError):  # no signature (a builtin) or not callable with these: keep what was given
        pass
    return {
        "loader": name,
        "args": [_argument_identity(a, hashes) for a in args],
        "kwargs": _argument_identity(kwargs, hashes),
    }


def _tensor_digest(digest: Any, name: str, tensor: torch.Tensor) -> None:
    data = tensor.detach().to("cpu").contiguous().reshape(-1)
    digest.update(f"{name}|{data.dtype}|{tuple(tensor.shape)}\n".encode())
    digest.update(data.view(torch.uint8).numpy())  # the buffer itself, no copy


def _module_digest(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict(keep_vars=False).items()):
        _tensor_digest(digest, name, tensor)
    config = getattr(module, "config", None)
    digest.update(json.dumps(_config_dict(config), sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _config_dict(config: Any) -> Any:
    if config is None:
        return None
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    return {k: v for k, v in dict(config).items() if not str(k).startswith("_")}


def _component_identity(component: Any) -> Any:
    if component is None:
        return None
    if isinstance(component, torch.nn.Module):
        return {"class": type(component).__qualname__, "weights": _module_digest(component)}
    if hasattr(component, "get_vocab"):  # a tokenizer: its vocabulary and length decide the tokens
        vocab = json.dumps(sorted(component.get_vocab().items()))
        return {
            "class": type(component).__qualname__,
            "vocab": hashlib.sha256(vocab.encode()).hexdigest(),
            # the context length under transformers' name (the key is part of cached identities: unchanged)
            "model_max_length": getattr(component, "model_max_length", None),
        }
    if hasattr(component, "config"):  # schedulers, feature extractors
        return {"class": type(component).__qualname__, "config": _config_dict(component.config)}
    return f"{type(component).__module__}.{type(component).__qualname__}"


def pipeline_identity(pipe: Any) -> dict[str, Any]:
    """A diffusers pipeline's components (weights, configs, tokenizers), policy and device type.

    An object without ``components`` is identified by its class (and its tensors if it is a
    ``torch.nn.Module``); a warning says so, since nothing else about it can be checked.
    """
    components = getattr(pipe, "components", None)
    identity: dict[str, Any] = {"class": f"{type(pipe).__module__}.{type(pipe).__qualname__}"}
    if isinstance(components, Mapping):
        identity["components"] = {name: _component_identity(c) for name, c in sorted(components.items())}
        policy = getattr(pipe, "long_prompt_policy", None)
        identity["long_prompt"] = policy() if callable(policy) else None
        device = getattr(pipe, "device", None)
        identity["device"] = getattr(device, "type", None)
    elif isinstance(pipe, torch.nn.Module):
        identity["weights"] = _module_digest(pipe)
    else:
        logger.warning(
            "%s has no components to fingerprint: its cached images are keyed by its class only; give it an "
            "`identity` attribute (a string that changes with its weights) to key them by content",
            identity["class"],
        )
    return identity


def is_loader(source: Any) -> bool:
    """A function / partial that loads a pipeline (a pipeline object is callable too, but generates)."""
    return inspect.isroutine(source) or isinstance(source, functools.partial)


def source_identity(source: Any, hashes: FileHashCache, *, is_loader: bool) -> str:
    """A hex digest identifying what ``source`` (a pipeline, or a loader of one) generates with."""
    declared = getattr(source, "identity", None)
    if isinstance(declared, str):
        identity: Any = {"declared": declared}
    elif is_loader:
        identity = loader_identity(source, hashes)
    else:
        identity = pipeline_identity(source)
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
