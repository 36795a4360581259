"""Many threads on one emitter: whole lines, one gapless sequence in file order, per-thread order kept."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from audit_core import AuditConfig, AuditEvent, AuditEventEmitter, verify
from audit_core.trust.record import split_record

THREADS = 4


def run_threads(work: Callable[[int], None], count: int = THREADS) -> None:
    """Run ``work(thread_index)`` on ``count`` threads released together; re-raise the first error."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def target(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(index,), name=f"emitter-{index}") for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def read_records(path: Path) -> list[dict]:
    """Every line parsed; a line interleaved with another write would not parse."""
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.splitlines()]


def assert_gapless_and_verified(path: Path, rows: list[dict], total: int) -> None:
    assert len(rows) == total
    assert [row["sequence"] for row in rows] == list(range(total))
    report = verify(path)
    assert report.ok, report.to_text()
    assert report.records == total


class TestConcurrentParamChanges:
    PER_THREAD = 20_000

    def test_four_threads_write_whole_gapless_lines_in_call_order(self, tmp_path):
        with AuditEventEmitter(AuditConfig(base_path=tmp_path, rotate_daily=False)) as emitter:

            def work(index: int) -> None:
                for step in range(self.PER_THREAD):
                    emitter.emit_param_change(f"thread-{index}", "counter", step - 1, step)

            run_threads(work)
            path = emitter.writer.path
            assert emitter.next_sequence == THREADS * self.PER_THREAD

        rows = read_records(path)
        assert_gapless_and_verified(path, rows, THREADS * self.PER_THREAD)
        for index in range(THREADS):
            mine = [row["new_value"] for row in rows if row["source"] == f"thread-{index}"]
            assert mine == list(range(self.PER_THREAD)), f"thread {index}'s events are out of call order"


class TestConcurrentDurableTrades:
    PER_THREAD = 500

    def test_durable_trades_mixed_with_params_stay_whole_and_ordered(self, tmp_path):
        config = AuditConfig(base_path=tmp_path, rotate_daily=False)
        assert config.is_durable("trade.fill") and not config.is_durable("param.state_change")
        with AuditEventEmitter(config) as emitter:

            def work(index: int) -> None:
                for step in range(self.PER_THREAD):
                    emitter.emit_trade(
                        "trade.fill", f"thread-{index}", "EURUSD.SIM",
                        order_id=f"O-{index}-{step}", side="BUY", size="1", price="1.5",
                    )
                    emitter.emit_param_change(f"thread-{index}", "fills", step, step + 1)

            run_threads(work)
            path = emitter.writer.path
            syncs = emitter.writer.stats.syncs

        total = THREADS * self.PER_THREAD * 2
        assert syncs > 0  # trades were synced (concurrent durable emits may share one fdatasync)
        rows = read_records(path)
        assert_gapless_and_verified(path, rows, total)
        for index in range(THREADS):
            mine = [row for row in rows if row["source"] == f"thread-{index}"]
            expected: list[tuple[str, object]] = []
            for step in range(self.PER_THREAD):
                expected += [("trade.fill", f"O-{index}-{step}"), ("param.state_change", step + 1)]
            assert [(row["event_type"], row.get("order_id", row.get("new_value"))) for row in mine] == expected


class TestCallbacksUnderConcurrency:
    PER_THREAD = 2_000

    def test_callback_sees_every_event_exactly_once(self, tmp_path):
        seen: list[AuditEvent] = []
        seen_lock = threading.Lock()

        def on_event(event: AuditEvent) -> None:
            with seen_lock:
                seen.append(event)

        returned: list[list[AuditEvent]] = [[] for _ in range(THREADS)]
        with AuditEventEmitter(AuditConfig(base_path=tmp_path, rotate_daily=False), on_event=[on_event]) as emitter:

            def work(index: int) -> None:
                for step in range(self.PER_THREAD):
                    returned[index].append(emitter.emit_param_change(f"thread-{index}", "k", step, step + 1))

            run_threads(work)
            path = emitter.writer.path
            assert emitter.callback_errors == 0

        total = THREADS * self.PER_THREAD
        counts = Counter(event.sequence for event in seen)
        assert len(seen) == total
        assert sorted(counts) == list(range(total))
        assert set(counts.values()) == {1}
        # The callback got the very events emit returned, with the checksum that is in the file.
        assert {id(event) for event in seen} == {id(event) for events in returned for event in events}
        stored = [split_record(line).checksum for line in path.read_bytes().splitlines()]
        assert all(event.checksum == stored[event.sequence] for event in seen)
