"""Encode captions and images with a full CLIP model (:class:`~.clip_loading.LoadedCLIP`), L2-normalised.

Captions are tokenised with the real CLIP BPE tokenizer at the model's context length (77 or
248), truncated with EOT kept, and padded with ``"!"`` (id 0, like open_clip) to the longest
caption of each batch; captions are batched longest first so padding stays small (CLIP's causal
mask and EOT pooling make the padding length irrelevant to the result).

Images are PIL images or files (decoded on worker threads, one batch ahead of the model), put
through the model's own eval transform (resize, centre crop, normalise).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from .clip_loading import LoadedCLIP
from .image_preprocessing import image_transform, load_image
from .tokenization import build_clip_tokenizer

__all__ = ["PAD_TOKEN", "ImageItem", "encode_images", "encode_text_features", "tokenize_captions"]

PAD_TOKEN = "!"
ImageItem = Image.Image | str | os.PathLike
"""An image in memory, or the path of an image file."""


@functools.lru_cache(maxsize=4)
def clip_tokenizer(context_length: int):
    """The CLIP BPE tokenizer at ``context_length``, padding with ``PAD_TOKEN``."""
    return build_clip_tokenizer(context_length=context_length, pad_token=PAD_TOKEN)


def tokenize_captions(captions: Sequence[str], context_length: int) -> list[list[int]]:
    """Token ids ``[SOT, ..., EOT]`` per caption, truncated to ``context_length`` with EOT kept."""
    encoded = clip_tokenizer(context_length)(list(captions), truncation=True, max_length=context_length, padding=False)
    return encoded["input_ids"]


@torch.no_grad()
def encode_text_features(
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
    pad_id = clip_tokenizer(clip.context_length).pad_token_id
    out = torch.empty(len(ids), model.config.projection_dim)
    for batch in tqdm(_batches(order, batch_size), desc=desc, disable=not progress):
        tokens = torch.full((len(batch), len(ids[batch[0]])), pad_id, dtype=torch.long)
        for row, index in enumerate(batch):
            tokens[row, : len(ids[index])] = torch.tensor(ids[index])
        features = pooled(model.get_text_features(input_ids=tokens.to(device)))
        out[batch] = F.normalize(features.float(), dim=-1).cpu()
    return out


@torch.no_grad()
def encode_images(
    clip: LoadedCLIP,
    images: Sequence[ImageItem],
    *,
    batch_size: int = 64,
    num_workers: int = 4,
    progress: bool = True,
    desc: str = "images",
    loader: Callable[[str | os.PathLike], Image.Image] = load_image,
) -> torch.Tensor:
    """``[len(images), D]`` float32 CPU tensor of L2-normalised image embeddings.

    Files are opened with ``loader`` (default :func:`~.image_preprocessing.load_image`) on
    ``num_workers`` threads, one batch ahead of the model.
    """
    model, device = clip.model, _device(clip)
    dtype = next(model.parameters()).dtype
    transform = image_transform(clip.preprocessing)

    def load(item: ImageItem) -> torch.Tensor:
        return transform(item if isinstance(item, Image.Image) else loader(item))

    batches = _batches(list(range(len(images))), batch_size)
    out = torch.empty(len(images), model.config.projection_dim)
    with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:

        def submit(batch: list[int]) -> list[Future]:
            return [pool.submit(load, images[i]) for i in batch]

        pending = submit(batches[0]) if batches else []
        for number, batch in enumerate(tqdm(batches, desc=desc, disable=not progress)):
            pixels = torch.stack([future.result() for future in pending])
            pending = submit(batches[number + 1]) if number + 1 < len(batches) else []
            features = pooled(model.get_image_features(pixel_values=pixels.to(device, dtype)))
            out[batch] = F.normalize(features.float(), dim=-1).cpu()
    return out


def pooled(output) -> torch.Tensor:
    """transformers < 5 returns the projected features; 5.x a model output with them in ``pooler_output``."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _device(clip: LoadedCLIP) -> torch.device:
    return next(clip.model.parameters()).device


def _batches(items: list[int], size: int) -> list[list[int]]:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {size!r}")
    return [items[start : start + size] for start in range(0, len(items), size)]
