"""``python -m train_encoder {train,eval,export}`` (also under ``accelerate launch -m train_encoder ...``).

Bad input exits with status 2 and an ``error: ...`` line; nothing is written then. ``--debug`` (or
``DEBIAS_DIFFUSION_DEBUG=1``) shows the traceback instead (see :mod:`debias_diffusion.error_boundary`).
"""

from __future__ import annotations

import argparse
import logging
import typing
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
import yaml

from debias_diffusion.argument_types import bounded_int, seed
from debias_diffusion.atomic_io import atomic_write_json
from debias_diffusion.cli_arguments import (
    add_clip_models,
    add_deprecated_alias,
    add_device,
    add_dtype,
    add_named_sources,
    add_output_dir,
    add_stretch,
    parse_arguments,
)
from debias_diffusion.devices import resolve_device
from debias_diffusion.error_boundary import run_guarded
from debias_diffusion.errors import UsageError
from debias_diffusion.named_arguments import parse_named_values

from .config import config_keys, deprecated_keys, load_config, parse_override
from .file_names import DRIFT_FILE

__all__ = ["build_parser", "main"]

# Config keys spelled as in every subcommand (--model is a diffusers pipeline in debias-diffusion): flags, metavar.
FLAG_SPELLINGS = {"model": (("--clip-model",), "SOURCE"), "output_dir": (("-o", "--output-dir"), "DIR")}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``train`` / ``eval`` / ``export``; returns the exit status (0 ok, 2 bad input, 130 interrupted)."""
    args = parse_arguments(build_parser(), argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_guarded(lambda: args.run(args), debug=args.debug)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train-encoder", description="Train, evaluate and export long-context CLIP encoders."
    )
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of a failure")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train", parents=[debug], help="fine-tune a CLIP model (DeBias-CLIP / Long-CLIP / FIX-CLIP recipes)"
    )
    train.add_argument(
        "--config",
        type=Path,
        help="YAML config path, or a bundled config name (debias-vit-b-16, debias-vit-l-14, long-clip-vit-l-14, "
        "fix-clip-vit-b-16, fix-clip-vit-l-14, tiny); defaults otherwise",
    )
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key (repeatable); values are YAML: null, true, 1e-5, [a, b]")  # fmt: skip
    train.add_argument("--resume", metavar="CHECKPOINT", help="'latest', a checkpoint folder or a run folder")
    train.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    options = train.add_argument_group("config keys (same as --set KEY=VALUE)")
    kinds = dict(config_keys())
    for key, kind in kinds.items():
        plain = _flag(key)
        flags, metavar = FLAG_SPELLINGS.get(key, ((plain,), "VALUE"))
        action = options.add_argument(
            *flags, dest=f"key__{key}", default=argparse.SUPPRESS, metavar=metavar, **_arity(kind)
        )
        if plain not in flags:
            add_deprecated_alias(options, action, plain)
    for old, new in deprecated_keys().items():  # --fix-clip-groups: still read, with a DeprecationWarning
        options.add_argument(
            _flag(old), dest=f"key__{old}", default=argparse.SUPPRESS, help=argparse.SUPPRESS, **_arity(kinds[new])
        )
    train.set_defaults(run=_train)

    evaluate = commands.add_parser(
        "eval", parents=[debug], help="retrieval recalls (under caption variants) and hidden-state drift"
    )
    add_clip_models(evaluate, what="a CLIP model to evaluate", old=("--model",))
    add_named_sources(evaluate, "--dataset", metavar="NAME=ROOT", required=True,
                      what="an evaluation set (urban1k, docci, dci, long-dci, sharegpt4v-1k, coco, flickr30k)")  # fmt: skip
    variants = evaluate.add_argument(
        "--caption-variants", action="append", metavar="NAME",
        help="caption variants retrieved against the same images: full, first_only, ... (repeatable; default: full)",
    )  # fmt: skip
    add_deprecated_alias(evaluate, variants, "--probe")
    add_output_dir(evaluate, required=False, what="write results.json / results.md (and drift.json) here")
    evaluate.add_argument("--cache-dir", type=Path, help="embedding cache folder")
    evaluate.add_argument(
        "--reference",
        metavar="SOURCE",
        default="auto",
        help="report per-position hidden-state drift vs this text encoder; 'auto' (default): each train_encoder "
        "export vs the checkpoint it was trained from; 'none': no drift",
    )
    evaluate.add_argument(
        "--drift-captions", type=bounded_int(1), default=1000, help="captions of the first dataset used for drift"
    )
    add_stretch(evaluate, what="KPS-stretch shorter models to this many positions (e.g. 248)")
    evaluate.add_argument("--batch-size", type=bounded_int(1), default=64)
    evaluate.add_argument("--num-workers", type=bounded_int(0), default=4)
    add_device(evaluate)
    evaluate.add_argument("--seed", type=seed, default=0, help="seed of the random caption variants (default: 0)")
    evaluate.set_defaults(run=_eval)

    export = commands.add_parser(
        "export", parents=[debug], help="export a checkpoint as Hugging Face folders (clip/, text_encoder/)"
    )
    export.add_argument(
        "checkpoint", help="a checkpoint folder (OUTPUT/checkpoints/step-N) or a run folder (its latest)"
    )
    add_output_dir(export, what="destination folder", old=["--output"])
    add_dtype(export, default="float32", what="dtype of the saved weights")
    export.add_argument("--overwrite", action="store_true")
    export.add_argument(
        "--license", default="other", help="Hub licence tag for the model card (the base model's; default: other)"
    )
    export.add_argument(
        "--push-to-hub", metavar="REPO", help="after exporting, upload the folder to this Hub repo (USER/NAME)"
    )
    export.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo private")
    export.set_defaults(run=_export)
    return parser


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _arity(kind: object) -> dict:
    """A boolean key's flag may stand alone (``--freeze-text`` = true)."""
    return {"nargs": "?", "const": "true"} if bool in typing.get_args(kind) or kind is bool else {}


