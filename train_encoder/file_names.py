"""The names of what a run writes: the run folder, its checkpoints and its exports.

Run folder (``config.output_dir``): ``config.yaml``, ``metrics.jsonl``, ``drift.json``,
``checkpoints/step-N/``, ``final/`` (the export). A checkpoint: ``model/``, ``optimizer.pt``,
``scaler.pt``, ``rng.pt``, ``config.yaml``, ``recipe_extras.safetensors``, ``trainer_state.json``
(written last). An export: ``clip/``, ``text_encoder/``, ``README.md`` and, in each model folder,
``train_encoder_export.json``.
"""

from __future__ import annotations

__all__ = [
    "CARD_FILE",
    "CHECKPOINTS_DIR",
    "CLIP_DIR",
    "CONFIG_FILE",
    "DRIFT_FILE",
    "EXTRAS_FILE",
    "FINAL_DIR",
    "METADATA_FILE",
    "METRICS_FILE",
    "MODEL_DIR",
    "OPTIMIZER_FILE",
    "RNG_FILE",
    "SCALER_FILE",
    "STATE_FILE",
    "TEXT_ENCODER_DIR",
]

# --- run folder ------------------------------------------------------------------------------------
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
DRIFT_FILE = "drift.json"
CHECKPOINTS_DIR = "checkpoints"
FINAL_DIR = "final"

# --- checkpoint folder -----------------------------------------------------------------------------
MODEL_DIR = "model"
STATE_FILE = "trainer_state.json"
EXTRAS_FILE = "recipe_extras.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
SCALER_FILE = "scaler.pt"
RNG_FILE = "rng.pt"

# --- export folder ---------------------------------------------------------------------------------
CLIP_DIR = "clip"
TEXT_ENCODER_DIR = "text_encoder"
METADATA_FILE = "train_encoder_export.json"
CARD_FILE = "README.md"
