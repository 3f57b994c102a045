"""Load a long-prompt pipeline and generate images with a JSON sidecar each (``debias-diffusion generate``)."""

from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .atomic_io import atomic_save_image, atomic_write_json
from .conditioning import LongPromptPolicy, check_long_prompt_policy, plan_prompt
from .errors import ModelNotFoundError, OutputExistsError, PromptError
from .loading import missing_model_error
from .weight_checks import check_pipeline_weights

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_ENCODER = "longclip-l"
KEEP_MODEL_ENCODER = "none"


@dataclass
class GenerationSettings:
    """Every knob of one ``generate`` run; written into each image's sidecar."""

    prompt: str
    negative_prompt: str | None = None
    model: str = DEFAULT_MODEL
    encoder: str = DEFAULT_ENCODER
    steps: int = 30
    guidance_scale: float = 7.5
    seed: int = 0
    width: int | None = None
    height: int | None = None
    num_images: int = 1
    long_prompt: LongPromptPolicy = "truncate"
    dtype: str | None = None
    device: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def parse_size(text: str) -> tuple[int, int]:
    """``"768x512"`` -> ``(768, 512)`` (width, height); ``"512"`` -> ``(512, 512)``."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (1, 2) or any(number <= 0 for number in numbers):
        raise ValueError(f"size must be WIDTHxHEIGHT in pixels, e.g. 512x512 or 768x512; got {text!r}")
    return (numbers[0], numbers[-1])


def model_kind(model: str) -> str:
    """``"sdxl"`` or ``"sd"`` from a pipeline folder's or Hub repo's ``model_index.json``."""
    path = Path(model)
    if path.is_dir():
        index = path / "model_index.json"
        if not index.is_file():
            raise ModelNotFoundError(f"{path} has no model_index.json: not a diffusers pipeline folder")
    elif path.exists() or len(str(model).split("/")) != 2:
        raise ModelNotFoundError(
            f"{model!r} is neither a diffusers pipeline folder nor a Hub id (owner/name), e.g. {DEFAULT_MODEL}"
        )
    else:
        from huggingface_hub import hf_hub_download

        try:
            index = Path(hf_hub_download(model, "model_index.json"))
        except Exception as err:  # offline and not cached, unknown repo, no network
            raise missing_model_error(model, err) from err
    class_name = json.loads(index.read_text()).get("_class_name", "")
    return "sdxl" if "XL" in class_name else "sd"


def load_pipeline(
    model: str = DEFAULT_MODEL,
    encoder: str = DEFAULT_ENCODER,
    *,
    torch_dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    long_prompt: LongPromptPolicy = "truncate",
):
    """A DeBias SD or SDXL pipeline for ``model`` with ``encoder`` swapped in (``"none"``: keep the model's).

    For SDXL the long encoder replaces CLIP-L and OpenCLIP-bigG is stretched to match (KPS).
    """
    from .pipeline_components import use_long_text_encoder
    from .pipelines import DeBiasStableDiffusionPipeline, DeBiasStableDiffusionXLPipeline

    kind = model_kind(model)
    cls = DeBiasStableDiffusionXLPipeline if kind == "sdxl" else DeBiasStableDiffusionPipeline
    try:
        pipe = cls.from_pretrained(model, torch_dtype=torch_dtype, long_prompt=long_prompt)
    except OSError as err:
        raise missing_model_error(model, err) from err
    if encoder.lower() != KEEP_MODEL_ENCODER:
        use_long_text_encoder(pipe, encoder)
    check_pipeline_weights(pipe)  # NaN weights would make black images and exit 0
    return pipe.to(device)


def generate(settings: GenerationSettings, output: str | Path, *, overwrite: bool = False, pipe=None) -> list[Path]:
    """Generate ``settings.num_images`` images (seeds ``seed``, ``seed + 1``, ...) into ``output``.

    Each image is ``seed-<seed>.png`` beside ``seed-<seed>.json`` holding every setting, the token
    count and what the long-prompt policy did. Files are written atomically; existing ones are
    kept unless ``overwrite``. ``pipe`` reuses an already loaded pipeline.
    """
    from tqdm.auto import tqdm

    check_long_prompt_policy(settings.long_prompt)
    if settings.num_images < 1 or settings.steps < 1:
        raise ValueError("num_images and steps must be at least 1")
    output = Path(output)
    seeds = [settings.seed + index for index in range(settings.num_images)]
    targets = [output / f"seed-{seed}.png" for seed in seeds]
    existing = [str(path) for path in targets if path.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{existing[0]} already exists; pass --overwrite or choose another --output / --seed")
    device = settings.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype_name = settings.dtype or ("float16" if device.startswith("cuda") else "float32")
    if pipe is None:
        pipe = load_pipeline(settings.model, settings.encoder, torch_dtype=getattr(torch, dtype_name), device=device)
    width, height = _checked_size(pipe, settings.width, settings.height)
    plan = plan_prompt(settings.prompt, pipe.tokenizer, settings.long_prompt)  # fails early under "error"
    output.mkdir(parents=True, exist_ok=True)
    record = asdict(settings) | {"width": width, "height": height, "dtype": dtype_name, "device": device}
    record |= {"prompt_tokens": plan.token_count, "encoder_tokens": plan.capacity, "segments": list(plan.segments)}
    if plan.truncation is not None:
        record |= {"truncated": True, "dropped_text": plan.truncation.dropped}
    record["versions"] = _versions()
    pipe.set_progress_bar_config(leave=False)
    for seed, target in tqdm(list(zip(seeds, targets, strict=True)), desc="images", unit="image"):
        image = pipe(
            settings.prompt,
            negative_prompt=settings.negative_prompt,
            num_inference_steps=settings.steps,
            guidance_scale=settings.guidance_scale,
            width=width,
            height=height,
            generator=torch.Generator("cpu").manual_seed(seed),
            long_prompt=settings.long_prompt,
        ).images[0]
        atomic_save_image(target, image)
        atomic_write_json(target.with_suffix(".json"), record | {"seed": seed, "image": target.name})
    return targets


def _checked_size(pipe, width: int | None, height: int | None) -> tuple[int, int]:
    factor = math.lcm(8, pipe.vae_scale_factor)  # the stock pipelines also ask for multiples of 8
    default = pipe.unet.config.sample_size * pipe.vae_scale_factor
    width, height = width or default, height or default
    if width % factor or height % factor or width <= 0 or height <= 0:
        raise PromptError(
            f"image size {width}x{height} is not made of whole latent pixels: width and height must be positive "
            f"multiples of {factor} (e.g. {default}x{default})"
        )
    return width, height


def _versions() -> dict[str, str]:
    import diffusers
    import transformers

    from . import __version__

    return {
        "debias_diffusion": __version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


__all__ = ["GenerationSettings", "generate", "load_pipeline", "model_kind", "parse_size"]
