"""train_encoder's imports form a one-way graph: no cycle, and every import goes to its own layer or a lower one.

Every module of ``train_encoder`` is parsed with ``ast``; module-level, function-level (deferred) and
``TYPE_CHECKING`` imports all count. ``LAYERS`` is the contract (also stated in ARCHITECTURE.md):
a module's layer is that of the longest prefix listed, and an import may only go to the same layer
or a lower one. ``evaluation`` measures what training made, so it may import only the library
(``debias_diffusion``) and the layers up to ``data``: never the training internals.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = "train_encoder"
ROOT = Path(__file__).parents[1] / PACKAGE

#: Layers from the bottom up. Imports go down (or sideways inside a layer), never up.
LAYERS: dict[str, int] = {
    # 0 foundation: errors, file names, records, per-token comparisons, memory-lean activations (torch + library)
    "train_encoder.errors": 0,
    "train_encoder.file_names": 0,
    "train_encoder.token_states": 0,
    "train_encoder.model_output": 0,
    "train_encoder.hardware": 0,
    "train_encoder.activation_memory": 0,
    # 1 data: annotation readers, image decoding, datasets, loaders
    "train_encoder.data": 1,
    # 2 tokens and augmentation; evaluation (library + data only, see EVALUATION_MAY_IMPORT)
    "train_encoder.augment": 2,
    "train_encoder.evaluation": 2,
    # 3 recipes and losses
    "train_encoder.losses": 3,
    "train_encoder.recipes": 3,
    "train_encoder.fix_clip": 3,
    # 4 the config (validates with the recipes)
    "train_encoder.config": 4,
    # 5 what a run writes: checkpoints, exports, model cards, uploads (never how the model was built)
    "train_encoder.checkpointing": 5,
    "train_encoder.export": 5,
    "train_encoder.model_card": 5,
    "train_encoder.hub_upload": 5,
    # 6 the model a run trains
    "train_encoder.model_setup": 6,
    # 7 the loop
    "train_encoder.trainer": 7,
    # 8 entry points (the package itself registers the fix-clip recipe)
    "train_encoder.cli": 8,
    "train_encoder.__main__": 8,
    "train_encoder": 8,
}
EVALUATION_MAY_IMPORT = ("train_encoder.evaluation", "train_encoder.data", "train_encoder.errors", "train_encoder.file_names", "train_encoder.token_states")  # fmt: skip


def module_name(path: Path, root: Path = ROOT, package: str = PACKAGE) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def imported_modules(path: Path, root: Path = ROOT, package: str = PACKAGE) -> set[str]:
    """The ``package`` modules ``path`` imports anywhere (``from pkg import sub`` names ``pkg.sub``)."""
    name = module_name(path, root, package)
    is_package = path.name == "__init__.py"
    known = {module_name(file, root, package) for file in root.rglob("*.py")}
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join([*base, node.module] if node.module else base)
            else:
                stem = node.module or ""
            targets = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in known else stem for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target == package or target.startswith(package + "."))
    found.discard(name)
    return found


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    return {module_name(path, root, package): imported_modules(path, root, package) for path in sorted(root.rglob("*.py"))}  # fmt: skip


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def layer_of(module: str, layers: Mapping[str, int] = LAYERS) -> int:
    prefixes = [prefix for prefix in layers if module == prefix or ("." in prefix and module.startswith(prefix + "."))]
    if not prefixes:
        raise AssertionError(f"{module} has no layer: add it to LAYERS in {Path(__file__).name}")
    return layers[max(prefixes, key=len)]


def layer_violations(graph: Mapping[str, Iterable[str]], layers: Mapping[str, int] = LAYERS) -> list[str]:
    """Every edge that goes up a layer, or out of evaluation's allowed set, as ``"a -> b (why)"``."""
    bad = []
    for source in sorted(graph):
        level = layer_of(source, layers)
        for target in sorted(graph[source]):
            if layer_of(target, layers) > level:
                bad.append(f"{source} -> {target} (layer {level} imports layer {layer_of(target, layers)})")
            elif _within(source, ("train_encoder.evaluation",)) and not _within(target, EVALUATION_MAY_IMPORT):
                bad.append(f"{source} -> {target} (evaluation imports only the library and the data layer)")
    return bad


def _within(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


# --- the contract -----------------------------------------------------------------------------------


def test_train_encoder_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle in train_encoder: " + " -> ".join(cycle)


def test_train_encoder_imports_follow_the_layers():
    violations = layer_violations(import_graph())
    assert not violations, "imports against the layer contract:\n" + "\n".join(violations)


def test_the_graph_holds_relative_and_deferred_imports():
    graph = import_graph()
    assert len(graph) > 40
    assert "train_encoder.checkpointing" in graph["train_encoder.trainer"]  # the parser sees relative imports
    assert "train_encoder.trainer" in graph["train_encoder.cli"]  # ... and deferred ones inside functions


# --- the checker itself -----------------------------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_checker_reports_a_cycle_through_a_deferred_import(tmp_path):
    root = tmp_path / "pkg"
    _write(
        root,
        {
            "__init__.py": "",
            "low.py": "def f():\n    from .high import g  # deferred\n",
            "high.py": "from . import low\n",
            "sub/__init__.py": "",
            "sub/leaf.py": "from ..low import f\nimport pkg.high\n",
        },
    )
    graph = import_graph(root, "pkg")
    assert graph["pkg.low"] == {"pkg.high"}
    assert graph["pkg.high"] == {"pkg.low"}
    assert graph["pkg.sub.leaf"] == {"pkg.low", "pkg.high"}
    assert find_cycle(graph) == ["pkg.high", "pkg.low", "pkg.high"]
    del graph["pkg.high"]
    assert find_cycle(graph) is None


def test_checker_reports_an_upward_edge_and_an_evaluation_edge_by_name():
    graph = {
        "train_encoder.data.records": {"train_encoder.config"},
        "train_encoder.evaluation.drift": {"train_encoder.losses", "train_encoder.data.images"},
        "train_encoder.trainer": {"train_encoder.export"},
    }
    assert layer_violations(graph) == [
        "train_encoder.data.records -> train_encoder.config (layer 1 imports layer 4)",
        "train_encoder.evaluation.drift -> train_encoder.losses (layer 2 imports layer 3)",
    ]
    graph["train_encoder.evaluation.drift"] = {"train_encoder.augment"}  # same layer, but not evaluation's to use
    assert layer_violations(graph) == [
        "train_encoder.data.records -> train_encoder.config (layer 1 imports layer 4)",
        "train_encoder.evaluation.drift -> train_encoder.augment (evaluation imports only the library and the data layer)",
    ]
    with pytest.raises(AssertionError, match="train_encoder.new_module has no layer"):
        layer_violations({"train_encoder.new_module": set()})
