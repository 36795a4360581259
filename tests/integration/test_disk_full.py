"""A full disk, for real: the hot trail lives on a tiny tmpfs that a filler file fills up.

Mounting needs root (CAP_SYS_ADMIN). This project's machines and CI run as root where tmpfs mounts
work; a machine that refuses the mount skips these tests with the reason in the pytest summary.

What is checked: the writer degrades on ENOSPC instead of failing the trading loop, keeps (and,
with a fallback path, spills and syncs) what it cannot write, chains ``sys.degraded``/``sys.recovered``,
and once space returns the hot trail holds every record exactly once, in order, and verifies.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from audit_core import AuditConfig, AuditEvent, AuditEventEmitter, AuditWriteError, TradeEvent, verify
from audit_core.trust.record import split_record

TMPFS_SIZE = "256k"


@contextlib.contextmanager
def mounted_tmpfs(tmp_path: Path, size: str = TMPFS_SIZE) -> Iterator[Path]:
    """A freshly mounted tmpfs of ``size``, lazily unmounted afterwards (skips where mounting is refused)."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        # Only a machine that cannot mount at all skips, and says so in the summary (-ra): this
        # project's machines and CI run as root in a VM where tmpfs mounts work.
        message = f"cannot mount a tmpfs at {mount_point}: {result.stderr.strip() or result.returncode}"
        pytest.skip(f"{message} (needs root with CAP_SYS_ADMIN)")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A freshly mounted 256 KiB tmpfs, lazily unmounted afterwards."""
    with mounted_tmpfs(tmp_path) as mount_point:
        yield mount_point


def fill(disk: Path) -> Path:
    """Fill ``disk`` with a filler file until every write fails with ENOSPC; return the filler."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == 28, exc  # ENOSPC
    finally:
        os.close(fd)
    assert os.statvfs(disk).f_bavail == 0
    return filler


class Emitted:
    """Every event an emit returned, to be found in the trail afterwards."""

    def __init__(self, emitter: AuditEventEmitter) -> None:
        self.emitter = emitter
        self.events: list[AuditEvent] = []
        self.counter = 0

    def param(self) -> AuditEvent:
        self.counter += 1
        event = self.emitter.emit_param_change("disk-test", "step", self.counter, {"n": self.counter, "pad": "p" * 40})
        self.events.append(event)
        return event

    def trade(self) -> AuditEvent:
        self.counter += 1
        event = self.emitter.emit_trade(
            "trade.fill", "disk-test", "ES", order_id=f"o-{self.counter}", side="BUY", size="1", price="5000.25"
        )
        self.events.append(event)
        return event

    def until_degraded(self, limit: int = 5000) -> None:
        for _ in range(limit):
            if self.emitter.is_degraded:
                return
            self.param()
        pytest.fail(f"the writer never degraded after {limit} emits on a full disk: {self.emitter.writer.stats}")


def trail_lines(base: Path) -> list[bytes]:
    return [line for path in sorted((base / "hot").glob("*.jsonl")) for line in path.read_bytes().splitlines(True)]


def assert_trail_has_exactly(base: Path, events: list[AuditEvent]) -> list[dict[str, Any]]:
    """The hot trail verifies, has no torn lines, is gapless, and holds each event exactly once."""
    report = verify(base)
    assert report.ok, report.to_text()
    assert report.recovered == [], "a short write was not completed in place"
    lines = trail_lines(base)
    assert all(line.endswith(b"\n") for line in lines)
    rows = [json.loads(line) for line in lines]
    assert [row["sequence"] for row in rows] == list(range(len(rows)))
    by_sequence = {row["sequence"]: row for row in rows}
    checksums = [split_record(line).checksum for line in lines]
    assert len(set(checksums)) == len(checksums)
    for event in events:
        row = by_sequence.get(event.sequence)
        assert row is not None, f"sequence {event.sequence} is missing"
        assert row["checksum"] == event.checksum, f"sequence {event.sequence} is not the event emitted"
    emitted = [event.sequence for event in events]
    assert emitted == sorted(emitted)
    return rows


