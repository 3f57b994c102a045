"""Encode an eval set's captions and images (L2-normalised), with an on-disk cache.

The encoding itself (tokenisation, batching, pooling) is :mod:`debias_diffusion.clip_embedding`;
image files are opened with the training data's ``load_image``.

Cache entries are safetensors files keyed by (model identity, dataset, caption variant, kind,
context length) plus a hash of the exact captions or image files, so any change is a miss.
Writes go to a temporary file that is then ``os.replace``-d; a hit never touches the model.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from debias_diffusion import clip_embedding
from debias_diffusion.clip_embedding import PAD_TOKEN, encode_text_features
from debias_diffusion.clip_loading import LoadedCLIP

from ..data.images import load_image
from .datasets import EvalSet

__all__ = [
    "CacheKey",
    "EmbeddingCache",
    "cached_image_features",
    "cached_text_features",
    "encode_images",
    "image_cache_key",
    "text_cache_key",
]

logger = logging.getLogger(__name__)

TENSOR_NAME = "embeddings"


def encode_images(
    clip: LoadedCLIP,
    image_paths: Sequence[str | Path],
    *,
    batch_size: int = 64,
    num_workers: int = 4,
    progress: bool = True,
    desc: str = "images",
) -> torch.Tensor:
    """:func:`debias_diffusion.clip_embedding.encode_images` on files, bad ones raising the data's ``BadTrainingImageError``."""
    return clip_embedding.encode_images(
        clip, image_paths, batch_size=batch_size, num_workers=num_workers, progress=progress, desc=desc,
        loader=load_image,
    )  # fmt: skip


@dataclass(frozen=True)
class CacheKey:
    """Everything an embedding depends on. ``content`` hashes the exact captions or image files."""

    model: str
    dataset: str
    variant: str
    kind: str
    context_length: int
    content: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def relative_path(self) -> Path:
        digest = hashlib.sha256(self.to_json().encode()).hexdigest()[:16]
        length = f"-{self.context_length}" if self.kind == "text" else ""
        name = f"{_slug(self.dataset)}--{_slug(self.variant)}--{self.kind}{length}--{digest}.safetensors"
        return Path(self.model[:16]) / name


def text_cache_key(clip: LoadedCLIP, eval_set: EvalSet) -> CacheKey:
    """Key of ``eval_set``'s caption embeddings under ``clip``."""
    digest = hashlib.sha256(f"tokenizer=clip-bpe pad={PAD_TOKEN!r}\n".encode())
    for caption in eval_set.captions:
        digest.update(caption.encode() + b"\0")
    return CacheKey(clip.identity, eval_set.name, eval_set.variant, "text", clip.context_length, digest.hexdigest())


def image_cache_key(clip: LoadedCLIP, eval_set: EvalSet) -> CacheKey:
    """Key of ``eval_set``'s image embeddings under ``clip`` (paths, file sizes, preprocessing)."""
    digest = hashlib.sha256(repr(clip.preprocessing).encode())
    for path in eval_set.image_paths:
        resolved = Path(path).resolve()
        digest.update(f"{resolved}|{resolved.stat().st_size}\0".encode())
    return CacheKey(clip.identity, eval_set.name, "images", "image", 0, digest.hexdigest())


class EmbeddingCache:
    """Embeddings on disk under ``root`` (``None``: no caching, everything is computed)."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None

    def path(self, key: CacheKey) -> Path | None:
        return self.root / key.relative_path() if self.root is not None else None

    def load(self, key: CacheKey) -> torch.Tensor | None:
        """The cached tensor, or ``None`` when absent, unreadable or stored under another key."""
        path = self.path(key)
        if path is None or not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:
                stored_key = (handle.metadata() or {}).get("key")
                tensor = handle.get_tensor(TENSOR_NAME) if stored_key == key.to_json() else None
        except (OSError, SafetensorError) as err:
            logger.warning("ignoring unreadable embedding cache file %s: %s", path, err)
            return None
        if tensor is None:
            logger.warning("ignoring embedding cache file %s: it was written for another key", path)
            return None
        return tensor

    def save(self, key: CacheKey, embeddings: torch.Tensor) -> Path | None:
        """Write atomically (temporary file + ``os.replace``); returns the path, or ``None`` if disabled."""
        path = self.path(key)
        if path is None:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")  # created with the umask
        try:
            save_file({TENSOR_NAME: embeddings.contiguous()}, str(tmp), metadata={"key": key.to_json()})
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def get_or_compute(self, key: CacheKey, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        cached = self.load(key)
        if cached is not None:
            return cached
        embeddings = compute()
        self.save(key, embeddings)
        return embeddings


def cached_text_features(
    clip: LoadedCLIP,
    eval_set: EvalSet,
    *,
    cache: EmbeddingCache | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> torch.Tensor:
    """Caption embeddings of ``eval_set`` (from the cache when present)."""
    desc = f"{eval_set.name}/{eval_set.variant} texts"
    compute = functools.partial(
        encode_text_features, clip, eval_set.captions, batch_size=batch_size, progress=progress, desc=desc
    )
    return (cache or EmbeddingCache(None)).get_or_compute(text_cache_key(clip, eval_set), compute)


def cached_image_features(
    clip: LoadedCLIP,
    eval_set: EvalSet,
    *,
    cache: EmbeddingCache | None = None,
    batch_size: int = 64,
    num_workers: int = 4,
    progress: bool = True,
) -> torch.Tensor:
    """Image embeddings of ``eval_set`` (from the cache when present)."""
    compute = functools.partial(
        encode_images,
        clip,
        eval_set.image_paths,
        batch_size=batch_size,
        num_workers=num_workers,
        progress=progress,
        desc=f"{eval_set.name} images",
    )
    return (cache or EmbeddingCache(None)).get_or_compute(image_cache_key(clip, eval_set), compute)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", text)[:60] or "_"
