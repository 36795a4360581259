"""Smoke test of the big-results benchmark: it runs end to end on a small trail and writes sane results.

No timing thresholds (machines are noisy): the shape of the report, the same result from the
workbench and from DuckDB's own Arrow-to-pandas, and exact frames (no object columns).
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.bench_bulk import CASES, main


def test_quick_run_writes_consistent_results(tmp_path: Path) -> None:
    assert main(["--quick", "--out", str(tmp_path), "--cache", str(tmp_path / "cache")]) == 0
    report = json.loads((tmp_path / "bulk.json").read_text(encoding="utf-8"))
    markdown = (tmp_path / "bulk.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Big results") and report["command"] in markdown
    assert set(report["cases"]) == set(CASES) and len(report["load_average_before_after"]) == 2
    for name, case in report["cases"].items():
        assert case["same_result"], (name, case["same"])
        assert case["rows"] >= 10_000 and case["ours_s"] > 0 and case["reference_s"] > 0, name
        assert case["ours_peak_rss_mib"] > 0 and len(case["ours_samples_s"]) == 1, name
        assert case["object_columns"] == [], name
        assert case["dtypes"]["ts_init"] == "int64[pyarrow]", name
        assert case["dtypes"]["price"] == "decimal128(38, 18)[pyarrow]", name
    assert "payload" not in report["cases"]["query_time_range"]["dtypes"]
    assert "payload" in report["cases"]["events"]["dtypes"]