def event_types(rows: list[dict[str, Any]]) -> list[str]:
    return [row["event_type"] for row in rows if row["event_type"].startswith("sys.")]


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class TestDiskFullWithFallback:
    def test_degrades_spills_durable_records_and_recovers_byte_for_byte(self, small_disk, tmp_path):
        base = small_disk / "trail"
        fallback = tmp_path / "fallback"
        config = AuditConfig(base_path=base, fallback_path=fallback, retry_interval_s=0.05)
        emitter = AuditEventEmitter(config)
        emitted = Emitted(emitter)
        for _ in range(5):
            emitted.param()
        filler = fill(small_disk)

        emitted.until_degraded()
        (hot,) = (base / "hot").glob("*.jsonl")
        at_failure = hot.read_bytes()
        torn_tail = at_failure.rsplit(b"\n", 1)[1]
        assert torn_tail, "the write that hit ENOSPC was not short: nothing to complete in place"
        for _ in range(50):
            emitted.param()  # non-durable: none raises
        # Durable: made durable in the spill file, so none raises.
        degraded_trades = [emitted.trade() for _ in range(5)]
        assert emitter.is_degraded
        stats = emitter.writer.stats
        assert stats.write_errors >= 1
        assert stats.degraded_episodes == 1
        assert stats.spilled_bytes > 0

        filler.unlink()
        time.sleep(2 * config.retry_interval_s)
        for _ in range(10):
            emitted.param()
        emitted.trade()
        assert wait_for(lambda: not emitter.is_degraded, 2.0), "the writer did not recover once space was back"
        emitter.close()

        rows = assert_trail_has_exactly(base, emitted.events)
        # The short write was completed in place: the bytes on disk at the failure are a prefix of the
        # final file, and the partial line became one whole record.
        final = hot.read_bytes()
        assert final.startswith(at_failure)
        completed = final[len(at_failure) - len(torn_tail) :].split(b"\n", 1)[0]
        assert completed.startswith(torn_tail) and len(completed) > len(torn_tail)
        split_record(completed)
        assert event_types(rows) == ["sys.degraded", "sys.recovered"]
        degraded = next(row for row in rows if row["event_type"] == "sys.degraded")
        assert degraded["payload"]["error"].startswith("ENOSPC")
        assert degraded["payload"]["fallback_path"] == str(fallback)
        # What was spilled is whole, synced copies of records that are now in the hot trail.
        (spill,) = fallback.iterdir()
        spilled = spill.read_bytes().splitlines(True)
        assert spilled and set(spilled) <= set(trail_lines(base))
        assert {trade.sequence for trade in degraded_trades} <= {split_record(line).sequence for line in spilled}
        assert emitter.writer.stats.spilled_bytes >= sum(map(len, spilled)) > 0

    def test_reopening_after_the_degraded_session_imports_nothing_twice(self, small_disk, tmp_path):
        base = small_disk / "trail"
        config = AuditConfig(base_path=base, fallback_path=tmp_path / "fallback", retry_interval_s=0.05)
        with AuditEventEmitter(config) as emitter:
            emitted = Emitted(emitter)
            emitted.param()
            filler = fill(small_disk)
            emitted.until_degraded()
            emitted.trade()
            filler.unlink()
            time.sleep(2 * config.retry_interval_s)
            emitted.param()
        with AuditEventEmitter(config) as emitter:
            assert emitter.writer.imported_records == 0
            emitted.emitter = emitter
            emitted.param()

        rows = assert_trail_has_exactly(base, emitted.events)
        assert event_types(rows) == ["sys.degraded", "sys.recovered"]


