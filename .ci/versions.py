"""Print the versions (and locations) of the packages a test run really imports, for the CI log."""

import importlib
import importlib.metadata
import sys
from pathlib import Path

MODULES = {
    "torch": "torch", "transformers": "transformers", "tokenizers": "tokenizers", "diffusers": "diffusers",
    "huggingface_hub": "huggingface_hub", "accelerate": "accelerate", "open_clip_torch": "open_clip",
    "safetensors": "safetensors", "numpy": "numpy", "pillow": "PIL", "peft": "peft", "debias-diffusion": "debias_diffusion",
}  # fmt: skip

print(f"python {sys.version.split()[0]} ({sys.executable})")
for dist, module in MODULES.items():
    location = Path(importlib.import_module(module).__file__).parent.parent
    print(f"  {dist:<18} {importlib.metadata.version(dist):<12} {location}")
