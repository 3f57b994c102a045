"""The model card (``README.md`` with Hugging Face Hub metadata) written beside every export.

Everything in it is read from the export's metadata and the training run folder (``config.yaml``,
``drift.json``, ``metrics.jsonl``, evaluation ``results.md`` files): nothing is guessed. A fact the
run did not record is written as "not recorded", never filled in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .file_names import CONFIG_FILE, DRIFT_FILE, METRICS_FILE

__all__ = ["DEFAULT_LICENSE", "model_card", "run_facts"]

DEFAULT_LICENSE = "other"
"""Hub licence tag when none is given: the right one is the base model's (OpenAI CLIP: MIT), which only the user knows."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_RECIPE_TAGS = {"debias": "debias-clip", "long-clip": "long-clip", "fix-clip": "fix-clip"}
_CONFIG_KEYS = (
    "train_data", "data_format", "limit", "samples_per_epoch", "epochs", "max_steps", "batch_size",
    "gradient_accumulation_steps", "lr", "weight_decay", "warmup_steps", "lr_schedule", "mixed_precision",
    "hidden_act", "stretch_to", "keep", "short_weight", "distill_weight", "freeze_text", "freeze_vision", "seed",
)  # fmt: skip
_RESULTS_SEARCH_DEPTH = 2


def run_facts(run_dir: str | Path | None) -> dict[str, Any]:
    """What the training run folder recorded: config, drift, last logged metrics, evaluation tables."""
    if run_dir is None or not Path(run_dir).is_dir():
        return {}
    run_dir = Path(run_dir)
    facts: dict[str, Any] = {}
    config = _read(run_dir / CONFIG_FILE, yaml.safe_load)
    if isinstance(config, Mapping):
        facts["config"] = {key: config[key] for key in _CONFIG_KEYS if config.get(key) is not None}
    drift = _read(run_dir / DRIFT_FILE, json.loads)
    if isinstance(drift, Mapping):
        facts["drift"] = {key: value for key, value in drift.items() if key != "per_position"}
    last = _last_metrics(run_dir / METRICS_FILE)
    if last:
        facts["last_metrics"] = last
    tables = {
        str(path.parent.relative_to(run_dir)): path.read_text(encoding="utf-8").strip()
        for path in _results_tables(run_dir)
    }
    if tables:
        facts["evaluations"] = tables
    return facts


