"""One command-line vocabulary: the same flag means the same thing in every subcommand of both CLIs, and
every old spelling still works for one release, printing one warning that names the new one."""

from __future__ import annotations

import argparse

import pytest

from debias_diffusion.cli import _parser as debias_parser
from debias_diffusion.cli_arguments import parse_arguments
from debias_diffusion.conditioning import LONG_PROMPT_POLICIES
from debias_diffusion.devices import resolve_device
from train_encoder.cli import build_parser as train_parser

PARSERS = {"debias-diffusion": debias_parser, "train-encoder": train_parser}

# (program, arguments every spelling needs, old spelling, new spelling, the attribute both must set)
ALIASES = [
    ("debias-diffusion", ["convert", "c.pt"], ["OUT"], ["-o", "OUT"], ("output_dir", "OUT")),
    ("debias-diffusion", ["convert", "c.pt", "-o", "o"], ["--stretch", "248"], ["--stretch-to", "248"], ("stretch_to", 248)),
    ("debias-diffusion", ["generate", "a cat"], ["--output", "OUT"], ["-o", "OUT"], ("output_dir", "OUT")),
    ("debias-diffusion", ["evaluate-prominence", "-e", "a=b"], ["--objects", "s.yaml"], ["--object-sets", "s.yaml"], ("object_sets", "s.yaml")),
    ("debias-diffusion", ["late-detail", "--items", "i.yaml"], ["--tolerance", "3"], ["--offset-tolerance", "3"], ("offset_tolerance", 3)),
    ("debias-diffusion", ["count-tokens", "a cat"], ["--max-length", "77"], ["--context-length", "77"], ("context_length", 77)),
    ("debias-diffusion", ["probe-text", "-e", "a=b"], ["--long-prompt", "error"], ["--long-captions", "error"], ("long_captions", "error")),
    ("debias-diffusion", ["probe-image"], ["-m", "a=b"], ["--clip-model", "a=b"], ("clip_model", ["a=b"])),
    ("debias-diffusion", ["probe-image"], ["--model", "a=b"], ["--clip-model", "a=b"], ("clip_model", ["a=b"])),
    ("debias-diffusion", ["shapes-world", "--scenes", "2"], ["OUT"], ["-o", "OUT"], ("output_dir", "OUT")),
    ("debias-diffusion", ["shapes-world", "--scenes", "2", "-o", "o"], ["--size", "32"], ["--resolution", "32"], ("resolution", 32)),
    ("train-encoder", ["eval", "--dataset", "u=x"], ["--model", "a=b"], ["--clip-model", "a=b"], ("clip_model", ["a=b"])),
    ("train-encoder", ["eval", "--clip-model", "a=b", "--dataset", "u=x"], ["--probe", "first_only"], ["--caption-variants", "first_only"], ("caption_variants", ["first_only"])),
    ("train-encoder", ["export", "run"], ["--output", "OUT"], ["-o", "OUT"], ("output_dir", "OUT")),
    ("train-encoder", ["train"], ["--model", "m"], ["--clip-model", "m"], ("key__model", "m")),
]  # fmt: skip


def _parse(program: str, argv: list[str]) -> argparse.Namespace:
    return parse_arguments(PARSERS[program](), argv)


@pytest.mark.parametrize("program, base, old, new, expected", ALIASES, ids=lambda v: " ".join(v) if isinstance(v, list) else None)  # fmt: skip
def test_old_spelling_works_and_warns_once_naming_the_new_one(program, base, old, new, expected, capsys):
    with_new = _parse(program, [*base, *new])
    assert capsys.readouterr().err == ""
    with_old = _parse(program, [*base, *old])
    assert vars(with_old) == vars(with_new)
    assert getattr(with_new, expected[0]) == expected[1]
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("warning: ") and "deprecated" in warnings[0]
    assert new[0] in warnings[0] and (old[0] in warnings[0] or "positional" in warnings[0])


def test_an_old_spelling_given_twice_warns_once(capsys):
    args = _parse("debias-diffusion", ["probe-image", "-m", "a=x", "--model", "b=y", "--clip-model", "c=z"])
    assert args.clip_model == ["a=x", "b=y", "c=z"]
    assert len(capsys.readouterr().err.splitlines()) == 1


