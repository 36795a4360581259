"""Smoke test of the observer benchmark: it runs end to end on a small backtest and reports sane numbers.

No timing thresholds: machines are noisy. Only the shape and internal consistency of the results.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.bench_observer import CASES, main, ticks_for


def test_ticks_for_fills_the_target_exactly():
    assert ticks_for(1) == 1
    assert ticks_for(2) == 2
    assert ticks_for(3) == 4  # step 3 rests a limit order
    assert ticks_for(4) == 6  # step 5 is denied


def test_quick_run_writes_consistent_results(tmp_path: Path) -> None:
    assert main(["--fills", "150", "--repeats", "1", "--out", str(tmp_path)]) == 0

    report = json.loads((tmp_path / "observer_overhead.json").read_text(encoding="utf-8"))
    markdown = (tmp_path / "observer_overhead.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Ledgerline AuditObserver: backtest overhead")
    assert "python -m benchmarks.bench_observer --fills 150 --repeats 1" in markdown
    assert report["command"]["argv"] == ["--fills", "150", "--repeats", "1", "--out", str(tmp_path)]
    assert report["machine"]["packages"]["nautilus_trader"]

    cases = report["cases"]
    assert set(cases) == set(CASES)
    fills = report["scenario"]["fills"]
    assert fills in (150, 151)  # plus on_stop's close-out fill when a position is open at the end
    for name, case in cases.items():
        assert case["fills"] == fills, name
        assert case["seconds"] > 0 and len(case["seconds_all"]) == 1, name
    for name in ("observer", "observer_sync_trades"):
        case = cases[name]
        assert case["failures"] == 0
        assert case["trail_ok"] is True
        assert case["records"] == case["trail_records"] > 3 * fills
        assert case["sealed_files"] == case["trail_files"] >= 1
    # The target case follows the backtest rule (synced at rotation and close, not per record); the
    # diagnostic case syncs every trade record (three per market-order fill).
    assert (cases["observer"]["environment"], cases["observer"]["sync_trades"]) == ("backtest", False)
    assert cases["observer"]["fdatasyncs"] < fills
    assert cases["observer_sync_trades"]["sync_trades"] is True
    assert cases["observer_sync_trades"]["fdatasyncs"] > fills
    assert len(report["machine"]["load_average_at_start"]) == 3
    assert report["overhead_ratio"] == round(cases["observer"]["seconds"] / cases["baseline"]["seconds"], 3)
    assert all(case["cpu_seconds"] > 0 for case in cases.values())
    assert report["cpu_overhead_ratio"] == round(cases["observer"]["cpu_seconds"] / cases["baseline"]["cpu_seconds"], 3)
    assert "in CPU time" in markdown
    target = report["target"]
    assert (target["op"], target["limit"]) == ("<=", 1.3)
    assert target["passed"] is (target["measured"] <= 1.3)
