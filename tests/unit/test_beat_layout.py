"""The shape of taskq/beat (docs/architecture.md): the core imports nothing of the
APScheduler-shaped layer around it, no two modules of taskq/beat import each other in a loop
(type-only imports counted too), and no module is over 450 lines. Read from the source, so
that lazy imports inside functions count as well."""

from __future__ import annotations

import ast
from pathlib import Path

import taskq.beat

BEAT = Path(taskq.beat.__file__).parent
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = list(path.relative_to(BEAT.parent.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(BEAT.rglob("*.py"))}


def imports_of(path: Path) -> set[str]:
    """The taskq.beat modules that ``path`` imports, anywhere in it (TYPE_CHECKING, functions)."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:  # `from pkg import module` imports the module; a name, pkg itself
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {name for name in found if name in MODULES and name != module_name(path)}


GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def test_the_core_imports_nothing_of_the_layer_around_it() -> None:
    outside = {
        name: sorted(i for i in targets if not i.startswith("taskq.beat.core"))
        for name, targets in GRAPH.items()
        if name.startswith("taskq.beat.core")
    }
    assert {name: found for name, found in outside.items() if found} == {}


def test_no_import_circles_inside_taskq_beat() -> None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                raise AssertionError("import circle: " + " -> ".join([*path[path.index(target) :], target]))
            if target not in state:
                visit(target)
        path.pop()
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


def test_no_module_over_450_lines() -> None:
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
