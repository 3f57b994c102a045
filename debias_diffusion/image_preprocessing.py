"""Image decoding that reports bad files, and CLIP preprocessing transforms (shared by probes and training).

The eval transform matches open_clip's ``image_transform(is_train=False)`` (and Hugging Face's
``CLIPImageProcessor``): bicubic resize of the shortest side, center crop, normalise. The train
transform is open_clip's default: ``RandomResizedCrop(scale=(0.9, 1.0))``, bicubic, normalise.
Like open_clip, both convert to RGB *after* the resize and crop, so an image of any PIL mode
(``P``, ``RGBA``, ``L``, ``CMYK``...) gives open_clip's tensor; ``load_image`` therefore keeps the
file's own mode. (Pillow resizes ``P`` images with nearest neighbour and ``RGBA`` with premultiplied
alpha, so converting first would change the pixels.)
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image
from torchvision import transforms as T

from .clip_constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from .errors import BadImageError

if TYPE_CHECKING:
    from transformers import CLIPImageProcessor

__all__ = [
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "ClipImageTransform",
    "ImagePreprocessing",
    "ImageTransform",
    "clip_image_processor",
    "image_transform",
    "load_image",
]

ImageTransform = Callable[[Image.Image], torch.Tensor]


@dataclass(frozen=True)
class ImagePreprocessing:
    """What a CLIP vision tower expects: square crop size, normalisation, optional larger resize first.

    ``resize_size`` is the shortest side before the center crop; ``None`` means the crop size
    (open_clip's behaviour; Hugging Face processors may resize larger, e.g. 256 -> crop 224).
    """

    image_size: int = 224
    mean: tuple[float, float, float] = OPENAI_CLIP_MEAN
    std: tuple[float, float, float] = OPENAI_CLIP_STD
    resize_size: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if self.image_size <= 0:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values with std > 0, got mean={self.mean}, std={self.std}")
        if self.resize_size is not None and self.resize_size < self.image_size:
            raise ValueError(f"resize_size {self.resize_size} is smaller than the crop {self.image_size}")

    @classmethod
    def from_source(cls, source: Any) -> ImagePreprocessing:
        """Read preprocessing from a model or config.

        Accepts an ``int`` (crop size, OpenAI mean/std), an ``ImagePreprocessing``, an open_clip
        model (``model.visual.preprocess_cfg``), a transformers ``CLIPModel`` / ``CLIPConfig`` /
        ``CLIPVisionConfig`` (image size; OpenAI mean/std) or ``CLIPImageProcessor``, or the dict form
        of any of these (open_clip's ``{"size", "mean", "std"}`` or HF's ``crop_size``/``size``/``image_mean``).
        """
        if isinstance(source, cls):
            return source
        if isinstance(source, int) and not isinstance(source, bool):
            return cls(image_size=source)
        if isinstance(source, Mapping):
            return cls._from_mapping(source)
        visual_cfg = getattr(getattr(source, "visual", None), "preprocess_cfg", None)
        if isinstance(visual_cfg, Mapping):
            return cls._from_mapping(visual_cfg)
        config = getattr(source, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            return cls.from_source(config)
        if hasattr(source, "to_dict"):
            return cls._from_mapping(source.to_dict())
        raise TypeError(f"cannot read image preprocessing from {type(source).__name__}")

    @classmethod
    def _from_mapping(cls, config: Mapping[str, Any]) -> ImagePreprocessing:
        if isinstance(config.get("vision_config"), Mapping):  # CLIPConfig: the size lives in the vision config
            return cls._from_mapping({**config["vision_config"], **config, "vision_config": None})
        mean = config.get("image_mean", config.get("mean")) or OPENAI_CLIP_MEAN
        std = config.get("image_std", config.get("std")) or OPENAI_CLIP_STD
        size = config.get("size")
        if config.get("crop_size") is not None:  # HF image processor: resize `size`, then crop `crop_size`
            image_size = _square_side(config["crop_size"], "crop_size")
            resize_size = None if size is None else _square_side(size, "size")
        elif config.get("image_size") is not None:
            image_size, resize_size = _square_side(config["image_size"], "image_size"), None
        elif size is not None:  # open_clip preprocess_cfg
            image_size, resize_size = _square_side(size, "size"), None
        else:
            raise ValueError(f"no image size in the config (keys: {sorted(config)})")
        return cls(
            image_size=image_size,
            mean=tuple(_triple(mean)),
            std=tuple(_triple(std)),
            resize_size=None if resize_size == image_size else resize_size,
        )


def image_transform(
    preprocessing: ImagePreprocessing | Any = 224,
    *,
    train: bool = False,
    crop_scale: tuple[float, float] = (0.9, 1.0),
) -> ClipImageTransform:
    """PIL image -> normalised float tensor ``[3, S, S]``.

    ``preprocessing`` is anything :meth:`ImagePreprocessing.from_source` accepts. ``train=True``
    gives open_clip's training crop (``RandomResizedCrop`` over ``crop_scale`` of the area).
    """
    cfg = ImagePreprocessing.from_source(preprocessing)
    if train:
        geometry = [T.RandomResizedCrop(cfg.image_size, scale=crop_scale, interpolation=T.InterpolationMode.BICUBIC)]
    else:
        geometry = [
            T.Resize(cfg.resize_size or cfg.image_size, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(cfg.image_size),
        ]
    steps = [*geometry, _ConvertRGB(), T.ToTensor(), T.Normalize(cfg.mean, cfg.std)]
    return ClipImageTransform(steps, output_shape=(3, cfg.image_size, cfg.image_size))


def clip_image_processor(preprocessing: ImagePreprocessing | Any) -> CLIPImageProcessor:
    """The transformers ``CLIPImageProcessor`` that preprocesses images as ``preprocessing`` says.

    ``preprocessing`` is anything :meth:`ImagePreprocessing.from_source` accepts. Saved beside a ``CLIPModel``
    (``save_pretrained``), it is the ``preprocessor_config.json`` that reads back as the same preprocessing.
    """
    from transformers import CLIPImageProcessor

    cfg = ImagePreprocessing.from_source(preprocessing)
    return CLIPImageProcessor(
        size={"shortest_edge": cfg.resize_size or cfg.image_size},
        crop_size={"height": cfg.image_size, "width": cfg.image_size},
        image_mean=list(cfg.mean),
        image_std=list(cfg.std),
    )


class ClipImageTransform(T.Compose):
    """A ``Compose`` that also states its ``output_shape`` (so a batch of only bad images keeps its shape)."""

    def __init__(self, transforms: list[Callable], output_shape: tuple[int, int, int]) -> None:
        super().__init__(transforms)
        self.output_shape = output_shape


def load_image(
    source: str | os.PathLike | bytes, *, name: str | None = None, error: type[Exception] = BadImageError
) -> Image.Image:
    """Decode an image fully (so truncation shows here), in the file's own mode.

    The mode is kept (``P``, ``RGBA``, ``L``...): :func:`image_transform` converts to RGB after
    resizing and cropping, as open_clip does; call ``.convert("RGB")`` for the pixels themselves.

    Raises ``error`` (:class:`BadImageError` by default) for a missing, truncated or undecodable
    file; ``name`` labels in-memory bytes in the message.
    """
    label = name or ("<bytes>" if isinstance(source, (bytes, bytearray)) else os.fspath(source))
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
        try:
            image.load()
            if getattr(image, "fp", None) is None:  # single-frame files are closed once loaded
                return image
            loaded = image.copy()  # multi-frame (GIF, TIFF...): keep the first frame, release the file
            image.close()
            return loaded
        except BaseException:
            image.close()
            raise
    except FileNotFoundError:
        raise error(f"{label}: file not found") from None
    # Pillow's decoders raise a zoo of types for broken files (OSError, SyntaxError, ValueError,
    # struct.error, IndexError, DecompressionBombError, ...): any of them means "bad image".
    except Exception as failure:
        raise error(f"{label}: {type(failure).__name__}: {failure}") from None


class _ConvertRGB:
    """Convert non-RGB PIL images (a class, not a lambda, so transforms pickle into spawned workers)."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return image if image.mode == "RGB" else image.convert("RGB")

    def __repr__(self) -> str:
        return "ConvertRGB()"


def _square_side(value: Any, name: str) -> int:
    if isinstance(value, Mapping):
        if "shortest_edge" in value:
            return int(value["shortest_edge"])
        value = (value.get("height"), value.get("width"))
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) == 2 and value[0] == value[1] and value[0] is not None:
            return int(value[0])
        raise ValueError(f"{name}={value!r}: only square images are supported")
    return int(value)


def _triple(value: Any) -> list[float]:
    values = [float(value)] * 3 if isinstance(value, (int, float)) else [float(v) for v in value]
    if len(values) != 3:
        raise ValueError(f"expected 3 channel values, got {value!r}")
    return values