def _subcommands(program: str) -> dict[str, argparse.ArgumentParser]:
    parser = PARSERS[program]()
    (choices,) = [a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return choices


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Visible option strings -> actions (deprecated spellings are hidden)."""
    return {s: a for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings}


WRITES_A_FOLDER = {
    "debias-diffusion": ["convert", "generate", "evaluate-prominence", "late-detail", "probe-text", "probe-image",
                         "shapes-world"],
    "train-encoder": ["train", "eval", "export"],
}  # fmt: skip


@pytest.mark.parametrize("program", PARSERS)
def test_every_subcommand_that_writes_a_folder_takes_o_output_dir(program, capsys):
    commands = _subcommands(program)
    for name in WRITES_A_FOLDER[program]:
        options = _options(commands[name])
        assert options["-o"] is options["--output-dir"], name
        with pytest.raises(SystemExit):
            PARSERS[program]().parse_args([name, "--help"])
        assert "-o DIR, --output-dir DIR" in capsys.readouterr().out, name
    for name, parser in commands.items():  # no other spelling of an output folder is left visible
        assert not {"--output", "--out", "--dst"} & set(_options(parser)), name


def test_the_same_flag_means_the_same_thing_everywhere():
    every = [(f"{program} {name}", _options(parser)) for program in PARSERS for name, parser in _subcommands(program).items()]  # fmt: skip
    devices = [options["--device"] for _, options in every if "--device" in options]
    assert len(devices) == 6 and {(a.help, a.default) for a in devices} == {(devices[0].help, None)}
    assert "auto" in devices[0].help
    # -m/--model is a diffusers pipeline wherever it is visible; CLIP models are --clip-model
    for where, options in every:
        if "--model" in options:
            assert "diffusers" in options["--model"].help, where
    clip = {where: options["--clip-model"] for where, options in every if "--clip-model" in options}
    assert list(clip) == ["debias-diffusion probe-image", "train-encoder train", "train-encoder eval"]
    assert clip["train-encoder train"].dest == "key__model"  # the config key of the CLIP model to fine-tune
    assert all("CLIP model" in clip[where].help for where in ("debias-diffusion probe-image", "train-encoder eval"))
    # --long-prompt is the pipelines' policy; probe-text's cut of captions is --long-captions
    policies = [options["--long-prompt"].choices for _, options in every if "--long-prompt" in options]
    assert len(policies) == 3 and all(tuple(choices) == tuple(LONG_PROMPT_POLICIES) for choices in policies)
    # --tolerance is a numerical difference (convert); late-detail's token slack is --offset-tolerance
    assert [where for where, options in every if "--tolerance" in options] == ["debias-diffusion convert"]
    assert [where for where, options in every if "--stretch-to" in options] == [
        "debias-diffusion convert", "train-encoder train", "train-encoder eval"]  # fmt: skip
    assert not [where for where, options in every if "--stretch" in options or "--probe" in options]


def test_output_folder_missing_or_given_twice_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as missing:
        _parse("debias-diffusion", ["convert", "c.pt"])
    assert missing.value.code == 2 and "convert needs -o/--output-dir DIR" in capsys.readouterr().err
    for argv in (["convert", "c.pt", "OUT", "-o", "O2"], ["convert", "-o", "O2", "c.pt", "OUT"]):
        with pytest.raises(SystemExit) as twice:
            _parse("debias-diffusion", argv)
        assert twice.value.code == 2 and "the output folder is given twice" in capsys.readouterr().err


def test_device_auto_is_the_default():
    assert resolve_device("auto") == resolve_device(None) in ("cuda", "cpu")


def test_shapes_world_is_a_subcommand(tmp_path, capsys):
    from debias_diffusion.cli import main

    out = tmp_path / "world"
    argv = ["shapes-world", "-o", str(out), "--scenes", "2", "--resolution", "16", "--seed", "4", "--no-progress"]
    assert main(argv) == 0
    assert "2 scenes (2 images written" in capsys.readouterr().out
    assert len(list((out / "images").glob("*.png"))) == 2 and (out / "captions.jsonl").is_file()
    assert main([*argv[:-3], "--seed", "5", "--no-progress"]) == 2  # other settings: refused, not mixed in
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.parametrize(
    "module, old, new",
    [
        ("debias_diffusion.prominence.runner", "GenerationOptions", "SamplingSettings"),
        ("debias_diffusion.prominence.jobs", "GenerationOptions", "SamplingSettings"),
        ("debias_diffusion.text_probes", "embed_texts", "encode_pooled_texts"),
        ("train_encoder.evaluation", "apply_probe", "apply_caption_variant"),
        ("train_encoder.evaluation", "get_probe", "get_caption_variant"),
        ("train_encoder.evaluation", "PROBE_NAMES", "CAPTION_VARIANT_NAMES"),
        ("train_encoder.evaluation", "embed_texts", "cached_text_features"),
    ],
)
def test_renamed_python_names_still_import_with_a_deprecation_warning(module, old, new):
    import importlib

    namespace = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated .* use {new}"):
        assert getattr(namespace, old) is getattr(namespace, new)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        namespace.no_such_name  # noqa: B018 - the lookup is the test
