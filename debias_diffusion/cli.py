"""The ``debias-diffusion`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .argument_types import bounded_float, bounded_int, non_empty_text, seed
from .cli_arguments import (
    add_clip_models,
    add_deprecated_alias,
    add_device,
    add_dtype,
    add_named_sources,
    add_output_dir,
    add_stretch,
    add_tolerance,
    parse_arguments,
    require_flag,
)
from .error_boundary import run_guarded
from .named_arguments import parse_named_values
from .settings_arguments import (
    FieldHook,
    add_settings_arguments,
    keyword_defaults,
    settings_from_arguments,
    settings_values,
)

if TYPE_CHECKING:
    from .prominence.jobs import SamplingSettings


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code (0 ok, 2 bad input, 130 interrupted).

    Failures print one ``error: ...`` line (see :mod:`debias_diffusion.error_boundary`); ``--debug``
    or ``DEBIAS_DIFFUSION_DEBUG=1`` shows the traceback instead.
    """
    args = parse_arguments(_parser(), argv)
    return run_guarded(lambda: args.run(args), debug=args.debug)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="debias-diffusion", description="Long-prompt text encoders for Stable Diffusion."
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of a failure")
    commands = _DebugSubparsers(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    _add_convert(commands)
    _add_count_tokens(commands)
    _add_generate(commands)
    _add_evaluate_prominence(commands)
    _add_late_detail(commands)
    _add_probe_text(commands)
    _add_probe_image(commands)
    _add_shapes_world(commands)
    return parser


class _DebugSubparsers:
    """Adds ``--debug`` to every subcommand too (``debias-diffusion generate ... --debug``)."""

    def __init__(self, subparsers) -> None:
        self._subparsers = subparsers

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        parser = self._subparsers.add_parser(name, **kwargs)
        parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        return parser


POSITIVE = bounded_int(1)


def _add_convert(commands) -> None:
    p = commands.add_parser(
        "convert",
        help="convert a CLIP checkpoint to Hugging Face format",
        description=(
            "Convert a Long-CLIP .pt, an open_clip model/training checkpoint, or an OpenAI-layout "
            "state dict to a Hugging Face folder, checked against open_clip's forward."
        ),
    )
    p.add_argument("src", help="checkpoint file (.pt/.pth/.bin/.ckpt/.safetensors) or open_clip:ARCH/PRETRAINED")
    add_output_dir(p, what="output folder, written atomically", positional=True)
    add_stretch(p, what="apply knowledge-preserved stretching to N positions (e.g. 248)", old=["--stretch"])
    p.add_argument("--keep", type=bounded_int(0), default=20, help="positions KPS copies unchanged (default: 20)")
    p.add_argument("--text-only", action="store_true", help="write only the text encoder + tokenizer")
    p.add_argument("--num-heads", type=POSITIVE, help="text attention heads (default: width // 64, as OpenAI)")
    p.add_argument("--vision-num-heads", type=POSITIVE, help="image attention heads (default: width // 64)")
    p.add_argument("--hidden-act", choices=("quick_gelu", "gelu"), default="quick_gelu",
                   help="MLP activation: quick_gelu for OpenAI/Long-CLIP weights, gelu for LAION open_clip")  # fmt: skip
    add_dtype(p, default="float32", what="dtype of the saved weights")
    add_tolerance(p, default=1e-4, what="largest absolute difference allowed vs open_clip's forward")
    p.add_argument("--no-verify", action="store_true", help="skip the equivalence check against open_clip")
    p.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    p.set_defaults(run=_run_convert)


def _run_convert(args: argparse.Namespace) -> int:
    import torch

    from .conversion import convert_to_hf

    result = convert_to_hf(
        args.src,
        args.output_dir,
        stretch_to=args.stretch_to,
        keep=args.keep,
        text_only=args.text_only,
        num_heads=args.num_heads,
        vision_num_heads=args.vision_num_heads,
        hidden_act=args.hidden_act,
        dtype=getattr(torch, args.dtype),
        verify=not args.no_verify,
        tolerance=args.tolerance,
        overwrite=args.overwrite,
    )
    if args.src.startswith("open_clip:") and "/" not in args.src:
        print(
            f"warning: {args.src} names no pretrained weights (open_clip:ARCH/PRETRAINED): this converted a "
            "randomly initialised model",
            file=sys.stderr,
        )
    text = result.text
    kind = "text encoder (CLIPTextModelWithProjection)" if result.vision is None else "CLIPModel"
    print(f"wrote {kind} to {result.destination}")
    print(
        f"  text tower: width {text.width}, {text.layers} layers, {text.heads} heads, {text.context_length} positions"
    )
    if result.stretched_from:
        print(f"  stretched {result.stretched_from} -> {text.context_length} positions (KPS, keep {args.keep})")
    if result.equivalence:
        print(f"  max |difference| vs open_clip forward: {result.equivalence.worst:.2e} (float32)")
    return 0


def _add_count_tokens(commands) -> None:
    p = commands.add_parser("count-tokens", help="count a prompt's CLIP tokens and show what a limit would drop")
    p.add_argument("prompt", help="prompt text, or @FILE to read it from a file")
    context_length = p.add_argument(
        "--context-length",
        type=bounded_int(3, 1_000_000),
        default=248,
        help="the encoder's context length: token positions incl. SOT/EOT (default: 248)",
    )
    add_deprecated_alias(p, context_length, "--max-length")
    p.set_defaults(run=_run_count_tokens)


def _run_count_tokens(args: argparse.Namespace) -> int:
    from .prompt_files import read_prompt_argument
    from .tokenization import build_clip_tokenizer, count_tokens, truncate_prompt

    prompt = read_prompt_argument(args.prompt)
    tokenizer = build_clip_tokenizer(context_length=args.context_length)
    print(f"{count_tokens(tokenizer, prompt)} tokens (limit {args.context_length - 2} + SOT/EOT)")
    cut = truncate_prompt(prompt, tokenizer)
    if cut.was_truncated:
        print(cut.warning_message())
    return 0


def _template(text: str) -> str:
    """A prominence template: a built-in name, or text naming ``{objects}`` exactly once."""
    if text.count("{objects}") > 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} names {{objects}} {text.count('{objects}')} times; a template names the objects once"
        )
    return non_empty_text(text)


