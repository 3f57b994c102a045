"""``build_dataloader`` (sampler or shard split, workers, collate) and ``start_epoch`` for exact resume."""

from __future__ import annotations

from functools import partial

import torch
from torch.utils.data import DataLoader

from .batches import collate_samples
from .map_dataset import CaptionImageDataset
from .sampling import ResumableSampler
from .shards import TarShardDataset


def build_dataloader(
    dataset: CaptionImageDataset | TarShardDataset,
    *,
    batch_size: int,
    num_workers: int = 0,
    seed: int = 0,
    shuffle: bool = True,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = True,
    pad_uneven: bool = True,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    prefetch_factor: int | None = None,
) -> DataLoader:
    """A DataLoader yielding :class:`Batch` objects for this process (``rank`` of ``world_size``).

    Map-style data gets a :class:`ResumableSampler` (``pad_uneven=False`` drops the tail that does
    not split evenly instead of repeating indices); tar shards are split per process and worker.
    ``drop_last`` drops a final partial batch. The loader already holds only this rank's share:
    do not hand it to ``accelerator.prepare`` (which would shard it again); move batches with
    ``batch.to(device)``. Call :func:`start_epoch` before iterating each epoch.
    """
    if batch_size <= 0 or num_workers < 0:
        raise ValueError(f"need batch_size > 0 and num_workers >= 0, got {batch_size}, {num_workers}")
    worker_options = {}
    if num_workers > 0:
        worker_options["persistent_workers"] = persistent_workers
        if prefetch_factor is not None:
            worker_options["prefetch_factor"] = prefetch_factor
    common = {
        "batch_size": batch_size,
        "num_workers": num_workers,
        # An all-bad batch keeps the image shape when the transform states it (image_transform does).
        "collate_fn": partial(collate_samples, image_shape=getattr(dataset.transform, "output_shape", None)),
        "pin_memory": pin_memory,
        "drop_last": drop_last,
        "generator": torch.Generator().manual_seed(seed),  # seeds workers' augmentation RNG per run
        **worker_options,
    }
    if isinstance(dataset, TarShardDataset):
        if persistent_workers and num_workers > 0:
            raise ValueError("persistent_workers would keep shard workers on their first epoch; leave it off")
        dataset.configure(
            seed=seed, shuffle=shuffle, rank=rank, world_size=world_size, num_workers=num_workers, batch_size=batch_size
        )
        return DataLoader(dataset, **common)
    sampler = ResumableSampler(
        len(dataset), seed=seed, shuffle=shuffle, num_replicas=world_size, rank=rank, drop_last=not pad_uneven
    )
    return DataLoader(dataset, sampler=sampler, **common)


def start_epoch(loader: DataLoader, epoch: int, *, batches_done: int = 0) -> None:
    """Point ``loader`` at ``epoch``, skipping the ``batches_done`` batches this process already trained on.

    Resuming with the same world size, batch size (and, for shards, ``num_workers``) then yields
    exactly the batches the interrupted run would have produced next. ``len(loader)`` becomes
    the number of batches left in the epoch.
    """
    if isinstance(loader.dataset, TarShardDataset):
        loader.dataset.set_epoch(epoch, skip_batches=batches_done)
    elif isinstance(loader.sampler, ResumableSampler):
        sampler = loader.sampler
        sampler.set_epoch(epoch, start=batches_done * loader.batch_size * sampler.num_replicas)
        loader.dataset.set_epoch(epoch)
    else:
        raise TypeError("start_epoch needs a loader from build_dataloader (ResumableSampler or TarShardDataset)")
