"""The flags both command lines share, spelled and checked one way (``debias-diffusion``, ``train-encoder``).

One concept, one flag: ``-o/--output-dir`` is the folder a subcommand writes, ``--device`` a torch device
resolved when the command runs (default ``auto``: cuda if available, else cpu), ``--dtype`` a weights dtype,
``--stretch-to N`` knowledge-preserved stretching, ``--tolerance`` the largest difference a numerical check
allows, and ``NAME=SOURCE`` flags name the models a report compares. Old spellings stay for one release through
:func:`add_deprecated_alias`, which prints one ``warning:`` line naming the new spelling.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .argument_types import bounded_float, bounded_int

__all__ = [
    "DTYPE_NAMES",
    "DeprecatedAlias",
    "add_clip_models",
    "add_deprecated_alias",
    "add_device",
    "add_dtype",
    "add_named_sources",
    "add_output_dir",
    "add_stretch",
    "add_tolerance",
    "parse_arguments",
    "require_flag",
]

DTYPE_NAMES = ("float32", "float16", "bfloat16")

_REQUIRED = "_required_flags"
_POSITIONAL_OUTPUT = "_output_dir_positional"
_FLAG_OUTPUT = "_output_dir_flag"


class DeprecatedAlias(argparse.Action):
    """An old spelling of a flag: prints one ``warning:`` line naming the new spelling, then does what it does."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, target: argparse.Action, **kwargs) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.target = target
        self.warned = False

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if not self.warned:
            self.warned = True
            warn_deprecated(option_string or self.dest, "/".join(self.target.option_strings))
        self.target(parser, namespace, values, option_string)


def warn_deprecated(old: str, new: str) -> None:
    """The one line an old spelling prints (stderr; the command still runs)."""
    print(f"warning: {old} is deprecated and goes in the next release; use {new}", file=sys.stderr)


def add_deprecated_alias(parser: argparse.ArgumentParser, target: argparse.Action, *old: str) -> None:
    """Accept ``old`` spellings of ``target`` (the action ``add_argument`` returned), hidden from ``--help``."""
    parser.add_argument(
        *old,
        dest=target.dest,
        nargs=target.nargs,
        const=target.const,
        type=target.type,
        choices=target.choices,
        metavar=target.metavar,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
        action=DeprecatedAlias,
        target=target,
    )


def add_output_dir(
    parser: argparse.ArgumentParser,
    *,
    default: str | None = None,
    required: bool | None = None,
    what: str = "output folder",
    old: Sequence[str] = (),
    positional: bool = False,
) -> argparse.Action:
    """``-o/--output-dir DIR``; with no ``default`` it is required unless ``required=False``.

    Args:
        parser: the subcommand's parser.
        default: the folder used when the flag is not given.
        required: the flag must be given (default: when there is no ``default``).
        what: the help text's description of the folder.
        old: deprecated flag spellings (``--output``) that still work.
        positional: also accept the folder as a trailing positional argument (deprecated).
    """
    action = parser.add_argument(
        "-o",
        "--output-dir",
        default=default,
        metavar="DIR",
        action=_OutputDirFlag if positional else "store",
        help=f"{what} ({_default_text(default, required)})",
    )
    if old:
        add_deprecated_alias(parser, action, *old)
    if positional:
        parser.add_argument(_POSITIONAL_OUTPUT, nargs="?", action=_OutputDirPositional, help=argparse.SUPPRESS)
    if required or (required is None and default is None):
        require_flag(parser, action)
    return action


def _default_text(default: str | None, required: bool | None) -> str:
    if default is not None:
        return f"default: {default}"
    return "required" if required is not False else "default: none"