def _size(text: str) -> tuple[int, int]:
    from .generation import parse_size

    try:
        return parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _size_hook(what: str = "image size") -> FieldHook:
    """``--size WxH``: a settings dataclass's ``width`` and ``height`` (``None``: the model's)."""
    return FieldHook(
        ("width", "height"),
        add=lambda p: p.add_argument("--size", type=_size, metavar="WxH", help=f"{what} (default: the model's)"),
        read=lambda args: dict(zip(("width", "height"), args.size or (None, None), strict=True)),
    )


def _add_generate(commands) -> None:
    from .generation import GenerationSettings

    p = commands.add_parser(
        "generate",
        help="generate images from a (long) prompt with a long-prompt pipeline",
        description=(
            "Generate images with a DeBias SD 1.x/2.x or SDXL pipeline. Writes seed-N.png and a seed-N.json "
            "sidecar (every setting, the token count, what a long-prompt policy dropped) per image."
        ),
    )
    add_settings_arguments(p, GenerationSettings, hooks=[GENERATE_SIZE])
    add_output_dir(p, default="outputs/generate", old=["--output"])
    p.add_argument("--overwrite", action="store_true", help="replace images with the same seeds if they exist")
    p.set_defaults(run=_run_generate)


GENERATE_SIZE = _size_hook("image size, e.g. 512x512")
EVALUATOR_SIZE = _size_hook()


def _run_generate(args: argparse.Namespace) -> int:
    from .generation import GenerationSettings, generate

    settings = settings_from_arguments(GenerationSettings, args, hooks=[GENERATE_SIZE])
    for path in generate(settings, args.output_dir, overwrite=args.overwrite):
        print(f"wrote {path} (+ {path.with_suffix('.json').name})")
    return 0