def _train(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    from .trainer import train

    # --set values are YAML; explicit flags stay raw strings (TrainConfig converts them), so paths
    # with braces or colons need no quoting. Explicit flags win over --set.
    flags = {name.removeprefix("key__"): value for name, value in vars(args).items() if name.startswith("key__")}
    with warnings.catch_warnings():
        warnings.simplefilter("default", DeprecationWarning)  # deprecated config keys: say so on stderr
        config = load_config(args.config, {**dict(map(parse_override, args.overrides)), **flags})
    if args.print_config:
        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return 0
    result = train(config, resume=args.resume)
    if not PartialState().is_main_process:
        return 0
    print(f"trained {result.state.step} steps; last checkpoint: {result.checkpoint}")
    if result.export_dir is not None:
        print(f"exported: {result.export_dir}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from .evaluation import CAPTION_VARIANT_NAMES, DATASET_READERS, evaluate, read_eval_set

    models = parse_named_values(args.clip_model, "--clip-model", example="debias=exports/debias-clip-l/clip")
    dataset_roots = parse_named_values(args.dataset, "--dataset", example="urban1k=data/Urban1k")
    unknown = [name for name in dataset_roots if name.lower() not in DATASET_READERS]
    if unknown:
        raise UsageError(f"--dataset {unknown[0]!r}: unknown evaluation set; known: {', '.join(DATASET_READERS)}")
    variants = args.caption_variants or ["full"]
    bad = [name for name in variants if name not in CAPTION_VARIANT_NAMES]
    if bad:
        raise UsageError(
            f"--caption-variants {bad[0]!r}: unknown caption variant; known: {', '.join(CAPTION_VARIANT_NAMES)}"
        )
    args.device = resolve_device(args.device)  # before any model is loaded
    datasets = [read_eval_set(name, root) for name, root in dataset_roots.items()]
    drift = _drift(models, args, captions=list(datasets[0].captions[: args.drift_captions]))
    if drift and args.output_dir is not None:
        atomic_write_json(Path(args.output_dir) / DRIFT_FILE, {"models": drift})
    results = evaluate(
        models,
        datasets,
        variants,
        batch_size=args.batch_size,
        device=args.device,
        cache_dir=args.cache_dir,
        output_dir=None if args.output_dir is None else Path(args.output_dir),
        stretch_to=args.stretch_to,
        num_workers=args.num_workers,
        seed=args.seed,
    )
    print(results.markdown(), end="")
    return 0


def _drift(models: dict[str, str], args: argparse.Namespace, *, captions: list[str]) -> dict[str, dict]:
    """Hidden-state drift of each model vs ``--reference`` (or, with 'auto', vs its recorded training source)."""
    from .evaluation import recorded_source, text_drift

    drift = {}
    for name, source in models.items():
        reference = {"none": None, "auto": recorded_source(source)}.get(args.reference.lower(), args.reference)
        if reference is None:
            continue
        report = text_drift(
            source, reference, captions, stretch_to=args.stretch_to, batch_size=args.batch_size, device=args.device
        )
        drift[name] = {"reference": reference, **report}
        print(f"{name}: mean cosine to {reference} over positions 0-76: {report['mean_cosine_first_77']:.4f}")
    return drift


def _export(args: argparse.Namespace) -> int:
    from .checkpointing import resolve_checkpoint
    from .export import export_checkpoint
    from .hub_upload import check_can_push, push_to_hub

    if args.push_to_hub:
        check_can_push(args.push_to_hub)  # before the export, which can take minutes
    checkpoint = resolve_checkpoint(args.checkpoint)
    result = export_checkpoint(
        checkpoint,
        Path(args.output_dir),
        dtype=getattr(torch, args.dtype),
        overwrite=args.overwrite,
        license=args.license,
    )
    print(f"exported {checkpoint} (step {result.metadata['step']}):")
    print(f"  CLIPModel:    {result.clip}")
    print(f"  text encoder: {result.text_encoder}")
    print(f"  model card:   {result.destination / 'README.md'}")
    if args.push_to_hub:
        print(f"pushed to {push_to_hub(result.destination, args.push_to_hub, private=args.private)}")
    return 0
