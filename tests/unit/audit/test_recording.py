"""The observer's recording rule by environment, and its recording thread (bounded, ordered, counted).

The rule, the thread and a backtest's deferred batches are stdlib only
(``audit_core.integrations._recording``); the emitter and the files are real, so "trades are
synced" is counted in fdatasyncs, not assumed from a flag.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from audit_core import AuditConfig, AuditEventEmitter
from audit_core.integrations._recording import DeferredRecords, RecordingThread, recording_mode


class TestRecordingMode:
    @pytest.mark.parametrize("environment", ["live", "sandbox"])
    def test_live_and_sandbox_sync_trades_and_record_off_the_event_loop(self, environment):
        mode = recording_mode(environment)
        assert (mode.environment, mode.sync_trades, mode.off_loop) == (environment, True, True)

    def test_a_backtest_records_inline_and_syncs_at_rotation_and_close(self):
        mode = recording_mode("backtest")
        assert (mode.sync_trades, mode.off_loop) == (False, False)

    def test_sync_writes_overrides_the_sync_but_never_the_thread(self):
        assert recording_mode("backtest", sync_writes=True).sync_trades is True
        live_unsynced = recording_mode("live", sync_writes=False)
        assert (live_unsynced.sync_trades, live_unsynced.off_loop) == (False, True)

    def test_an_unknown_environment_is_refused_by_name(self):
        with pytest.raises(ValueError, match="environment must be one of backtest, sandbox, live, got 'prod'"):
            recording_mode("prod")

    @pytest.mark.parametrize(("environment", "synced"), [("live", True), ("sandbox", True), ("backtest", False)])
    def test_the_stream_configured_by_the_rule_syncs_each_trade_record_exactly_when_live(
            self, tmp_path, environment, synced):
        # The observer builds its stream with sync_writes=mode.sync_trades; count the fdatasyncs.
        mode = recording_mode(environment)
        with AuditEventEmitter(AuditConfig(base_path=tmp_path, sync_writes=mode.sync_trades,
                                           flush_interval_s=3600)) as emitter:
            before = emitter.writer.stats.syncs
            for n in range(5):
                emitter.emit_trade("trade.fill", "test", "EUR/USD.SIM", order_id=f"O-{n}", side="BUY",
                                   size=Decimal(1), price=Decimal("1.1"))
            syncs = emitter.writer.stats.syncs - before
        assert emitter.config.is_durable("trade.fill") is synced
        assert (syncs >= 5) if synced else (syncs == 0)


class TestRecordingThread:
    def test_records_in_submission_order_and_drains_on_close(self):
        done: list[int] = []
        thread = RecordingThread(on_error=lambda what, exc: None, max_pending=4)
        for n in range(100):
            thread.submit(f"record {n}", lambda n=n: done.append(n))
        assert thread.close(timeout=30)
        assert done == list(range(100))
        assert (thread.stats.submitted, thread.stats.completed, thread.stats.failed) == (100, 100, 0)

    def test_a_full_queue_makes_the_caller_wait_for_room_and_counts_it_without_dropping(self):
        gate, started, done = threading.Event(), threading.Event(), []
        thread = RecordingThread(on_error=lambda what, exc: None, max_pending=2)

        def first() -> None:
            started.set()
            gate.wait(30)  # the disk is slow: the thread sits on this record
            done.append("a")

        thread.submit("a", first)
        assert started.wait(30)
        thread.submit("b", lambda: done.append("b"))
        thread.submit("c", lambda: done.append("c"))  # the queue is full now
        returned = threading.Event()

        def fourth() -> None:
            thread.submit("d", lambda: done.append("d"))
            returned.set()

        caller = threading.Thread(target=fourth)
        caller.start()
        assert not returned.wait(0.3)  # waiting for room, not dropping "d"
        gate.set()
        caller.join(30)
        assert returned.is_set()
        assert thread.close(timeout=30)
        assert done == ["a", "b", "c", "d"]
        assert thread.stats.backpressure_waits == 1
        assert thread.stats.backpressure_ns > 0
        assert thread.stats.high_water == 2

    def test_a_failing_record_is_reported_and_counted_and_the_next_ones_are_written(self):
        errors: list[tuple[str, str]] = []
        done: list[str] = []
        thread = RecordingThread(on_error=lambda what, exc: errors.append((what, str(exc))))

        def broken() -> None:
            raise OSError("disk gone")

        thread.submit("OrderFilled", broken)
        thread.submit("OrderCanceled", lambda: done.append("canceled"))
        assert thread.close(timeout=30)
        assert errors == [("OrderFilled", "disk gone")]
        assert done == ["canceled"]
        assert (thread.stats.failed, thread.stats.completed) == (1, 1)

    def test_nothing_is_taken_after_close(self):
        thread = RecordingThread(on_error=lambda what, exc: None)
        assert thread.close(timeout=30)
        assert not thread.is_open
        with pytest.raises(RuntimeError, match="recording thread is closed; cannot record OrderFilled"):
            thread.submit("OrderFilled", lambda: None)

    def test_max_pending_must_be_positive(self):
        with pytest.raises(ValueError, match="max_pending must be >= 1, got 0"):
            RecordingThread(on_error=lambda what, exc: None, max_pending=0)


class TestDeferredRecords:
    """A backtest's batches: calls run later, in order, each under the clock reading of its capture."""

    def test_calls_wait_for_a_full_batch_and_run_in_order_under_their_capture_time(self):
        now = [100]
        seen: list[tuple[str, int]] = []
        deferred = DeferredRecords(lambda: now[0], on_error=lambda what, exc: None, limit=3)

        def record(name: str) -> None:
            deferred.submit(name, lambda: seen.append((name, deferred.clock())))

        record("a")
        now[0] = 200
        record("b")
        assert (seen, deferred.pending) == ([], 2)
        now[0] = 300
        record("c")  # the third: the batch runs, the clock pinned to each call's capture
        assert seen == [("a", 100), ("b", 200), ("c", 300)]
        assert (deferred.pending, deferred.batches) == (0, 1)
        now[0] = 400
        assert deferred.clock() == 400  # between batches: the clock itself

    def test_an_emitter_on_the_deferred_clock_writes_the_bytes_of_immediate_writes(self, tmp_path):
        """Same records, same clock readings: written at once, or in batches that straddle midnight."""
        day = 86_400 * 10**9
        times = [day - 3, day - 2, day - 1, day, day + 1, 2 * day + 5]

        def trail(name: str, limit: int) -> dict[str, bytes]:
            now = [0]
            deferred = DeferredRecords(lambda: now[0], on_error=lambda what, exc: None, limit=limit)
            emitter = AuditEventEmitter(AuditConfig(base_path=tmp_path / name, trader_id="T-1", sync_writes=False),
                                        clock=deferred.clock)
            for n, at in enumerate(times):
                now[0] = at
                deferred.submit("fill", lambda n=n: emitter.emit_trade(
                    "trade.fill", "test", "EUR/USD.SIM", order_id=f"O-{n}", side="BUY", size=Decimal(1),
                    price=Decimal("1.1")))
            deferred.close()
            emitter.close()
            return {path.name: path.read_bytes() for path in sorted((tmp_path / name / "hot").glob("*.jsonl"))}

        immediate, batched = trail("immediate", 1), trail("batched", 4)
        assert len(immediate) == 3  # three UTC days, three files
        assert batched == immediate

    def test_a_failing_call_is_reported_and_the_next_ones_run(self):
        errors: list[tuple[str, str]] = []
        done: list[str] = []
        deferred = DeferredRecords(lambda: 0, on_error=lambda what, exc: errors.append((what, str(exc))), limit=10)

        def broken() -> None:
            raise OSError("disk gone")

        deferred.submit("OrderFilled", broken)
        deferred.submit("OrderCanceled", lambda: done.append("canceled"))
        deferred.run()
        assert errors == [("OrderFilled", "disk gone")]
        assert done == ["canceled"]

    def test_after_close_each_call_runs_as_it_is_submitted(self):
        done: list[str] = []
        deferred = DeferredRecords(lambda: 0, on_error=lambda what, exc: None, limit=10)
        deferred.submit("a", lambda: done.append("a"))
        deferred.close()
        assert done == ["a"]
        deferred.submit("b", lambda: done.append("b"))
        assert done == ["a", "b"]

    def test_limit_must_be_positive(self):
        with pytest.raises(ValueError, match="limit must be >= 1, got 0"):
            DeferredRecords(lambda: 0, on_error=lambda what, exc: None, limit=0)
