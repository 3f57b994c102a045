"""Subcommands build their knobs' flags from their settings dataclass (debias_diffusion.settings_arguments):
one flag per field, the dataclass default as the flag's default, and the parsed flags read back into the
dataclass with the values the Python API would use."""

from __future__ import annotations

import argparse
import dataclasses
import inspect

import pytest

from debias_diffusion.argument_types import bounded_int
from debias_diffusion.cli import PROBE_TEXT_KEYWORDS, _parser
from debias_diffusion.cli_arguments import add_device, parse_arguments
from debias_diffusion.generation import GenerationSettings
from debias_diffusion.image_probes import probe_image
from debias_diffusion.image_probes.results import ImageProbeSettings
from debias_diffusion.prominence.jobs import SamplingSettings
from debias_diffusion.settings_arguments import (
    METADATA_KEY,
    FieldHook,
    FlagSpec,
    NoFlag,
    SharedFlag,
    add_settings_arguments,
    flag,
    no_flag,
    settings_from_arguments,
    settings_values,
    shared_flag,
)
from debias_diffusion.text_probes import probe_text
from debias_diffusion.text_probes.results import ProbeSettings


def _subcommand(name: str) -> argparse.ArgumentParser:
    (choices,) = [a.choices for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return choices[name]


def _visible(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)]


def _spec(settings: type, name: str):
    return next(f for f in dataclasses.fields(settings) if f.name == name).metadata[METADATA_KEY]


EVALUATOR_FLAGS = ("--seeds", "--detector", "--detector-model", "--threshold", "--box-threshold", "--text-threshold",
                   "--sam", "--dtype", "--device", "--caveat", "-o", "--output-dir")  # fmt: skip
# subcommand -> (its settings dataclass, fields one hook sets together, the visible flags that are no field of it)
SUBCOMMANDS = {
    "generate": (GenerationSettings, {("width", "height"): "--size"}, {"-o", "--output-dir", "--overwrite"}),
    "probe-text": (ProbeSettings, {}, {"-e", "--encoder", "--batch-size", "--device", "-o", "--output-dir",
                                       "--overwrite"}),
    "probe-image": (ImageProbeSettings, {}, {"--clip-model", "--images", "--references", "--scenes", "--objects",
                                             "--resolution", "--reference-size", "--hidden-act", "--num-heads",
                                             "--batch-size", "--device", "-o", "--output-dir", "--overwrite"}),
    "evaluate-prominence": (SamplingSettings, {("width", "height"): "--size"}, {
        "--object-sets", "-m", "--model", "-e", "--encoder", "-p", "--pipeline", "-t", "--template", "--max-orderings",
        "--long-prompt", *EVALUATOR_FLAGS}),
    "late-detail": (SamplingSettings, {("width", "height"): "--size"}, {
        "--items", "-m", "--model", "-e", "--encoder", "-p", "--pipeline", "--chunk", "--long-prompt", "--offsets",
        "--context", "--no-builtin-context", "--total-tokens", "--offset-tolerance", "--attention", *EVALUATOR_FLAGS}),
}  # fmt: skip
# the Python entry point whose keyword defaults a record's flags take (its own field names where they differ)
ENTRY_POINTS = {"probe-text": (probe_text, PROBE_TEXT_KEYWORDS), "probe-image": (probe_image, {})}


def _python_defaults(command: str) -> dict:
    """Field -> the default the Python API uses: the dataclass's, else the entry point's keyword default."""
    settings = SUBCOMMANDS[command][0]
    defaults = {f.name: f.default for f in dataclasses.fields(settings) if f.default is not dataclasses.MISSING}
    if command in ENTRY_POINTS:
        function, renamed = ENTRY_POINTS[command]
        parameters = inspect.signature(function).parameters
        for field in dataclasses.fields(settings):
            parameter = parameters.get(renamed.get(field.name, field.name))
            if parameter is not None and parameter.default is not inspect.Parameter.empty:
                defaults[field.name] = parameter.default
    return defaults


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_field_has_exactly_one_flag(command):
    settings, hooked, other_flags = SUBCOMMANDS[command]
    actions = _visible(_subcommand(command))
    by_option = {option: action for action in actions for option in action.option_strings or [action.dest]}
    claimed: list[argparse.Action] = []
    for field in dataclasses.fields(settings):
        spec = field.metadata[METADATA_KEY]
        group = next((fields for fields in hooked if field.name in fields), None)
        if group is not None:
            claimed.append(by_option[hooked[group]])
        elif isinstance(spec, FlagSpec):
            flags = spec.flags or ([field.name] if spec.positional else ["--" + field.name.replace("_", "-")])
            assert len({id(by_option[option]) for option in flags}) == 1, field.name
            claimed.append(by_option[flags[0]])
        elif isinstance(spec, SharedFlag):
            (action,) = [a for a in actions if a.dest == field.name]
            claimed.append(action)
        else:
            assert isinstance(spec, NoFlag) and spec.reason, field.name
            assert not [a for a in actions if a.dest == field.name], f"{field.name} is no_flag but has a flag"
    unclaimed = [a for a in actions if all(a is not c for c in claimed)]
    assert {option for a in unclaimed for option in a.option_strings} == other_flags
    hook_actions = {id(by_option[option]) for option in hooked.values()}
    own = [id(a) for a in claimed if id(a) not in hook_actions]
    assert len(own) == len(set(own)), "two fields share a flag"


