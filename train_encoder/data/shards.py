"""WebDataset-style tar shards as an IterableDataset, split per process and per worker.

A shard is a plain tar file. Consecutive members sharing a key (the path up to the first dot of
the file name) form one sample: ``000123.jpg`` + ``000123.txt`` (long caption), optionally
``000123.short.txt`` and ``000123.json`` (``{"caption": ..., "short_caption": ...}``), as written
by ``webdataset``/``img2dataset``. Python's ``tarfile`` streams them; no extra dependency.

Order: each epoch the shard list is shuffled with ``(seed, epoch)`` (the same on every process),
split ``shards[rank::world_size][worker::num_workers]``, read in order and passed through a
seeded shuffle buffer. With ``samples_per_epoch`` every worker yields the same number of samples
(cycling over its shards), so all ranks step equally often and a run can resume mid-epoch
exactly (:meth:`TarShardDataset.set_epoch` with ``skip_batches``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import re
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from debias_diffusion.image_preprocessing import ImageTransform

from .batches import BadSample, Sample
from .errors import BadTrainingImageError, DataFileNotFoundError, ShardError
from .images import load_image

logger = logging.getLogger(__name__)

_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"(\d+)\.\.(\d+)")


@dataclass(frozen=True)
class ShardLayout:
    """Which tar members make a sample (extensions are matched lower-case, without the leading dot)."""

    image_extensions: tuple[str, ...] = ("jpg", "jpeg", "png", "webp")
    caption_extension: str = "txt"
    short_caption_extension: str | None = "short.txt"
    json_extension: str | None = "json"
    json_caption_key: str = "caption"
    json_short_caption_key: str = "short_caption"

    def wanted(self) -> frozenset[str]:
        extra = (self.caption_extension, self.short_caption_extension, self.json_extension)
        return frozenset(self.image_extensions) | {ext for ext in extra if ext}


def expand_shards(spec: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Expand brace patterns: ``"data/{000..009}.tar"`` (zero padding kept), ``"{a,b}.tar"``;
    several patterns may be joined with ``::`` or given as a list."""
    patterns = os.fspath(spec).split("::") if isinstance(spec, (str, os.PathLike)) else [os.fspath(s) for s in spec]
    shards = [shard for pattern in patterns if pattern for shard in _expand_braces(pattern)]
    if not shards:
        raise ValueError(f"no shards in {spec!r}")
    return shards


def split_shards(shards: Sequence[str], *, rank: int, world_size: int, worker_id: int, num_workers: int) -> list[str]:
    """This reader's shards: first by process, then by worker; readers get disjoint shards."""
    return list(shards[rank::world_size][worker_id::num_workers])