class TestDurableRecordQueuedBehindALeader:
    def test_a_durable_record_appended_after_the_leader_took_the_spill_list_is_spilled_not_refused(
        self, small_disk, tmp_path
    ):
        """The race a kill test found: while degraded, a durable record is queued while another thread
        leads the drain and has already taken the list of records to spill; that leader returns without
        it. The durable caller must spill it itself (a fallback is configured), not raise."""
        base = small_disk / "trail"
        config = AuditConfig(base_path=base, fallback_path=tmp_path / "fallback", retry_interval_s=60,
                             flush_interval_s=3600)
        emitter = AuditEventEmitter(config)
        emitted = Emitted(emitter)
        emitted.param()
        filler = fill(small_disk)
        emitted.until_degraded()
        writer = emitter.writer
        with writer._mutex:
            writer._writing = True  # stand in for a leader between taking the spill list and returning
        results: list[object] = []
        trade = threading.Thread(target=lambda: results.append(_try(emitted.trade)))
        trade.start()
        assert wait_for(lambda: writer.buffered_bytes > 0 and writer._unspilled, 2.0)
        with writer._mutex:
            writer._writing = False  # the leader returns without having spilled the trade
            writer._notify()
        trade.join(10)
        assert not trade.is_alive()
        assert results and not isinstance(results[0], BaseException), results
        (spill,) = (tmp_path / "fallback").iterdir()
        spilled = {split_record(line).sequence for line in spill.read_bytes().splitlines()}
        assert emitted.events[-1].sequence in spilled

        filler.unlink()
        assert _retry_now(emitter), "the writer did not recover once space was back"
        emitter.close()
        assert_trail_has_exactly(base, emitted.events)


def _try(call: Callable[[], object]) -> object:
    try:
        return call()
    except BaseException as exc:
        return exc


def _retry_now(emitter: AuditEventEmitter) -> bool:
    """``retry_interval_s`` is long in that test: make the next emit retry the hot file at once."""
    emitter.writer._next_retry = 0.0
    Emitted(emitter).param()
    return wait_for(lambda: not emitter.is_degraded, 2.0)


class TestDiskFullWithoutFallback:
    def test_non_durable_records_wait_in_memory_and_durable_ones_raise(self, small_disk):
        base = small_disk / "trail"
        config = AuditConfig(base_path=base, retry_interval_s=0.05)
        emitter = AuditEventEmitter(config)
        emitted = Emitted(emitter)
        emitted.param()
        filler = fill(small_disk)
        emitted.until_degraded()
        for _ in range(30):
            emitted.param()
        assert emitter.writer.buffered_bytes > 0

        with pytest.raises(AuditWriteError, match="cannot be made durable"):
            emitter.emit_trade("trade.fill", "disk-test", "ES", order_id="refused", side="SELL", size="2", price="1")
        assert emitter.is_degraded
        assert emitter.writer.stats.spilled_bytes == 0

        filler.unlink()
        time.sleep(2 * config.retry_interval_s)
        emitted.param()
        emitted.trade()
        assert wait_for(lambda: not emitter.is_degraded, 2.0)
        emitter.close()

        rows = assert_trail_has_exactly(base, emitted.events)
        assert event_types(rows) == ["sys.degraded", "sys.recovered"]
        # The refused trade stayed queued like everything else: written once, after recovery, not lost.
        assert [row["order_id"] for row in rows if row.get("order_id") == "refused"] == ["refused"]
        assert len(rows) == len(emitted.events) + 3

    def test_writer_retries_on_its_own_every_retry_interval(self, small_disk):
        """No emits after the disk frees up: the writer's own retries (every retry_interval_s) recover it."""
        base = small_disk / "trail"
        config = AuditConfig(base_path=base, retry_interval_s=0.05, flush_interval_s=5.0)
        emitter = AuditEventEmitter(config)
        emitted = Emitted(emitter)
        emitted.param()
        filler = fill(small_disk)
        emitted.until_degraded()
        for _ in range(10):
            emitted.param()
        filler.unlink()
        try:
            assert wait_for(lambda: not emitter.is_degraded, 1.0), (
                f"still degraded 1 s (20 retry intervals) after space came back: {emitter.writer.stats}"
            )
            assert emitter.writer.buffered_bytes == 0
        finally:
            emitter.close()
        assert_trail_has_exactly(base, emitted.events)


