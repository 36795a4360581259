"""bench_group_commit at a tiny scale: every case runs (real emitters, real fdatasync) and the report's
derived figures (CPU per event, the policy sweep, the 1-thread gap's parts) say what they claim."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit_core.hot import _group_commit
from benchmarks import bench_group_commit as bench
from benchmarks.run import _machine_info


def test_a_tiny_run_reports_cpu_the_policy_sweep_and_the_one_thread_gap(tmp_path: Path) -> None:
    shipped = _group_commit.MAX_CONCURRENT_SYNCS
    results = bench.run_group_commit(tmp_path, events=200, rounds=1, max_syncs=(1,))
    assert shipped == _group_commit.MAX_CONCURRENT_SYNCS  # the sweep puts the shipped limit back
    after = bench.bench_after_sync(tmp_path, 8, bench.sample_line(tmp_path))
    base = {"command": {"python": "test"}, "date_utc": "2026-01-01", "machine": _machine_info("test")}
    report = bench.build_group_report(results, base, 200, 1, [0.0, 0.0, 0.0], after)

    names = {case["name"] for case in report["cases"]}
    for threads in bench.THREAD_COUNTS:
        assert {f"raw_write_fdatasync_{threads}t", f"emit_trade_durable_{threads}t",
                f"emit_trade_durable_{threads}t_max1"} <= names
    assert all(case["cpu_us_per_event"] > 0 for case in report["cases"])
    by_name = {case["name"]: case for case in report["cases"]}
    # With one sync at a time, one thread's 200 durable emits still take 200 syncs.
    assert by_name["emit_trade_durable_1t_max1"]["syncs"] == 200

    sweep = report["ratio_vs_raw_by_max_concurrent_syncs"]
    assert set(sweep) == {str(shipped), "1"}
    assert sweep[str(shipped)] == report["ratio_vs_raw_same_threads"]
    raw_4t = by_name["raw_write_fdatasync_4t"]["events_per_s"]
    assert sweep["1"]["4"] == pytest.approx(by_name["emit_trade_durable_4t_max1"]["events_per_s"] / raw_4t, abs=0.01)

    assert min(after.emit_us_warm, after.emit_us_after_sync, after.raw_write_us_after_sync,
               after.live_check_us_after_sync) > 0
    gap = report["one_thread_gap"]
    assert gap["gap_us"] == pytest.approx(gap["durable_us_per_event"] - gap["raw_us_per_event"], abs=0.2)
    assert gap["pipeline_after_sync_us"] + gap["rest_us"] == pytest.approx(gap["gap_us"], abs=0.2)
    markdown = bench.render_group_markdown(report)
    for section in ("at most 1:", "after a sync", "one lstat", "CPU us per event"):
        assert section in markdown, section
