"""Group commit (hot/_group_commit): a durable ticket returns only after a sync that started after its
bytes were written has finished; a sync in flight that covers other callers' tickets serves them too.

The syncs are real ``fdatasync`` calls on real files. Where a test needs a sync to stay in flight
while other threads arrive, ``SyncLog`` runs the real ``os.fdatasync`` and then holds the caller
until the test lets it go; it also records, for every sync of the hot file, how many bytes the file
held when the sync began, which is what a ticket (a stream offset; one file here) is checked against.
"""

from __future__ import annotations

import errno
import os
import threading

import pytest

from audit_core import AppendOnlyWriter, AuditConfig, AuditEventEmitter, AuditWriteError
from audit_core.hot._group_commit import MAX_CONCURRENT_SYNCS

THREADS = 8
PER_THREAD = 40


class SyncLog:
    """Wraps ``os.fdatasync`` for one fd: logs the file size at each sync's start once it has ended;
    optionally holds the next syncs in flight (``holds``), fails one (``fail_next``) or makes every
    sync slower by ``delay`` seconds (a slow disk)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fd: int, delay: float = 0.0) -> None:
        self.fd = fd
        self.real = os.fdatasync
        self.lock = threading.Lock()
        self.started_sizes: list[int] = []  # sizes at the start of the syncs that have ended well
        self.calls = 0
        self.holds: list[threading.Event] = []
        self.in_flight = threading.Event()
        self.fail_next = False
        self.delay = delay
        monkeypatch.setattr(os, "fdatasync", self)

    def hold(self) -> threading.Event:
        """Hold the next sync (after its real fdatasync) until the returned event is set."""
        release = threading.Event()
        self.holds.append(release)
        return release

    def __call__(self, fd: int) -> None:
        if fd != self.fd:
            self.real(fd)
            return
        size = os.fstat(fd).st_size
        with self.lock:
            self.calls += 1
            fail, self.fail_next = self.fail_next, False
            hold = self.holds.pop(0) if self.holds else None
        self.real(fd)
        if self.delay:
            threading.Event().wait(self.delay)
        if hold is not None:
            self.in_flight.set()
            assert hold.wait(10), "test never released the held sync"
        if fail:
            raise OSError(errno.EIO, "Input/output error")
        with self.lock:
            self.started_sizes.append(size)

    def durable_through(self) -> int:
        """The largest file size some finished sync started at: every byte before it is durable."""
        with self.lock:
            return max(self.started_sizes, default=0)


@pytest.fixture
def writer(tmp_path):
    w = AppendOnlyWriter(AuditConfig(base_path=tmp_path, rotate_daily=False, checkpoint_interval_s=None))
    yield w
    w.close()


def _wait_until(predicate, what: str) -> None:
    deadline = threading.Event()
    for _ in range(1000):
        if predicate():
            return
        deadline.wait(0.01)
    raise AssertionError(f"timed out waiting until {what}")


class TestFollowers:
    def test_a_sync_in_flight_that_covers_a_ticket_serves_it_without_a_sync_of_its_own(self, writer, monkeypatch):
        log = SyncLog(monkeypatch, writer._fd)
        ticket_b, lead_b = writer.append(b"b\n")  # written now, synced later
        assert not lead_b
        release = log.hold()
        leader = threading.Thread(target=writer.write, args=(b"a\n",), kwargs={"durable": True})
        leader.start()
        log.in_flight.wait(10)  # the leader's sync started after b was written: it covers b
        returned = threading.Event()
        follower = threading.Thread(target=lambda: (writer.commit(ticket_b, lead_b, durable=True), returned.set()))
        follower.start()
        _wait_until(lambda: writer._syncing and writer._syncing[0].done is not None, "the follower waits")
        assert not returned.is_set()  # b's sync has not finished: b is not acknowledged yet
        release.set()
        leader.join(10)
        follower.join(10)
        assert returned.is_set()
        assert log.calls == 1 and writer.stats.syncs == 1 and writer.stats.sync_waits == 1
        assert log.durable_through() >= ticket_b

    def test_a_ticket_written_after_a_sync_started_gets_a_sync_of_its_own(self, writer, monkeypatch):
        log = SyncLog(monkeypatch, writer._fd)
        release = log.hold()
        leader = threading.Thread(target=writer.write, args=(b"a\n",), kwargs={"durable": True})
        leader.start()
        log.in_flight.wait(10)
        ticket, lead = writer.append(b"b\n")  # after the running sync began: it may not carry b
        writer.commit(ticket, lead, durable=True)  # runs its own sync alongside, does not wait
        assert log.calls == 2 and writer.stats.sync_waits == 0
        assert log.durable_through() >= ticket
        release.set()
        leader.join(10)
        assert writer.stats.syncs == 2

    def test_a_caller_beyond_the_concurrent_syncs_waits_for_the_oldest_then_syncs_for_itself(self, writer, monkeypatch):
        assert MAX_CONCURRENT_SYNCS == 2
        log = SyncLog(monkeypatch, writer._fd)
        first, second = log.hold(), log.hold()
        a = threading.Thread(target=writer.write, args=(b"a\n",), kwargs={"durable": True})
        a.start()
        log.in_flight.wait(10)
        b = threading.Thread(target=writer.write, args=(b"b\n",), kwargs={"durable": True})
        b.start()  # written after a's sync began: a sync of its own, alongside
        _wait_until(lambda: log.calls == 2, "the second sync runs")
        c = threading.Thread(target=writer.write, args=(b"c\n",), kwargs={"durable": True})
        c.start()
        _wait_until(lambda: writer._syncing[0].done is not None, "c waits for the oldest sync")
        assert log.calls == 2  # no third sync while two run
        first.set()
        a.join(10)
        c.join(10)  # the oldest ended: c's own sync (the second is still held) covers it
        assert not c.is_alive() and b.is_alive()
        assert log.calls == 3 and log.durable_through() == writer._written
        second.set()
        b.join(10)
        assert writer.stats.syncs == 3 and writer.stats.sync_waits == 0

    def test_when_the_covering_sync_fails_its_leader_raises_and_the_follower_syncs_itself(self, writer, monkeypatch):
        log = SyncLog(monkeypatch, writer._fd)
        ticket_b, lead_b = writer.append(b"b\n")
        release = log.hold()
        log.fail_next = True
        errors: list[BaseException] = []

        def lead() -> None:
            try:
                writer.write(b"a\n", durable=True)
            except AuditWriteError as exc:
                errors.append(exc)

        leader = threading.Thread(target=lead)
        leader.start()
        log.in_flight.wait(10)
        follower = threading.Thread(target=writer.commit, args=(ticket_b, lead_b, True))
        follower.start()
        _wait_until(lambda: writer._syncing and writer._syncing[0].done is not None, "the follower waits")
        release.set()
        leader.join(10)
        follower.join(10)
        assert len(errors) == 1 and errors[0].errno == errno.EIO  # reported to the caller whose sync failed
        assert log.calls == 2 and writer.stats.syncs == 1 and writer.stats.sync_waits == 0
        assert log.durable_through() >= ticket_b  # the follower's own sync, not the failed one


class TestManyThreads:
    def test_every_durable_write_is_covered_by_a_finished_sync_that_started_after_it(self, writer, monkeypatch):
        log = SyncLog(monkeypatch, writer._fd, delay=0.001)
        uncovered: list[tuple[int, int]] = []

        def work(index: int) -> None:
            for step in range(PER_THREAD):
                ticket, lead = writer.append(f"{index}-{step}\n".encode())
                writer.commit(ticket, lead, durable=True)
                covered = log.durable_through()
                if covered < ticket:
                    uncovered.append((ticket, covered))

        _run(work)
        assert uncovered == []
        assert writer.stats.syncs == log.calls  # every sync of the hot file ended well and was counted
        assert writer.stats.syncs < THREADS * PER_THREAD and writer.stats.sync_waits > 0

    def test_durable_emits_from_several_threads_share_syncs_and_are_in_the_file_on_return(self, tmp_path, monkeypatch):
        config = AuditConfig(base_path=tmp_path, rotate_daily=False, checkpoint_interval_s=None)
        missing: list[int] = []
        with AuditEventEmitter(config) as emitter:
            path = emitter.writer.path
            # A disk whose syncs take over a millisecond (this VM's, under load): threads pile up.
            SyncLog(monkeypatch, emitter.writer._fd, delay=0.001)

            def work(index: int) -> None:
                for step in range(PER_THREAD):
                    event = emitter.emit_trade("trade.fill", f"thread-{index}", "EURUSD.SIM", order_id=f"O-{step}",
                                               side="BUY", size="1", price="1.5")
                    if event.to_line() not in path.read_bytes():
                        missing.append(event.sequence)

            _run(work)
            stats = emitter.writer.stats
            records, syncs, waits = stats.records, stats.syncs, stats.sync_waits
        assert missing == []
        assert records == THREADS * PER_THREAD
        # Group commit: syncs covered several records each; callers were served by another's sync.
        assert 2 * syncs <= records and waits > 0, (records, syncs, waits)


def _run(work) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def runner(index: int) -> None:
        barrier.wait()
        try:
            work(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
