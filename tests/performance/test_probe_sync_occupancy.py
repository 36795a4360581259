"""probe_sync_occupancy: its figures from known sync spans, and a tiny real run of both cases."""

from __future__ import annotations

from pathlib import Path

from benchmarks import probe_sync_occupancy as probe
from benchmarks.bench_group_commit import sample_line


def test_the_figures_of_known_spans() -> None:
    # Thread 1 syncs at 0-100 and 120-220 us, thread 2 at 50-150 and 300-400 us, in one block of 8 events.
    spans = [(start * 1000, end * 1000, thread)
             for start, end, thread in [(0, 100, 1), (50, 150, 2), (120, 220, 1), (300, 400, 2)]]
    result = probe.occupancy("case", 2, 8, 0.5, [spans[::-1]])  # the order they were recorded in does not matter
    assert result.syncs == 4
    assert result.events_per_sync == 2.0
    assert result.in_flight == 1.0  # 400 us of syncs over a 400 us span
    assert result.busy == 0.8  # nothing ran from 220 to 300
    assert result.sync_us == 100.0
    assert result.gap_us == 85.0  # the median of thread 1's 120 - 100 and thread 2's 300 - 150
    assert result.events_per_s == 16.0


def test_blocks_are_not_joined_into_one_span() -> None:
    # The time between two blocks (the other case ran then) is neither idle disk nor a thread's gap.
    result = probe.occupancy("case", 1, 2, 1.0, [[(0, 100, 1)], [(10_000, 10_100, 1)]])
    assert result.busy == 1.0
    assert result.in_flight == 1.0
    assert result.gap_us == 0.0


def test_a_tiny_run_times_the_workers_syncs(tmp_path: Path) -> None:
    raw, ours = probe.probe_threads(tmp_path, 2, 40, sample_line(tmp_path))
    assert raw.name == "raw_write_fdatasync_2t" and ours.name == "emit_trade_durable_2t"
    assert raw.syncs == raw.events == 40  # one per event, and none of the emitter's background threads
    assert 1 <= ours.syncs <= 40
    for result in (raw, ours):
        assert 0 < result.in_flight <= 2
        assert 0 < result.busy <= 1
        assert result.sync_us > 0 and result.gap_us >= 0 and result.events_per_s > 0
