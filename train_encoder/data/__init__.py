"""Training data: annotation readers, image decoding, datasets, a resumable sampler, loaders.

Captions stay strings here; tokenisation and caption augmentation live in ``train_encoder.augment``.
The CLIP image transforms are :mod:`debias_diffusion.image_preprocessing`'s.
"""

from .batches import BadSample, Batch, Sample, collate_samples
from .errors import AnnotationError, BadTrainingImageError, DataError, DataFileNotFoundError, ShardError
from .images import load_image
from .loader import build_dataloader, start_epoch
from .map_dataset import CaptionImageDataset
from .records import (
    SHAREGPT4V_HOLDOUT,
    CaptionRecord,
    read_annotations,
    read_csv,
    read_jsonl,
    read_sharegpt4v,
)
from .sampling import ResumableSampler, derive_seed
from .shards import ShardLayout, TarShardDataset, expand_shards, split_shards

__all__ = [
    "SHAREGPT4V_HOLDOUT",
    "AnnotationError",
    "BadTrainingImageError",
    "BadSample",
    "Batch",
    "CaptionImageDataset",
    "CaptionRecord",
    "DataError",
    "DataFileNotFoundError",
    "ResumableSampler",
    "Sample",
    "ShardError",
    "ShardLayout",
    "TarShardDataset",
    "build_dataloader",
    "collate_samples",
    "derive_seed",
    "expand_shards",
    "load_image",
    "read_annotations",
    "read_csv",
    "read_jsonl",
    "read_sharegpt4v",
    "split_shards",
    "start_epoch",
]
