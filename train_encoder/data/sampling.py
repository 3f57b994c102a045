"""Seeded randomness that depends only on (seed, epoch, ...): a resumable sampler and per-item seeds."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Deterministic per-epoch order, split across processes, resumable at any sample offset.

    Each epoch's *global* order is a permutation of ``range(dataset_size)`` drawn from
    ``(seed, epoch)`` alone (``shuffle=False``: identity). :meth:`set_epoch` with ``start`` skips
    the first ``start`` positions of that global order, i.e. the samples all processes together
    have consumed: ``start = batches_done * batch_size * num_replicas``. The rest is split like
    ``DistributedSampler``: made a multiple of ``num_replicas`` (``drop_last=False`` pads by
    repeating the epoch's first indices; ``drop_last=True`` drops the tail), then rank ``r`` takes
    positions ``r, r + num_replicas, ...``. So a resumed run yields exactly the uninterrupted
    run's remaining indices on every rank, and the world size may even change between runs
    (the skipped samples stay skipped).
    """

    def __init__(
        self,
        dataset_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
    ) -> None:
        if dataset_size <= 0:
            raise ValueError(f"dataset_size must be positive, got {dataset_size}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if num_replicas <= 0 or not 0 <= rank < num_replicas:
            raise ValueError(f"need 0 <= rank < num_replicas, got rank={rank}, num_replicas={num_replicas}")
        self.dataset_size = dataset_size
        self.seed = seed
        self.shuffle = shuffle
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch, and how many samples of its global order to skip (0 = from the beginning)."""
        if epoch < 0 or start < 0:
            raise ValueError(f"epoch and start must be >= 0, got epoch={epoch}, start={start}")
        self.epoch = epoch
        self.start = start

    def epoch_order(self, epoch: int | None = None) -> np.ndarray:
        """The global order of ``epoch`` (default: the current one), before skipping and splitting."""
        epoch = self.epoch if epoch is None else epoch
        if not self.shuffle:
            return np.arange(self.dataset_size)
        return np.random.default_rng([self.seed, epoch]).permutation(self.dataset_size)

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch from the current start."""
        order = self.epoch_order()
        rest = order[self.start :]
        remainder = len(rest) % self.num_replicas
        if self.drop_last:
            rest = rest[: len(rest) - remainder]
        elif remainder:
            rest = np.concatenate([rest, np.resize(order, self.num_replicas - remainder)])
        return rest[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        remaining = max(0, self.dataset_size - self.start)
        if self.drop_last:
            return remaining // self.num_replicas
        return math.ceil(remaining / self.num_replicas)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixing ``parts`` (numpy's ``SeedSequence``): independent streams per (seed, epoch, item, ...)."""
    return int(np.random.SeedSequence([int(part) for part in parts]).generate_state(1, np.uint64)[0] >> 1)