def test_generate_defaults_round_trip_to_the_python_api():
    args = parse_arguments(_parser(), ["generate", "a cat"])
    assert settings_from_arguments(GenerationSettings, args, hooks=_generate_hooks()) == GenerationSettings("a cat")


def test_generate_every_flag_reaches_its_field(tmp_path):
    (tmp_path / "neg.txt").write_text("blurry, dark", encoding="utf-8")
    argv = ["generate", "a cat", "-n", f"@{tmp_path / 'neg.txt'}", "-m", "my/model", "-e", "none", "--steps", "3",
            "--guidance-scale", "2.5", "--seed", "9", "--size", "640x384", "--num-images", "4", "--long-prompt",
            "chunk", "--dtype", "bfloat16", "--device", "cpu"]  # fmt: skip
    settings = settings_from_arguments(GenerationSettings, parse_arguments(_parser(), argv), hooks=_generate_hooks())
    assert settings == GenerationSettings(
        "a cat", negative_prompt="blurry, dark", model="my/model", encoder="none", steps=3, guidance_scale=2.5,
        seed=9, width=640, height=384, num_images=4, long_prompt="chunk", dtype="bfloat16", device="cpu",
    )  # fmt: skip


@pytest.mark.parametrize("command", ["evaluate-prominence", "late-detail"])
def test_evaluator_sampling_flags_round_trip(command):
    from debias_diffusion.cli import EVALUATOR_SIZE

    base = [command, "--object-sets" if command == "evaluate-prominence" else "--items", "x.yaml"]
    default = parse_arguments(_parser(), base)
    assert settings_from_arguments(SamplingSettings, default, hooks=[EVALUATOR_SIZE]) == SamplingSettings()
    given = parse_arguments(_parser(), [*base, "--steps", "4", "--guidance-scale", "3", "--size", "64x32", "-n", "x"])
    assert settings_from_arguments(SamplingSettings, given, hooks=[EVALUATOR_SIZE]) == SamplingSettings(
        steps=4, guidance_scale=3.0, width=64, height=32, negative_prompt="x"
    )


def _generate_hooks() -> list[FieldHook]:
    from debias_diffusion.cli import GENERATE_SIZE

    return [GENERATE_SIZE]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_says_the_python_api_defaults(command):
    settings, hooked, _ = SUBCOMMANDS[command]
    defaults = _python_defaults(command)
    parser = _subcommand(command)
    actions = {option: a for a in _visible(parser) for option in a.option_strings}
    for field in dataclasses.fields(settings):
        spec = field.metadata[METADATA_KEY]
        if not isinstance(spec, FlagSpec) or spec.positional or any(field.name in group for group in hooked):
            continue
        action = actions[spec.flags[-1] if spec.flags else "--" + field.name.replace("_", "-")]
        assert action.default == defaults[field.name], field.name
        if isinstance(action.default, bool) or action.default is None:
            continue
        shown = f"(default: {action.default})" if spec.default_in_help else str(action.default)
        assert shown in action.help, field.name


@pytest.mark.parametrize("command, base", [("probe-text", ["-e", "a=b"]), ("probe-image", ["--clip-model", "a=b"])])
def test_probe_defaults_round_trip_to_the_python_api(command, base):
    settings = SUBCOMMANDS[command][0]
    values = settings_values(settings, parse_arguments(_parser(), [command, *base]))
    flagged = {f.name for f in dataclasses.fields(settings) if not isinstance(f.metadata[METADATA_KEY], NoFlag)}
    assert set(values) == flagged
    assert values == {name: _python_defaults(command)[name] for name in flagged}


