"""Map-style dataset over caption records and an image root, with bad images dropped and counted."""

from __future__ import annotations

import logging
import operator
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from debias_diffusion.image_preprocessing import ImageTransform

from .batches import BadSample, Sample
from .errors import BadTrainingImageError, DataError, DataFileNotFoundError
from .images import load_image
from .records import CaptionRecord
from .sampling import derive_seed

logger = logging.getLogger(__name__)

_CROP_STREAM = 1


class CaptionImageDataset(Dataset):
    """``dataset[i]`` -> :class:`Sample` (image tensor, long caption, short caption, i), or a
    :class:`BadSample` when the image is missing or cannot be decoded (use :func:`collate_samples`).

    Relative image paths resolve against ``image_root``; absolute ones are used as written.
    Records are packed into flat byte buffers, so forked DataLoader workers share them instead
    of copying millions of Python strings (the copy-on-write refcount problem).

    With ``seed``, each sample's random transform (the training crop) draws from a generator
    seeded by (seed, epoch, index) instead of the worker's RNG, so crops do not depend on the
    number of workers or on where a run resumed; :func:`start_epoch` sets the epoch.
    """

    def __init__(
        self,
        records: Sequence[CaptionRecord],
        transform: ImageTransform,
        *,
        image_root: str | os.PathLike | None = None,
        seed: int | None = None,
    ) -> None:
        if image_root is not None and not Path(image_root).is_dir():
            raise DataFileNotFoundError(f"image root {image_root} is not a directory")
        self.image_root = None if image_root is None else Path(image_root)
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self._images = _PackedStrings(record.image for record in records)
        self._long = _PackedStrings(record.long_caption for record in records)
        self._short = _PackedStrings(record.short_caption for record in records)

    def __len__(self) -> int:
        return len(self._images)

    def set_epoch(self, epoch: int) -> None:
        """The epoch that seeds per-sample transforms (only used with ``seed``)."""
        self.epoch = epoch

    def record(self, index: int) -> CaptionRecord:
        """The annotation record at ``index`` (no image decoding)."""
        index = self._check_index(index)
        return CaptionRecord(self._images[index], self._long[index], self._short[index])

    def image_path(self, index: int) -> Path:
        """Where the image of ``index`` is read from."""
        path = Path(self._images[self._check_index(index)])
        return path if self.image_root is None or path.is_absolute() else self.image_root / path

    def first_captions(self, count: int) -> list[str]:
        """The first ``count`` distinct long captions in record order (a sample that does not depend on
        shuffling or on where a run resumed)."""
        captions: dict[str, None] = {}
        for index in range(len(self)):
            if len(captions) >= count:
                break
            captions.setdefault(self._long[index])
        return list(captions)

    def check_readable(self, needed: int) -> None:
        """Raise :class:`DataError` unless at least ``needed`` images can be read (stops at the ``needed``-th).

        Run before training: a wrong image root or missing images would otherwise skip every batch.
        """
        readable, first_error = 0, None
        for index in range(len(self)):
            try:
                load_image(self.image_path(index))
            except BadTrainingImageError as error:
                first_error = first_error or error
                continue
            readable += 1
            if readable >= needed:
                return
        root = "image paths as written (no image_root)" if self.image_root is None else f"image_root {self.image_root}"
        raise DataError(
            f"only {readable} of {len(self)} training images can be read, and a step needs {needed}: check the "
            f"{root} and the image paths in the annotations. First failure: {first_error}"
        )

    def __getitem__(self, index: int) -> Sample | BadSample:
        index = self._check_index(index)
        path = self.image_path(index)
        try:
            image = load_image(path)
        except BadTrainingImageError as error:
            logger.warning("skipping sample %d: %s", index, error)
            return BadSample(index=index, source=str(path), reason=str(error))
        return Sample(self._transform(image, index), self._long[index], self._short[index], index)

    def _transform(self, image, index: int) -> torch.Tensor:
        if self.seed is None:
            return self.transform(image)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.seed, self.epoch, index, _CROP_STREAM))
            return self.transform(image)

    def _check_index(self, index: int) -> int:
        index = operator.index(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} samples")
        return index


class _PackedStrings:
    """Optional strings as one UTF-8 buffer plus offsets (no per-item Python objects)."""

    def __init__(self, items: Iterable[str | None]) -> None:
        chunks: list[bytes] = []
        offsets = [0]
        missing: list[bool] = []
        for item in items:
            encoded = b"" if item is None else item.encode("utf-8")
            chunks.append(encoded)
            offsets.append(offsets[-1] + len(encoded))
            missing.append(item is None)
        self._data = np.frombuffer(b"".join(chunks), dtype=np.uint8)
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._missing = np.asarray(missing, dtype=bool)

    def __len__(self) -> int:
        return len(self._missing)

    def __getitem__(self, index: int) -> str | None:
        if self._missing[index]:
            return None
        return self._data[self._offsets[index] : self._offsets[index + 1]].tobytes().decode("utf-8")