def trade_batch(emitted: Emitted, n: int) -> list[AuditEvent]:
    """``n`` new trade events for one ``emit_many``, recorded in ``emitted`` as the emitter returns them."""
    batch: list[AuditEvent] = [
        TradeEvent(event_type="trade.fill", source="disk-test", instrument_id="ES", order_id=f"batch-{i}",
                   side="BUY", size="1", price="5000.25", reason="r" * 40)
        for i in range(n)
    ]
    emitted.events.extend(batch)
    return batch


class TestDiskFullMidBatch:
    """A durable batch (``emit_many``) that the disk fills up in the middle of: the policy is the one
    for single durable records, applied to the whole batch, and no record of it is acknowledged alone."""

    def test_without_fallback_the_whole_batch_is_refused_and_written_once_after_recovery(self, small_disk):
        base = small_disk / "trail"
        config = AuditConfig(base_path=base, retry_interval_s=0.05)
        emitter = AuditEventEmitter(config)
        emitted = Emitted(emitter)
        emitted.param()
        filler = fill(small_disk)  # the hot file's last page still takes a few records: the batch is cut
        (hot,) = (base / "hot").glob("*.jsonl")
        before = len(hot.read_bytes())

        batch = trade_batch(emitted, 30)  # ~11 KB: more than the page left, so the disk fills mid-batch
        with pytest.raises(AuditWriteError, match=r"none of the batch of 30 records \(sequences 1\.\.30\)"):
            emitter.emit_many(batch)
        assert emitter.is_degraded
        at_failure = hot.read_bytes()[before:]
        batch_bytes = b"".join(event.to_line() for event in batch)
        assert batch_bytes.startswith(at_failure) and len(at_failure) < len(batch_bytes)
        assert at_failure, "the batch was not cut: nothing of it reached the file before ENOSPC"

        filler.unlink()
        assert wait_for(lambda: not emitter.is_degraded, 2.0), "the writer did not recover once space was back"
        emitter.close()
        rows = assert_trail_has_exactly(base, emitted.events)
        assert [row["order_id"] for row in rows if row["event_type"] == "trade.fill"] == [
            f"batch-{i}" for i in range(30)
        ]
        # The whole batch is contiguous, and the episode is chained after it.
        assert [row["sequence"] for row in rows if row["event_type"] == "trade.fill"] == list(range(1, 31))
        assert event_types(rows) == ["sys.degraded", "sys.recovered"]

    def test_with_fallback_the_batch_is_durable_in_the_spill_file_and_returns(self, small_disk, tmp_path):
        base = small_disk / "trail"
        fallback = tmp_path / "fallback"
        config = AuditConfig(base_path=base, fallback_path=fallback, retry_interval_s=0.05)
        emitter = AuditEventEmitter(config)
        emitted = Emitted(emitter)
        emitted.param()
        filler = fill(small_disk)

        batch = emitter.emit_many(trade_batch(emitted, 30))  # returns: every record is synced somewhere
        assert emitter.is_degraded
        (spill,) = fallback.iterdir()
        spilled = {split_record(line).sequence for line in spill.read_bytes().splitlines()}
        hot_bytes = b"".join(path.read_bytes() for path in (base / "hot").glob("*.jsonl"))
        # A record not in the spill file is one the hot file took whole before the disk filled.
        for event in batch:
            assert event.sequence in spilled or event.to_line() in hot_bytes, event.sequence
        assert batch[-1].sequence in spilled  # the batch did not fit: its end went to the spill file

        filler.unlink()
        assert wait_for(lambda: not emitter.is_degraded, 2.0), "the writer did not recover once space was back"
        emitter.close()
        rows = assert_trail_has_exactly(base, emitted.events)
        assert event_types(rows) == ["sys.degraded", "sys.recovered"]


