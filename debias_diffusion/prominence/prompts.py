"""What the prominence evaluator asks for: object sets, prompt templates and the orderings to try.

An **object set** is 2 or more distinct objects, each a name with optional attributes ("red
cube" = attributes ``["red"]`` + name ``"cube"``); the phrase is what both the prompt and the
detector use. A **template** turns the objects, in one order, into a prompt. For each set every
ordering is generated (or, when n! is large, a balanced seeded sample), with the same seeds, so
only the order changes between the images of one set.

Object-set files (YAML or JSON): a list of sets, or a mapping with the key ``object_sets``; each
set a list of objects; each object a string or ``{name: ..., attributes: [...]}``::

    - [cat, dog, teapot]
    - [{name: cube, attributes: [red]}, {name: ball, attributes: [blue]}]
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..articles import with_article
from ..errors import ProminenceDataError

__all__ = [
    "BUILTIN_TEMPLATES",
    "ObjectSet",
    "PromptTemplate",
    "get_template",
    "orderings",
    "read_object_sets",
]


@dataclass(frozen=True)
class ObjectSet:
    """Distinct object phrases, in the order the file lists them (the canonical order)."""

    objects: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.objects) < 2:
            raise ProminenceDataError(f"an object set needs at least 2 objects, got {list(self.objects)}")
        if len(set(self.objects)) != len(self.objects):
            raise ProminenceDataError(f"an object set names an object twice: {list(self.objects)}")


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt from objects in order: ``prefix`` + each object's sentence/phrase + ``suffix``.

    ``item`` is formatted per object with ``{object}`` (the phrase with its article) and
    ``{position}`` (1-based); items are joined with ``joiner``. ``item_variants`` (optional)
    gives position-specific items (used cyclically), so a long descriptive prompt does not repeat
    one sentence.
    """

    name: str
    item: str
    joiner: str = " and "
    prefix: str = ""
    suffix: str = ""
    item_variants: tuple[str, ...] = ()

    def format(self, ordering: Sequence[str]) -> str:
        items = []
        for index, phrase in enumerate(ordering):
            pattern = self.item_variants[index % len(self.item_variants)] if self.item_variants else self.item
            items.append(pattern.format(object=with_article(phrase), position=index + 1))
        text = self.prefix + self.joiner.join(items) + self.suffix
        return text[:1].upper() + text[1:]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "item": self.item,
            "joiner": self.joiner,
            "prefix": self.prefix,
            "suffix": self.suffix,
            "item_variants": list(self.item_variants),
        }


BUILTIN_TEMPLATES: dict[str, PromptTemplate] = {
    # "a cat and a dog and a teapot": the paper's list form
    "list": PromptTemplate("list", item="{object}"),
    # one descriptive sentence per object, no summary sentence (it would name every object in one order)
    "descriptive": PromptTemplate(
        "descriptive",
        item="{object} is clearly visible in the scene.",
        joiner=" ",
        item_variants=(
            "{object} is clearly visible in the scene, drawn with its whole shape in view.",
            "There is also {object}, shown plainly with nothing covering it.",
            "The picture also holds {object}, easy to recognise at a glance.",
            "Somewhere in the frame there is {object} as well, in full view.",
            "Finally, {object} can be seen, complete and unobstructed.",
        ),
    ),
}


def get_template(spec: str | Mapping[str, Any] | PromptTemplate) -> PromptTemplate:
    """A built-in template by name, or a user template: a mapping of :class:`PromptTemplate` fields, or a
    string with ``{objects}`` (the objects with articles joined by " and "), e.g. ``"a photo of {objects}"``."""
    if isinstance(spec, PromptTemplate):
        return spec
    if isinstance(spec, Mapping):
        fields = dict(spec)
        fields.setdefault("name", fields.get("item", "custom"))
        fields["item_variants"] = tuple(fields.get("item_variants", ()))
        try:
            template = PromptTemplate(**fields)
        except TypeError as err:
            raise ProminenceDataError(f"bad template {dict(spec)!r}: {err}") from None
        template.format(["a", "b"])  # fails now, not mid-run, on unknown fields
        return template
    if not isinstance(spec, str) or not spec.strip():
        raise ProminenceDataError(f"a template is a built-in name, a string or a mapping, got {spec!r}")
    if spec in BUILTIN_TEMPLATES:
        return BUILTIN_TEMPLATES[spec]
    if "{objects}" not in spec:
        raise ProminenceDataError(
            f"unknown template {spec!r}: use a built-in ({', '.join(BUILTIN_TEMPLATES)}) or a string with "
            "'{objects}', e.g. 'a photo of {objects}'"
        )
    prefix, _, suffix = spec.partition("{objects}")
    return PromptTemplate(spec, item="{object}", prefix=prefix, suffix=suffix)


def read_object_sets(source: str | Path | Sequence[Any]) -> list[ObjectSet]:
    """Object sets from a YAML/JSON file or from already-parsed data (see the module docstring)."""
    data = _read_structured(Path(source)) if isinstance(source, (str, Path)) else source
    if isinstance(data, Mapping):
        data = data.get("object_sets")
    if not isinstance(data, Sequence) or isinstance(data, str) or not data:
        raise ProminenceDataError("object sets must be a non-empty list of sets (or a mapping with 'object_sets')")
    sets = []
    for index, entry in enumerate(data):
        if not isinstance(entry, Sequence) or isinstance(entry, str):
            raise ProminenceDataError(f"object set {index} must be a list of objects, got {entry!r}")
        sets.append(ObjectSet(tuple(_phrase(item, index) for item in entry)))
    return sets


def orderings(objects: Sequence[str], *, max_orderings: int = 24, seed: int = 0) -> list[tuple[str, ...]]:
    """The prompt orders to generate for one set.

    All ``n!`` permutations when there are at most ``max_orderings``. Otherwise a balanced seeded
    sample: the ``n`` cyclic rotations of a seeded shuffle (each object at each position exactly
    once), then further distinct seeded permutations up to ``max_orderings``.
    """
    objects = tuple(objects)
    n = len(objects)
    if max_orderings < n:
        raise ProminenceDataError(
            f"max_orderings={max_orderings} is fewer than the {n} objects: each object could not take each position"
        )
    if math.factorial(n) <= max_orderings:
        return list(itertools.permutations(objects))
    rng = np.random.default_rng(seed)
    base = [objects[i] for i in rng.permutation(n)]
    chosen = [tuple(base[k:] + base[:k]) for k in range(n)]
    seen = set(chosen)
    while len(chosen) < max_orderings:
        candidate = tuple(objects[i] for i in rng.permutation(n))
        if candidate not in seen:
            seen.add(candidate)
            chosen.append(candidate)
    return chosen


def _phrase(item: Any, set_index: int) -> str:
    if isinstance(item, str) and item.strip():
        return " ".join(item.split())
    if isinstance(item, Mapping) and isinstance(item.get("name"), str) and item["name"].strip():
        attributes = item.get("attributes", [])
        if isinstance(attributes, str):
            attributes = [attributes]
        return " ".join([*map(str, attributes), item["name"]]).strip()
    raise ProminenceDataError(
        f"object set {set_index}: an object is a non-empty string or {{name: ..., attributes: [...]}}, got {item!r}"
    )


def _read_structured(path: Path) -> Any:
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ProminenceDataError(f"object-set file {path} {what}; give a YAML or JSON file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ProminenceDataError(f"object-set file {path} is not UTF-8 text; save it as UTF-8") from None
    try:
        return json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ProminenceDataError(
            f"object-set file {path} is not valid {path.suffix[1:].upper() or 'YAML'}: {err}"
        ) from None
