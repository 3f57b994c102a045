"""Bad input across the APIs and the CLI: a specific message each time, and no half-written output."""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from clip_builders import tiny_openai_clip
from safetensors.torch import save_file

from debias_diffusion import count_tokens, load_text_encoder, truncate_prompt
from debias_diffusion.cli import main
from debias_diffusion.conversion import convert_to_hf, read_clip_source
from debias_diffusion.errors import DebiasDiffusionError


class CodeCarrier:
    """Unpickling this would call os.getcwd: weights_only loading must refuse it."""

    def __reduce__(self):
        return (os.getcwd, ())


@pytest.fixture(scope="module")
def good_state():
    return tiny_openai_clip(77).state_dict()


def _write(path: Path, state) -> Path:
    torch.save(state, path)
    return path


def _truncated(tmp: Path, state) -> Path:
    path = _write(tmp / "full.pt", state)
    data = path.read_bytes()
    (tmp / "cut.pt").write_bytes(data[: len(data) // 2])
    return tmp / "cut.pt"


def _raw(name: str, data: bytes) -> Callable[[Path, dict], Path]:
    def make(tmp: Path, _state) -> Path:
        (tmp / name).write_bytes(data)
        return tmp / name

    return make


def _without(state, key):
    return {k: v for k, v in state.items() if k != key}


def _with_nan(state):
    broken = dict(state)
    broken["ln_final.weight"] = torch.full_like(state["ln_final.weight"], float("nan"))
    return broken


def _torchscript(tmp: Path, _state) -> Path:
    path = tmp / "jit.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("jit/constants.pkl", b"\x80\x02).")
    return path


def _hf_layout_weights(tmp: Path, _state) -> Path:
    save_file({"text_model.embeddings.token_embedding.weight": torch.zeros(4, 2)}, tmp / "model.safetensors")
    return tmp / "model.safetensors"


def _bad_json_folder(tmp: Path, _state) -> Path:
    (tmp / "folder").mkdir()
    (tmp / "folder" / "config.json").write_text("{not json")
    return tmp / "folder"


@dataclass
class Case:
    name: str
    make_source: Callable[[Path, dict], object]
    call: str  # "convert" (API into tmp/out), "cli" (CLI convert into tmp/out) or "load"
    message: str
    kwargs: dict | None = None


CASES = [
    Case("missing file", lambda t, s: t / "nope.pt", "convert", "checkpoint file not found"),
    Case("empty file", _raw("e.pt", b""), "convert", "checkpoint file is empty"),
    Case("unsupported suffix", _raw("w.txt", b"x"), "convert", "don't know how to read 'w.txt'"),
    Case("truncated pickle", _truncated, "cli", "truncated or corrupted"),
    Case(
        "pickle with code in it",
        lambda t, s: _write(t / "evil.pt", {"state_dict": CodeCarrier()}),
        "cli",
        "refusing to load .*could run code",
    ),
    Case(
        "corrupted safetensors",
        _raw("b.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage"),
        "convert",
        "not a readable safetensors file",
    ),
    Case("TorchScript archive", _torchscript, "convert", "TorchScript archive"),
    Case(
        "unknown layout",
        lambda t, s: _write(t / "u.pt", {"encoder.weight": torch.zeros(2)}),
        "cli",
        "unknown checkpoint layout .*missing token_embedding.weight",
    ),
    Case("HF weights file instead of folder", _hf_layout_weights, "convert", "Hugging Face transformers layout"),
    Case("not a state dict", lambda t, s: _write(t / "list.pt", [1, 2, 3]), "convert", "holds list, not a state dict"),
    Case(
        "missing block tensors",
        lambda t, s: _write(t / "m.pt", _without(s, "transformer.resblocks.1.mlp.c_fc.bias")),
        "convert",
        "missing 1 transformer-block tensors: transformer.resblocks.1.mlp.c_fc.bias",
    ),
    Case(
        "NaN weights",
        lambda t, s: _write(t / "nan.pt", _with_nan(s)),
        "cli",
        "NaN or infinite values in 1 tensors: ln_final.weight",
    ),
    Case(
        "heads do not divide width",
        lambda t, s: _write(t / "h.pt", s),
        "convert",
        "width 32 is not divisible by 3",
        {"num_heads": 3},
    ),
    Case(
        "width not a multiple of 64 without heads",
        lambda t, s: _write(t / "w.pt", s),
        "convert",
        "cannot infer the text tower's attention heads",
        {"num_heads": None},
    ),
    Case(
        "impossible stretch target",
        lambda t, s: _write(t / "s.pt", s),
        "convert",
        "cannot stretch a 77-position text tower to 100",
        {"stretch_to": 100},
    ),
    Case(
        "unknown open_clip architecture",
        lambda t, s: "open_clip:ViT-Q-99/openai",
        "cli",
        "unknown open_clip architecture 'ViT-Q-99'",
    ),
    Case(
        "unknown activation",
        lambda t, s: _write(t / "x.pt", s),
        "convert",
        "hidden_act must be one of",
        {"hidden_act": "relu"},
    ),
    Case(
        "width mismatch for the pipeline",
        lambda t, s: _write(t / "wm.pt", s),
        "load",
        "produces 32-wide hidden states but 768 are needed",
        {"expected_width": 768},
    ),
    Case(
        "77 rows where 248 expected",
        lambda t, s: _write(t / "p.pt", s),
        "load",
        "77-row position table where 248 was expected",
        {"expected_context_length": 248},
    ),
    Case("folder with broken config.json", _bad_json_folder, "load", "is not valid JSON"),
    Case(
        "not a path nor a Hub id",
        lambda t, s: "just-a-name",
        "load",
        "is not an existing file or folder, nor a Hugging Face Hub id",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input_is_reported_and_leaves_nothing_behind(case, tmp_path, good_state, capsys):
    source = case.make_source(tmp_path, good_state)
    kwargs = {"num_heads": 2, **(case.kwargs or {})}
    out = tmp_path / "out"
    before = set(tmp_path.iterdir())
    if case.call == "cli":
        argv = ["convert", str(source), "-o", str(out), "--num-heads", "2"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ")
        assert re.search(case.message, err), err
    else:
        with pytest.raises(DebiasDiffusionError, match=case.message):
            if case.call == "convert":
                convert_to_hf(source, out, **kwargs)
            else:
                load_text_encoder(source, **kwargs)
    assert not out.exists()
    assert set(tmp_path.iterdir()) == before, "a partial output was left behind"


@pytest.mark.parametrize(
    ("prompt", "message"), [("", "empty"), ("   \n ", "empty"), (None, "must be a string"), (42, "must be a string")]
)
def test_bad_prompts(prompt, message, clip_tokenizer):
    with pytest.raises(DebiasDiffusionError, match=message):
        count_tokens(clip_tokenizer, prompt)
    with pytest.raises(DebiasDiffusionError, match=message):
        truncate_prompt(prompt, clip_tokenizer)


def test_existing_output_is_not_overwritten_unless_asked(tmp_path, good_state, capsys):
    _write(tmp_path / "c.pt", good_state)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("precious")
    assert (
        main(["convert", str(tmp_path / "c.pt"), "-o", str(tmp_path / "out"), "--num-heads", "2", "--text-only"]) == 2
    )
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "out" / "keep.txt").read_text() == "precious"
    assert (
        main(
            [
                "convert",
                str(tmp_path / "c.pt"),
                "-o",
                str(tmp_path / "out"),
                "--num-heads",
                "2",
                "--text-only",
                "--overwrite",
            ]
        )
        == 0
    )
    assert not (tmp_path / "out" / "keep.txt").exists()
    assert json.loads((tmp_path / "out" / "config.json").read_text())["max_position_embeddings"] == 77


def test_failure_during_write_keeps_the_previous_output(tmp_path, good_state, monkeypatch):
    _write(tmp_path / "c.pt", good_state)
    convert_to_hf(tmp_path / "c.pt", tmp_path / "out", num_heads=2, text_only=True)
    before = (tmp_path / "out" / "model.safetensors").read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("transformers.CLIPTokenizer.save_pretrained", explode)
    with pytest.raises(OSError, match="disk full"):
        convert_to_hf(tmp_path / "c.pt", tmp_path / "out", num_heads=2, text_only=True, stretch_to=248, overwrite=True)
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt", "out"]


def test_read_clip_source_rejects_folders(tmp_path):
    with pytest.raises(DebiasDiffusionError, match="is a folder"):
        read_clip_source(tmp_path)


# --- the Python entry points: bad input raises the project's error classes before any model is loaded ---

NOT_A_MODEL = "no/such-model-anywhere"  # loading it would fail differently: the settings must be refused first


def _settings(**changes):
    from debias_diffusion.generation import GenerationSettings

    return GenerationSettings(**{"prompt": "a red cube", "model": NOT_A_MODEL, **changes})


API_CASES = [
    ("generate: empty prompt", lambda t: _generate(t, prompt=""), "PromptError", "prompt is empty"),
    (
        "generate: prompt not a string",
        lambda t: _generate(t, prompt=["a cat"]),
        "PromptError",
        "prompt must be a string, got list",
    ),
    (
        "generate: negative prompt not a string",
        lambda t: _generate(t, negative_prompt=3),
        "PromptError",
        "negative prompt must be a string",
    ),
    (
        "generate: zero steps",
        lambda t: _generate(t, steps=0),
        "SettingError",
        "steps and num_images must be at least 1",
    ),
    ("generate: fractional steps", lambda t: _generate(t, steps=2.5), "SettingError", "steps must be a whole number"),
    ("generate: no images", lambda t: _generate(t, num_images=0), "SettingError", "at least 1"),
    (
        "generate: a billion images",
        lambda t: _generate(t, num_images=10**9),
        "SettingError",
        "num_images must be at most 100000",
    ),
    ("generate: negative seed", lambda t: _generate(t, seed=-1), "SettingError", "seeds must lie in 0..2"),
    (
        "generate: NaN guidance",
        lambda t: _generate(t, guidance_scale=float("nan")),
        "SettingError",
        "guidance_scale must be a finite number",
    ),
    (
        "generate: negative guidance",
        lambda t: _generate(t, guidance_scale=-2.0),
        "SettingError",
        "guidance_scale must be at least 0",
    ),
    ("generate: zero width", lambda t: _generate(t, width=0), "SettingError", "width must be a whole number of pixels"),
    (
        "generate: unknown dtype",
        lambda t: _generate(t, dtype="int8"),
        "SettingError",
        "dtype must be float32, float16 or bfloat16",
    ),
    ("generate: unknown policy", lambda t: _generate(t, long_prompt="cut"), "DebiasDiffusionError", "cut"),
    ("generate: unknown device", lambda t: _generate(t, device="tpu9"), "DeviceError", "'tpu9' is not a torch device"),
    ("generate: missing GPU", lambda t: _generate(t, device="cuda:99"), "DeviceError", "cuda"),
    (
        "generate: output is a file",
        lambda t: _generate(t, output=_touch(t / "out")),
        "OutputExistsError",
        "is a file, not a folder",
    ),
    (
        "load_pipeline: malformed model_index.json",
        lambda t: _load_pipeline(_index(t, "{oops")),
        "CheckpointError",
        "is not a valid diffusers model_index.json",
    ),
    (
        "load_pipeline: model_index.json is a list",
        lambda t: _load_pipeline(_index(t, "[1, 2]")),
        "CheckpointError",
        "is not a valid diffusers model_index.json",
    ),
    (
        "load_pipeline: index but no components",
        lambda t: _load_pipeline(
            _index(t, '{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}')
        ),
        "CheckpointError",
        "cannot be loaded",
    ),
    (
        "load_text_encoder: random bytes",
        lambda t: load_text_encoder(_bytes(t / "r.pt", bytes(range(256)) * 4)),
        "CheckpointError",
        "is not a PyTorch checkpoint",
    ),
    ("convert_to_hf: folder source", lambda t: convert_to_hf(_folder(t), t / "out2"), "CheckpointError", "is a folder"),
    (
        "evaluate_prominence: object file is a folder",
        lambda t: _prominence(t, _folder(t)),
        "ProminenceDataError",
        "is a folder, not a file",
    ),
    (
        "evaluate_prominence: no pipelines",
        lambda t: _prominence(t, [["cat", "dog"]], pipelines={}),
        "DebiasDiffusionError",
        "pipeline",
    ),
    ("probe_text: no encoders", lambda t: _probe_text(t, {}), "ProbeConfigError", "give at least one encoder"),
    (
        "probe_text: one object per caption",
        lambda t: _probe_text(t, {"a": "nobody/none"}, num_objects=1),
        "ProbeConfigError",
        "need at least 2 objects",
    ),
]


def _generate(tmp: Path, output: Path | None = None, **changes):
    from debias_diffusion.generation import generate

    return generate(_settings(**changes), output or tmp / "out")


def _load_pipeline(folder: Path):
    from debias_diffusion.generation import load_pipeline

    return load_pipeline(str(folder), "none")


def _index(tmp: Path, text: str) -> Path:
    (tmp / "pipe").mkdir()
    (tmp / "pipe" / "model_index.json").write_text(text)
    return tmp / "pipe"


def _touch(path: Path) -> Path:
    path.write_text("a file")
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _folder(tmp: Path) -> Path:
    (tmp / "folder").mkdir()
    return tmp / "folder"


def _prominence(tmp: Path, objects, pipelines=None):
    from debias_diffusion.prominence.detectors import get_detector
    from debias_diffusion.prominence.runner import evaluate_prominence

    def never_loaded():
        raise AssertionError("a pipeline was loaded before the bad input was refused")

    pipelines = {"a": never_loaded} if pipelines is None else pipelines
    return evaluate_prominence(pipelines, objects, detector=get_detector("colour"), output_dir=tmp / "out2")


def _probe_text(tmp: Path, encoders, **kwargs):
    from debias_diffusion.text_probes import probe_text

    return probe_text(encoders, "coco", captions=8, output_dir=tmp / "out2", progress=False, **kwargs)


@pytest.mark.parametrize(("name", "call", "error", "message"), API_CASES, ids=[case[0] for case in API_CASES])
def test_python_entry_points_refuse_bad_input(name, call, error, message, tmp_path):
    import debias_diffusion.errors as errors

    with pytest.raises(DebiasDiffusionError, match=message) as info:
        call(tmp_path)
    assert isinstance(info.value, getattr(errors, error)), f"{type(info.value).__name__}: {info.value}"
    assert not (tmp_path / "out2").exists()
    assert not (tmp_path / "out").exists() or (tmp_path / "out").read_text() == "a file"  # only the case's own input
    assert not [p.name for p in tmp_path.rglob(".*")], "a lock or scratch file was left behind"
