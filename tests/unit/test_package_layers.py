"""The package's layers (docs/architecture.md): no two subpackages of phoenix_tasks import
each other, the core imports nothing above it, the root keeps at most five modules,
and docs/architecture.md names every subpackage.

Read from the source (every `import` and `from ... import`, function-level ones too),
so a lazy import does not hide a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "phoenix_tasks"

# A unit is a subpackage of phoenix_tasks, or a module of the root.
# Cycles that remain, each written down in docs/architecture.md ("not done yet").
KNOWN_CYCLES: set[frozenset[str]] = {
    # tasks/shell.py's `completion` task reads the collection that holds it, through
    # completion.py, which bin/phoenix's generated table also comes from.
    frozenset({"tasks", "collection", "completion"}),
}


def _unit(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "phoenix_tasks" or len(parts) < 2:
        return None
    unit = parts[1]
    return unit if (PACKAGE / unit).is_dir() or (PACKAGE / f"{unit}.py").is_file() else None


def _imports(path: Path) -> set[str]:
    """Every phoenix_tasks module (or name in one) this file imports, absolute."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "phoenix_tasks":  # `from phoenix_tasks import core`: the names are units
                found.update(f"phoenix_tasks.{a.name}" for a in node.names)
            else:
                found.add(module)
    return {m for m in found if m.startswith("phoenix_tasks")}


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        me = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for module in _imports(path):
            other = _unit(module)
            if other and other != me:
                graph.setdefault(me, set()).add(other)
    return graph


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[frozenset[str]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_two_subpackages_import_each_other():
    found = cycles(unit_graph())
    new = found - KNOWN_CYCLES
    assert not new, "import cycles between parts of phoenix_tasks: " + "; ".join(
        " <-> ".join(sorted(c)) for c in sorted(new, key=sorted))


def test_known_cycles_are_still_cycles():
    """A cycle broken comes off KNOWN_CYCLES, so it cannot come back unnoticed."""
    assert KNOWN_CYCLES <= cycles(unit_graph())


def test_core_imports_nothing_above_it():
    above = {}
    for path in (PACKAGE / "core").rglob("*.py"):
        outside = {m for m in _imports(path) if _unit(m) not in ("core", None)}
        if outside:
            above[path.name] = sorted(outside)
    assert not above


def test_core_modules_do_not_import_each_other_both_ways():
    graph: dict[str, set[str]] = {}
    for path in (PACKAGE / "core").glob("*.py"):
        for m in _imports(path):
            parts = m.split(".")
            if len(parts) >= 3 and parts[1] == "core" and parts[2] != path.stem:
                graph.setdefault(path.stem, set()).add(parts[2])
    assert not cycles(graph)


def test_the_root_keeps_at_most_five_modules():
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert len(modules) <= 5, modules


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset("abc")}


def test_architecture_names_every_subpackage():
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    packages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    assert packages and [p for p in packages if f"`{p}/`" not in text] == []
