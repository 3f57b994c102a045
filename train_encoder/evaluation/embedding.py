"""Encode captions and images with a CLIPModel in batches (L2-normalised), with an on-disk cache.

Captions are tokenised with the real CLIP BPE tokenizer at the model's context length (77 or
248), truncated with EOT kept, and padded with ``"!"`` (id 0, like open_clip) to the longest
caption of each batch; captions are batched longest first so padding stays small (CLIP's causal
mask and EOT pooling make the padding length irrelevant to the result).

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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from debias_diffusion.tokenization import build_clip_tokenizer

from ..data.images import image_transform, load_image
from .datasets import EvalSet
from .models import LoadedCLIP

__all__ = [
    "CacheKey",
    "EmbeddingCache",
    "embed_images",
    "embed_texts",
    "encode_images",
    "encode_texts",
    "image_cache_key",
    "text_cache_key",
    "tokenize_captions",
]

logger = logging.getLogger(__name__)

PAD_TOKEN = "!"
TENSOR_NAME = "embeddings"


@functools.lru_cache(maxsize=4)
def _tokenizer(context_length: int):
    return build_clip_tokenizer(model_max_length=context_length, pad_token=PAD_TOKEN)


def tokenize_captions(captions: Sequence[str], context_length: int) -> list[list[int]]:
    """Token ids ``[SOT, ..., EOT]`` per caption, truncated to ``context_length`` with EOT kept."""
    encoded = _tokenizer(context_length)(list(captions), truncation=True, max_length=context_length, padding=False)
    return encoded["input_ids"]


@torch.no_grad()
def encode_texts(
    clip: LoadedCLIP,
    captions: Sequence[str],
    *,
    batch_size: int = 64,
    progress: bool = True,
    desc: str = "texts",
) -> torch.Tensor:
    """``[len(captions), D]`` float32 CPU tensor of L2-normalised text embeddings."""
    model, device = clip.model, _device(clip)
    ids = tokenize_captions(captions, clip.context_length)
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    pad_id = _tokenizer(clip.context_length).pad_token_id
    out = torch.empty(len(ids), model.config.projection_dim)
    for batch in tqdm(_batches(order, batch_size), desc=desc, disable=not progress):
        tokens = torch.full((len(batch), len(ids[batch[0]])), pad_id, dtype=torch.long)
        for row, index in enumerate(batch):
            tokens[row, : len(ids[index])] = torch.tensor(ids[index])
        features = _pooled(model.get_text_features(input_ids=tokens.to(device)))
        out[batch] = F.normalize(features.float(), dim=-1).cpu()
    return out


@torch.no_grad()
def encode_images(
    clip: LoadedCLIP,
    image_paths: Sequence[str | Path],
    *,
    batch_size: int = 64,
    num_workers: int = 4,
    progress: bool = True,
    desc: str = "images",
) -> torch.Tensor:
    """``[len(image_paths), D]`` float32 CPU tensor of L2-normalised image embeddings.

    Images are decoded on ``num_workers`` threads, one batch ahead of the model.
    """
    model, device = clip.model, _device(clip)
    dtype = next(model.parameters()).dtype
    transform = image_transform(clip.preprocessing)

    def load(path: str) -> torch.Tensor:
        return transform(load_image(path))

    batches = _batches(list(range(len(image_paths))), batch_size)
    out = torch.empty(len(image_paths), model.config.projection_dim)
    with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:

        def submit(batch: list[int]) -> list[Future]:
            return [pool.submit(load, image_paths[i]) for i in batch]

        pending = submit(batches[0]) if batches else []
        for number, batch in enumerate(tqdm(batches, desc=desc, disable=not progress)):
            pixels = torch.stack([future.result() for future in pending])
            pending = submit(batches[number + 1]) if number + 1 < len(batches) else []
            features = _pooled(model.get_image_features(pixel_values=pixels.to(device, dtype)))
            out[batch] = F.normalize(features.float(), dim=-1).cpu()
    return out


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


def embed_texts(
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
        encode_texts, clip, eval_set.captions, batch_size=batch_size, progress=progress, desc=desc
    )
    return (cache or EmbeddingCache(None)).get_or_compute(text_cache_key(clip, eval_set), compute)


def embed_images(
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


def _pooled(output) -> torch.Tensor:
    """transformers < 5 returns the projected features; 5.x a model output with them in ``pooler_output``."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _device(clip: LoadedCLIP) -> torch.device:
    return next(clip.model.parameters()).device


def _batches(items: list[int], size: int) -> list[list[int]]:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {size!r}")
    return [items[start : start + size] for start in range(0, len(items), size)]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", text)[:60] or "_"
