"""The observer's recording rule by environment, and its recording thread (bounded, ordered, counted).

The rule, the thread and a backtest's deferred batches need no NautilusTrader
(``audit_core.integrations._recording``); the emitter and the files are real, so "trades are
synced" is counted in fdatasyncs, not assumed from a flag.
"""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import pytest

from audit_core import AuditConfig, AuditEventEmitter, SystemEvent, TradeEvent, verify
from audit_core.integrations._recording import (
    BACKTEST_CHECKPOINT_INTERVAL_S,
    DeferredRecords,
    RecordingThread,
    recording_mode,
)


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

    def test_a_backtest_checkpoints_its_stream_at_close_and_live_at_the_emitters_interval(self, tmp_path):
        default = AuditConfig(base_path=tmp_path).checkpoint_interval_s
        assert default is not None and default < BACKTEST_CHECKPOINT_INTERVAL_S
        for environment, interval in (("live", default), ("sandbox", default),
                                      ("backtest", BACKTEST_CHECKPOINT_INTERVAL_S)):
            for sync_writes in (None, True, False):  # the sync override leaves checkpoints alone
                assert recording_mode(environment, sync_writes).checkpoint_interval_s == interval
        # The longest interval the emitter takes: a backtest is checkpointed when it closes.
        longest = AuditConfig(base_path=tmp_path, checkpoint_interval_s=BACKTEST_CHECKPOINT_INTERVAL_S)
        assert longest.checkpoint_interval_s == 3600
        with pytest.raises(ValueError, match="checkpoint_interval_s"):
            AuditConfig(base_path=tmp_path, checkpoint_interval_s=BACKTEST_CHECKPOINT_INTERVAL_S + 1)

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
    """A backtest's batches: records built later, in order, and written in runs of one day, each
    stamped from the clock reading of its capture."""

    def test_records_wait_for_a_full_batch_and_are_written_in_order_with_their_capture_times(self):
        now = [100]
        written: list[tuple[list[str], list[int], int]] = []

        def write(records: list[str], readings: list[int]) -> None:
            written.append((records, readings, deferred.clock()))

        deferred = DeferredRecords(lambda: now[0], on_error=lambda what, exc: None, limit=3, write=write)
        deferred.submit("a", str.upper, ("a",))
        now[0] = 200
        deferred.submit("b", str.upper, ("b",))
        assert (written, deferred.pending) == ([], 2)
        now[0] = 300
        deferred.submit("c", str.upper, ("c",))  # the third: the batch is built and written in one run
        # While the run is written, the clock reads the run's first capture time (the file it goes to).
        assert written == [(["A", "B", "C"], [100, 200, 300], 100)]
        assert (deferred.pending, deferred.batches) == (0, 1)
        now[0] = 400
        assert deferred.clock() == 400  # between batches: the clock itself

    def test_a_batch_is_written_in_one_run_per_utc_day(self):
        day = 86_400 * 10**9
        now = [0]
        written: list[tuple[list[int], int]] = []
        deferred = DeferredRecords(lambda: now[0], on_error=lambda what, exc: None, limit=10,
                                   write=lambda records, readings: written.append((readings, deferred.clock())))
        for at in (day - 2, day - 1, day, day + 1, 3 * day):
            now[0] = at
            deferred.submit("r", int, (at,))
        deferred.run()
        assert written == [([day - 2, day - 1], day - 2), ([day, day + 1], day), ([3 * day], 3 * day)]
        # A clock that steps back: the first and last readings share a day, one in between does not.
        written.clear()
        for at in (day - 2, day, day - 1):
            now[0] = at
            deferred.submit("r", int, (at,))
        deferred.run()
        assert written == [([day - 2], day - 2), ([day], day), ([day - 1], day - 1)]
        for at in (day + 5, day + 1, day + 9):  # out of order within one day: one run
            now[0] = at
            deferred.submit("r", int, (at,))
        deferred.run()
        assert written[3:] == [([day + 5, day + 1, day + 9], day + 5)]

    @pytest.mark.parametrize("limit", [2, 4, 7])
    def test_an_emitter_writing_the_runs_writes_the_bytes_of_records_emitted_one_by_one(self, tmp_path, limit):
        """Same records, same clock readings: emitted one at a time, or in batches that straddle midnight."""
        day = 86_400 * 10**9
        times = [day - 3, day - 2, day - 1, day, day + 1, 2 * day + 5, 2 * day + 5, 2 * day + 4]

        def fill(n: int) -> dict[str, object]:
            return {"event_type": "trade.fill", "source": "test", "instrument_id": "EUR/USD.SIM", "ts_event": n,
                    "order_id": f"O-{n}", "side": "BUY", "size": Decimal(1), "price": Decimal("1.1")}

        def files(name: str) -> dict[str, bytes]:
            return {path.name: path.read_bytes() for path in sorted((tmp_path / name / "hot").glob("*.jsonl"))}

        now = [0]
        config = AuditConfig(base_path=tmp_path / "single", trader_id="T-1", sync_writes=False)
        with AuditEventEmitter(config, clock=lambda: now[0]) as single:
            for n, at in enumerate(times):
                now[0] = at
                single.emit(TradeEvent(**fill(n)))  # type: ignore[arg-type]

        now[0] = 0
        config = AuditConfig(base_path=tmp_path / "batched", trader_id="T-1", sync_writes=False)
        deferred = DeferredRecords(lambda: now[0], on_error=lambda what, exc: None, limit=limit,
                                   write=lambda records, readings: emitter.emit_many(records, clock_readings=readings))
        with AuditEventEmitter(config, clock=deferred.clock) as emitter:
            for n, at in enumerate(times):
                now[0] = at
                deferred.submit("fill", TradeEvent.model_validate, (fill(n),))
            deferred.close()
        # Three UTC days, three files; the last reading steps back and keeps its predecessor's ts_recorded.
        assert len(files("single")) == 3
        assert files("batched") == files("single")

    def test_a_failing_build_is_reported_and_the_next_records_are_written(self):
        errors: list[tuple[str, str]] = []
        written: list[list[str]] = []

        def broken() -> str:
            raise ValueError("no such price")

        deferred = DeferredRecords(lambda: 0, on_error=lambda what, exc: errors.append((what, str(exc))), limit=10,
                                   write=lambda records, readings: written.append(records))
        deferred.submit("OrderFilled", broken)
        deferred.submit("OrderCanceled", str, ("canceled",))
        deferred.run()
        assert errors == [("OrderFilled", "no such price")]
        assert written == [["canceled"]]

    def test_a_run_the_writer_refuses_is_written_again_record_by_record(self):
        """Only the record refused on its own is reported: the others of its run are written."""
        errors: list[tuple[str, str]] = []
        written: list[tuple[list[str], int]] = []

        def write(records: list[str], readings: list[int]) -> None:
            if "bad" in records:
                raise OSError(f"refused {records}")  # and nothing of the run written
            written.append((records, deferred.clock()))

        now = [0]
        deferred = DeferredRecords(lambda: now[0], on_error=lambda what, exc: errors.append((what, str(exc))),
                                   limit=10, write=write)
        for n, name in enumerate(["a", "bad", "c"]):
            now[0] = 10 + n
            deferred.submit(f"record {name}", str, (name,))
        deferred.run()
        assert written == [(["a"], 10), (["c"], 12)]  # each alone, under its own capture time
        assert errors == [("record bad", "refused ['bad']")]

    def test_a_record_the_emitter_refuses_fails_alone_and_the_rest_of_its_run_is_written(self, tmp_path):
        """emit_many queues a run whole or not at all: one record over max_record_bytes is refused on
        its own and reported; the others are written in order, chained, with their capture times."""
        errors: list[str] = []
        now = [0]
        config = AuditConfig(base_path=tmp_path, trader_id="T-1", sync_writes=False, max_record_bytes=1024)
        deferred = DeferredRecords(lambda: now[0], on_error=lambda what, exc: errors.append(what), limit=10,
                                   write=lambda records, readings: emitter.emit_many(records, clock_readings=readings))
        with AuditEventEmitter(config, clock=deferred.clock) as emitter:
            for n, pad in enumerate(["", "x" * 2000, ""]):
                now[0] = 10 + n
                deferred.submit(f"note {n}", SystemEvent.model_validate,
                                ({"event_type": "sys.note", "source": "test", "ts_event": n, "payload": {"pad": pad}},))
            deferred.run()
        rows = [json.loads(line) for path in sorted((tmp_path / "hot").glob("*.jsonl"))
                for line in path.read_bytes().splitlines()]
        assert errors == ["note 1"]
        assert [(row["sequence"], row["ts_event"], row["ts_recorded"]) for row in rows] == [(0, 0, 10), (1, 2, 12)]
        assert verify(tmp_path).ok

    def test_after_close_each_record_is_written_as_it_is_submitted(self):
        written: list[list[str]] = []
        deferred = DeferredRecords(lambda: 0, on_error=lambda what, exc: None, limit=10,
                                   write=lambda records, readings: written.append(records))
        deferred.submit("a", str, ("a",))
        deferred.close()
        assert written == [["a"]]
        deferred.submit("b", str, ("b",))
        assert written == [["a"], ["b"]]

    def test_limit_must_be_positive(self):
        with pytest.raises(ValueError, match="limit must be >= 1, got 0"):
            DeferredRecords(lambda: 0, on_error=lambda what, exc: None, limit=0, write=lambda records, readings: None)
