"""The layer rule of `pipeline/` (docs/architecture.md), read off the source itself.

    cli  ->  runs, ops  ->  app  ->  crawl, sources, store  ->  config, models, errors,
                                                               clock, logs, urls, normalise

A module may import its own layer or lower ones, never a higher one, and the import graph
has no cycle. Every import counts: top level, `TYPE_CHECKING` blocks and imports inside
function bodies (a lazy import of a higher layer is still a climb back up). Within the
middle layer, `store` and `sources` import neither each other nor `crawl`. `citesite`
imports nothing of `pipeline`, and only the demo and site commands import `citesite`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pipeline"

LAYERS: dict[str, int] = {
    **dict.fromkeys(("config", "models", "errors", "clock", "logs", "urls", "normalise"), 0),
    **dict.fromkeys(("crawl", "sources", "store"), 1),
    "app": 2,
    **dict.fromkeys(("runs", "ops"), 3),
    "cli": 4,
    "__main__": 5,
}
# Within a layer: what each part may not import (its peers it must not lean on).
FORBIDDEN_PEERS: dict[str, frozenset[str]] = {
    "store": frozenset({"crawl", "sources"}),
    "sources": frozenset({"crawl", "store"}),
}
CITESITE_IMPORTERS = frozenset({"pipeline.runs.demo", "pipeline.cli.tools"})


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str, root: Path) -> bool:
    """Whether a dotted name is a module or package under `root`."""
    base = root.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(path: Path, root: Path) -> Iterator[tuple[str, int]]:
    """Every module `path` imports (absolute names), with its line: the whole tree is
    walked, so imports in functions and `if TYPE_CHECKING:` blocks count too."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path, root)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - node.level + 1]
                base = ".".join(p for p in base_parts if p)
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if is_module(sub, root) else target), node.lineno


def graph(root: Path, top: str) -> dict[str, list[tuple[str, int]]]:
    """Module -> the modules of `top` it imports (with the line of each import)."""
    out: dict[str, list[tuple[str, int]]] = {}
    for path in sorted((root / top).rglob("*.py")):
        name = module_name(path, root)
        out[name] = [
            (target, line)
            for target, line in imports_of(path, root)
            if (target == top or target.startswith(top + ".")) and target != name
        ]
    return out


def part(module: str) -> str:
    """The layer part a module of `pipeline` belongs to (`pipeline.crawl.worker` -> crawl)."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else ""


def violations(root: Path) -> list[str]:
    """Every import that breaks the layer rule, as `module:line -> target (why)`."""
    found: list[str] = []
    for module, targets in graph(root, "pipeline").items():
        here = part(module)
        if here not in LAYERS:
            if here:  # the package's own __init__ is the public face: it may import anything
                found.append(f"{module}: not in any layer (add it to docs/architecture.md)")
            continue
        for target, line in targets:
            there = part(target)
            if there == here or not there:
                continue
            if there not in LAYERS:
                found.append(f"{module}:{line} -> {target} (not in any layer)")
            elif LAYERS[there] > LAYERS[here]:
                found.append(f"{module}:{line} -> {target} (a higher layer)")
            elif there in FORBIDDEN_PEERS.get(here, frozenset()):
                found.append(f"{module}:{line} -> {target} ({here} must not import {there})")
    return found


def cycles(edges: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Each import cycle found by a depth-first walk, as the list of its modules."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the walk's path, 2 finished
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target, _ in edges.get(node, []):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def test_no_module_imports_a_higher_layer() -> None:
    assert violations(ROOT) == []


def test_the_import_graph_has_no_cycle() -> None:
    assert cycles(graph(ROOT, "pipeline")) == []


def test_citesite_imports_nothing_of_pipeline_and_only_two_modules_import_it() -> None:
    for path in sorted((ROOT / "citesite").rglob("*.py")):
        bad = [t for t, _ in imports_of(path, ROOT) if t.split(".")[0] == "pipeline"]
        assert bad == [], path
    importers = {
        module_name(path, ROOT)
        for path in PACKAGE.rglob("*.py")
        if any(t.split(".")[0] == "citesite" for t, _ in imports_of(path, ROOT))
    }
    assert importers <= CITESITE_IMPORTERS


@pytest.mark.parametrize(
    ("low", "high", "where"),
    [
        ("pipeline/models.py", "pipeline.cli", "inside a function"),
        ("pipeline/store/rules.py", "pipeline.crawl.worker", "in a TYPE_CHECKING block"),
        ("pipeline/app.py", "pipeline.runs.lifecycle", "at the top"),
    ],
)
def test_the_rule_fails_when_a_low_module_imports_a_high_one(
    tmp_path: Path, low: str, high: str, where: str
) -> None:
    """The test can fail: a copy of the package where one low module climbs back up."""
    import shutil

    shutil.copytree(PACKAGE, tmp_path / "pipeline")
    shutil.copytree(ROOT / "citesite", tmp_path / "citesite")
    target = tmp_path / low
    text = target.read_text(encoding="utf-8")
    if where == "inside a function":
        text += f"\n\ndef _sneaky() -> None:\n    import {high}  # noqa\n"
    elif where == "in a TYPE_CHECKING block":
        text += f"\n\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import {high}\n"
    else:
        text = f"import {high}\n" + text
    target.write_text(text, encoding="utf-8")
    assert any(high in v for v in violations(tmp_path))


def test_a_cycle_is_found() -> None:
    edges = {"a": [("b", 1)], "b": [("c", 1)], "c": [("a", 3)], "d": [("a", 1)]}
    assert cycles(edges) == [["a", "b", "c", "a"]]