def model_card(metadata: Mapping[str, Any], facts: Mapping[str, Any], *, license: str = DEFAULT_LICENSE) -> str:
    """The card's text: YAML front matter for the Hub, then what the model is, how it was made, how to use it."""
    recipe = str(metadata.get("recipe", "unknown"))
    source = str(metadata.get("source", "unknown"))
    front = {
        "library_name": "transformers",
        "pipeline_tag": "zero-shot-image-classification",
        "license": license,
        "tags": ["clip", "text-encoder", "long-context", "stable-diffusion", "debias-diffusion", "train-encoder"]
        + ([_RECIPE_TAGS[recipe]] if recipe in _RECIPE_TAGS else []),
    }
    if _HUB_ID.match(source) and not Path(source).exists():
        front["base_model"] = source
    context_length = metadata.get("positions", "unknown")  # the export file's key for the context length
    sections = [
        "---\n" + yaml.safe_dump(front, sort_keys=False) + "---",
        f"# {recipe} CLIP text encoder, {context_length} positions",
        (
            f"A CLIP model fine-tuned with the `{recipe}` recipe of "
            "[debias-diffusion](https://pypi.org/project/debias-diffusion/)'s `train_encoder`, from `"
            f"{source}`, with the text positions stretched to {context_length} (knowledge-preserved stretching), so "
            "that prompts longer than CLIP's 77 tokens condition as a whole."
        ),
        "## Files\n\n"
        "- `clip/`: the full `CLIPModel` (both towers), image processor and tokenizer (retrieval, evaluation).\n"
        "- `text_encoder/`: `CLIPTextModelWithProjection` and a tokenizer with `model_max_length` = "
        f"{context_length}: what Stable Diffusion pipelines load.",
        _training_section(metadata, facts),
        _drift_section(facts.get("drift")),
        _evaluation_section(facts.get("evaluations")),
        _usage_section(),
        "## Intended use and limitations\n\n"
        "Research and creative use as the text encoder of Stable Diffusion 1.x (a 768-wide encoder; SDXL's first "
        "encoder) or for long-text retrieval. A fine-tuned encoder moves its hidden states away from what the "
        "UNet was trained on: check the drift above, and judge images before relying on it. It inherits the "
        "biases and the licence terms of its base model and of its training data. The `license` field above is "
        f"`{license}` unless set at export (`--license`): set it to what the base model and data allow.",
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _training_section(metadata: Mapping[str, Any], facts: Mapping[str, Any]) -> str:
    rows = [
        ("recipe", metadata.get("recipe")),
        ("base model", metadata.get("source")),
        ("steps", metadata.get("step")),
        ("epochs completed", metadata.get("epoch")),
        ("samples seen", metadata.get("samples_seen")),
        ("saved dtype", metadata.get("dtype")),
        ("hardware", _hardware(metadata.get("hardware"))),
    ]
    rows += [(key.replace("_", " "), value) for key, value in facts.get("config", {}).items()]
    last = facts.get("last_metrics")
    if last:
        rows.append(("last logged metrics", ", ".join(f"{k} {_number(v)}" for k, v in last.items())))
    lines = ["## Training", "", "| fact | value |", "| --- | --- |"]
    lines += [f"| {name} | {'not recorded' if value is None else _number(value)} |" for name, value in rows]
    return "\n".join(lines)


def _drift_section(drift: Mapping[str, Any] | None) -> str:
    if not drift:
        return "## Hidden-state drift\n\nNot recorded for this run."
    mean = next((value for key, value in drift.items() if key.startswith("mean_cosine_first_")), None)
    return (
        "## Hidden-state drift\n\n"
        f"Mean cosine similarity of the last hidden states to `{drift.get('reference', 'the source model')}` over "
        f"positions 0-76, on {drift.get('captions', 'some')} training captions: **{_number(mean)}** "
        "(1.0 = exactly what a UNet trained on the source encoder saw)."
    )


def _evaluation_section(tables: Mapping[str, str] | None) -> str:
    if not tables:
        return "## Evaluation\n\nNo evaluation results were found in the run folder (`python -m train_encoder eval`)."
    parts = ["## Evaluation", "", "Retrieval R@K in % from `python -m train_encoder eval`, as found in the run folder:"]
    for folder, table in tables.items():
        parts += ["", f"`{folder}/results.md`:", "", table]
    return "\n".join(parts)


def _usage_section() -> str:
    return (
        "## Use\n\n"
        "```python\n"
        "from debias_diffusion import DeBiasStableDiffusionPipeline\n\n"
        "pipe = DeBiasStableDiffusionPipeline.from_pretrained(\n"
        '    "stable-diffusion-v1-5/stable-diffusion-v1-5", text_encoder="THIS_REPO_OR_FOLDER/text_encoder"\n'
        ")\n"
        "```\n\n"
        "In ComfyUI, copy `text_encoder/model.safetensors` into `ComfyUI/models/text_encoders/` and load it with "
        "the `Load CLIP` node (type `stable_diffusion`). ComfyUI and A1111 compute CLIP-L with `quick_gelu`."
    )


def _hardware(hardware: Any) -> str | None:
    if not isinstance(hardware, Mapping):
        return None
    device = hardware.get("device_name") or hardware.get("device")
    return f"{hardware.get('processes', '?')} x {device}, mixed precision {hardware.get('mixed_precision', '?')}"


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _read(path: Path, parse) -> Any:
    try:
        return parse(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return None


def _last_metrics(path: Path) -> dict[str, Any]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:  # a torn last line of a killed run
            continue
        if isinstance(record, dict):
            return {key: value for key, value in record.items() if isinstance(value, (int, float))}
    return {}


def _results_tables(run_dir: Path) -> list[Path]:
    found = []
    for depth in range(_RESULTS_SEARCH_DEPTH + 1):
        found += sorted(run_dir.glob("/".join(["*"] * depth + ["results.md"])))
    return found
