"""Command-line flags built from a settings dataclass: one flag per field, described by the field's metadata.

A field says how it is spelled on the command line in its ``metadata`` (:func:`flag`, :func:`shared_flag`,
:func:`no_flag`); its default is the dataclass default, so ``--help`` and the Python API cannot disagree.
Fields parsed together (``--size WxH`` -> ``width`` / ``height``) are a :class:`FieldHook` the command passes in.
:func:`add_settings_arguments` adds the flags, :func:`settings_values` / :func:`settings_from_arguments` read
them back. A field with no metadata is refused when the parser is built, so no knob can go missing from the CLI.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .cli_arguments import add_deprecated_alias

__all__ = [
    "FieldHook",
    "FlagSpec",
    "NoFlag",
    "SharedFlag",
    "add_settings_arguments",
    "flag",
    "keyword_defaults",
    "no_flag",
    "settings_from_arguments",
    "settings_values",
    "shared_flag",
]

METADATA_KEY = "debias_diffusion.flag"


@dataclasses.dataclass(frozen=True)
class FlagSpec:
    """How one field is given on the command line.

    Attributes:
        help: what the value means; ``(default: ...)`` is appended from the dataclass default.
        flags: the flag's spellings (default: ``--field-name``); empty with ``positional``.
        type: the argparse ``type=`` parser (e.g. ``argument_types.bounded_int(1)``); none: the value is text.
        choices: the allowed values.
        metavar: how the value is shown in ``--help``.
        positional: a positional argument (the field then has no default).
        default_text: the default as ``--help`` words it, when the value itself says little (``None``: "the model's").
        default_in_help: ``False`` when ``help`` already says the default in its own words.
        old: deprecated spellings that still work, with one warning.
        read: applied to a given value when the settings are built (``@FILE`` prompts), not while parsing.
    """

    help: str
    flags: tuple[str, ...] = ()
    type: Callable[[str], Any] | None = None
    choices: Sequence[Any] | None = None
    metavar: str | None = None
    positional: bool = False
    default_text: str | None = None
    default_in_help: bool = True
    old: tuple[str, ...] = ()
    read: Callable[[Any], Any] | None = None


@dataclasses.dataclass(frozen=True)
class SharedFlag:
    """A field given by a flag both CLIs share (``cli_arguments.add_device``): ``add(parser)`` returns its action."""

    add: Callable[[argparse.ArgumentParser], argparse.Action]


@dataclasses.dataclass(frozen=True)
class NoFlag:
    """A field no flag sets: Python-only, or measured by the run; ``reason`` says which."""

    reason: str


@dataclasses.dataclass(frozen=True)
class FieldHook:
    """Fields one flag sets together, parsed by the command: ``add`` adds the flag, ``read`` gives the values."""

    fields: tuple[str, ...]
    add: Callable[[argparse.ArgumentParser], object]
    read: Callable[[argparse.Namespace], Mapping[str, Any]]


def flag(help: str, *flags: str, **options: Any) -> dict[str, FlagSpec]:
    """A field's ``metadata``: given by ``flags`` (default ``--field-name``); ``options`` as in :class:`FlagSpec`."""
    return {METADATA_KEY: FlagSpec(help, flags, **options)}


def shared_flag(add: Callable[[argparse.ArgumentParser], argparse.Action]) -> dict[str, SharedFlag]:
    """A field's ``metadata``: given by a shared flag (``add_device``, ``add_dtype``), spelled one way everywhere."""
    return {METADATA_KEY: SharedFlag(add)}


def no_flag(reason: str) -> dict[str, NoFlag]:
    """A field's ``metadata``: no flag sets it (``reason``: why, e.g. measured from the data)."""
    return {METADATA_KEY: NoFlag(reason)}