class TestDurableWaitPolicy:
    def test_durable_emit_waits_until_space_is_freed(self, small_disk):
        base = small_disk / "trail"
        config = AuditConfig(base_path=base, retry_interval_s=0.05, durable_failure="wait", durable_wait_s=2.0)
        emitter = AuditEventEmitter(config)
        emitted = Emitted(emitter)
        emitted.param()
        filler = fill(small_disk)
        emitted.until_degraded()
        freer = threading.Timer(0.3, filler.unlink)

        started = time.monotonic()
        freer.start()
        try:
            emitted.trade()
        finally:
            freer.join()
        elapsed = time.monotonic() - started

        assert 0.25 <= elapsed < 2.0, f"the durable emit returned after {elapsed:.3f} s"
        assert not emitter.is_degraded
        emitter.close()
        rows = assert_trail_has_exactly(base, emitted.events)
        assert event_types(rows) == ["sys.degraded", "sys.recovered"]

    def test_durable_emit_returns_after_the_recovery_another_thread_reports(self, small_disk):
        # The flusher, not the waiting emit, writes the durable record and then reports the
        # recovery; the report is held open to widen the window in which the emit could return
        # with the recovery not yet on record (it did, once in four CI runs, before the fix).
        base = small_disk / "trail"
        config = AuditConfig(base_path=base, retry_interval_s=1.0, durable_failure="wait", durable_wait_s=10.0)
        emitter = AuditEventEmitter(config)
        emitted = Emitted(emitter)
        emitted.param()
        filler = fill(small_disk)
        emitted.until_degraded()
        writer = emitter.writer
        record_change = writer.on_state_change
        reports: list[tuple[str, str]] = []  # (kind, reporting thread), when each report returned

        def slow_report(change: Any) -> None:
            if change.kind == "recovered":
                time.sleep(0.3)
            assert record_change is not None
            record_change(change)
            reports.append((change.kind, threading.current_thread().name))

        writer.on_state_change = slow_report
        returned: list[bool] = []
        emit = threading.Thread(target=lambda: (emitted.trade(), returned.append(not emitter.is_degraded)),
                                name="durable-emit")
        emit.start()
        time.sleep(0.1)  # the emit is waiting out the full disk (its own retry is 1 s away)
        filler.unlink()
        writer._wake_flusher.set()  # stands in for the flusher's 1 s timer, so that the flusher drains
        emit.join(10)

        assert not emit.is_alive()
        recovered = [thread for kind, thread in reports if kind == "recovered"]
        assert recovered and recovered[0] != "durable-emit", reports
        assert returned == [True], "the durable emit returned before the recovery was on record"
        emitter.close()
        rows = assert_trail_has_exactly(base, emitted.events)
        assert event_types(rows) == ["sys.degraded", "sys.recovered"]

    def test_durable_emit_gives_up_after_durable_wait_s(self, small_disk):
        base = small_disk / "trail"
        config = AuditConfig(base_path=base, retry_interval_s=0.05, durable_failure="wait", durable_wait_s=0.3)
        emitter = AuditEventEmitter(config)
        emitted = Emitted(emitter)
        emitted.param()
        filler = fill(small_disk)
        emitted.until_degraded()

        started = time.monotonic()
        with pytest.raises(AuditWriteError, match="cannot be made durable"):
            emitter.emit_trade("trade.fill", "disk-test", "ES", order_id="late", side="BUY", size="1", price="1")
        elapsed = time.monotonic() - started

        assert 0.25 <= elapsed < 1.5, f"gave up after {elapsed:.3f} s, configured 0.3 s"
        filler.unlink()
        time.sleep(2 * config.retry_interval_s)
        emitted.param()
        emitter.close()
        rows = assert_trail_has_exactly(base, emitted.events)
        assert [row["order_id"] for row in rows if row.get("order_id") == "late"] == ["late"]