def _add_evaluate_prominence(commands) -> None:
    from .conditioning import LONG_PROMPT_POLICIES
    from .generation import DEFAULT_MODEL

    p = commands.add_parser(
        "evaluate-prominence",
        help="measure how prominent each object is by its position in the prompt",
        description=(
            "Generate every ordering of each object set with each pipeline (same seeds), measure every object "
            "with a detector and write measurements (CSV/JSON), a summary report, plots and image grids. "
            "Images and measurements are cached: re-running resumes."
        ),
    )
    sets = p.add_argument("--object-sets", metavar="FILE", help="object sets, YAML or JSON (e.g. [[cat, dog, teapot], ...]); required")  # fmt: skip
    add_deprecated_alias(p, sets, "--objects")
    require_flag(p, sets)
    p.add_argument(
        "-m", "--model", default=DEFAULT_MODEL, help=f"base diffusers model for --encoder (default: {DEFAULT_MODEL})"
    )
    _add_compared_models(p)
    p.add_argument("-t", "--template", action="append", metavar="TEMPLATE", type=_template,
                   help="'list' (a cat and a dog), 'descriptive' (one sentence per object) or a string with "
                        "{objects}; repeatable (default: list)")  # fmt: skip
    p.add_argument("--max-orderings", type=POSITIVE, default=24, help="orderings per set before sampling (default: 24)")
    p.add_argument("--long-prompt", choices=LONG_PROMPT_POLICIES, default="truncate", help="default: truncate")
    _add_evaluator_arguments(p, default_output="outputs/prominence")
    p.set_defaults(run=_run_evaluate_prominence)


def _add_compared_models(p: argparse.ArgumentParser) -> None:
    """``-e/--encoder`` and ``-p/--pipeline``: the named conditions an image evaluator compares."""
    add_named_sources(p, "-e", "--encoder",
                      what="a text encoder in --model ('none' keeps the model's own), e.g. clip-l=none "
                           "longclip-l=longclip-l debias=./export/text_encoder")  # fmt: skip
    add_named_sources(p, "-p", "--pipeline", metavar="NAME=FOLDER",
                      what="a saved pipeline folder or Hub id, as it is")  # fmt: skip


def _compared_pipelines(args: argparse.Namespace, **load_options) -> dict:
    """NAME -> a function loading that pipeline, from ``--encoder`` / ``--pipeline`` (the device checked first)."""
    import functools

    from .devices import resolve_device, resolve_dtype
    from .errors import ProminenceDataError
    from .generation import load_pipeline

    args.device = resolve_device(args.device)  # before any model is loaded
    dtype = resolve_dtype(args.dtype, args.device)
    load = functools.partial(load_pipeline, torch_dtype=dtype, device=args.device, **load_options)
    pipelines = {}
    for flag, specs in (("--encoder", args.encoder), ("--pipeline", args.pipeline)):
        for name, source in parse_named_values(specs, flag, example="longclip-l=longclip-l").items():
            if name in pipelines:
                raise ProminenceDataError(f"the name {name!r} is given twice; names label the report's rows")
            model, encoder = (args.model, source) if flag == "--encoder" else (source, "none")
            pipelines[name] = functools.partial(load, model, encoder)
    if not pipelines:
        raise ProminenceDataError("name at least one --encoder NAME=SOURCE or --pipeline NAME=FOLDER to compare")
    return pipelines


def _add_evaluator_arguments(p: argparse.ArgumentParser, *, default_output: str) -> None:
    """Seeds, detector, generation, device and output flags, the same in both image evaluators."""
    from .prominence.detectors import DETECTOR_NAMES
    from .prominence.jobs import SamplingSettings

    p.add_argument("--seeds", type=seed, nargs="+", default=[0, 1, 2], help="seeds per prompt (default: 0 1 2)")
    p.add_argument("--detector", choices=(*DETECTOR_NAMES, "color"), default="owlv2", help="default: owlv2")
    p.add_argument("--detector-model", help="detector checkpoint (default: the detector's documented one)")
    p.add_argument("--threshold", type=bounded_float(0, 1), help="owlv2 score threshold (default 0.25)")
    p.add_argument("--box-threshold", type=bounded_float(0, 1), help="grounding-dino box threshold (default 0.3)")
    p.add_argument("--text-threshold", type=bounded_float(0, 1), help="grounding-dino text threshold (default 0.25)")
    p.add_argument("--sam", nargs="?", const="facebook/sam-vit-base", metavar="MODEL",
                   help="add SAM masks for mask areas (default model facebook/sam-vit-base)")  # fmt: skip
    add_settings_arguments(p, SamplingSettings, hooks=[EVALUATOR_SIZE])
    add_dtype(p)
    add_device(p)
    p.add_argument("--caveat", help="a line printed at the top of the report")
    add_output_dir(p, default=default_output)