def keyword_defaults(function: Callable[..., Any], renamed: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``function``'s keyword defaults by field name (``renamed``: field -> parameter where they differ)."""
    parameters = inspect.signature(function).parameters
    names = {parameter: field for field, parameter in (renamed or {}).items()}
    return {
        names.get(name, name): parameter.default
        for name, parameter in parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


def add_settings_arguments(
    parser: argparse.ArgumentParser,
    settings: type,
    *,
    hooks: Sequence[FieldHook] = (),
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Add one flag per field of the dataclass ``settings`` to ``parser``, in field order.

    Args:
        parser: the subcommand's parser.
        settings: a dataclass whose fields carry :func:`flag` / :func:`shared_flag` / :func:`no_flag` metadata.
        hooks: fields the command parses itself (each hook's flag is added where its first field stands).
        defaults: defaults of fields without a dataclass default (a record's fields: the Python entry
            point's keyword defaults, see :func:`keyword_defaults`); must agree with the dataclass defaults.

    Raises:
        TypeError: a field has no flag metadata, or is covered twice; a default disagrees.
    """
    hooked = _hooked_fields(settings, hooks)
    for field in dataclasses.fields(settings):
        if field.name in hooked:
            hook = hooked[field.name]
            if field.name == hook.fields[0]:
                hook.add(parser)
            continue
        spec = _spec(settings, field)
        if isinstance(spec, SharedFlag):
            action = spec.add(parser)
            if action.dest != field.name:
                raise TypeError(f"{settings.__name__}.{field.name}: the shared flag sets {action.dest!r}")
        elif isinstance(spec, FlagSpec):
            _add_flag(parser, field.name, spec, _default(settings, field, defaults))


def settings_values(settings: type, args: argparse.Namespace, *, hooks: Sequence[FieldHook] = ()) -> dict[str, Any]:
    """Field name -> the parsed value, for every field a flag or hook sets (``read`` applied to given values)."""
    hooked = _hooked_fields(settings, hooks)
    values: dict[str, Any] = {}
    for hook in dict.fromkeys(hooked.values()):
        values.update(hook.read(args))
    for field in dataclasses.fields(settings):
        if field.name in hooked:
            continue
        spec = _spec(settings, field)
        if isinstance(spec, SharedFlag):
            values[field.name] = getattr(args, field.name)
        elif isinstance(spec, FlagSpec):
            value = getattr(args, _dest(field.name, spec))
            values[field.name] = spec.read(value) if spec.read is not None and value is not None else value
    return values


def settings_from_arguments(settings: type, args: argparse.Namespace, *, hooks: Sequence[FieldHook] = (), **given: Any):
    """The dataclass ``settings`` built from the parsed flags; ``given`` sets fields no flag sets."""
    return settings(**settings_values(settings, args, hooks=hooks), **given)


def _spec(settings: type, field: dataclasses.Field) -> FlagSpec | SharedFlag | NoFlag:
    spec = field.metadata.get(METADATA_KEY)
    if not isinstance(spec, (FlagSpec, SharedFlag, NoFlag)):
        raise TypeError(
            f"{settings.__name__}.{field.name} says nothing about its command-line flag: give it "
            "metadata=flag(help, ...), shared_flag(add) or no_flag(reason) (debias_diffusion.settings_arguments)"
        )
    return spec


def _hooked_fields(settings: type, hooks: Sequence[FieldHook]) -> dict[str, FieldHook]:
    names = {field.name for field in dataclasses.fields(settings)}
    hooked: dict[str, FieldHook] = {}
    for hook in hooks:
        for name in hook.fields:
            if name not in names:
                raise TypeError(f"{settings.__name__} has no field {name!r} for a hook")
            if name in hooked:
                raise TypeError(f"{settings.__name__}.{name} is parsed by two hooks")
            hooked[name] = hook
    return hooked


def _default(settings: type, field: dataclasses.Field, defaults: Mapping[str, Any] | None) -> Any:
    own = field.default  # dataclasses.MISSING when the field has none
    if defaults is None or field.name not in defaults:
        return own
    if own is not dataclasses.MISSING and own != defaults[field.name]:
        raise TypeError(
            f"{settings.__name__}.{field.name} defaults to {own!r} but the entry point to {defaults[field.name]!r}"
        )
    return defaults[field.name]


def _dest(name: str, spec: FlagSpec) -> str:
    """The namespace attribute argparse gives the flag (its first long spelling, as argparse derives it)."""
    if spec.positional or not spec.flags:
        return name
    long = next((option for option in spec.flags if option.startswith("--")), spec.flags[0])
    return long.lstrip("-").replace("-", "_")


def _add_flag(parser: argparse.ArgumentParser, name: str, spec: FlagSpec, default: Any) -> None:
    options: dict[str, Any] = {"help": spec.help}
    if spec.positional:
        if default is not dataclasses.MISSING:
            raise TypeError(f"the positional {name!r} has a default; positionals are always given")
        parser.add_argument(name, type=spec.type, choices=spec.choices, metavar=spec.metavar, **options)
        return
    flags = spec.flags or ("--" + name.replace("_", "-"),)
    default = None if default is dataclasses.MISSING else default
    if isinstance(default, bool):
        if default:
            raise TypeError(f"--{name}: a switch must default to False")
        action = parser.add_argument(*flags, action="store_true", **options)
    else:
        if spec.default_in_help and (default is not None or spec.default_text is not None):
            shown = spec.default_text or (" ".join(map(str, default)) if isinstance(default, list) else default)
            options["help"] = f"{spec.help} (default: {shown})"
        action = parser.add_argument(
            *flags, type=spec.type, choices=spec.choices, metavar=spec.metavar, default=default, **options
        )
    if spec.old:
        add_deprecated_alias(parser, action, *spec.old)
