"""Bad input at both command lines: each case ends in one ``error:`` line, exit status 2, the right
error class under ``DEBIAS_DIFFUSION_DEBUG=1``, and nothing written (not even a lock file)."""

from __future__ import annotations

import argparse
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from diffusers import StableDiffusionPipeline
from pipeline_builders import SHORT_PROMPT, sd_components
from transformers import CLIPTextConfig, CLIPTextModel

from debias_diffusion.cli import main as debias_main
from debias_diffusion.error_boundary import DEBUG_ENV
from debias_diffusion.errors import (
    CheckpointError,
    DeviceError,
    EncoderMismatchError,
    ModelNotFoundError,
    OutputExistsError,
    ProbeConfigError,
    PromptError,
    SettingError,
    UsageError,
)
from debias_diffusion.errors import ProminenceDataError as ProminenceError
from train_encoder.cli import main as train_main
from train_encoder.config import ConfigError
from train_encoder.evaluation.datasets import DatasetNotFoundError

USAGE = argparse.ArgumentError  # argparse refuses it while parsing: exit 2 before anything runs


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A tiny SD pipeline folder, broken copies of it, and an encoder too wide for its UNet."""
    root = tmp_path_factory.mktemp("models")
    StableDiffusionPipeline(**sd_components(77)).save_pretrained(root / "sd")
    shutil.copytree(root / "sd", root / "no-index")
    (root / "no-index" / "model_index.json").unlink()
    shutil.copytree(root / "sd", root / "bad-index")
    (root / "bad-index" / "model_index.json").write_text("{not json")
    shutil.copytree(root / "sd", root / "no-unet")
    shutil.rmtree(root / "no-unet" / "unet")
    wide = CLIPTextConfig(vocab_size=49408, hidden_size=48, intermediate_size=37, num_hidden_layers=1,
                          num_attention_heads=4, max_position_embeddings=248, projection_dim=48)  # fmt: skip
    CLIPTextModel(wide).save_pretrained(root / "wide-encoder")
    return root


def _text(name: str, content: bytes | str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    return make


NOT_UTF8 = b"\xff\xfe\x00 a cat"
BLANK = " \n"


@dataclass(frozen=True)
class CliCase:
    name: str
    argv: Callable[[Path, Path], list[str]]  # (tmp folder, models folder) -> arguments; may create inputs
    error: type[BaseException]  # the class raised under DEBIAS_DIFFUSION_DEBUG=1; USAGE: argparse refuses
    message: str  # a regex the error line must match
    program: str = "debias-diffusion"


def gen(*extra: str, prompt: str = SHORT_PROMPT) -> Callable[[Path, Path], list[str]]:
    return lambda t, m: ["generate", prompt, "--model", str(m / "sd"), "--encoder", "none", "--steps", "1",
                         "--size", "16x16", "-o", str(t / "out"), *extra]  # fmt: skip


def prom(*extra: str, objects: Callable[[Path], Path] | None = None) -> Callable[[Path, Path], list[str]]:
    def argv(t: Path, m: Path) -> list[str]:
        source = objects(t) if objects else _text("objects.yaml", "[[cat, dog]]")(t)
        return ["evaluate-prominence", "--object-sets", str(source), "-m", str(m / "sd"), "-o", str(t / "out"),
                "--detector", "colour", "--device", "cpu", *extra]  # fmt: skip

    return argv


def late(*extra: str) -> Callable[[Path, Path], list[str]]:
    def argv(t: Path, m: Path) -> list[str]:
        items = _text("items.yaml", "[{target: cat, anchor: dog}]")(t)
        return ["late-detail", "--items", str(items), "-p", f"a={m / 'sd'}", "-o", str(t / "out"),
                "--detector", "colour", *extra]  # fmt: skip

    return argv


def probe(*extra: str) -> Callable[[Path, Path], list[str]]:
    return lambda t, m: ["probe-text", "-e", "a=nobody/none", "-o", str(t / "out"), "--captions", "8", *extra]


def image(*extra: str) -> Callable[[Path, Path], list[str]]:
    return lambda t, m: ["probe-image", "--clip-model", "a=nobody/none", "-o", str(t / "out"), *extra]


def convert(src: Callable[[Path], object], *extra: str) -> Callable[[Path, Path], list[str]]:
    return lambda t, m: ["convert", str(src(t)), "-o", str(t / "out"), *extra]


def count(prompt: Callable[[Path], str] | str, *extra: str) -> Callable[[Path, Path], list[str]]:
    return lambda t, m: ["count-tokens", prompt(t) if callable(prompt) else prompt, *extra]


def train(*argv: str | Callable[[Path], Path]) -> Callable[[Path, Path], list[str]]:
    return lambda t, m: [str(a(t)) if callable(a) else a for a in argv]


def _file_at(t: Path, name: str) -> Path:
    (t / name).write_text("I am a file")
    return t / name


def _existing_image(t: Path, m: Path) -> list[str]:
    (t / "out").mkdir()
    (t / "out" / "seed-3.png").write_bytes(b"an earlier run's image")
    return gen("--seed", "2", "--num-images", "2")(t, m)


def _folder(t: Path) -> Path:
    (t / "folder").mkdir(exist_ok=True)
    return t / "folder"


TRAIN = "train_encoder"
EVAL = ("eval", "--clip-model", "a=nobody/none", "--dataset")

CASES = [
    # convert
    CliCase(
        "convert: --stretch-to 0",
        convert(lambda t: t / "c.pt", "--stretch-to", "0"),
        USAGE,
        "--stretch-to: must be at least 1",
    ),
    CliCase(
        "convert: --stretch 0 (old spelling)",
        convert(lambda t: t / "c.pt", "--stretch", "0"),
        USAGE,
        "--stretch: must be at least 1",
    ),
    CliCase(
        "convert: no output folder",
        lambda t, m: ["convert", str(t / "c.pt")],
        USAGE,
        "convert needs -o/--output-dir DIR",
    ),
    CliCase(
        "convert: output folder twice",
        lambda t, m: ["convert", str(t / "c.pt"), "a", "-o", "b"],
        USAGE,
        "the output folder is given twice",
    ),
    CliCase("convert: --keep -1", convert(lambda t: t / "c.pt", "--keep", "-1"), USAGE, "--keep: must be at least 0"),
    CliCase(
        "convert: --tolerance nan",
        convert(lambda t: t / "c.pt", "--tolerance", "nan"),
        USAGE,
        "finite number, got 'nan'",
    ),
    CliCase(
        "convert: --num-heads x", convert(lambda t: t / "c.pt", "--num-heads", "x"), USAGE, "whole number, got 'x'"
    ),
    CliCase(
        "convert: random bytes",
        convert(_text("r.pt", bytes(range(7, 250)) * 9)),
        CheckpointError,
        "is not a PyTorch checkpoint",
    ),
    CliCase("convert: a folder as source", convert(_folder), CheckpointError, "is a folder"),
    CliCase(
        "convert: missing source", convert(lambda t: t / "missing.pt"), CheckpointError, "checkpoint file not found"
    ),
    CliCase("convert: bad dtype", convert(lambda t: t / "c.pt", "--dtype", "int8"), USAGE, "invalid choice: 'int8'"),
    # count-tokens
    CliCase("count-tokens: @folder", count(lambda t: f"@{_folder(t)}"), PromptError, "is a folder; give a text file"),
    CliCase("count-tokens: @missing", count(lambda t: f"@{t / 'nope.txt'}"), PromptError, "prompt file not found"),
    CliCase(
        "count-tokens: @non-UTF-8", count(lambda t: f"@{_text('p.txt', NOT_UTF8)(t)}"), PromptError, "is not UTF-8 text"
    ),
    CliCase(
        "count-tokens: @empty file",
        count(lambda t: f"@{_text('p.txt', BLANK)(t)}"),
        PromptError,
        "is empty; write the prompt",
    ),
    CliCase("count-tokens: bare @", count("@"), PromptError, "'@' must be followed by a file name"),
    CliCase("count-tokens: empty prompt", count(""), PromptError, "prompt is empty"),
    CliCase(
        "count-tokens: --max-length 2", count("a cat", "--max-length", "2"), USAGE, "--max-length: must be at least 3"
    ),
    CliCase(
        "count-tokens: --max-length 10**12",
        count("a cat", "--max-length", str(10**12)),
        USAGE,
        "--max-length: must be at most 1000000",
    ),
    CliCase("count-tokens: --max-length 1.5", count("a cat", "--max-length", "1.5"), USAGE, "whole number, got '1.5'"),
    # generate: arguments
    CliCase("generate: --steps 0", gen("--steps", "0"), USAGE, "--steps: must be at least 1, got 0"),
    CliCase(
        "generate: more steps than the scheduler has",
        gen("--steps", "1001"),
        SettingError,
        "steps must be at most 1000 for this model's scheduler",
    ),
    CliCase("generate: --steps -5", gen("--steps", "-5"), USAGE, "--steps: must be at least 1"),
    CliCase("generate: --num-images 0", gen("--num-images", "0"), USAGE, "--num-images: must be at least 1"),
    CliCase(
        "generate: --num-images 10**9", gen("--num-images", str(10**9)), USAGE, "--num-images: must be at most 100000"
    ),
    CliCase("generate: --seed -1", gen("--seed", "-1"), USAGE, "--seed: must be at least 0, got -1"),
    CliCase("generate: --seed 2**64", gen("--seed", str(2**64)), USAGE, "--seed: must be at most"),
    CliCase(
        "generate: last seed past 2**64-1",
        gen("--seed", str(2**64 - 1), "--num-images", "2"),
        SettingError,
        "seeds must lie in 0..2\\*\\*64-1",
    ),
    CliCase(
        "generate: --guidance-scale nan",
        gen("--guidance-scale", "nan"),
        USAGE,
        "--guidance-scale: expected a finite number",
    ),
    CliCase(
        "generate: --guidance-scale inf", gen("--guidance-scale", "inf"), USAGE, "expected a finite number, got 'inf'"
    ),
    CliCase(
        "generate: --guidance-scale -3", gen("--guidance-scale", "-3"), USAGE, "--guidance-scale: must be at least 0"
    ),
    CliCase("generate: --size 0x16", gen("--size", "0x16"), USAGE, "WIDTHxHEIGHT"),
    CliCase("generate: --size huge", gen("--size", "99999x99999"), USAGE, "larger than 16384 pixels"),
    CliCase("generate: --size not multiple of 8", gen("--size", "20x16"), PromptError, "multiples of 8"),
    CliCase("generate: empty prompt", gen(prompt=""), PromptError, "prompt is empty or only whitespace"),
    CliCase("generate: whitespace prompt", gen(prompt=" \n\t"), PromptError, "prompt is empty or only whitespace"),
    CliCase("generate: @folder prompt", lambda t, m: gen(prompt=f"@{_folder(t)}")(t, m), PromptError, "is a folder"),
    CliCase(
        "generate: -n @missing", lambda t, m: gen("-n", f"@{t / 'neg.txt'}")(t, m), PromptError, "prompt file not found"
    ),
    CliCase("generate: --device nonsense", gen("--device", "gpu0"), DeviceError, "'gpu0' is not a torch device"),
    CliCase("generate: --device cuda:99", gen("--device", "cuda:99"), DeviceError, "--device cuda:99: "),
    CliCase("generate: --dtype int8", gen("--dtype", "int8"), USAGE, "invalid choice: 'int8'"),
    CliCase("generate: --long-prompt bad", gen("--long-prompt", "cut"), USAGE, "invalid choice: 'cut'"),
    # generate: models and outputs
    CliCase(
        "generate: folder without model_index.json",
        lambda t, m: [*gen()(t, m), "--model", str(m / "no-index")],
        ModelNotFoundError,
        "has no model_index.json",
    ),
    CliCase(
        "generate: malformed model_index.json",
        lambda t, m: [*gen()(t, m), "--model", str(m / "bad-index")],
        CheckpointError,
        "is not a valid diffusers model_index.json",
    ),
    CliCase(
        "generate: pipeline folder missing its UNet",
        lambda t, m: [*gen()(t, m), "--model", str(m / "no-unet")],
        CheckpointError,
        "pipeline folder .* cannot be loaded",
    ),
    CliCase(
        "generate: file as --model",
        lambda t, m: [*gen()(t, m), "--model", str(_file_at(t, "model.txt"))],
        ModelNotFoundError,
        "neither a diffusers pipeline folder nor a Hub id",
    ),
    CliCase(
        "generate: encoder too wide for the UNet",
        lambda t, m: [*gen()(t, m), "--encoder", str(m / "wide-encoder")],
        EncoderMismatchError,
        "the text encoder gives 48-wide hidden states but the UNet cross-attends to 32",
    ),
    CliCase(
        "generate: missing encoder path",
        lambda t, m: [*gen()(t, m), "--encoder", str(t / "no" / "such" / "encoder")],
        ModelNotFoundError,
        "not an existing file or folder",
    ),
    CliCase(
        "generate: output is a file",
        lambda t, m: [*gen()(t, m), "-o", str(_file_at(t, "out"))],
        OutputExistsError,
        "is a file, not a folder",
    ),
    CliCase(
        "generate: image of the same seed exists",
        _existing_image,
        OutputExistsError,
        "seed-3.png already exists .*--overwrite",
    ),
    # evaluate-prominence
    CliCase(
        "prominence: missing object file",
        prom("-e", "a=none", objects=lambda t: t / "nope.yaml"),
        ProminenceError,
        "does not exist",
    ),
    CliCase(
        "prominence: object file is a folder",
        prom("-e", "a=none", objects=_folder),
        ProminenceError,
        "is a folder, not a file",
    ),
    CliCase(
        "prominence: object file not UTF-8",
        prom("-e", "a=none", objects=_text("o.yaml", NOT_UTF8)),
        ProminenceError,
        "is not UTF-8 text",
    ),
    CliCase(
        "prominence: malformed YAML",
        prom("-e", "a=none", objects=_text("o.yaml", "[[cat, dog")),
        ProminenceError,
        "is not valid YAML",
    ),
    CliCase(
        "prominence: malformed JSON",
        prom("-e", "a=none", objects=_text("o.json", '[["cat",')),
        ProminenceError,
        "is not valid JSON",
    ),
    CliCase("prominence: nothing to compare", prom(), ProminenceError, "name at least one --encoder"),
    CliCase(
        "prominence: no object sets",
        lambda t, m: ["evaluate-prominence", "-e", "a=none"],
        USAGE,
        "evaluate-prominence needs --object-sets FILE",
    ),
    CliCase("prominence: -e without =", prom("-e", "longclip"), UsageError, "must look like NAME=VALUE"),
    CliCase(
        "prominence: a name twice", prom("-e", "a=none", "-p", "a=x/y"), ProminenceError, "the name 'a' is given twice"
    ),
    CliCase(
        "prominence: two {objects}",
        prom("-e", "a=none", "-t", "{objects} and {objects}"),
        USAGE,
        "names \\{objects\\} 2 times",
    ),
    CliCase(
        "prominence: unknown template",
        prom("-e", "a=none", "-t", "poster"),
        ProminenceError,
        "unknown template 'poster'",
    ),
    CliCase("prominence: --seeds -1", prom("-e", "a=none", "--seeds", "0", "-1"), USAGE, "--seeds: must be at least 0"),
    CliCase(
        "prominence: --threshold 2", prom("-e", "a=none", "--threshold", "2"), USAGE, "--threshold: must be at most 1"
    ),
    CliCase(
        "prominence: --max-orderings 0",
        prom("-e", "a=none", "--max-orderings", "0"),
        USAGE,
        "--max-orderings: must be at least 1",
    ),
    CliCase("prominence: --steps 0", prom("-e", "a=none", "--steps", "0"), USAGE, "--steps: must be at least 1"),
    CliCase(
        "prominence: --device cuda:99", prom("-e", "a=none", "--device", "cuda:99"), DeviceError, "--device cuda:99"
    ),
    # late-detail
    CliCase("late-detail: --seeds -1", late("--seeds", "-1"), USAGE, "--seeds: must be at least 0"),
    CliCase("late-detail: --offsets -5", late("--offsets", "5", "-5"), USAGE, "--offsets: must be at least 0"),
    CliCase("late-detail: --steps 0", late("--steps", "0"), USAGE, "--steps: must be at least 1"),
    CliCase(
        "late-detail: --guidance-scale nan",
        late("--guidance-scale", "nan"),
        USAGE,
        "--guidance-scale: expected a finite number",
    ),
    CliCase("late-detail: --device cuda:99", late("--device", "cuda:99"), DeviceError, "--device cuda:99"),
    # probe-text
    CliCase("probe-text: --objects 0", probe("--objects", "0"), USAGE, "--objects: must be at least 1"),
    CliCase("probe-text: --captions 0", probe("--captions", "0"), USAGE, "--captions: must be at least 1"),
    CliCase(
        "probe-text: --test-fraction 1.5",
        probe("--test-fraction", "1.5"),
        USAGE,
        "--test-fraction: must be less than 1",
    ),
    CliCase("probe-text: --test-fraction 0", probe("--test-fraction", "0"), USAGE, "must be greater than 0"),
    CliCase("probe-text: --l2 -1", probe("--l2", "-1"), USAGE, "--l2: must be at least 0"),
    CliCase("probe-text: --batch-size 0", probe("--batch-size", "0"), USAGE, "--batch-size: must be at least 1"),
    CliCase("probe-text: --seed -2", probe("--seed", "-2"), USAGE, "--seed: must be at least 0"),
    CliCase(
        "probe-text: -e without =",
        lambda t, m: ["probe-text", "-e", "./encoder", "-o", str(t / "out")],
        UsageError,
        "must look like NAME=VALUE",
    ),
    CliCase("probe-text: missing vocabulary file", probe("--vocabulary", "nope.txt"), ProbeConfigError, "nope.txt"),
    CliCase("probe-text: --device bogus", probe("--device", "bogus"), DeviceError, "'bogus' is not a torch device"),
    # probe-image
    CliCase(
        "probe-image: --images without --references",
        lambda t, m: [*image()(t, m), "--images", str(_folder(t))],
        UsageError,
        "--images and --references go together",
    ),
    CliCase(
        "probe-image: --scenes with --images",
        lambda t, m: [*image("--scenes", "5")(t, m), "--images", str(_folder(t)), "--references", str(_folder(t))],
        UsageError,
        "do not apply to --images",
    ),
    CliCase(
        "probe-image: --reference-size 0",
        image("--reference-size", "0"),
        USAGE,
        "--reference-size: must be greater than 0",
    ),
    CliCase("probe-image: --resolution 0", image("--resolution", "0"), USAGE, "--resolution: must be at least 1"),
    CliCase("probe-image: --scenes -3", image("--scenes", "-3"), USAGE, "--scenes: must be at least 1"),
    CliCase(
        "probe-image: output dir not empty",
        lambda t, m: [*image()(t, m), "-o", str(_file_at(t, "report.md").parent)],
        OutputExistsError,
        "already exists and is not empty",
    ),
    # train_encoder train / eval / export
    CliCase(
        "train: config is a folder",
        train("train", "--config", _folder, "--print-config"),
        ConfigError,
        "is a folder",
        TRAIN,
    ),
    CliCase(
        "train: config missing",
        train("train", "--config", "nope.yaml", "--print-config"),
        ConfigError,
        "does not exist",
        TRAIN,
    ),
    CliCase(
        "train: config malformed YAML",
        train("train", "--config", _text("c.yaml", "lr: [1"), "--print-config"),
        ConfigError,
        "is not valid YAML",
        TRAIN,
    ),
    CliCase(
        "train: config not a mapping",
        train("train", "--config", _text("c.yaml", "- lr\n- 1"), "--print-config"),
        ConfigError,
        "c.yaml",
        TRAIN,
    ),
    CliCase(
        "train: unknown key",
        train("train", "--config", "tiny", "--set", "steps=3", "--print-config"),
        ConfigError,
        "unknown config key 'steps' \\(did you mean 'max_steps'\\?\\)",
        TRAIN,
    ),
    CliCase(
        "train: --set without =",
        train("train", "--config", "tiny", "--set", "lr", "--print-config"),
        ConfigError,
        "override .lr. must look like key=value",
        TRAIN,
    ),
    CliCase(
        "train: negative learning rate",
        train("train", "--config", "tiny", "--lr", "-1", "--print-config"),
        ConfigError,
        "lr",
        TRAIN,
    ),
    CliCase(
        "eval: --batch-size 0",
        train(*EVAL, "urban1k=x", "--batch-size", "0"),
        USAGE,
        "--batch-size: must be at least 1",
        TRAIN,
    ),
    CliCase(
        "eval: --num-workers -1",
        train(*EVAL, "urban1k=x", "--num-workers", "-1"),
        USAGE,
        "--num-workers: must be at least 0",
        TRAIN,
    ),
    CliCase(
        "eval: --device cuda:99",
        train(*EVAL, "urban1k=x", "--device", "cuda:99"),
        DeviceError,
        "--device cuda:99",
        TRAIN,
    ),
    CliCase("eval: unknown dataset", train(*EVAL, "imagenet=x"), UsageError, "unknown evaluation set", TRAIN),
    CliCase(
        "eval: unknown caption variant",
        train(*EVAL, "urban1k=x", "--caption-variants", "vibes"),
        UsageError,
        "--caption-variants 'vibes': unknown caption variant",
        TRAIN,
    ),
    CliCase(
        "eval: no CLIP model",
        train("eval", "--dataset", "urban1k=x"),
        USAGE,
        "eval needs --clip-model NAME=SOURCE",
        TRAIN,
    ),
    CliCase(
        "eval: dataset folder missing",
        train(*EVAL, "urban1k=no-such-root", "--device", "cpu"),
        DatasetNotFoundError,
        "urban1k",
        TRAIN,
    ),
    CliCase(
        "eval: --model (old spelling) without =",
        train("eval", "--model", "clip", "--dataset", "urban1k=x"),
        UsageError,
        "must look like NAME=VALUE",
        TRAIN,
    ),
    CliCase(
        "export: missing checkpoint",
        train("export", "no-such-run", "--output", "out"),
        CheckpointError,
        "neither a checkpoint folder",
        TRAIN,
    ),
    CliCase(
        "export: bad dtype",
        train("export", "run", "-o", "out", "--dtype", "int4"),
        USAGE,
        "invalid choice: 'int4'",
        TRAIN,
    ),
]

assert len({case.name for case in CASES}) == len(CASES)


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_cli_input_is_one_error_line_and_leaves_nothing(case, models, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # relative paths (and default output folders) land here
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    argv = case.argv(work, models)
    before = _tree(tmp_path)
    main = train_main if case.program == TRAIN else debias_main
    if case.error is USAGE:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    else:
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(r"error: .*" + case.message, err), err
    assert _tree(tmp_path) == before, "bad input left something behind"
    if case.error is not USAGE:  # the same failure, raised with its traceback for --debug
        monkeypatch.setenv(DEBUG_ENV, "1")
        with pytest.raises(case.error, match=case.message):
            main(argv)
        assert _tree(tmp_path) == before
