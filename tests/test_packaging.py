"""The project's packaging: conda and pip list the same packages; the core stays light."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _normalize(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower().replace("_", "-")


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted |= set(extra)
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    listed = {req for req in pip_section if not req.startswith("-e")}
    assert {_normalize(r) for r in listed} == {_normalize(r) for r in wanted}
    assert "python=3.11" in env["dependencies"]


def test_importing_the_core_loads_no_heavy_dependency():
    code = (
        "import sys, audit_core;"
        "heavy = {'ibis', 'duckdb', 'pyarrow', 'altair', 'pandas', 'nautilus_trader'};"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"


def test_the_wheel_ships_the_independent_bundle_verifier():
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert {"audit_core", "workbench", "spec_verifier"} <= set(wheel["packages"])
