"""Recall@K for text-to-image (T2I) and image-to-text (I2T) retrieval.

Captions are the rows of the similarity matrix, images its columns; ``caption_to_image[t]`` is
the image caption ``t`` describes. One caption per image (Urban1k, DOCCI, ...) is the case
``caption_to_image[i] == i``; COCO / Flickr30k have several captions per image.

- **T2I**: per caption, the rank of its image among all images.
- **I2T**: per image, the rank of its best-scoring caption among all captions, so an image is a
  hit at K when *any* of its captions is in the top K (the COCO protocol).

**Ties are counted against the match.** The rank of a match is the number of *non-matching*
candidates scoring greater than *or equal to* it, and a hit at K means rank < K. This is
deterministic (no dependence on sort stability or ``topk`` internals) and conservative: a
collapsed model that gives every pair the same score gets R@1 = 0, not a score that depends on
the order of the data. Other matches of the same image never push a match down.

The matrix is computed in blocks (``block_size`` rows or columns at a time), so COCO's
25k x 5k never exists in memory at once. Recalls are percentages (0..100).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "DEFAULT_KS",
    "RetrievalScores",
    "image_to_text_ranks",
    "recall_at_k",
    "retrieval_scores",
    "similarity_retrieval_scores",
    "text_to_image_ranks",
]

DEFAULT_KS = (1, 5, 10)
DEFAULT_BLOCK_SIZE = 512

# A block of the [captions, images] similarity matrix: rows(start, stop) -> [stop - start, images],
# cols(start, stop) -> [captions, stop - start].
_Block = Callable[[int, int], torch.Tensor]


@dataclass(frozen=True)
class RetrievalScores:
    """Recall@K in percent, per direction, keyed by K."""

    text_to_image: dict[int, float]
    image_to_text: dict[int, float]
    num_texts: int
    num_images: int

    def as_dict(self) -> dict[str, dict[str, float]]:
        """``{"t2i": {"R@1": ..}, "i2t": {"R@1": ..}}``: the shape written to result files."""
        return {
            "t2i": {f"R@{k}": v for k, v in self.text_to_image.items()},
            "i2t": {f"R@{k}": v for k, v in self.image_to_text.items()},
        }


def retrieval_scores(
    text_embeddings: torch.Tensor,
    image_embeddings: torch.Tensor,
    caption_to_image: Sequence[int] | torch.Tensor,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> RetrievalScores:
    """Recall@K from (normally L2-normalised) embeddings ``[T, D]`` and ``[I, D]``; similarity = dot product."""
    text, image = _check_embeddings(text_embeddings, image_embeddings)
    targets = _check_targets(caption_to_image, text.shape[0], image.shape[0])
    return _scores(_row_block(text, image), _col_block(text, image), targets, image.shape[0], ks, block_size)


def similarity_retrieval_scores(
    similarity: torch.Tensor,
    caption_to_image: Sequence[int] | torch.Tensor,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> RetrievalScores:
    """Recall@K from a precomputed ``[captions, images]`` similarity matrix."""
    if similarity.ndim != 2:
        raise ValueError(f"similarity must be 2-D [captions, images], got shape {tuple(similarity.shape)}")
    sim = _finite_float(similarity, "similarity")
    targets = _check_targets(caption_to_image, sim.shape[0], sim.shape[1])
    return _scores(lambda a, b: sim[a:b], lambda a, b: sim[:, a:b], targets, sim.shape[1], ks, block_size)


def text_to_image_ranks(
    text_embeddings: torch.Tensor,
    image_embeddings: torch.Tensor,
    caption_to_image: Sequence[int] | torch.Tensor,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> torch.Tensor:
    """0-based rank of each caption's image (ties counted against the match), shape ``[T]``."""
    text, image = _check_embeddings(text_embeddings, image_embeddings)
    targets = _check_targets(caption_to_image, text.shape[0], image.shape[0])
    return _t2i_ranks(_row_block(text, image), targets, block_size)


