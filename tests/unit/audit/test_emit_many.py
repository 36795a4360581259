"""AuditEventEmitter.emit_many: the same bytes as single emits, one write and one sync per batch,
and a batch that is queued whole or not at all."""

from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError

from audit_core import (
    AuditConfig,
    AuditEventEmitter,
    AuditWriteError,
    ParameterChangeEvent,
    SystemEvent,
    TradeEvent,
    verify,
)
from audit_core.trust.record import split_record

T0 = 1_767_571_200 * 10**9  # 2026-01-05 00:00:00 UTC


def fixed_clock() -> int:
    return T0


def trades(n: int, start: int = 0) -> list[TradeEvent]:
    return [
        TradeEvent(ts_event=T0 - 1000 + i, event_type="trade.fill", source="exec", instrument_id="EURUSD.SIM",
                   order_id=f"O-{i}", side="BUY", size="100000", price="1.10012", commission="2.20", currency="USD")
        for i in range(start, start + n)
    ]


def config(tmp_path, name="s", **overrides):
    # A flusher that never runs during a test: every sync counted is one the emit made.
    return AuditConfig(base_path=tmp_path / name, trader_id="T-1", stream_id=name, flush_interval_s=3600,
                       **overrides)


class TestSameBytes:
    def test_a_batch_writes_exactly_the_bytes_of_the_same_events_emitted_one_by_one(self, tmp_path):
        mixed = [*trades(3), ParameterChangeEvent(ts_event=T0, event_type="param.state_change", source="ctl",
                                                  param_name="k", old_value=1.5, new_value={"x": 0.1}),
                 SystemEvent(ts_event=T0, event_type="sys.note", source="ops", payload={"f": 1e-7})]
        twins = [event.model_copy(deep=True) for event in mixed]
        with AuditEventEmitter(config(tmp_path, "one"), clock=fixed_clock) as single:
            for event in twins:
                single.emit(event)
            single_bytes = single.writer.path.read_bytes()
        with AuditEventEmitter(config(tmp_path, "many"), clock=fixed_clock) as batched:
            written = batched.emit_many(mixed)
            batch_bytes = batched.writer.path.read_bytes()
        # Stream ids differ only in the file name, not in the records.
        assert batch_bytes == single_bytes
        assert written == mixed and [e.sequence for e in written] == [0, 1, 2, 3, 4]
        assert [e.to_line() for e in written] == single_bytes.splitlines(keepends=True)

    def test_the_chain_continues_across_batches_and_single_emits(self, tmp_path):
        with AuditEventEmitter(config(tmp_path), clock=fixed_clock) as emitter:
            emitter.emit_param_change("ctl", "k", 1, 2)
            batch = emitter.emit_many(trades(4))
            after = emitter.emit_param_change("ctl", "k", 2, 3)
        assert [e.sequence for e in batch] == [1, 2, 3, 4] and after.sequence == 5
        assert after.prev_hash == batch[-1].checksum
        report = verify(tmp_path / "s")
        assert report.ok and report.records == 6, report.to_text()


    def test_with_clock_readings_each_record_is_stamped_as_emit_would_have_stamped_it_then(self, tmp_path):
        """A backtest's deferred records: each keeps the reading of its capture, clamped as emit clamps
        (a reading behind the one before takes that one's), in one write."""
        readings = [T0 + 5, T0 + 9, T0 + 7, T0 + 12]
        now = [T0]
        with AuditEventEmitter(config(tmp_path, "one"), clock=lambda: now[0]) as single:
            single.emit_param_change("ctl", "k", 0, 1)
            for at, event in zip(readings, trades(4), strict=True):
                now[0] = at
                single.emit(event)
            single_bytes = single.writer.path.read_bytes()
        now[0] = T0
        with AuditEventEmitter(config(tmp_path, "many"), clock=lambda: now[0]) as batched:
            batched.emit_param_change("ctl", "k", 0, 1)
            batches = batched.writer.stats.batches
            written = batched.emit_many(trades(4), clock_readings=readings)
            assert batched.writer.stats.batches == batches + 1
            batch_bytes = batched.writer.path.read_bytes()
        assert [e.ts_recorded for e in written] == [T0 + 5, T0 + 9, T0 + 9, T0 + 12]
        assert batch_bytes == single_bytes

    def test_clock_readings_must_match_the_events_one_for_one(self, tmp_path):
        with AuditEventEmitter(config(tmp_path)) as emitter:
            batch = trades(3)
            with pytest.raises(ValueError, match="2 clock readings for a batch of 3 events"):
                emitter.emit_many(batch, clock_readings=[T0, T0])
            assert emitter.next_sequence == 0 and all(e.sequence is None for e in batch)


