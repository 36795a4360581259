"""The README's code runs as written.

Blocks fenced ```python are complete programs and are executed here; fragments that need a
running node or engine around them are fenced ```py.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_python_examples_run(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert blocks, "README.md has no python example"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert "OK: 1 file(s), 5 record(s)" in capsys.readouterr().out


def test_benchmark_tables_are_rendered_from_the_results_files():
    """Every number in the README's marked tables comes from ``benchmarks/results/*.json``."""
    from benchmarks.readme import render

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert render(text) == text, "README.md is stale: run python -m benchmarks.readme"
