"""The docs and examples use the current flag spellings: every deprecated spelling the parsers (and the example
scripts) still accept is read from the code, then looked for in every command line of the docs and examples."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

from debias_diffusion.cli import _parser as debias_parser
from debias_diffusion.cli_arguments import DeprecatedAlias
from train_encoder.cli import build_parser as train_parser

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = {"debias-diffusion": debias_parser, "train-encoder": train_parser}
NAMES = {
    "train_encoder": "train-encoder",
    "debias_diffusion.cli": "debias-diffusion",
    "debias_diffusion.shapes_world": "debias-diffusion shapes-world",
}  # python -m spellings of the programs
ALIAS_CALLS = {"add_output_dir", "add_named_sources", "add_clip_models", "add_stretch"}


def _cli_aliases() -> dict[tuple[str, str], set[str]]:
    """(program, subcommand) -> the old flag spellings its parser still accepts."""
    aliases = {}
    for program, build in PROGRAMS.items():
        (commands,) = [a.choices for a in build()._actions if isinstance(a, argparse._SubParsersAction)]
        for name, parser in commands.items():
            old = {s for a in parser._actions if isinstance(a, DeprecatedAlias) for s in a.option_strings}
            if old:
                aliases[program, name] = old
    return aliases


def _script_aliases() -> dict[str, set[str]]:
    """Example script file name -> the ``old=[...]`` spellings its own parser declares."""
    aliases = {}
    for path in (ROOT / "examples").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ALIAS_CALLS:
                for keyword in node.keywords:
                    if keyword.arg == "old":
                        aliases.setdefault(path.name, set()).update(ast.literal_eval(keyword.value))
    return aliases


def _documents() -> list[Path]:
    roots = [ROOT / "docs", ROOT / "examples", ROOT / ".ci", ROOT / "bench"]
    files = [p for root in roots for p in root.rglob("*") if p.suffix in {".md", ".py", ".sh", ""} and p.is_file()]
    return [ROOT / "README.md", ROOT / "Makefile", *(p for p in files if "models" not in p.parts)]


def _command_lines(text: str) -> list[list[str]]:
    """Shell commands in ``text`` as word lists: continuations joined, split at ``&&``, ``;`` and ``|``; tables skipped."""
    joined = re.sub(r"\\\n", " ", text)
    commands = []
    for line in joined.splitlines():
        if line.lstrip().startswith("|"):  # a Markdown table row (the README's alias table names the old spellings)
            continue
        for command in re.split(r"&&|;|\|", line):
            words = [NAMES.get(word, word) for word in (w.strip("`'\"(),") for w in command.split())]
            commands.append(" ".join(words).split())
    return commands


def _offences(commands: list[list[str]], cli: dict, scripts: dict) -> list[str]:
    found = []
    for words in commands:
        for (program, name), old in cli.items():
            for i, word in enumerate(words[:-1]):
                if word == program and words[i + 1] == name and old & set(words[i + 2 :]):
                    found.append(f"{program} {name} ... {sorted(old & set(words[i + 2 :]))}")
        for script, old in scripts.items():
            if any(word.endswith(script) for word in words) and old & set(words):
                found.append(f"{script} ... {sorted(old & set(words))}")
    return found


def test_the_alias_tables_are_read_from_the_code():
    cli, scripts = _cli_aliases(), _script_aliases()
    assert (
        "--output" in cli["debias-diffusion", "generate"] and "--long-prompt" in cli["debias-diffusion", "probe-text"]
    )
    assert "--output" in scripts["demo.py"]
    assert _offences([["debias-diffusion", "generate", "a", "--output", "x"]], cli, scripts)
    assert _offences([["python", "examples/shapes_world/demo.py", "--output", "x"]], cli, scripts)
    assert not _offences([["python", "examples/shapes_world/demo.py", "-o", "x"]], cli, scripts)


def test_docs_and_examples_use_no_deprecated_spelling():
    cli, scripts = _cli_aliases(), _script_aliases()
    offences = [
        f"{path.relative_to(ROOT)}: {offence}"
        for path in _documents()
        for offence in _offences(_command_lines(path.read_text(encoding="utf-8")), cli, scripts)
    ]
    assert not offences, "\n".join(offences)
