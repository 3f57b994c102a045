"""Every public entry point (``debias_diffusion.__all__``) documents each of its parameters in an ``Args:`` section.

Functions document their parameters; classes document what constructs them (a dataclass's fields, or
``__init__``'s parameters) under ``Args:`` or ``Attributes:``. ``*args`` / ``**kwargs`` need no entry.
Entries are Google style: ``name: text`` or ``first, second: text``.
"""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest

import debias_diffusion

SECTION = re.compile(r"^(?P<indent>[ \t]*)(Args|Arguments|Attributes):[ \t]*$", re.MULTILINE)
ENTRY = re.compile(r"^(?P<names>\*{0,2}\w+(?:, \*{0,2}\w+)*)(?: \([^)]*\))?:")


def documented_names(docstring: str) -> set[str]:
    """The names the ``Args:`` / ``Attributes:`` sections of ``docstring`` describe."""
    names: set[str] = set()
    lines = inspect.cleandoc(docstring).splitlines()
    for index, line in enumerate(lines):
        match = SECTION.match(line)
        if match is None:
            continue
        entry_indent = None
        for entry in lines[index + 1 :]:
            if not entry.strip():
                continue
            indent = len(entry) - len(entry.lstrip())
            if indent <= len(match["indent"]):
                break  # the section ended
            entry_indent = entry_indent if entry_indent is not None else indent
            if indent == entry_indent and (found := ENTRY.match(entry.strip())):
                names.update(name.lstrip("*") for name in found["names"].split(", "))
    return names


def parameters(obj: object) -> list[str]:
    """What a caller passes: a dataclass's init fields, else the signature's named parameters."""
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
        return [field.name for field in dataclasses.fields(obj) if field.init]
    target = obj.__init__ if inspect.isclass(obj) else obj
    if inspect.isclass(obj) and target is object.__init__:
        return []
    skipped = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    signature = inspect.signature(target)
    return [name for name, p in signature.parameters.items() if p.kind not in skipped and name != "self"]


PUBLIC = [name for name in debias_diffusion.__all__ if callable(getattr(debias_diffusion, name))]


@pytest.mark.parametrize("name", PUBLIC)
def test_public_entry_point_documents_every_parameter(name):
    obj = getattr(debias_diffusion, name)
    wanted = parameters(obj)
    if not wanted:
        return
    docstring = inspect.getdoc(obj) or ""
    missing = [p for p in wanted if p not in documented_names(docstring)]
    assert not missing, f"debias_diffusion.{name}: no Args:/Attributes: entry for {', '.join(missing)}"


def test_the_check_reads_google_sections_and_fails_on_a_missing_entry():
    def documented(a, b, *args, c=1, **kwargs):
        """Do it.

        Args:
            a, b: two things.
            c (int): a third,
                on two lines.

        Returns:
            d: not a parameter.
        """

    assert documented_names(documented.__doc__) == {"a", "b", "c"}
    assert set(parameters(documented)) == {"a", "b", "c"}

    @dataclasses.dataclass
    class Settings:
        """Knobs.

        Attributes:
            steps: how many.
        """

        steps: int
        scale: float = 1.0

    assert set(parameters(Settings)) - documented_names(Settings.__doc__) == {"scale"}