def _run_evaluate_prominence(args: argparse.Namespace) -> int:
    from .prominence.detectors import get_detector
    from .prominence.runner import evaluate_prominence

    pipelines = _compared_pipelines(args, long_prompt=args.long_prompt)
    run = evaluate_prominence(
        pipelines,
        args.object_sets,
        detector=get_detector(args.detector, **_detector_options(args, args.device)),
        output_dir=args.output_dir,
        templates=args.template or ["list"],
        seeds=args.seeds,
        max_orderings=args.max_orderings,
        generation=_generation_options(args),
        caveat=args.caveat,
    )
    print(f"{len(run.records)} measurements ({run.generated} images generated, {run.measured} measured this run)")
    if cut := sum(not record.conditioned for record in run.records):
        print(f"{cut} object mentions were cut from their prompts by --long-prompt (left out of the metrics)")
    print(f"report: {run.report.summary}")
    return 0


def _add_late_detail(commands) -> None:
    from .conditioning import LONG_PROMPT_POLICIES
    from .generation import DEFAULT_MODEL
    from .late_detail import DEFAULT_OFFSETS

    p = commands.add_parser(
        "late-detail",
        help="measure whether a detail mentioned late in a long prompt reaches the image",
        description=(
            "Mention each target object at controlled token offsets inside neutral context (same prompt length at "
            "every offset), generate with each encoder / pipeline and their no-mention controls (same seeds), "
            "detect the target and report presence minus baseline by offset with 95%% intervals and an effective "
            "length. Images and measurements are cached: re-running resumes. See docs/late-detail.md."
        ),
    )
    p.add_argument("--items", required=True, help="targets, YAML or JSON: [red circle, {target: cat, anchor: dog}]")
    p.add_argument(
        "-m", "--model", default=DEFAULT_MODEL, help=f"base diffusers model for --encoder (default: {DEFAULT_MODEL})"
    )
    _add_compared_models(p)
    p.add_argument("--chunk", action="append", default=[], metavar="NAME",
                   help="also run NAME with the chunk policy, as 'NAME (chunk)' (repeatable)")  # fmt: skip
    p.add_argument("--long-prompt", choices=LONG_PROMPT_POLICIES, default="truncate",
                   help="policy of every named condition (default: truncate)")  # fmt: skip
    p.add_argument(
        "--offsets",
        type=bounded_int(0),
        nargs="+",
        default=list(DEFAULT_OFFSETS),
        help=f"token offsets of the mention, start token = 0 (default: {' '.join(map(str, DEFAULT_OFFSETS))})",
    )
    p.add_argument("--context", help="more context sentences: a text file, one sentence a line")
    p.add_argument("--no-builtin-context", action="store_true", help="use only --context sentences")
    p.add_argument("--total-tokens", type=POSITIVE, help="prompt length (default: the last offset's sentence ends it)")
    offset_tolerance = p.add_argument(
        "--offset-tolerance", type=bounded_int(0), default=2, metavar="TOKENS",
        help="tokens a mention may land away from its offset (default: 2)",
    )  # fmt: skip
    add_deprecated_alias(p, offset_tolerance, "--tolerance")
    p.add_argument("--attention", action="store_true",
                   help="also measure where each mention is dropped: the UNet's cross-attention on it and the "
                        "encoder's states of it (one more denoising run per mention image; report/attention.md)")  # fmt: skip
    _add_evaluator_arguments(p, default_output="outputs/late_detail")
    p.set_defaults(run=_run_late_detail)


def _generation_options(args: argparse.Namespace) -> SamplingSettings:
    """The image settings both evaluators take from the command line (each adds its own policy)."""
    from .prominence.jobs import SamplingSettings

    return settings_from_arguments(SamplingSettings, args, hooks=[EVALUATOR_SIZE])


def _run_late_detail(args: argparse.Namespace) -> int:
    from .errors import ProminenceDataError
    from .late_detail.runner import LateDetailCondition, evaluate_late_detail
    from .prominence.detectors import get_detector

    conditions = {name: LateDetailCondition(load, args.long_prompt) for name, load in _compared_pipelines(args).items()}
    for name in args.chunk:
        if name not in conditions:
            raise ProminenceDataError(f"--chunk {name}: no --encoder or --pipeline is named {name!r}")
        conditions[f"{name} (chunk)"] = LateDetailCondition(conditions[name].pipeline, "chunk")
    run = evaluate_late_detail(
        conditions,
        args.items,
        detector=get_detector(args.detector, **_detector_options(args, args.device)),
        output_dir=args.output_dir,
        offsets=args.offsets,
        context=args.context or (),
        builtin_context=not args.no_builtin_context,
        seeds=args.seeds,
        total_tokens=args.total_tokens,
        tolerance=args.offset_tolerance,
        generation=_generation_options(args),
        caveat=args.caveat,
        attention=args.attention,
    )
    print(f"{len(run.records)} images measured ({run.generated} images generated, {run.measured} measured this run)")
    for curve in run.curves:
        print(f"{curve.condition}: effective length {curve.effective_length or 'none'} (window {curve.window})")
    print(f"report: {run.report.summary}")
    if run.attention:
        print(f"attention: {run.report.summary.parent / 'attention.md'}")
    return 0


