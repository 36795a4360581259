"""The package layout: each room imports only the rooms below it, and the hot path stays light.

Rooms, lowest first: the shared base (``config``, ``errors``, ``events``, ``_layout``,
``_jsonfile``), the trust core (``trust/``), the hot tier (``hot/``), the cold tier (``cold/``),
the integrations, evidence bundles (``evidence/``, above the tiers they export from), and at the
top ``verification``, ``cli`` and the package ``__init__``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import audit_core

PACKAGE = Path(audit_core.__file__).parent
BASE = {"audit_core.config", "audit_core.errors", "audit_core.events", "audit_core._layout", "audit_core._jsonfile"}
#: What each room may import from audit_core (besides itself). ``events`` needs the record format.
ALLOWED = {
    "base": {"base", "trust"},
    "trust": {"base", "trust"},
    "hot": {"base", "trust", "hot"},
    "cold": {"base", "trust", "hot", "cold"},
    "integrations": {"base", "trust", "hot", "integrations"},
    "evidence": {"base", "trust", "hot", "cold", "evidence"},
    "top": {"base", "trust", "hot", "cold", "integrations", "evidence", "top"},
}


def _room(module: str) -> str:
    if module in BASE:
        return "base"
    parts = module.split(".")
    if len(parts) > 2 and parts[1] in ("trust", "hot", "cold", "integrations", "evidence"):
        return parts[1]
    return "top"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        found[".".join(parts)] = path
    return found


def _imports(path: Path) -> set[str]:
    """The audit_core modules ``path`` imports, at any depth (lazy imports count too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("audit_core"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                names.add(candidate if candidate in _modules() else node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("audit_core"))
    return names


MODULES = _modules()


def test_the_core_is_split_into_rooms_with_no_module_over_700_lines():
    assert {"trust", "hot", "cold", "integrations", "evidence"} <= {p.name for p in PACKAGE.iterdir() if p.is_dir()}
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert max(sizes.values()) <= 700, sorted(sizes.items(), key=lambda item: -item[1])[:3]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_module_imports_only_rooms_below_or_beside_it(module):
    room = _room(module)
    wrong = {name for name in _imports(MODULES[module]) if _room(name) not in ALLOWED[room] and name != "audit_core"}
    assert not wrong, f"{module} ({room}) imports {sorted(wrong)}"


def test_there_is_no_import_cycle_between_modules():
    graph = {module: {name for name in _imports(path) if name in MODULES and name != module}
             for module, path in MODULES.items()}
    # Package __init__ files re-export their room; a cycle through one is not a design cycle.
    graph = {m: {n for n in edges if MODULES[n].name != "__init__.py"} for m, edges in graph.items()}
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for name in graph[module]:
            if state.get(name) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, module, name]))
            if name not in state:
                visit(name, [*trail, module])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [])


def test_emitting_imports_nothing_heavier_than_pydantic():
    code = ("import sys, audit_core; audit_core.AuditEventEmitter; "
            "print(sorted(m for m in ('pyarrow', 'duckdb', 'ibis', 'pandas', 'cryptography', 'nautilus_trader') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
