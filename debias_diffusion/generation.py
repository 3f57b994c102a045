"""Load a long-prompt pipeline and generate images with a JSON sidecar each (``debias-diffusion generate``)."""

from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .argument_types import MAX_SEED, bounded_float, bounded_int
from .argument_types import seed as parse_seed
from .atomic_io import atomic_save_image, atomic_write_json
from .cli_arguments import add_device, add_dtype
from .conditioning import LONG_PROMPT_POLICIES, LongPromptPolicy, check_long_prompt_policy, plan_prompt
from .devices import resolve_device
from .errors import CheckpointError, ModelNotFoundError, OutputExistsError, PromptError, SettingError
from .loading import missing_model_error
from .output_lock import locked_output
from .prompt_files import read_prompt_argument
from .settings_arguments import flag, no_flag, shared_flag
from .weight_checks import check_pipeline_weights

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_ENCODER = "longclip-l"
KEEP_MODEL_ENCODER = "none"
MAX_SIDE = 16384
MAX_IMAGES = 100_000  # per run: every target is checked before the model loads
DTYPES = ("float32", "float16", "bfloat16")


@dataclass
class GenerationSettings:
    """Every knob of one ``generate`` run; written into each image's sidecar.

    Args:
        prompt: the text to draw (any length: see ``long_prompt``).
        negative_prompt: what to steer away from, or ``None``.
        model: a diffusers SD / SDXL pipeline folder or Hub id.
        encoder: the long text encoder swapped in (anything ``load_text_encoder`` reads, ``"longclip-l"``, or
            ``"none"`` to keep the model's).
        steps: denoising steps (at least 1).
        guidance_scale: classifier-free guidance scale.
        seed: the first image's seed; image ``i`` uses ``seed + i``.
        width, height: image size in pixels (multiples of the latent scale); ``None``: the model's default.
        num_images: how many images, one seed each.
        long_prompt: prompts longer than the encoder reads: ``"truncate"``, ``"chunk"`` or ``"error"``.
        dtype: ``"float32"``, ``"float16"`` or ``"bfloat16"``; ``None``: float16 on CUDA, float32 elsewhere.
        device: ``"cuda"``, ``"cpu"``, ...; ``None``: CUDA when available.
        extra: free-form facts recorded in every sidecar (not passed to the pipeline).
    """

    prompt: str = field(metadata=flag("prompt text, or @FILE to read it from a file", positional=True,
                                      read=read_prompt_argument))  # fmt: skip
    negative_prompt: str | None = field(
        default=None,
        metadata=flag("negative prompt text, or @FILE", "-n", "--negative-prompt", read=read_prompt_argument),
    )
    model: str = field(default=DEFAULT_MODEL, metadata=flag("diffusers pipeline folder or Hub id", "-m", "--model"))
    encoder: str = field(
        default=DEFAULT_ENCODER,
        metadata=flag("long text encoder: folder, .pt/.safetensors, Hub id, 'longclip-l' (Long-CLIP-L, default) "
                      "or 'none' to keep the model's own encoder", "-e", "--encoder", default_in_help=False),
    )  # fmt: skip
    steps: int = field(default=30, metadata=flag("denoising steps", type=bounded_int(1)))
    guidance_scale: float = field(
        default=7.5, metadata=flag("classifier-free guidance scale; 1 or less turns it off", type=bounded_float(0))
    )
    seed: int = field(default=0, metadata=flag("seed of the first image; image i uses seed + i", type=parse_seed))
    width: int | None = field(
        default=None, metadata=flag("image width in pixels (the CLI's --size WxH)", type=bounded_int(1, MAX_SIDE))
    )
    height: int | None = field(
        default=None, metadata=flag("image height in pixels (the CLI's --size WxH)", type=bounded_int(1, MAX_SIDE))
    )
    num_images: int = field(default=1, metadata=flag("number of images", type=bounded_int(1, MAX_IMAGES)))
    long_prompt: LongPromptPolicy = field(
        default="truncate",
        metadata=flag("prompts longer than the encoder: truncate at a sentence, chunk, or error",
                      choices=LONG_PROMPT_POLICIES),
    )  # fmt: skip
    dtype: str | None = field(default=None, metadata=shared_flag(add_dtype))
    device: str | None = field(default=None, metadata=shared_flag(add_device))
    extra: dict[str, Any] = field(default_factory=dict, metadata=no_flag("Python only: recorded in each sidecar"))


def parse_size(text: str) -> tuple[int, int]:
    """``"768x512"`` -> ``(768, 512)`` (width, height); ``"512"`` -> ``(512, 512)``."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (1, 2) or any(number <= 0 for number in numbers):
        raise SettingError(f"size must be WIDTHxHEIGHT in pixels, e.g. 512x512 or 768x512; got {text!r}")
    if max(numbers) > MAX_SIDE:
        raise SettingError(f"size {text!r} is larger than {MAX_SIDE} pixels a side; no Stable Diffusion model fits it")
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
    try:
        class_name = json.loads(index.read_text(encoding="utf-8")).get("_class_name", "")
    except (ValueError, AttributeError) as err:  # bad JSON, not UTF-8, or not a JSON object
        raise CheckpointError(
            f"{index} is not a valid diffusers model_index.json ({err}); re-save the pipeline or download it again"
        ) from None
    if not isinstance(class_name, str):
        raise CheckpointError(f"{index}: _class_name must be a pipeline class name, got {class_name!r}")
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

    Args:
        model: a diffusers SD 1.x / 2.x / SDXL pipeline (Hub id or folder).
        encoder: the long text encoder (anything ``load_text_encoder`` reads, ``"longclip-l"``, or ``"none"``).
        torch_dtype: the pipeline's dtype.
        device: where it runs.
        long_prompt: the default long-prompt policy (``"truncate"``, ``"chunk"`` or ``"error"``).
    """
    from .pipeline_components import use_long_text_encoder
    from .pipelines import DeBiasStableDiffusionPipeline, DeBiasStableDiffusionXLPipeline

    kind = model_kind(model)
    cls = DeBiasStableDiffusionXLPipeline if kind == "sdxl" else DeBiasStableDiffusionPipeline
    try:
        pipe = cls.from_pretrained(model, torch_dtype=torch_dtype, long_prompt=long_prompt)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        if not Path(model).is_dir():
            raise missing_model_error(model, err) from err
        raise CheckpointError(
            f"the pipeline folder {model} cannot be loaded ({type(err).__name__}: {_first_line(err)}); a component "
            "is missing or corrupted: re-save the pipeline or download it again"
        ) from err
    if encoder.lower() != KEEP_MODEL_ENCODER:
        use_long_text_encoder(pipe, encoder)
    check_pipeline_weights(pipe)  # NaN weights would make black images and exit 0
    return pipe.to(device)