def test_probe_text_every_flag_reaches_its_field():
    argv = ["probe-text", "-e", "a=b", "--vocabulary", "simco", "--objects", "3", "--captions", "50", "--style",
            "long", "--articles", "--summary", "--seed", "5", "--test-fraction", "0.5", "--l2", "0.01",
            "--long-captions", "error", "--protocol", "paper"]  # fmt: skip
    assert settings_values(ProbeSettings, parse_arguments(_parser(), argv)) == {
        "vocabulary": "simco", "num_objects": 3, "num_captions": 50, "style": "long", "articles": True,
        "summary": True, "seed": 5, "test_fraction": 0.5, "l2": 0.01, "on_long": "error", "protocol": "paper",
    }  # fmt: skip


# A synthetic settings dataclass: what a new knob gets without touching any command.
@dataclasses.dataclass(frozen=True)
class Knobs:
    name: str = dataclasses.field(metadata=flag("what to call it", positional=True, read=str.upper))
    count: int = dataclasses.field(default=3, metadata=flag("how many", "-c", "--count", type=bounded_int(1)))
    verbose: bool = dataclasses.field(default=False, metadata=flag("say more"))
    tolerance_tokens: int = dataclasses.field(default=2, metadata=flag("slack", old=("--slack",), type=int))
    device: str | None = dataclasses.field(default=None, metadata=shared_flag(add_device))
    width: int | None = dataclasses.field(default=None, metadata=flag("width", type=int))
    height: int | None = dataclasses.field(default=None, metadata=flag("height", type=int))
    measured: int = dataclasses.field(default=0, metadata=no_flag("measured by the run"))


SQUARE = FieldHook(("width", "height"), add=lambda p: p.add_argument("--side", type=int),
                   read=lambda args: {"width": args.side, "height": args.side})  # fmt: skip


def _knobs_parser(settings: type = Knobs, **options) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="knobs")
    add_settings_arguments(parser, settings, **options)
    return parser


def test_a_new_field_appears_as_a_flag_with_its_default_and_reads_back(capsys):
    @dataclasses.dataclass(frozen=True)
    class MoreKnobs(Knobs):
        temperature: float = dataclasses.field(default=0.5, metadata=flag("sampling temperature", type=float))

    parser = _knobs_parser(MoreKnobs, hooks=[SQUARE])
    assert "sampling temperature (default: 0.5)" in parser.format_help()
    default = settings_from_arguments(MoreKnobs, parser.parse_args(["x"]), hooks=[SQUARE])
    assert default == MoreKnobs("X")  # read= applied; every other field the dataclass default
    given = parser.parse_args(["x", "--temperature", "0.1", "-c", "5", "--verbose", "--side", "8", "--slack", "4"])
    assert "--slack is deprecated" in capsys.readouterr().err
    assert settings_from_arguments(MoreKnobs, given, hooks=[SQUARE], measured=7) == MoreKnobs(
        "X", count=5, verbose=True, tolerance_tokens=4, width=8, height=8, measured=7, temperature=0.1
    )
    assert set(settings_values(MoreKnobs, given, hooks=[SQUARE])) == {f.name for f in dataclasses.fields(MoreKnobs)} - {
        "measured"
    }


def test_without_a_hook_each_field_gets_its_own_flag():
    args = _knobs_parser().parse_args(["x", "--width", "4", "--height", "6"])
    assert settings_from_arguments(Knobs, args) == Knobs("X", width=4, height=6)


def test_a_field_without_flag_metadata_is_refused_when_the_parser_is_built():
    @dataclasses.dataclass(frozen=True)
    class Forgotten(Knobs):
        silent: int = 1

    with pytest.raises(TypeError, match=r"Forgotten\.silent says nothing about its command-line flag"):
        _knobs_parser(Forgotten)


def test_defaults_given_for_a_record_must_agree_with_the_dataclass():
    parser = _knobs_parser(defaults={"count": 3})
    assert parser.get_default("count") == 3
    with pytest.raises(TypeError, match="count defaults to 3 but the entry point to 4"):
        _knobs_parser(defaults={"count": 4})


def test_hooks_name_real_fields_once():
    with pytest.raises(TypeError, match="no field 'depth'"):
        _knobs_parser(hooks=[FieldHook(("depth",), add=print, read=dict)])
    with pytest.raises(TypeError, match="parsed by two hooks"):
        _knobs_parser(hooks=[SQUARE, FieldHook(("width",), add=print, read=dict)])
