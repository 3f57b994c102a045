"""What a user names as a model, read once: a folder, a pipeline folder, a checkpoint file, a Hub repo or a
file in one, an ``open_clip:`` spec, or a module in memory.

:func:`resolve_source` decides which without touching the network. The loaders
(:func:`~debias_diffusion.load_text_encoder`, :func:`~debias_diffusion.load_clip_model`) and the converter's
:func:`~debias_diffusion.conversion.read_clip_source` act on the :class:`ResolvedSource` it returns, whose
:meth:`~ResolvedSource.file` reads a file of the model in the same way from a folder or from the Hub (at the
``revision`` asked for; unknown ids and, offline, uncached files give a :class:`ModelNotFoundError` that says
what to do).
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from .errors import CheckpointError, ModelNotFoundError

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "HUB_KINDS",
    "OPEN_CLIP_PREFIX",
    "PRETRAINED_KINDS",
    "ModelSource",
    "ResolvedSource",
    "SourceKind",
    "hub_call",
    "missing_model_error",
    "resolve_source",
]

OPEN_CLIP_PREFIX = "open_clip:"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
PIPELINE_INDEX = "model_index.json"

ModelSource = str | Path | nn.Module
"""What the loaders and the converter accept: a path or Hub name (``str`` / ``Path``) or a module."""

_T = TypeVar("_T")


class SourceKind(enum.Enum):
    """Where a model's weights come from."""

    MODULE = "module"
    OPEN_CLIP_SPEC = "open_clip spec"
    FOLDER = "folder"
    PIPELINE_FOLDER = "pipeline folder"
    FILE = "file"
    HUB_REPO = "Hub repo"
    HUB_FILE = "Hub file"


HUB_KINDS = frozenset({SourceKind.HUB_REPO, SourceKind.HUB_FILE})
PRETRAINED_KINDS = frozenset({SourceKind.FOLDER, SourceKind.PIPELINE_FOLDER, SourceKind.HUB_REPO})
"""Kinds read with transformers' ``from_pretrained`` (the others go through ``conversion``)."""


@dataclass(frozen=True)
class ResolvedSource:
    """A model source with its kind decided (see :func:`resolve_source`)."""

    kind: SourceKind
    name: str
    """The path, the ``open_clip:`` spec or the Hub repo id (``owner/name``); a module's class name."""
    filename: str | None = None
    """For a Hub file: its path inside the repo."""
    revision: str | None = None
    """For the Hub: the branch, tag or commit to read."""
    module: nn.Module | None = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        """The source as the user wrote it (``owner/name/file.pt`` for a Hub file), for messages and records."""
        if self.kind is SourceKind.MODULE:
            return f"<in-memory {self.name}>"
        return f"{self.name}/{self.filename}" if self.filename else self.name

    @property
    def on_hub(self) -> bool:
        return self.kind in HUB_KINDS

    def file(self, name: str) -> Path:
        """The local path of ``name`` inside this folder or Hub repo (downloaded, or from the cache, on the Hub).

        Raises :class:`ModelNotFoundError` when the Hub cannot give the file. A folder's path is returned as is,
        whether the file exists or not.
        """
        if not self.on_hub:
            return Path(self.name) / name
        from huggingface_hub import hf_hub_download

        return Path(hub_call(self.label, lambda: hf_hub_download(self.name, name, revision=self.revision)))

    def has_file(self, name: str) -> bool:
        """Whether ``name`` exists in this folder, or can be had from this Hub repo (absent, offline and not
        cached, or unreachable all count as no)."""
        try:
            return self.file(name).is_file()
        except Exception:  # the Hub's errors are not all OSErrors (EntryNotFoundError, for one)
            return False

    def checkpoint_file(self) -> Path:
        """The local path of a file or Hub file source (downloaded for the Hub)."""
        return self.file(self.filename) if self.kind is SourceKind.HUB_FILE else Path(self.name)

    def read_json(self, name: str, *, required: bool = True) -> dict[str, Any] | None:
        """The JSON file ``name`` of this folder or Hub repo; ``None`` when it is absent and not ``required``.

        Raises :class:`~debias_diffusion.errors.CheckpointError` for a missing required file in a folder or
        invalid JSON, :class:`ModelNotFoundError` for a required file the Hub cannot give.
        """
        if not required and not self.has_file(name):
            return None
        path = self.file(name)
        if not path.is_file():
            raise CheckpointError(f"{path.parent} has no {path.name}: not a Hugging Face model folder")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{path} is not valid JSON: {err}") from err

    def pretrained_kwargs(self) -> dict[str, Any]:
        """What ``from_pretrained(self.name, ...)`` needs: the revision on the Hub, no download for folders."""
        return {"revision": self.revision} if self.on_hub else {"local_files_only": True}