def generate(settings: GenerationSettings, output: str | Path, *, overwrite: bool = False, pipe=None) -> list[Path]:
    """Generate ``settings.num_images`` images (seeds ``seed``, ``seed + 1``, ...) into ``output``.

    Each image is ``seed-<seed>.png`` beside ``seed-<seed>.json`` holding every setting, the token
    count and what the long-prompt policy did. Files are written atomically, under the output
    folder's lock (a second run on the same folder fails with ``OutputLockedError``); an existing
    image is never replaced unless ``overwrite``: the run refuses before loading anything.

    Args:
        settings: the prompt and every knob; checked before any model is loaded.
        output: the output folder (created if needed).
        overwrite: replace images (and sidecars) of the same seeds.
        pipe: an already loaded pipeline to reuse (``settings.model`` / ``encoder`` are then only recorded).

    Raises:
        PromptError, SettingError, DeviceError: bad settings. OutputExistsError: an image would be replaced.
        OutputLockedError: another run is writing ``output``.
    """
    check_generation_settings(settings)
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise OutputExistsError(f"-o/--output-dir {output} is a file, not a folder; choose a folder")
    with locked_output(output):
        return _generate_locked(settings, output, overwrite, pipe)


def check_generation_settings(settings: GenerationSettings) -> None:
    """Refuse settings that cannot make the asked-for images (raises PromptError / SettingError / DeviceError)."""
    check_long_prompt_policy(settings.long_prompt)
    for name, text in (("prompt", settings.prompt), ("negative prompt", settings.negative_prompt)):
        if text is not None and not isinstance(text, str):
            raise PromptError(f"the {name} must be a string, got {type(text).__name__}")
    if not settings.prompt.strip():
        raise PromptError("the prompt is empty or only whitespace; give some text to draw")
    for name in ("steps", "num_images", "seed"):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingError(f"{name} must be a whole number, got {value!r}")
    if settings.steps < 1 or settings.num_images < 1:
        raise SettingError(f"steps and num_images must be at least 1, got {settings.steps} and {settings.num_images}")
    if settings.num_images > MAX_IMAGES:
        raise SettingError(f"num_images must be at most {MAX_IMAGES} per run, got {settings.num_images}; split the run")
    last_seed = settings.seed + settings.num_images - 1
    if settings.seed < 0 or last_seed > MAX_SEED:
        raise SettingError(f"seeds must lie in 0..2**64-1; got {settings.seed}..{last_seed}")
    guidance = settings.guidance_scale
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not math.isfinite(guidance):
        raise SettingError(f"guidance_scale must be a finite number, got {guidance!r}")
    if guidance < 0:
        raise SettingError(f"guidance_scale must be at least 0 (1 or less turns guidance off), got {guidance}")
    for name in ("width", "height"):
        value = getattr(settings, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_SIDE):
            raise SettingError(f"{name} must be a whole number of pixels in 1..{MAX_SIDE}, got {value!r}")
    if settings.dtype is not None and settings.dtype not in DTYPES:
        raise SettingError(f"dtype must be float32, float16 or bfloat16, got {settings.dtype!r}")
    resolve_device(settings.device)


def _generate_locked(settings: GenerationSettings, output: Path, overwrite: bool, pipe) -> list[Path]:
    from tqdm.auto import tqdm

    seeds = [settings.seed + index for index in range(settings.num_images)]
    targets = [output / f"seed-{seed}.png" for seed in seeds]
    existing = [path for target in targets for path in (target, target.with_suffix(".json")) if path.exists()]
    if existing and not overwrite:
        raise OutputExistsError(
            f"{existing[0]} already exists ({len(existing)} files of this run's seeds would be replaced); pass "
            "--overwrite, or choose another -o/--output-dir or --seed"
        )
    device = resolve_device(settings.device)
    dtype_name = settings.dtype or ("float16" if device.startswith("cuda") else "float32")
    if pipe is None:
        pipe = load_pipeline(settings.model, settings.encoder, torch_dtype=getattr(torch, dtype_name), device=device)
    width, height = _checked_size(pipe, settings.width, settings.height)
    trained_steps = getattr(pipe.scheduler.config, "num_train_timesteps", None)
    if isinstance(trained_steps, int) and settings.steps > trained_steps:
        raise SettingError(f"steps must be at most {trained_steps} for this model's scheduler, got {settings.steps}")
    plan = plan_prompt(settings.prompt, pipe.tokenizer, settings.long_prompt)  # fails early under "error"
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


def _first_line(err: BaseException) -> str:
    return (str(err).strip() or type(err).__name__).splitlines()[0]


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


__all__ = ["GenerationSettings", "check_generation_settings", "generate", "load_pipeline", "model_kind", "parse_size"]