def _detector_options(args: argparse.Namespace, device: str) -> dict:
    if args.detector in ("colour", "color"):
        return {}
    options = {"device": device}
    if args.detector_model:
        options["model"] = args.detector_model
    if args.detector == "owlv2" and args.threshold is not None:
        options["threshold"] = args.threshold
    if args.detector == "grounding-dino":
        options.update(
            {
                k: v
                for k, v in (("box_threshold", args.box_threshold), ("text_threshold", args.text_threshold))
                if v is not None
            }
        )
    if args.sam:
        from .prominence.detectors import SamMasker

        options["masks"] = SamMasker(model=args.sam, device=device)
    return options


def _add_probe_text(commands) -> None:
    p = commands.add_parser(
        "probe-text",
        help="measure text encoders' prompt-order bias (TOR/TOC, 'CLIP Under the Microscope')",
        description=(
            "Build seeded multi-object captions, embed them with each encoder, and report per object position "
            "the text-based object retrieval (TOR) shares and linear-probe classification (TOC) accuracies. "
            "Writes results.json, table.md and captions.jsonl to the output folder."
        ),
    )
    add_named_sources(p, "-e", "--encoder", required=True,
                      what="a text encoder to probe: NAME=folder, .pt/.safetensors, Hub id, open_clip:ARCH/PRETRAINED "
                           "or longclip-l")  # fmt: skip
    from .text_probes import probe_text
    from .text_probes.results import ProbeSettings

    add_settings_arguments(p, ProbeSettings, defaults=keyword_defaults(probe_text, PROBE_TEXT_KEYWORDS))
    p.add_argument("--batch-size", type=POSITIVE, default=64, help="texts per forward pass (default: 64)")
    add_device(p)
    add_output_dir(p, default="outputs/probe-text")
    p.add_argument("--overwrite", action="store_true", help="replace the output folder if it is not empty")
    p.set_defaults(run=_run_probe_text)


PROBE_TEXT_KEYWORDS = {"num_captions": "captions"}  # ProbeSettings fields probe_text names otherwise


def _run_probe_text(args: argparse.Namespace) -> int:
    from .devices import resolve_device
    from .text_probes import probe_text
    from .text_probes.report import REPORT_FILES, markdown_table
    from .text_probes.results import ProbeSettings

    args.device = resolve_device(args.device)  # before any model is loaded
    values = settings_values(ProbeSettings, args)
    results = probe_text(
        parse_named_values(args.encoder, "--encoder", example="openai=openai/clip-vit-large-patch14"),
        **{PROBE_TEXT_KEYWORDS.get(name, name): value for name, value in values.items()},
        batch_size=args.batch_size,
        device=args.device,
        output_dir=args.output_dir,
        overwrite=args.overwrite,
    )
    for encoder in results.encoders:
        if encoder.truncated_captions:
            print(
                f"warning: {encoder.truncated_captions} of {results.settings.num_captions} captions were truncated "
                f"to {encoder.name}'s {encoder.context_length} tokens (longest: {encoder.max_caption_tokens})",
                file=sys.stderr,
            )
    print(markdown_table(results), end="")
    print(f"wrote {', '.join(REPORT_FILES)} to {args.output_dir}")
    return 0