class TarShardDataset(IterableDataset):
    """Yields :class:`Sample` / :class:`BadSample` items (batch them with :func:`collate_samples`).

    A bad image, missing caption, unreadable JSON or a truncated shard gives a ``BadSample``
    (counted in the batch), never an exception. :meth:`configure` sets the seed and the split;
    ``build_dataloader`` calls it. Use non-persistent workers: :meth:`set_epoch` reaches the
    workers when they start, at each epoch.
    """

    def __init__(
        self,
        shards: str | os.PathLike | Sequence[str | os.PathLike],
        transform: ImageTransform,
        *,
        layout: ShardLayout = ShardLayout(),  # noqa: B008 (frozen dataclass)
        shuffle_buffer: int = 1000,
        samples_per_epoch: int | None = None,
    ) -> None:
        self.shards = expand_shards(shards)
        missing = [shard for shard in self.shards if not Path(shard).is_file()]
        if missing:
            raise DataFileNotFoundError(f"{len(missing)} of {len(self.shards)} shards do not exist, e.g. {missing[:3]}")
        if samples_per_epoch is not None and samples_per_epoch <= 0:
            raise ValueError(f"samples_per_epoch must be positive, got {samples_per_epoch}")
        self.transform = transform
        self.layout = layout
        self.shuffle_buffer = shuffle_buffer
        self.samples_per_epoch = samples_per_epoch
        self.configure()
        self.set_epoch(0)

    def configure(
        self,
        *,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        batch_size: int = 1,
    ) -> None:
        """Seed, shuffling and the split this process reads (``num_workers``/``batch_size`` as in the DataLoader)."""
        if seed < 0 or not 0 <= rank < world_size or num_workers < 0 or batch_size <= 0:
            raise ValueError(
                f"bad configuration: seed={seed}, rank={rank}, world_size={world_size}, "
                f"num_workers={num_workers}, batch_size={batch_size}"
            )
        self.seed, self.shuffle = seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.num_workers, self.batch_size = num_workers, batch_size

    @property
    def samples_per_worker(self) -> int | None:
        """Samples each worker yields per epoch: ``samples_per_epoch`` shared out, rounded up to whole batches."""
        if self.samples_per_epoch is None:
            return None
        readers = self.world_size * max(1, self.num_workers)
        return math.ceil(self.samples_per_epoch / (readers * self.batch_size)) * self.batch_size

    def __len__(self) -> int:
        """Samples this process yields per epoch (only with ``samples_per_epoch``)."""
        if self.samples_per_worker is None:
            raise TypeError("a TarShardDataset has a length only with samples_per_epoch")
        return self.samples_per_worker * max(1, self.num_workers)

    def set_epoch(self, epoch: int, *, skip_batches: int = 0) -> None:
        """Select the epoch; ``skip_batches`` resumes after that many batches of this process.

        Exact resume needs ``samples_per_epoch`` and the same world size, ``num_workers`` and
        batch size as the interrupted run.
        """
        if epoch < 0 or skip_batches < 0:
            raise ValueError(f"epoch and skip_batches must be >= 0, got {epoch}, {skip_batches}")
        if skip_batches and self.samples_per_epoch is None:
            raise ValueError("resuming mid-epoch (skip_batches > 0) needs samples_per_epoch (equal-length workers)")
        self.epoch, self.skip_batches = epoch, skip_batches

    def first_captions(self, count: int) -> list[str]:
        """The first ``count`` distinct long captions of the shards in listed order (no images decoded;
        independent of shuffling and of where a run resumed)."""
        captions: dict[str, None] = {}
        for shard in self.shards:
            for raw in _read_shard(shard, self.layout):
                if len(captions) >= count:
                    return list(captions)
                if isinstance(raw, _RawSample):
                    with contextlib.suppress(ValueError):  # a sample without a usable caption
                        captions.setdefault(self._captions(raw)[0])
        return list(captions)

    def __iter__(self) -> Iterator[Sample | BadSample]:
        info = get_worker_info()
        worker_id, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # The DataLoader takes batch j from worker j % num_workers. After skip_batches batches, the
        # next batch is due from worker skip_batches % num_workers: physical worker w plays that
        # "virtual" worker's stream, minus the batches it already delivered.
        virtual = (worker_id + self.skip_batches) % num_workers
        delivered = max(0, -(-(self.skip_batches - virtual) // num_workers))
        skip_samples = delivered * self.batch_size
        stream = self._raw_stream(virtual, num_workers)
        if self.samples_per_worker is not None:
            stream = itertools.islice(stream, self.samples_per_worker)
        for item in itertools.islice(stream, skip_samples, None):
            yield item if isinstance(item, BadSample) else self._decode(item)

    def _raw_stream(self, worker: int, num_workers: int) -> Iterator[_RawSample | BadSample]:
        shards = list(self.shards)
        if self.shuffle:
            np.random.default_rng([self.seed, self.epoch, 0]).shuffle(shards)
        mine = split_shards(
            shards, rank=self.rank, world_size=self.world_size, worker_id=worker, num_workers=num_workers
        )
        if not mine:
            message = (
                f"rank {self.rank} worker {worker} has no shard: {len(shards)} shards for "
                f"{self.world_size * num_workers} readers; use more shards or fewer workers"
            )
            if self.samples_per_epoch is not None:
                raise ShardError(message)
            logger.warning(message)
            return iter(())
        stream = self._read_passes(mine, worker)
        if self.shuffle and self.shuffle_buffer > 1:
            rng = np.random.default_rng([self.seed, self.epoch, 1, self.rank, worker])
            stream = _shuffle_buffer(stream, self.shuffle_buffer, rng)
        return stream

    def _read_passes(self, shards: list[str], worker: int) -> Iterator[_RawSample | BadSample]:
        """One pass over the shards, or endless passes (each reshuffled) when the epoch length is fixed."""
        for pass_number in itertools.count():
            order = shards
            if pass_number and self.shuffle:
                rng = np.random.default_rng([self.seed, self.epoch, 2, self.rank, worker, pass_number])
                order = [shards[i] for i in rng.permutation(len(shards))]
            produced = False
            for shard in order:
                for item in _read_shard(shard, self.layout):
                    produced = True
                    yield item
            if self.samples_per_epoch is None:
                return
            if not produced:
                raise ShardError(f"shards {shards[:3]}... hold no samples; cannot fill samples_per_epoch")

    def _decode(self, raw: _RawSample) -> Sample | BadSample:
        source = f"{raw.shard}:{raw.key}"
        try:
            long_caption, short_caption = self._captions(raw)
            image_ext = next((ext for ext in self.layout.image_extensions if ext in raw.members), None)
            if image_ext is None:
                raise BadTrainingImageError(f"{source}: no image member ({', '.join(self.layout.image_extensions)})")
            image = load_image(raw.members[image_ext], name=source)
        except (BadTrainingImageError, ValueError) as error:
            logger.warning("skipping %s: %s", source, error)
            return BadSample(index=source, source=source, reason=str(error))
        return Sample(self.transform(image), long_caption, short_caption, source)

    def _captions(self, raw: _RawSample) -> tuple[str, str | None]:
        layout = self.layout
        meta = {}
        if layout.json_extension and layout.json_extension in raw.members:
            meta = json.loads(raw.members[layout.json_extension].decode("utf-8"))  # ValueError when broken
            if not isinstance(meta, dict):
                raise ValueError(f"{raw.shard}:{raw.key}: the .{layout.json_extension} member is not an object")

        def text(ext: str | None, key: str) -> str | None:
            value = raw.members[ext].decode("utf-8") if ext and ext in raw.members else meta.get(key)
            return (value.strip() or None) if isinstance(value, str) else None

        long_caption = text(layout.caption_extension, layout.json_caption_key)
        if long_caption is None:
            raise ValueError(
                f"{raw.shard}:{raw.key}: no caption (.{layout.caption_extension} or json '{layout.json_caption_key}')"
            )
        return long_caption, text(layout.short_caption_extension, layout.json_short_caption_key)


@dataclass
class _RawSample:
    shard: str
    key: str
    members: dict[str, bytes]


def _read_shard(path: str, layout: ShardLayout) -> Iterator[_RawSample | BadSample]:
    """Stream a tar's samples; a damaged shard ends with one ``BadSample`` (samples before it are kept)."""
    wanted = layout.wanted()
    key, members = None, {}
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                name_key, ext = _split_member_name(member.name)
                if not member.isfile() or name_key is None or ext not in wanted:
                    continue
                if name_key != key:
                    if key is not None:
                        yield _RawSample(path, key, members)
                    key, members = name_key, {}
                members[ext] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as error:
        logger.warning("shard %s is damaged after key %r: %s", path, key, error)
        yield BadSample(index=f"{path}:{key}", source=path, reason=f"damaged shard: {type(error).__name__}: {error}")
        return
    if key is not None:
        yield _RawSample(path, key, members)


def _split_member_name(name: str) -> tuple[str | None, str]:
    """``"dir/000123.short.txt"`` -> ``("dir/000123", "short.txt")``; hidden or dot-less names -> ``(None, "")``."""
    folder, _, base = name.rpartition("/")
    if base.startswith(".") or "." not in base:
        return None, ""
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def _shuffle_buffer(items: Iterator, size: int, rng: np.random.Generator) -> Iterator:
    buffer = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        slot = int(rng.integers(size))
        yield buffer[slot]
        buffer[slot] = item
    rng.shuffle(buffer)
    yield from buffer


def _expand_braces(pattern: str) -> list[str]:
    match = _BRACE.search(pattern)
    if match is None:
        if "{" in pattern or "}" in pattern:
            raise ValueError(f"unbalanced or nested braces in shard pattern {pattern!r}")
        return [pattern]
    head, body, tail = pattern[: match.start()], match.group(1), pattern[match.end() :]
    if "{" in head or "}" in head:
        raise ValueError(f"nested braces are not supported in shard pattern {pattern!r}")
    span = _RANGE.fullmatch(body)
    if span:
        first, last = span.groups()
        if int(first) > int(last):
            raise ValueError(f"descending range {{{body}}} in shard pattern {pattern!r}")
        padded = (len(first) > 1 and first.startswith("0")) or (len(last) > 1 and last.startswith("0"))
        width = max(len(first), len(last)) if padded else 0
        options = [str(n).zfill(width) for n in range(int(first), int(last) + 1)]
    else:
        options = body.split(",")
    return [head + option + rest for option in options for rest in _expand_braces(tail)]