def image_to_text_ranks(
    text_embeddings: torch.Tensor,
    image_embeddings: torch.Tensor,
    caption_to_image: Sequence[int] | torch.Tensor,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> torch.Tensor:
    """0-based rank of each image's best caption among all captions, shape ``[I]``."""
    text, image = _check_embeddings(text_embeddings, image_embeddings)
    targets = _check_targets(caption_to_image, text.shape[0], image.shape[0])
    return _i2t_ranks(_col_block(text, image), targets, image.shape[0], block_size)


def recall_at_k(ranks: torch.Tensor, ks: Sequence[int] = DEFAULT_KS) -> dict[int, float]:
    """Percentage of ranks below each K."""
    if ranks.numel() == 0:
        raise ValueError("no queries: recall is undefined for an empty set")
    _check_ks(ks)
    return {int(k): 100.0 * (ranks < k).double().mean().item() for k in ks}


def _row_block(text: torch.Tensor, image: torch.Tensor) -> _Block:
    def rows(start: int, stop: int) -> torch.Tensor:
        return text[start:stop] @ image.T

    return rows


def _col_block(text: torch.Tensor, image: torch.Tensor) -> _Block:
    def cols(start: int, stop: int) -> torch.Tensor:
        return text @ image[start:stop].T

    return cols


def _scores(rows: _Block, cols: _Block, targets: torch.Tensor, num_images: int, ks, block_size) -> RetrievalScores:
    _check_ks(ks)
    t2i = _t2i_ranks(rows, targets, block_size)
    i2t = _i2t_ranks(cols, targets, num_images, block_size)
    return RetrievalScores(recall_at_k(t2i, ks), recall_at_k(i2t, ks), int(targets.numel()), num_images)


def _t2i_ranks(rows: _Block, targets: torch.Tensor, block_size: int) -> torch.Tensor:
    _check_block_size(block_size)
    ranks = []
    for start in range(0, targets.numel(), block_size):
        sim = rows(start, start + block_size)
        target = targets[start : start + sim.shape[0]].to(sim.device)
        positive = sim.gather(1, target[:, None])
        # every candidate at or above the match, minus the match itself
        ranks.append(((sim >= positive).sum(1) - 1).cpu())
    return torch.cat(ranks)


def _i2t_ranks(cols: _Block, targets: torch.Tensor, num_images: int, block_size: int) -> torch.Tensor:
    _check_block_size(block_size)
    ranks = []
    for start in range(0, num_images, block_size):
        sim = cols(start, min(start + block_size, num_images))
        image_ids = torch.arange(start, start + sim.shape[1], device=sim.device)
        is_match = targets.to(sim.device)[:, None] == image_ids[None, :]
        best = sim.masked_fill(~is_match, float("-inf")).amax(0, keepdim=True)
        ranks.append(((sim >= best) & ~is_match).sum(0).cpu())
    return torch.cat(ranks)


def _check_embeddings(text: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if text.ndim != 2 or image.ndim != 2 or text.shape[1] != image.shape[1]:
        raise ValueError(
            f"embeddings must be [captions, D] and [images, D] with the same D; got "
            f"{tuple(text.shape)} and {tuple(image.shape)}"
        )
    return _finite_float(text, "text embeddings"), _finite_float(image, "image embeddings").to(text.device)


def _finite_float(values: torch.Tensor, what: str) -> torch.Tensor:
    values = values.detach().float()
    if not torch.isfinite(values).all():
        raise ValueError(f"{what} hold NaN or infinite values: the model or its inputs are broken")
    return values


def _check_targets(caption_to_image, num_texts: int, num_images: int) -> torch.Tensor:
    targets = torch.as_tensor(caption_to_image, dtype=torch.long).reshape(-1)
    if targets.numel() != num_texts:
        raise ValueError(f"caption_to_image has {targets.numel()} entries for {num_texts} captions")
    if num_texts == 0 or num_images == 0:
        raise ValueError("retrieval needs at least one caption and one image")
    if targets.min() < 0 or targets.max() >= num_images:
        raise ValueError(f"caption_to_image must index the {num_images} images (0..{num_images - 1})")
    orphans = torch.ones(num_images, dtype=torch.bool)
    orphans[targets] = False
    if orphans.any():
        first = orphans.nonzero().flatten()[:5].tolist()
        raise ValueError(f"{int(orphans.sum())} images have no caption (e.g. indices {first}); I2T is undefined")
    return targets


def _check_ks(ks: Sequence[int]) -> None:
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {list(ks)}")


def _check_block_size(block_size: int) -> None:
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