class TestOneSync:
    def test_n_durable_trades_cost_one_write_and_one_fdatasync(self, tmp_path):
        with AuditEventEmitter(config(tmp_path)) as emitter:
            stats = emitter.writer.stats
            before = (stats.syncs, stats.batches, stats.records)
            emitter.emit_many(trades(50))
            after = (stats.syncs, stats.batches, stats.records)
            # The reference: the same number of single durable emits syncs once per trade.
            for event in trades(5, start=50):
                emitter.emit(event)
            singles = stats.syncs - after[0]
        assert (after[0] - before[0], after[1] - before[1], after[2] - before[2]) == (1, 1, 50)
        assert singles == 5

    def test_a_batch_of_non_durable_events_is_not_synced(self, tmp_path):
        with AuditEventEmitter(config(tmp_path)) as emitter:
            syncs = emitter.writer.stats.syncs
            emitter.emit_many(SystemEvent(event_type="sys.note", source="ops") for _ in range(10))
            assert emitter.writer.stats.syncs == syncs
            assert len(emitter.writer.path.read_bytes().splitlines()) == 10

    def test_callbacks_see_every_event_of_the_batch_in_order(self, tmp_path):
        seen = []
        with AuditEventEmitter(config(tmp_path), on_event=[lambda e: seen.append(e.sequence)]) as emitter:
            emitter.emit_many(trades(3))
        assert seen == [0, 1, 2]


class TestNothingQueuedOnFailure:
    def test_a_record_over_the_size_limit_anywhere_in_the_batch_queues_none_of_it(self, tmp_path):
        with AuditEventEmitter(config(tmp_path, max_record_bytes=1024)) as emitter:
            emitter.emit_param_change("ctl", "k", 1, 2)
            before = emitter.writer.path.read_bytes()
            batch = [*trades(2), SystemEvent(event_type="sys.note", source="ops", payload={"pad": "x" * 2000}),
                     *trades(2, start=2)]
            with pytest.raises(ValidationError, match="max_record_bytes"):
                emitter.emit_many(batch)
            assert emitter.writer.path.read_bytes() == before
            assert emitter.next_sequence == 1
            assert all(e.sequence is None and e.prev_hash is None for e in batch)
            # Unstamped, so the good ones can be emitted after all.
            retried = emitter.emit_many(batch[:2])
        assert [e.sequence for e in retried] == [1, 2]
        assert verify(tmp_path / "s").ok

    def test_a_closed_writer_consumes_no_sequence(self, tmp_path):
        emitter = AuditEventEmitter(config(tmp_path))
        emitter.close()
        batch = trades(3)
        with pytest.raises(AuditWriteError, match="closed"):
            emitter.emit_many(batch)
        assert emitter.next_sequence == 0 and all(e.sequence is None for e in batch)

    def test_an_event_already_emitted_or_given_twice_is_refused_before_anything_is_stamped(self, tmp_path):
        with AuditEventEmitter(config(tmp_path)) as emitter:
            (done,) = emitter.emit_many(trades(1))
            fresh = trades(2)
            with pytest.raises(ValueError, match="already emitted as sequence 0"):
                emitter.emit_many([*fresh, done])
            with pytest.raises(ValueError, match="in the batch twice"):
                emitter.emit_many([fresh[0], fresh[1], fresh[0]])
            assert all(e.sequence is None for e in fresh) and emitter.next_sequence == 1
            assert emitter.emit_many([]) == []
            assert len(emitter.writer.path.read_bytes().splitlines()) == 1


class TestThreads:
    def test_concurrent_batches_and_single_emits_stay_contiguous_and_chained(self, tmp_path):
        errors: list[BaseException] = []
        batches: list[list[TradeEvent]] = []

        with AuditEventEmitter(config(tmp_path)) as emitter:
            def batcher(index: int) -> None:
                try:
                    for round_ in range(10):
                        batches.append(emitter.emit_many(trades(5, start=1000 * index + 10 * round_)))
                        emitter.emit_param_change("ctl", "k", index, round_)
                except BaseException as exc:
                    errors.append(exc)

            pool = [threading.Thread(target=batcher, args=(i,)) for i in range(4)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join()
            path = emitter.writer.path
        assert not errors
        assert len(batches) == 40
        for batch in batches:  # a batch is never interleaved with another thread's records
            sequences = [e.sequence for e in batch]
            assert sequences == list(range(sequences[0], sequences[0] + 5))
        lines = path.read_bytes().splitlines()
        assert [split_record(line).sequence for line in lines] == list(range(240))
        report = verify(tmp_path / "s")
        assert report.ok, report.to_text()
