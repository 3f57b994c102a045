"""Shared fixtures. Tests never touch the network: the Hub is switched off before any import."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# custom_pipeline= copies pipeline files into a modules cache: keep it out of the user's ~/.cache.
os.environ.setdefault("HF_MODULES_CACHE", tempfile.mkdtemp(prefix="debias-diffusion-hf-modules-"))

import pytest  # noqa: E402

from debias_diffusion.tokenization import build_clip_tokenizer  # noqa: E402


@pytest.fixture(scope="session")
def example_script():
    """Load a script of ``examples/shapes_world`` as a module: ``example_script("train_encoders")``."""
    import importlib.util
    from pathlib import Path

    def load(name: str):
        path = Path(__file__).parents[1] / "examples" / "shapes_world" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="module")
def single_torch_thread():
    """Tiny tensors: intra-op threads only add waiting (seconds on a busy 2-core machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def clip_tokenizer():
    """The real CLIP tokenizer (built offline from open_clip's vocabulary), 248 positions."""
    return build_clip_tokenizer(context_length=248)


@pytest.fixture
def clip_tokenizer_factory():
    """Fresh tokenizers of a given length, for tests that change ``model_max_length``."""
    return lambda length=77: build_clip_tokenizer(context_length=length)


# --- tokenization fixtures (tests/test_tokenization.py) -------------------------------------------


@pytest.fixture(scope="session")
def open_clip_tokenizer():
    """open_clip's own tokenizer for ViT-L-14: the reference the built tokenizer must match."""
    import open_clip

    return open_clip.get_tokenizer("ViT-L-14")


@pytest.fixture(scope="session")
def clip_tokenizer_77_zero_pad():
    """A 77-position tokenizer padding with "!" (id 0), like SD 2.x and open_clip.tokenize."""
    return build_clip_tokenizer(context_length=77, pad_token="!")
