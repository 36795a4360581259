"""Smoke test of the workbench benchmark: it runs end to end on a small trail and writes sane results.

No timing thresholds (machines are noisy): the shape of the report, the same rows from the
workbench and from the raw SQL, and partition pruning.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.bench_workbench import main


def test_quick_run_writes_consistent_results(tmp_path: Path) -> None:
    assert main(["--quick", "--out", str(tmp_path), "--cache", str(tmp_path / "cache")]) == 0
    report = json.loads((tmp_path / "workbench.json").read_text(encoding="utf-8"))
    assert (tmp_path / "workbench.md").read_text(encoding="utf-8").startswith("# Workbench query latency")
    (size,) = report["sizes"]
    assert size["events"] >= 10_000
    for name, case in size["cases"].items():
        assert case["same_rows"] and case["same_values"], name
        assert case["ibis_ms"] > 0 and case["raw_sql_ms"] > 0
        assert len(case["ibis_samples_ms"]) == 3
    assert size["cases"]["incident"]["rows"] > 0 and size["cases"]["lifecycle"]["rows"] >= 3
    pruning = size["pruning"]
    assert pruning["files_total"] == 9 and pruning["files_read_workbench_hour"] == 3
    # The warm cases alone, some of them: the same trail (cached), no pruning check or cold start.
    warm = tmp_path / "warm"
    assert main(["--quick", "--out", str(warm), "--cache", str(tmp_path / "cache"), "--warm-only",
                 "--cases", "count_by_type", "incident"]) == 0
    (size,) = json.loads((warm / "workbench.json").read_text(encoding="utf-8"))["sizes"]
    assert list(size["cases"]) == ["count_by_type", "incident"] and "cold_start" not in size
    assert all(case["same_values"] for case in size["cases"].values())
    assert "not measured (`--warm-only`)" in (warm / "workbench.md").read_text(encoding="utf-8")


def test_chosen_cases_only(tmp_path: Path) -> None:
    import pytest

    cache = str(tmp_path / "cache")
    with pytest.raises(SystemExit, match="--cases: no case named"):
        main(["--quick", "--cases", "state_at", "bogus", "--out", str(tmp_path), "--cache", cache])
    assert main(["--quick", "--cases", "state_at", "lifecycle", "--out", str(tmp_path), "--cache", cache]) == 0
    (size,) = json.loads((tmp_path / "workbench.json").read_text(encoding="utf-8"))["sizes"]
    assert list(size["cases"]) == ["state_at", "lifecycle"]
    assert all(case["same_values"] for case in size["cases"].values())


def test_cold_start_only_writes_its_own_report(tmp_path: Path) -> None:
    assert main(["--quick", "--cold-start-only", "--out", str(tmp_path), "--cache", str(tmp_path / "cache")]) == 0
    assert not (tmp_path / "workbench.json").exists()  # the full report (the README's table) is left alone
    report = json.loads((tmp_path / "workbench_cold_start.json").read_text(encoding="utf-8"))
    (size,) = report["sizes"]
    assert size["cases"] == {}
    cold = size["cold_start"]
    for part in (cold, cold["new_process"]):
        assert part["open_trail_ms"] > 0 and part["first_query_ms"] > 0 and part["raw_connect_view_first_query_ms"] > 0
        assert part["ratio"] > 0
    assert cold["cpu_ratio"] > 0
    markdown = (tmp_path / "workbench_cold_start.md").read_text(encoding="utf-8")
    assert "Cold start:" in markdown and "In a new process" in markdown
