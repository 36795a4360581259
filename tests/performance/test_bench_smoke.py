"""Smoke test of the benchmark suite: it runs end to end and writes sane numbers.

No timing thresholds: machines are noisy. Only the shape and internal consistency of the results.
"""

from __future__ import annotations

import json
import math
import random
import struct
from pathlib import Path

import pytest

from benchmarks.run import main

EXPECTED_COUNTS = {
    "emit_param_change": 20_000,
    "raw_write": 20_000,
    "pydantic_floor": 20_000,
    "hand_floor": 20_000,
    "emit_param_change_after_wait": 200,
    "hand_floor_after_wait": 200,
    "logging_json": 20_000,
    "structlog_json": 20_000,
    "emit_trade_durable": 500,
    "raw_write_fdatasync": 500,
}


def test_quick_run_writes_consistent_results(tmp_path: Path) -> None:
    assert main(["--quick", "--out", str(tmp_path)]) == 0

    report = json.loads((tmp_path / "emit_latency.json").read_text(encoding="utf-8"))
    assert (tmp_path / "emit_latency.md").read_text(encoding="utf-8").startswith("# Ledgerline emit latency")
    assert report["quick"] is True
    assert report["events"] == {"non_durable": 20_000, "durable": 500}
    assert report["command"]["python"] == "python -m benchmarks.run"
    assert report["machine"]["python_version"]

    cases = report["cases"]
    assert set(EXPECTED_COUNTS) <= set(cases)
    for name, count in EXPECTED_COUNTS.items():
        case = cases[name]
        assert case["count"] == count, name
        assert 0 < case["p50_us"] <= case["p99_us"] <= case["p999_us"] <= case["max_us"], name
        assert case["mean_us"] > 0, name
        assert case["events_per_s"] > 0, name
    assert cases["emit_param_change"]["wall_events_per_s"] > 0
    # Checkpoints off vs on run in 6 interleaved blocks of a sixth of the events each.
    for name in ("emit_checkpoints_off", "emit_checkpoints_on"):
        assert cases[name]["count"] == 20_000 // 6 * 6, name
        assert 0 < cases[name]["p50_us"] <= cases[name]["p99_us"] <= cases[name]["p999_us"], name
    assert cases["emit_checkpoints_off"]["notes"]["checkpoints"] == 0
    assert cases["emit_checkpoints_on"]["notes"]["checkpoints"] >= 6  # at least the one at each block's close

    assert {t["id"] for t in report["targets"]} == {
        "emit_p50", "emit_p99", "emit_events_per_s_timed", "emit_events_per_s_wall", "durable_p99_vs_raw",
        "checkpoint_added_p50", "emit_p50_vs_hand_floor", "emit_p99_vs_raw_write",
    }
    assert all(isinstance(t["passed"], bool) for t in report["targets"])
    assert len(report["ratios"]) == 8
    # The after-wait pair: each call timed after the same blocking sleep, the two alternating.
    assert "emit_param_change_after_wait/hand_floor_after_wait" in report["ratios"]
    waits = {cases[name]["notes"]["wait_s"] for name in ("emit_param_change_after_wait", "hand_floor_after_wait")}
    assert len(waits) == 1 and min(waits) > 0
    emit, hand, raw = (cases[name] for name in ("emit_param_change", "hand_floor", "raw_write"))
    by_id = {t["id"]: t for t in report["targets"]}
    # The report rounds times and ratios to 0.001: compare within that.
    assert by_id["emit_p50_vs_hand_floor"]["measured"] == pytest.approx(emit["p50_us"] / hand["p50_us"], abs=0.01)
    assert by_id["emit_p99_vs_raw_write"]["measured"] == pytest.approx(emit["p99_us"] / raw["p99_us"], abs=0.01)


def test_the_hand_written_floor_writes_the_emitters_bytes(tmp_path: Path) -> None:
    # The floor the emitter is judged against must write the same record: same fields, same bytes.
    from audit_core import AuditConfig, AuditEventEmitter
    from benchmarks.bench_emit import hand_param_line

    ticks = iter(range(1_767_657_600 * 10**9, 1_767_657_600 * 10**9 + 100))
    with AuditEventEmitter(AuditConfig(base_path=tmp_path), clock=lambda: next(ticks)) as emitter:
        rng = random.Random(18)
        floats = [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(60)]
        values = [(0.75, 0.8), (1, 2.5e-07), ("low\n\"q\"", None), ([1, {"k": "é", "f": 1e-05}], True),
                  (1e16, -0.0), (-9.5e-05, 5e-324), *zip(floats[::2], floats[1::2], strict=True)]
        for old, new in ((o, n) for o, n in values if all(map(_finite, (o, n)))):
            # One clock read gives ts_event and ts_recorded, as the floor stamps them.
            event = emitter.emit_param_change("meta_controller", "risk_multiplier", old, new, "drawdown > 10%",
                                              event_type="param.risk_change")
            assert event.ts_recorded == event.ts_event
            line = hand_param_line(event.sequence, event.ts_event, event.prev_hash, "meta_controller",
                                   "param.risk_change", "risk_multiplier", old, new, "drawdown > 10%")
            assert line == event.to_line() == emitter.writer.path.read_bytes().splitlines(keepends=True)[-1]
    with pytest.raises(ValueError, match="non-finite float"):
        hand_param_line(0, 0, "0" * 64, "s", "param.x", "p", float("nan"), 1, None)
    with pytest.raises(ValueError, match="event_type"):
        hand_param_line(0, 0, "0" * 64, "s", "sys.x", "p", 1, 1, None)


def _finite(value: object) -> bool:
    return not isinstance(value, float) or math.isfinite(value)