def resolve_source(
    source: ModelSource | ResolvedSource, *, revision: str | None = None, hub: bool = True
) -> ResolvedSource:
    """Decide what ``source`` names, without touching the network.

    Args:
        source: a module (an open_clip model object), an ``open_clip:ARCH[/PRETRAINED]`` spec, a folder (a diffusers
            pipeline folder when it holds ``model_index.json``), a checkpoint file (one that exists, or a name with a
            checkpoint suffix in an existing folder), a Hub repo id ``owner/name`` or a file in a Hub repo
            ``owner/name/path/file.pt``. A :class:`ResolvedSource` is returned as is.
        revision: the Hub branch, tag or commit (kept for Hub sources, ignored for the others).
        hub: ``False`` reads every path as a local file (the converter reads local checkpoints only).

    Raises:
        ModelNotFoundError: ``source`` is no existing path and not of the form ``owner/name``.
    """
    if isinstance(source, ResolvedSource):
        return source
    if isinstance(source, nn.Module):
        return ResolvedSource(SourceKind.MODULE, type(source).__name__, module=source)
    if isinstance(source, str) and source.startswith(OPEN_CLIP_PREFIX):
        return ResolvedSource(SourceKind.OPEN_CLIP_SPEC, source)
    path = Path(source)
    if path.is_dir():
        kind = SourceKind.PIPELINE_FOLDER if (path / PIPELINE_INDEX).is_file() else SourceKind.FOLDER
        return ResolvedSource(kind, str(path))
    if not hub or path.is_file() or (path.suffix in CHECKPOINT_SUFFIXES and path.parent.is_dir()):
        return ResolvedSource(SourceKind.FILE, str(path))
    parts = os.fspath(source).split("/")
    if len(parts) < 2 or not all(parts):
        raise ModelNotFoundError(
            f"{os.fspath(source)!r} is not an existing file or folder, nor a Hugging Face Hub id (owner/name)"
        )
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    if filename:
        return ResolvedSource(SourceKind.HUB_FILE, repo_id, filename, revision)
    return ResolvedSource(SourceKind.HUB_REPO, repo_id, revision=revision)


def hub_call(label: str, fetch: Callable[[], _T]) -> _T:
    """``fetch()``, with the Hub's failures (unknown id, offline and not cached, no network) as
    :class:`ModelNotFoundError` naming ``label``."""
    from huggingface_hub.errors import HFValidationError

    try:
        return fetch()
    except (OSError, ValueError, HFValidationError) as err:
        raise missing_model_error(label, err) from err


def missing_model_error(repo: str, err: Exception) -> ModelNotFoundError:
    """A ``ModelNotFoundError`` for a Hub id that could not be fetched, saying how to get it."""
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    repo_id = "/".join(str(repo).split("/")[:2])
    hint = (
        "HF_HUB_OFFLINE is set, so only models already in the Hugging Face cache load: "
        f"run `hf download {repo_id}` on a machine with network, or pass a local path"
        if offline
        else "check the id and your network / HF token"
    )
    return ModelNotFoundError(f"{repo!r} is not a local path and could not be fetched from the Hub ({hint}): {err}")
