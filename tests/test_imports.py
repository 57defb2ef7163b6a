"""Imports flow one way: no cycle among tocsin's modules, and the spec is a leaf.

Every import counts, including those inside functions (a lazy import hides a
cycle from Python, not from the design); only ``if TYPE_CHECKING:`` blocks are
left out, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in (SRC / "tocsin").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text())
    skipped = {id(node) for block in ast.walk(tree)
               if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in modules else base)
    return {module for module in found if module in modules and module != name}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, directly or through others."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [group for group in groups if len(group) > 1]


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    graph = import_graph()
    assert "tocsin.spec.base" in graph["tocsin.spec.pipeline"]
    assert "tocsin.engine.pipeline" in graph["tocsin.engine.runner"]


def test_no_import_cycle_among_tocsin_modules() -> None:
    cycles = strongly_connected(import_graph())
    assert not cycles, "modules that import each other (directly or through others): " + "; ".join(map(" <-> ".join, cycles))


def test_the_spec_is_a_leaf() -> None:
    allowed = {"tocsin.durations", "tocsin.vocabulary", "tocsin.expressions"}  # leaves: the spec checks expressions at load
    graph = import_graph()
    for name, imported in graph.items():
        if name == "tocsin.spec" or name.startswith("tocsin.spec."):
            outside = {m for m in imported if not m.startswith("tocsin.spec")} - allowed
            assert not outside, f"{name} imports {sorted(outside)}; the spec may import only {sorted(allowed)}"
    for leaf in allowed:
        assert not graph[leaf], f"{leaf} must import nothing from tocsin, it imports {sorted(graph[leaf])}"