class _OutputDirFlag(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if getattr(namespace, _POSITIONAL_OUTPUT, None) is not None:
            parser.error("the output folder is given twice (a positional DIR and -o/--output-dir); give -o only")
        setattr(namespace, self.dest, values)
        setattr(namespace, _FLAG_OUTPUT, True)


class _OutputDirPositional(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, _POSITIONAL_OUTPUT, values)
        if values is None:  # argparse calls optional positionals with their default when absent
            return
        if getattr(namespace, _FLAG_OUTPUT, False):
            parser.error("the output folder is given twice (a positional DIR and -o/--output-dir); give -o only")
        warn_deprecated("the positional output folder", "-o/--output-dir DIR")
        namespace.output_dir = values


def parse_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args`` plus the checks argparse cannot make while old spellings share a flag's value."""
    args = parser.parse_args(argv)
    for dest, flag in getattr(args, _REQUIRED, ()):
        if not getattr(args, dest, None):
            parser.error(f"{getattr(args, 'command', None) or parser.prog} needs {flag}")
    for name in (_REQUIRED, _POSITIONAL_OUTPUT, _FLAG_OUTPUT):
        if hasattr(args, name):
            delattr(args, name)
    return args


def add_device(parser: argparse.ArgumentParser) -> argparse.Action:
    """``--device``: checked by :func:`debias_diffusion.devices.resolve_device` when the command runs."""
    return parser.add_argument(
        "--device",
        metavar="DEVICE",
        help="torch device: cpu, cuda, cuda:N, mps or auto (default: auto, cuda if available, else cpu)",
    )


def add_dtype(
    parser: argparse.ArgumentParser, *, default: str | None = None, what: str = "weights dtype"
) -> argparse.Action:
    """``--dtype``; no ``default``: float16 on CUDA, float32 elsewhere (``devices.resolve_dtype``)."""
    shown = default or "float16 on CUDA, float32 elsewhere"
    return parser.add_argument("--dtype", choices=DTYPE_NAMES, default=default, help=f"{what} (default: {shown})")


def add_named_sources(
    parser: argparse.ArgumentParser,
    *flags: str,
    what: str,
    metavar: str = "NAME=SOURCE",
    required: bool = False,
    old: Sequence[str] = (),
) -> argparse.Action:
    """A repeatable ``NAME=SOURCE`` flag (parsed by :func:`debias_diffusion.named_arguments.parse_named_values`).

    Args:
        parser: the subcommand's parser.
        flags: the flag's spellings, e.g. ``"-e", "--encoder"``.
        what: help text; the names label the report's rows.
        metavar: how the value is shown in ``--help``.
        required: at least one is needed (checked by :func:`parse_arguments`).
        old: deprecated spellings that still work.
    """
    action = parser.add_argument(
        *flags,
        action="append",
        default=[],
        metavar=metavar,
        required=required and not old,
        help=f"{what} (repeatable{', required' if required else ''})",
    )
    if old:
        add_deprecated_alias(parser, action, *old)
        if required:
            require_flag(parser, action)
    return action


def require_flag(parser: argparse.ArgumentParser, action: argparse.Action) -> None:
    """Check ``action`` was given after parsing (argparse's ``required`` would refuse its old spellings)."""
    flag = f"{'/'.join(action.option_strings)} {action.metavar}"
    parser.set_defaults(**{_REQUIRED: (*(parser.get_default(_REQUIRED) or ()), (action.dest, flag))})


def add_clip_models(parser: argparse.ArgumentParser, *, what: str, old: Sequence[str] = ()) -> argparse.Action:
    """``--clip-model NAME=SOURCE``, required: full CLIP models (both towers) compared by name."""
    return add_named_sources(
        parser,
        "--clip-model",
        required=True,
        old=old,
        what=f"{what}: NAME=HF folder (CLIPModel, a train-encoder clip/ export), Hub id, .pt/.safetensors "
        "(OpenAI / Long-CLIP layout) or open_clip:ARCH/PRETRAINED",
    )


def add_stretch(parser: argparse.ArgumentParser, *, what: str, old: Sequence[str] = ()) -> None:
    """``--stretch-to N``: knowledge-preserved stretching (KPS) to N positions."""
    action = parser.add_argument("--stretch-to", type=bounded_int(1), metavar="N", help=what)
    if old:
        add_deprecated_alias(parser, action, *old)


def add_tolerance(parser: argparse.ArgumentParser, *, default: float, what: str) -> None:
    """``--tolerance``: the largest absolute difference a numerical check allows."""
    parser.add_argument("--tolerance", type=bounded_float(0), default=default, help=f"{what} (default: {default:g})")