def _add_probe_image(commands) -> None:
    p = commands.add_parser(
        "probe-image",
        help="measure CLIP models' object-size bias and order-sensitive matching (IOR/IOC, 'CLIP Under the Microscope')",
        description=(
            "Embed multi-object images and single-object references with each CLIP model (both towers) and report "
            "per size slot (large, small 1, ...) the image-based object retrieval (IOR) shares and linear-probe "
            "classification (IOC) accuracies, and the image-text matching accuracy with the large object named first "
            "(scenario 1) or last (scenario 2). Data: the shapes world (default) or --images/--references folders. "
            "Writes results.json, table.md and images.jsonl to the output folder."
        ),
    )
    add_clip_models(p, what="a CLIP model to probe", old=("-m", "--model"))
    p.add_argument("--images", metavar="DIR", help="folder of obj1_obj2_..png images, obj1 the large object")
    p.add_argument(
        "--references", metavar="DIR", help="folder of single-object images named OBJECT.png (with --images)"
    )
    p.add_argument("--scenes", type=POSITIVE, metavar="N", help="shapes world: number of scenes (default: 1000)")
    p.add_argument("--objects", type=POSITIVE, metavar="K",
                   help="objects per image: shapes world scenes of K objects (default: 4); with --images, keep only "
                        "images of K objects")  # fmt: skip
    p.add_argument(
        "--resolution", type=POSITIVE, metavar="PX", help="shapes world: image side in pixels (default: 224)"
    )
    p.add_argument("--reference-size", type=bounded_float(high=1, above=0), metavar="F",
                   help="shapes world: reference objects' size as a fraction of the image side (default: 0.34, the "
                        "middle of the large range)")  # fmt: skip
    from .image_probes import probe_image
    from .image_probes.results import ImageProbeSettings

    add_settings_arguments(p, ImageProbeSettings, defaults=keyword_defaults(probe_image))
    p.add_argument("--hidden-act", choices=("quick_gelu", "gelu"), default="quick_gelu",
                   help="MLP activation for checkpoint files: quick_gelu (OpenAI, Long-CLIP) or gelu (LAION open_clip)")  # fmt: skip
    p.add_argument("--num-heads", type=POSITIVE, help="checkpoint files: text attention heads (default: width // 64)")
    p.add_argument("--batch-size", type=POSITIVE, default=64, help="images or texts per forward pass (default: 64)")
    add_device(p)
    add_output_dir(p, default="outputs/probe-image")
    p.add_argument("--overwrite", action="store_true", help="replace the output folder if it is not empty")
    p.set_defaults(run=_run_probe_image)


def _run_probe_image(args: argparse.Namespace) -> int:
    from .devices import resolve_device
    from .errors import UsageError
    from .image_probes import probe_image, read_image_folder, shapes_world_data
    from .image_probes.report import REPORT_FILES, matching_table, slot_table
    from .image_probes.results import ImageProbeSettings
    from .probing.outputs import check_output_dir

    models = parse_named_values(args.clip_model, "--clip-model", example="openai=openai/clip-vit-large-patch14")
    if (args.images is None) != (args.references is None):
        raise UsageError(
            "--images and --references go together: multi-object images and their single-object references"
        )
    if args.images is not None and any(v is not None for v in (args.scenes, args.resolution, args.reference_size)):
        raise UsageError(
            "--scenes, --resolution and --reference-size are shapes-world options; they do not apply to --images"
        )
    args.device = resolve_device(args.device)  # before any model is loaded
    check_output_dir(args.output_dir, args.overwrite)  # before rendering or reading anything
    if args.images is not None:
        data = read_image_folder(args.images, args.references, objects=args.objects)
    else:
        data = shapes_world_data(
            1000 if args.scenes is None else args.scenes, 4 if args.objects is None else args.objects,
            seed=args.seed, resolution=224 if args.resolution is None else args.resolution,
            reference_size=args.reference_size, progress=True,
        )  # fmt: skip
    results = probe_image(
        models, data, **settings_values(ImageProbeSettings, args), batch_size=args.batch_size, device=args.device,
        hidden_act=args.hidden_act, num_heads=args.num_heads, output_dir=args.output_dir, overwrite=args.overwrite,
    )  # fmt: skip
    print(slot_table(results), end="")
    print()
    print(matching_table(results), end="")
    print(f"wrote {', '.join(REPORT_FILES)} to {args.output_dir}")
    return 0


def _add_shapes_world(commands) -> None:
    from .shapes_world.__main__ import DESCRIPTION, add_arguments, run

    p = commands.add_parser(
        "shapes-world", help="export a shapes-world dataset (coloured shapes with exact ground truth)",
        description=DESCRIPTION,
    )  # fmt: skip
    add_arguments(p)
    p.set_defaults(run=run)


if __name__ == "__main__":
    raise SystemExit(main())