class TestCrashWhileDegraded:
    def test_spilled_records_are_imported_after_a_crash_and_the_torn_line_is_recorded(
        self, small_disk, tmp_path, crash
    ):
        """The process dies while the disk is full: the hot file ends in a torn line and the only copy
        of the later records is the spill file. The next writer ends the torn line, imports the spilled
        records that continue the chain, and the emitter chains a sys.recovery naming the torn bytes."""
        base = small_disk / "trail"
        config = AuditConfig(base_path=base, fallback_path=tmp_path / "fallback", retry_interval_s=0.05)
        emitter = AuditEventEmitter(config)
        emitted = Emitted(emitter)
        for _ in range(3):
            emitted.param()
        filler = fill(small_disk)
        emitted.until_degraded()
        trades = [emitted.trade() for _ in range(3)]  # durable through the spill file
        (hot,) = (base / "hot").glob("*.jsonl")
        torn_tail = hot.read_bytes().rsplit(b"\n", 1)[1]
        assert torn_tail, "the failing write was not short"
        crash(emitter)

        filler.unlink()
        with AuditEventEmitter(config) as reopened:
            imported = reopened.writer.imported_records
            after = reopened.emit_param_change("disk-test", "step", -1, -2)

        assert imported >= len(trades)
        report = verify(base)
        assert report.ok, report.to_text()
        assert len(report.recovered) == 1
        records = [json.loads(line) for line in trail_lines(base) if line.startswith(b"{") and b'"checksum"' in line]
        by_sequence = {row["sequence"]: row for row in records}
        for event in [*emitted.events, after]:
            assert by_sequence[event.sequence]["checksum"] == event.checksum
        recovery = [row for row in records if row["event_type"] == "sys.recovery"]
        assert len(recovery) == 1
        assert recovery[0]["payload"]["torn_length"] == len(torn_tail)
        assert recovery[0]["payload"]["imported_spilled_records"] == imported


class Clock:
    """An injected wall clock the test moves past midnight."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


JAN_5 = 1_767_571_200 * 10**9  # 2026-01-05 00:00:00 UTC
DAY_NS = 86_400 * 10**9


class TestShortWriteThenMidnight:
    def test_the_rest_of_a_cut_record_completes_it_in_its_own_file_before_the_rotation(self, small_disk, tmp_path):
        """A write cut short by ENOSPC, then midnight, then space again: the record's rest goes into the
        file its first bytes are in, and only then does the stream rotate (it used to start the next
        day's file with the rest: one record split across two files, failing verify forever)."""
        base = small_disk / "trail"
        clock = Clock(JAN_5 + DAY_NS - 10 * 10**9)  # 23:59:50
        config = AuditConfig(base_path=base, fallback_path=tmp_path / "fallback", retry_interval_s=0.05)
        emitter = AuditEventEmitter(config, clock=clock)
        emitted = Emitted(emitter)
        for _ in range(3):
            emitted.param()
        filler = fill(small_disk)
        emitted.until_degraded()
        (first_day,) = (base / "hot").glob("*.jsonl")
        torn_tail = first_day.read_bytes().rsplit(b"\n", 1)[1]
        assert torn_tail, "the write that hit ENOSPC was not short: nothing to complete in place"

        clock.now = JAN_5 + DAY_NS + 10 * 10**9  # 00:00:10 the next day, disk still full
        for _ in range(5):
            emitted.param()
        filler.unlink()
        time.sleep(2 * config.retry_interval_s)
        emitted.param()
        assert wait_for(lambda: not emitter.is_degraded, 2.0), "the writer did not recover once space was back"
        emitter.close()

        assert_trail_has_exactly(base, emitted.events)
        files = sorted((base / "hot").glob("*.jsonl"))
        assert [path.name.split(".")[3] for path in files] == ["2026-01-05", "2026-01-06"]
        completed = first_day.read_bytes().split(b"\n")[-2]
        assert completed.startswith(torn_tail) and len(completed) > len(torn_tail)
        split_record(completed)
        assert files[1].read_bytes().startswith(b'{"ts_event":'), "the next day's file starts mid-record"
