"""Every module the kombu broker's transports import at load time is installed by
``pip install taskq`` (a fresh install once failed on kombu+redis:// for want of packaging)."""

from __future__ import annotations

import ast
import sys
from importlib.metadata import packages_distributions, requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def top_level_imports(path: Path) -> set[str]:
    """Modules a file imports unconditionally (at module level, outside try/if)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def installed_by_taskq() -> set[str]:
    """taskq's dependencies and kombu's unconditional ones (what pip installs for taskq)."""
    ours = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    kombu = [r for r in requires("kombu") or [] if "extra ==" not in r]
    return {Requirement(r).name.lower() for r in [*ours, *kombu]}


@pytest.mark.parametrize("transport", ["redis", "memory", "pyamqp"])
def test_the_kombu_transports_imports_are_declared(transport: str) -> None:
    import importlib

    module = importlib.import_module(f"kombu.transport.{transport}")
    assert module.__file__ is not None
    third_party = top_level_imports(Path(module.__file__)) - set(sys.stdlib_module_names) - {"kombu"}
    distributions = packages_distributions()
    needed = {distributions[name][0].lower() for name in third_party}
    assert needed <= installed_by_taskq(), f"kombu.transport.{transport} needs {needed - installed_by_taskq()}"
