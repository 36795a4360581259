"""The Examples sections of the workbench's docstrings run as written (numpydoc, as Ibis does)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["filters", "trail", "describe", "incident", "parameters", "trades", "pnl", "anomalies", "query",
           "charts", "chart_encoding", "explore", "report", "_columns", "_backend", "verification",
           "sessions", "bundle"]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(f"workbench.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"workbench.{name} has no example"
    assert result.failed == 0
