"""The verdict line every benchmark report and README block uses (benchmarks/_targets.py)."""

import pytest

from benchmarks._targets import make_target, target_line


def test_a_missed_ratio_says_by_how_much():
    t = make_target("k", "ours / reference", 0.53, ">=", 0.8, "x")
    assert t["passed"] is False
    assert target_line(t) == "**MISS** ours / reference: 0.53x (target >= 0.80x; short by 0.27x, 34%)"


def test_a_met_latency_shows_its_headroom_with_its_unit():
    t = make_target("k", "p50", 4.0, "<=", 5.0, "us")
    assert target_line(t) == "**PASS** p50: 4.00 us (target <= 5.00 us; headroom 1.00 us, 20%)"


def test_counts_have_no_decimals():
    line = target_line(make_target("k", "rate", 115_906, ">=", 200_000, "events/s"))
    assert "115,906 events/s (target >= 200,000 events/s; short by 84,094 events/s, 42%)" in line


def test_a_report_written_before_units_were_recorded_still_renders():
    old = {"id": "size_ratio", "label": "JSONL bytes / Parquet bytes", "measured": 7.08, "op": ">=",
           "limit": 6.5, "passed": True}
    assert target_line(old) == "**PASS** JSONL bytes / Parquet bytes: 7.08 (target >= 6.50; headroom 0.58, 9%)"


def test_a_verdict_that_contradicts_its_numbers_is_refused():
    forged = {**make_target("k", "ratio", 1.65, "<=", 1.3, "x"), "passed": True}
    with pytest.raises(ValueError, match="passed=True"):
        target_line(forged)


def test_an_unknown_comparison_is_refused():
    with pytest.raises(ValueError, match="op must be"):
        make_target("k", "ratio", 1.0, "<", 1.3, "x")
