"""``TrainConfig``: every training knob with a default, loaded from YAML with ``key=value`` overrides.

A config file is a YAML mapping of field names (see ``train_encoder/configs/``); a recipe's own
settings are one nested mapping (``fix_clip: {groups: 2, ...}``), whose keys are also reachable
with a dot (``--set fix_clip.groups=2``, ``--fix-clip.groups 2``). Overrides (``--set lr=1e-5`` or
``--lr 1e-5`` on the command line) are parsed as YAML values, so ``null``, ``true`` and lists work;
numeric strings such as ``1e-6`` (which YAML 1.1 reads as text) are accepted for numbers. Every
value is checked when the config is built; a bad one raises :class:`ConfigError` naming the key,
the value and what is allowed. The flat ``fix_clip_*`` keys of earlier releases still load, with a
``DeprecationWarning`` naming the nested spelling.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from debias_diffusion.atomic_io import atomic_write_text
from debias_diffusion.clip_constants import LONG_CLIP_CONTEXT_LENGTH

from .data.records import FORMATS
from .errors import ConfigError
from .fix_clip.settings import FixClipSettings
from .recipes import get_recipe, recipe_names

__all__ = [
    "DATA_FORMATS",
    "MIXED_PRECISION",
    "TRACKERS",
    "TrainConfig",
    "bundled_configs",
    "config_keys",
    "deprecated_keys",
    "field_names",
    "load_config",
    "parse_override",
    "resolved_data_format",
    "save_config",
]

DATA_FORMATS = (*FORMATS, "shards")
MIXED_PRECISION = ("no", "fp16", "bf16")
LR_SCHEDULES = ("cosine", "constant")
OPTIMIZER_IMPLS = ("default", "foreach", "fused")
HIDDEN_ACTS = ("quick_gelu", "gelu")
#: Nested settings that belong to one recipe (set with another recipe, they must be the defaults).
RECIPE_SETTINGS = {"fix_clip": "fix-clip"}
#: Trackers accelerate's ``log_with`` knows; each needs its package installed.
TRACKERS = ("tensorboard", "wandb", "comet_ml", "aim", "mlflow", "clearml", "dvclive", "swanlab", "trackio")


@dataclass
class TrainConfig:
    """All knobs of a training run. Defaults follow the DeBias-CLIP / Long-CLIP recipes (REFERENCE §1-2)."""

    # --- model -------------------------------------------------------------------------------------
    model: str = "openai/clip-vit-base-patch16"
    """Any CLIP source: HF folder or Hub id, OpenAI-layout / Long-CLIP ``.pt``, ``open_clip:ARCH/TAG``."""
    hidden_act: str = "quick_gelu"
    """Activation for checkpoint files (OpenAI weights: quick_gelu; LAION open_clip weights: gelu)."""
    stretch_to: int | None = LONG_CLIP_CONTEXT_LENGTH
    """KPS-stretch a shorter position table to this length (null: keep the source's length)."""
    keep: int = 20
    """Position rows copied by KPS and frozen during training (Long-CLIP's split)."""
    logit_scale: float | None = 100.0
    """Reset the logit scale multiplier to this value (Long-CLIP: 100); null keeps the source's."""
    freeze_text: bool = False
    freeze_vision: bool = False
    gradient_checkpointing: bool = False
    """Recompute each layer's activations in the backward (less memory, about a third more compute)."""
    lean_activations: bool = True
    """The MLPs keep only fc1's output for the backward (same values and gradients; less activation memory)."""
    recompute_mlp: bool = False
    """Also recompute fc1 in the backward instead of keeping its output (one more matmul per MLP; less memory)."""
    compile_towers: bool = False
    """``torch.compile`` the vision and text towers (not the loss, not the PCA); the first steps compile."""
    compile_backend: str = "inductor"
    """The ``torch.compile`` backend for ``compile_towers`` (``aot_eager``: traced but not fused, needs no C++ compiler)."""

    # --- recipe and loss ---------------------------------------------------------------------------
    recipe: str = "debias"
    short_weight: float | None = None
    """λ in ``L = λ·L_short + (1-λ)·L_long``; null: the recipe's (debias 0.1, long-clip 0.5; fix-clip 0.5, where
    its loss is ``2·(λ·L_short + (1-λ)·L_long) + Σ ω_i·L_i``)."""
    pca_components: int | None = None
    """Principal components of the image features for the short branch; null: the recipe's; 0: no PCA."""
    label_smoothing: float = 0.1
    distill_weight: float = 0.0
    """Weight of the SD-compatibility term (hidden states vs the frozen source on 77 positions); 0 = off."""

    # --- fix-clip recipe only (docs/fix-clip.md; every default is our choice unless marked) ---------
    fix_clip: FixClipSettings | None = None
    """FIX-CLIP's settings as one mapping (``fix_clip: {mask_ratio: 0.75, groups: 2, ...}``, see
    :class:`~train_encoder.fix_clip.FixClipSettings`); null: the defaults with the fix-clip recipe,
    nothing with the others."""

    # --- optimisation ------------------------------------------------------------------------------
    lr: float = 1e-6
    weight_decay: float = 0.01
    decay_all_parameters: bool = False
    """True: decay every trainable tensor (Long-CLIP); False: skip gains, biases, logit scale (open_clip)."""
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    max_grad_norm: float | None = None
    warmup_steps: int = 200
    lr_schedule: str = "cosine"
    epochs: int = 3
    max_steps: int | None = None
    """Stop after this many optimizer steps (the schedule then spans them); null: ``epochs`` decide."""
    batch_size: int = 256
    """Per device: the global batch (and the contrastive negatives) is batch_size x processes."""
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"
    optimizer_impl: str = "default"
    """AdamW's kernels: default (torch's choice: a loop over tensors on CPU, foreach on CUDA), foreach (one
    multi-tensor kernel per op), fused (one kernel for the whole update; CUDA, or CPU with torch >= 2.4)."""

    # --- data --------------------------------------------------------------------------------------
    train_data: str | None = None
    """Annotation file (jsonl, csv, tsv, ShareGPT4V json) or tar shard pattern (``data/{000..099}.tar``)."""
    data_format: str | None = None
    """One of jsonl, csv, tsv, sharegpt4v, shards; null: from the file suffix (``.tar`` -> shards)."""
    image_root: str | None = None
    skip_first: int = 0
    """Annotation entries to skip (ShareGPT4V: 1000, the ShareGPT4V-1k benchmark)."""
    limit: int | None = None
    samples_per_epoch: int | None = None
    """Required for shards: the epoch length (for the schedule and exact resume)."""
    random_crop: bool = True
    """open_clip's RandomResizedCrop(0.9-1.0) (DeBias-CLIP); False: center crop (Long-CLIP)."""
    num_workers: int = 4

    # --- run ---------------------------------------------------------------------------------------
    seed: int = 0
    output_dir: str = "runs/train_encoder"
    checkpoint_every: int = 1000
    """Save a checkpoint every N optimizer steps (0: only at the end)."""
    keep_checkpoints: int = 3
    """Keep the last K checkpoints (0: keep all)."""
    log_every: int = 10
    trackers: list[str] = field(default_factory=list)
    """accelerate trackers (``log_with``), e.g. [tensorboard]; metrics.jsonl is always written."""
    run_name: str = "train_encoder"
    export_final: bool = True
    """Export the final weights to ``output_dir/final`` (CLIPModel + text encoder)."""

    def __post_init__(self) -> None:
        types_ = _field_types()
        for spec in dataclasses.fields(self):
            setattr(self, spec.name, _coerce(spec.name, getattr(self, spec.name), types_[spec.name]))
        _check_values(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping of field names (nested settings also as ``fix_clip.groups`` keys, or as the
        deprecated flat ``fix_clip_groups``); unknown keys are refused with a suggestion."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"a config must be a mapping of keys to values, got {type(values).__name__}")
        values = _nest_settings(values)
        known = field_names()
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(known)}"
                raise ConfigError(f"unknown config key {key!r}{hint}")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with ``changes`` applied."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})


def field_names() -> list[str]:
    return [spec.name for spec in dataclasses.fields(TrainConfig)]


def config_keys() -> list[tuple[str, Any]]:
    """Every settable key with its type; a nested settings field gives one dotted key per setting
    (``fix_clip.groups``). The command line makes one flag of each."""
    keys: list[tuple[str, Any]] = []
    for name, annotation in _field_types().items():
        settings = _settings_class(annotation)
        if settings is None:
            keys.append((name, annotation))
        else:
            keys += [(f"{name}.{key}", kind) for key, kind in typing.get_type_hints(settings).items()]
    return keys


def deprecated_keys() -> dict[str, str]:
    """The flat keys of earlier releases, each with the key that replaces it (``fix_clip_groups`` ->
    ``fix_clip.groups``). They still load, with a ``DeprecationWarning``."""
    return {key.replace(".", "_"): key for key, _ in config_keys() if "." in key}


CONFIGS_DIR = Path(__file__).parent / "configs"


def load_config(
    path: str | os.PathLike | None = None, overrides: Sequence[str] | Mapping[str, Any] = ()
) -> TrainConfig:
    """Read a YAML config (a path or a bundled name, see :func:`bundled_configs`; ``None``: the defaults)
    and apply overrides (``"key=value"`` strings or a mapping)."""
    values: dict[str, Any] = {}
    if path is not None:
        values.update(_read_yaml(Path(path)))
    if isinstance(overrides, Mapping):
        values.update(overrides)
    else:
        values.update(parse_override(item) for item in overrides)
    return TrainConfig.from_dict(values)


def parse_override(item: str) -> tuple[str, Any]:
    """``"lr=1e-5"`` -> ``("lr", 1e-05)``: the value is parsed as YAML (``null``, ``true``, ``[a, b]``)."""
    key, sep, text = item.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise ConfigError(f"override {item!r} must look like key=value (e.g. lr=1e-5)")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({error})") from None
    return key, value


def save_config(config: TrainConfig, path: str | os.PathLike) -> None:
    """Write ``config`` as YAML, atomically."""
    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


def bundled_configs() -> dict[str, Path]:
    """The configs shipped in ``train_encoder/configs/``, by name (``debias-vit-l-14``, ...)."""
    return {path.stem: path for path in sorted(CONFIGS_DIR.glob("*.yaml"))}


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file() and path.suffix == "" and path.name in bundled_configs():
        path = bundled_configs()[path.name]
    if not path.is_file():
        raise ConfigError(
            f"config file {path} {'is a folder' if path.is_dir() else 'does not exist'}; give a YAML path or a bundled config name "
            f"({', '.join(bundled_configs())})"
        )
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values, got {type(values).__name__}")
    return values


# --- nested settings -------------------------------------------------------------------------------


def _settings_class(annotation: Any) -> type | None:
    """The dataclass of a nested settings field (``FixClipSettings | None`` -> ``FixClipSettings``), else None."""
    candidates = typing.get_args(annotation) or (annotation,)
    return next((arg for arg in candidates if dataclasses.is_dataclass(arg)), None)


def _nest_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """Fold ``fix_clip.groups`` keys and the deprecated flat ``fix_clip_groups`` ones into ``fix_clip``."""
    values = dict(values)
    renamed = deprecated_keys()
    old = [key for key in values if key in renamed]
    if old:
        warnings.warn(
            f"config key(s) {', '.join(old)} are deprecated and will be removed in the next release; write "
            f"{', '.join(renamed[key] for key in old)} (YAML: a nested mapping, "
            f"{renamed[old[0]].split('.')[0]}: {{{renamed[old[0]].split('.')[1]}: ...}})",
            DeprecationWarning,
            stacklevel=3,
        )
    for key in list(values):
        name, dot, setting = renamed.get(key, key).partition(".")
        if not dot or name not in RECIPE_SETTINGS:
            continue
        value = values.pop(key)
        nested = values.get(name)
        if isinstance(nested, str):
            nested = _yaml_value(name, nested)
        if dataclasses.is_dataclass(nested):
            nested = dataclasses.asdict(nested)
        if nested is None:
            nested = {}
        if not isinstance(nested, Mapping):
            raise ConfigError(f"{name}: expected a mapping of settings, got {nested!r}")
        values[name] = {**nested, setting: value}
    return values


def _coerce_settings(key: str, value: Any, settings: type) -> Any:
    """A nested settings object from a mapping (or its YAML text), each value coerced to its type."""
    if isinstance(value, settings):
        return value
    if isinstance(value, str):
        value = _yaml_value(key, value)
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a mapping such as {{{next(iter(_settings_types(settings)))}: ...}}, got {value!r}")  # fmt: skip
    types_ = _settings_types(settings)
    for name in value:
        if name not in types_:
            close = difflib.get_close_matches(str(name), list(types_), n=1)
            hint = f" (did you mean {key}.{close[0]}?)" if close else f"; known: {', '.join(types_)}"
            raise ConfigError(f"unknown config key {key}.{name}{hint}")
    return settings(**{name: _coerce(f"{key}.{name}", item, types_[name]) for name, item in value.items()})


@functools.cache
def _settings_types(settings: type) -> dict[str, Any]:
    return typing.get_type_hints(settings)


def _yaml_value(key: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{key}: the value is not valid YAML ({error})") from None


# --- coercion and checks ---------------------------------------------------------------------------


@functools.cache
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Bring ``value`` to the field's type (numbers from strings, lists from comma strings) or fail."""
    args = typing.get_args(annotation)
    optional = isinstance(annotation, types.UnionType) and type(None) in args
    base = next((arg for arg in args if arg is not type(None)), annotation) if optional else annotation
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("null", "none", "~")):
        if optional:
            return None
        raise ConfigError(f"{key}: a value is required (got null)")
    if dataclasses.is_dataclass(base):
        return _coerce_settings(key, value, base)
    if base is bool:
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "on", "off"):
            return value.strip().lower() in ("true", "yes", "on")
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if base is int:
        if isinstance(value, str):
            value = _number(key, value, "an integer")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(value)
    if base is float:
        if isinstance(value, str):
            value = _number(key, value, "a number")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if base is str:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if typing.get_origin(base) is list:
        if isinstance(value, str):  # "a,b" or "[a, b]"
            value = [part.strip() for part in value.strip().strip("[]").split(",") if part.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{key}: expected a list of strings, got {value!r}")
        return list(value)
    raise AssertionError(f"unhandled config type {annotation} for {key}")  # pragma: no cover


def _number(key: str, text: str, kind: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{key}: expected {kind}, got {text!r}") from None


def _check_values(c: TrainConfig) -> None:
    def need(ok: bool, key: str, allowed: str) -> None:
        if not ok:
            raise ConfigError(f"{key}={getattr(c, key)!r}: must be {allowed}")

    def one_of(key: str, choices: Sequence[str]) -> None:
        need(getattr(c, key) in choices, key, f"one of {', '.join(choices)}")

    need(bool(c.model.strip()), "model", "a CLIP source (folder, checkpoint file, Hub id or open_clip:ARCH/TAG)")
    one_of("hidden_act", HIDDEN_ACTS)
    need(c.keep >= 0, "keep", ">= 0")
    need(c.stretch_to is None or c.stretch_to > c.keep + 1, "stretch_to", f"null or > keep + 1 ({c.keep + 1})")
    need(c.logit_scale is None or c.logit_scale > 0, "logit_scale", "null or > 0 (a multiplier, e.g. 100)")
    if c.freeze_text and c.freeze_vision:
        raise ConfigError("freeze_text=true and freeze_vision=true: nothing would train; unfreeze one tower")
    one_of("recipe", recipe_names())
    _settings_follow_the_recipe(c)
    need(c.short_weight is None or 0.0 <= c.short_weight <= 1.0, "short_weight", "null or in [0, 1]")
    need(c.pca_components is None or c.pca_components >= 0, "pca_components", "null (recipe default), 0 or more")
    need(0.0 <= c.label_smoothing < 1.0, "label_smoothing", "in [0, 1)")
    need(c.distill_weight >= 0.0, "distill_weight", ">= 0 (0 turns the regulariser off)")
    need(c.lr > 0, "lr", "> 0")
    need(c.weight_decay >= 0, "weight_decay", ">= 0")
    need(0.0 <= c.adam_beta1 < 1.0, "adam_beta1", "in [0, 1)")
    need(0.0 <= c.adam_beta2 < 1.0, "adam_beta2", "in [0, 1)")
    need(c.adam_eps > 0, "adam_eps", "> 0")
    need(c.max_grad_norm is None or c.max_grad_norm > 0, "max_grad_norm", "null (no clipping) or > 0")
    need(c.warmup_steps >= 0, "warmup_steps", ">= 0")
    one_of("lr_schedule", LR_SCHEDULES)
    need(c.epochs >= 1, "epochs", ">= 1")
    need(c.max_steps is None or c.max_steps >= 1, "max_steps", "null or >= 1")
    need(c.batch_size >= 2, "batch_size", ">= 2 (the contrastive loss and the PCA need two pairs)")
    need(c.gradient_accumulation_steps >= 1, "gradient_accumulation_steps", ">= 1")
    if c.recompute_mlp and (not c.lean_activations or c.gradient_checkpointing):
        raise ConfigError(
            "recompute_mlp: true needs lean_activations: true and gradient_checkpointing: false "
            "(checkpointing already recomputes whole layers); set one of them accordingly"
        )
    if c.compile_towers:
        _check_compile(c)
    one_of("mixed_precision", MIXED_PRECISION)
    one_of("optimizer_impl", OPTIMIZER_IMPLS)
    need(c.train_data is not None and bool(c.train_data.strip()), "train_data", "an annotation file or shard pattern")
    if c.data_format is not None:
        one_of("data_format", DATA_FORMATS)
    need(c.skip_first >= 0, "skip_first", ">= 0")
    need(c.limit is None or c.limit >= 1, "limit", "null or >= 1")
    need(c.samples_per_epoch is None or c.samples_per_epoch >= 1, "samples_per_epoch", "null or >= 1")
    if resolved_data_format(c) == "shards" and c.samples_per_epoch is None:
        raise ConfigError(
            "train_data is a tar shard pattern: set samples_per_epoch (the epoch length; the schedule "
            "and exact resume need it)"
        )
    need(c.num_workers >= 0, "num_workers", ">= 0")
    need(c.seed >= 0, "seed", ">= 0")
    need(bool(c.output_dir.strip()), "output_dir", "a folder path")
    need(c.checkpoint_every >= 0, "checkpoint_every", ">= 0 (0: only at the end)")
    need(c.keep_checkpoints >= 0, "keep_checkpoints", ">= 0 (0: keep all)")
    need(c.log_every >= 1, "log_every", ">= 1")
    unknown = [name for name in c.trackers if name not in TRACKERS]
    if unknown:
        raise ConfigError(f"trackers={c.trackers!r}: unknown tracker {unknown[0]!r}; known: {', '.join(TRACKERS)}")
    get_recipe(c.recipe).configured(c)  # the recipe checks its own keys (ConfigError naming the key)


def _check_compile(c: TrainConfig) -> None:
    """``compile_towers``: a backend torch knows, and no knob that relies on eager autograd hooks."""
    backends = torch.compiler.list_backends(exclude_tags=())
    if c.compile_backend not in backends:
        raise ConfigError(
            f"compile_backend={c.compile_backend!r}: must be a torch.compile backend "
            f"(inductor, aot_eager, cudagraphs, ...; this torch knows {', '.join(sorted(backends))})"
        )
    if c.recompute_mlp:
        raise ConfigError(
            "compile_towers: true cannot be combined with recompute_mlp: true: compiled towers run plain MLPs "
            "(the compiler's partitioner chooses what the backward keeps, and recomputes no matmul); set one "
            "of them to false"
        )


def _settings_follow_the_recipe(c: TrainConfig) -> None:
    """A recipe's nested settings: its defaults when left null; refused (unless all defaults) with another recipe."""
    types_ = _field_types()
    for name, owner in RECIPE_SETTINGS.items():
        settings, defaults = getattr(c, name), _settings_class(types_[name])()
        if owner == c.recipe:
            setattr(c, name, defaults if settings is None else settings)
        elif settings is None or settings == defaults:  # e.g. a saved config of an earlier release: every key flat
            setattr(c, name, None)
        else:
            changed = {k: v for k, v in dataclasses.asdict(settings).items() if getattr(defaults, k) != v}
            raise ConfigError(
                f"{name}={changed!r} applies to recipe {owner!r} only, but recipe={c.recipe!r}; "
                f"set recipe: {owner} or remove {name}"
            )


def resolved_data_format(config: TrainConfig) -> str:
    """``data_format``, or the one the ``train_data`` suffix implies."""
    if config.data_format is not None:
        return config.data_format
    path = str(config.train_data or "")
    suffixes = {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv", ".json": "sharegpt4v", ".tar": "shards"}
    suffix = Path(path.split("::")[0]).suffix.lower()
    if suffix not in suffixes and ".tar" in path:
        return "shards"
    if suffix not in suffixes:
        raise ConfigError(
            f"train_data={path!r}: cannot tell the format from the suffix; set data_format to one of "
            f"{', '.join(DATA_FORMATS)}"
        )
    return suffixes[suffix]
