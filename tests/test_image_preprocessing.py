"""CLIP image preprocessing equals open_clip's for images of every PIL mode (files and objects)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from open_clip.transform import image_transform as open_clip_transform
from PIL import Image

from debias_diffusion.image_preprocessing import ImagePreprocessing, image_transform, load_image

SIZE = 32
MODES = ("RGB", "RGBA", "P", "PA", "L", "LA", "1", "I", "I;16", "F", "CMYK", "YCbCr", "HSV", "RGBX")
# Modes whose pixels change when converted to RGB before the resize (nearest-neighbour palette
# resize, premultiplied alpha): these make the order of the steps matter.
ORDER_SENSITIVE = ("RGBA", "P", "LA", "I;16")


def image_in_mode(mode: str, size: tuple[int, int] = (53, 41), seed: int = 0) -> Image.Image:
    """A noisy, non-square image in ``mode`` (a varying alpha channel where there is one)."""
    rng = np.random.default_rng(seed)
    rgba = rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
    rgba[..., 3] = np.linspace(0, 255, size[0], dtype=np.uint8)[None, :]
    base = Image.fromarray(rgba, "RGBA")
    if mode == "P":
        return base.convert("RGB").quantize(64)
    if mode == "PA":
        return base.convert("RGB").quantize(64).convert("PA")
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (size[1], size[0]), dtype=np.uint16))
    if mode in ("I", "F"):
        return Image.fromarray(rgba[..., 0].astype(np.int32 if mode == "I" else np.float32) * 3, mode)
    if mode in ("CMYK", "YCbCr", "HSV", "RGBX"):
        return base.convert("RGB").convert(mode)
    return base.convert(mode)


@pytest.mark.parametrize("mode", MODES)
def test_eval_transform_equals_open_clip_for_every_mode(mode):
    image = image_in_mode(mode)
    assert image.mode == mode
    ours = image_transform(ImagePreprocessing(SIZE))(image)
    reference = open_clip_transform(SIZE, is_train=False)(image)
    assert ours.shape == reference.shape == (3, SIZE, SIZE)
    assert torch.equal(ours, reference)


@pytest.mark.parametrize("mode", MODES)
def test_train_transform_equals_open_clip_for_every_mode(mode):
    image = image_in_mode(mode, seed=1)
    torch.manual_seed(7)
    ours = image_transform(ImagePreprocessing(SIZE), train=True)(image)
    torch.manual_seed(7)
    reference = open_clip_transform(SIZE, is_train=True)(image)
    assert torch.equal(ours, reference)


@pytest.mark.parametrize("mode", ORDER_SENSITIVE)
def test_converting_before_the_resize_would_differ(mode):
    """The order matters for these modes: the test above would catch a convert-first transform."""
    image = image_in_mode(mode)
    convert_first = open_clip_transform(SIZE, is_train=False)(image.convert("RGB"))
    assert not torch.equal(convert_first, image_transform(SIZE)(image))


@pytest.mark.parametrize(("mode", "file_format"), [("RGBA", "PNG"), ("P", "PNG"), ("LA", "PNG"), ("L", "PNG"),
                                                   ("I;16", "PNG"), ("CMYK", "TIFF"), ("P", "GIF")])  # fmt: skip
def test_loaded_files_keep_their_mode_and_match_open_clip(mode, file_format, tmp_path):
    path = tmp_path / f"image.{file_format.lower()}"
    image_in_mode(mode).save(path, format=file_format)
    loaded = load_image(path)
    assert loaded.mode == Image.open(path).mode
    with Image.open(path) as reference_image:
        reference = open_clip_transform(SIZE, is_train=False)(reference_image)
    assert torch.equal(image_transform(SIZE)(loaded), reference)
    from_bytes = load_image(path.read_bytes(), name="in memory")
    assert torch.equal(image_transform(SIZE)(from_bytes), reference)


def test_multi_frame_file_is_released_after_loading(tmp_path):
    path = tmp_path / "frames.gif"
    first, second = image_in_mode("P", seed=2), image_in_mode("P", seed=3)
    first.save(path, save_all=True, append_images=[second])
    loaded = load_image(path)
    assert getattr(loaded, "fp", None) is None
    with Image.open(path) as reference_image:
        reference = open_clip_transform(SIZE, is_train=False)(reference_image)
    assert torch.equal(image_transform(SIZE)(loaded), reference)


def test_palette_bytes_are_decoded_in_their_mode():
    palette = io.BytesIO()
    Image.new("P", (4, 4), 3).save(palette, format="PNG")
    image = load_image(palette.getvalue())
    assert image.mode == "P"
    assert image_transform(8)(image).shape == (3, 8, 8)


@pytest.mark.parametrize("resize_size", [None, 40])
def test_clip_image_processor_reads_back_as_the_same_preprocessing(resize_size, tmp_path):
    from transformers import CLIPImageProcessor

    from debias_diffusion.image_preprocessing import clip_image_processor

    preprocessing = ImagePreprocessing(SIZE, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3), resize_size=resize_size)
    clip_image_processor(preprocessing).save_pretrained(tmp_path)
    assert ImagePreprocessing.from_source(CLIPImageProcessor.from_pretrained(tmp_path)) == preprocessing
