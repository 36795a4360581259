"""AppendOnlyWriter: O_APPEND, nothing rewritten, durable syncs, rotation bookkeeping, seals."""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
import time

import pytest

from audit_core import AppendOnlyWriter, AuditConfig, AuditWriteError
from audit_core._layout import seal_path
from audit_core.trust.seals import read_seal

DAY_NS = 86_400 * 10**9
JAN_5 = 1_767_571_200 * 10**9  # 2026-01-05 00:00:00 UTC


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def writer(tmp_path):
    w = AppendOnlyWriter(AuditConfig(base_path=tmp_path, trader_id="T-1", stream_id="s1"), clock=Clock(JAN_5 + 5))
    yield w
    w.close()


class TestAppendOnly:
    def test_file_is_opened_with_o_append(self, writer):
        flags = fcntl.fcntl(writer._fd, fcntl.F_GETFL)
        assert flags & os.O_APPEND
        assert writer.path.name == "audit.T-1.s1.2026-01-05.0000.jsonl"
        assert writer.stream_id == "s1"

    def test_writes_land_at_the_end_even_after_a_foreign_append(self, writer):
        writer.write(b"one\n")
        with writer.path.open("ab") as other:
            other.write(b"foreign\n")
        writer.write(b"two\n")
        assert writer.path.read_bytes() == b"one\nforeign\ntwo\n"

    def test_existing_bytes_are_never_modified(self, writer):
        writer.write(b"a" * 1000 + b"\n")
        prefix = hashlib.sha256(writer.path.read_bytes()).hexdigest()
        for i in range(100):
            writer.write(f"{i}\n".encode())
        assert hashlib.sha256(writer.path.read_bytes()[:1001]).hexdigest() == prefix

    def test_close_seals_the_file_and_drops_its_write_bits(self, tmp_path):
        writer = AppendOnlyWriter(AuditConfig(base_path=tmp_path), clock=Clock(JAN_5))
        writer.write(b"a\n")
        assert read_seal(writer.path) is None  # the live file is not sealed
        writer.close()
        seal = read_seal(writer.path)
        assert seal is not None
        assert (seal["file"], seal["stream"], seal["records"], seal["file_size"], seal["next_file"]) == (
            writer.path.name, "TRADER-001.main", 1, 2, None
        )
        assert seal["file_sha256"] == hashlib.sha256(b"a\n").hexdigest()
        assert stat.S_IMODE(writer.path.stat().st_mode) == 0o440
        assert stat.S_IMODE(seal_path(writer.path).stat().st_mode) == 0o440
        assert writer.stats.seals == 1

    def test_reopening_after_a_clean_close_starts_a_new_segment(self, tmp_path):
        config = AuditConfig(base_path=tmp_path)
        clock = Clock(JAN_5)
        first = AppendOnlyWriter(config, clock=clock)
        first.write(b"a\n")
        first.close()
        second = AppendOnlyWriter(config, clock=clock)
        second.write(b"b\n")
        second.close()
        assert first.path.name == "audit.TRADER-001.main.2026-01-05.0000.jsonl"
        assert second.path.name == "audit.TRADER-001.main.2026-01-05.0001.jsonl"
        assert second.stream_id == first.stream_id == "main"
        assert first.path.read_bytes() == b"a\n"  # sealed, never appended to again
        assert second.path.read_bytes() == b"b\n"
        assert second.tail.last_record == b"a\n"
        assert read_seal(first.path) is not None and read_seal(second.path) is not None

    def test_reopening_after_a_crash_appends_to_the_same_days_file(self, tmp_path, crash):
        config = AuditConfig(base_path=tmp_path)
        clock = Clock(JAN_5)
        first = AppendOnlyWriter(config, clock=clock)
        first.write(b"a\n")
        crash(first)
        assert read_seal(first.path) is None
        second = AppendOnlyWriter(config, clock=clock)
        second.write(b"b\n")
        second.close()
        assert second.stream_id == first.stream_id == "main"
        assert second.path == first.path and first.path.read_bytes() == b"a\nb\n"
        assert second.tail.last_record == b"a\n"
        assert [p.name for p in (tmp_path / "hot").glob("*.jsonl")] == [first.path.name]
        assert read_seal(first.path)["records"] == 2

    def test_reopening_after_a_crash_on_an_earlier_day_seals_the_leftover_file(self, tmp_path, crash):
        config = AuditConfig(base_path=tmp_path)
        first = AppendOnlyWriter(config, clock=Clock(JAN_5))
        first.write(b"a\n")
        crash(first)
        second = AppendOnlyWriter(config, clock=Clock(JAN_5 + 2 * DAY_NS))
        assert second.path.name == "audit.TRADER-001.main.2026-01-07.0000.jsonl"
        assert read_seal(first.path)["next_file"] == second.path.name
        second.write(b"b\n")
        second.close()
        assert first.path.read_bytes() == b"a\n"
        assert second.path.read_bytes() == b"b\n"
        assert second.tail.last_record == b"a\n"

    def test_second_writer_on_a_held_explicit_stream_is_refused(self, writer, tmp_path):
        """One stream per process: the ``writer`` fixture holds stream s1."""
        with pytest.raises(AuditWriteError, match="held by another process"):
            AppendOnlyWriter(AuditConfig(base_path=tmp_path, trader_id="T-1", stream_id="s1"), clock=Clock(JAN_5))
        writer.write(b"still mine\n")
        assert writer.path.read_bytes() == b"still mine\n"

    def test_second_writer_on_a_held_default_stream_takes_the_next_one(self, tmp_path):
        config = AuditConfig(base_path=tmp_path)
        first = AppendOnlyWriter(config, clock=Clock(JAN_5))
        second = AppendOnlyWriter(config, clock=Clock(JAN_5))
        try:
            assert (first.stream_id, second.stream_id) == ("main", "main-2")
            assert second.path.name == "audit.TRADER-001.main-2.2026-01-05.0000.jsonl"
        finally:
            second.close()
            first.close()


class TestDurability:
    def test_durable_write_syncs_once(self, writer):
        writer.write(b"x\n", durable=True)
        assert writer.stats.syncs == 1

    def test_flush_syncs_only_when_dirty(self, writer):
        writer.flush()
        assert writer.stats.syncs == 0
        writer.write(b"x\n")
        writer.flush()
        writer.flush()
        assert writer.stats.syncs == 1

    def test_close_syncs_pending_bytes_and_refuses_more(self, writer):
        writer.write(b"x\n")
        writer.close()
        assert writer.stats.syncs == 1
        with pytest.raises(AuditWriteError, match="closed"):
            writer.write(b"y\n")
        writer.close()  # idempotent


class TestRotation:
    def test_rotates_at_utc_midnight_without_losing_bytes(self, tmp_path):
        clock = Clock(JAN_5 + DAY_NS - 1)
        writer = AppendOnlyWriter(AuditConfig(base_path=tmp_path), clock=clock)
        writer.write(b"before\n")
        clock.now += 1
        writer.write(b"after\n")
        writer.close()
        files = sorted(p.name for p in (tmp_path / "hot").glob("*.jsonl"))
        assert files == [
            "audit.TRADER-001.main.2026-01-05.0000.jsonl", "audit.TRADER-001.main.2026-01-06.0000.jsonl"
        ]
        assert (tmp_path / "hot" / files[0]).read_bytes() == b"before\n"
        assert (tmp_path / "hot" / files[1]).read_bytes() == b"after\n"
        assert writer.stats.rotations == 1
        # The rotated-away file is sealed (in the background, joined by close) and names its successor.
        assert writer.stats.seals == 2 and writer.stats.seal_errors == 0
        first_seal = read_seal(tmp_path / "hot" / files[0])
        assert first_seal is not None
        assert (first_seal["records"], first_seal["next_file"]) == (1, files[1])
        assert read_seal(tmp_path / "hot" / files[1])["next_file"] is None

    def test_no_rotation_when_disabled(self, tmp_path):
        clock = Clock(JAN_5)
        writer = AppendOnlyWriter(AuditConfig(base_path=tmp_path, rotate_daily=False), clock=clock)
        writer.write(b"a\n")
        clock.now += 3 * DAY_NS
        writer.write(b"b\n")
        writer.close()
        assert writer.path.read_bytes() == b"a\nb\n"


class TestTail:
    def test_tail_finds_last_record_and_torn_bytes(self, tmp_path):
        config = AuditConfig(base_path=tmp_path)
        writer = AppendOnlyWriter(config, clock=Clock(JAN_5))
        writer.write(b"first\nsecond\n")
        writer.close()
        with writer.path.open("ab") as handle:
            handle.write(b"tor")
        reopened = AppendOnlyWriter(config, clock=Clock(JAN_5))
        reopened.close()
        tail = reopened.tail
        assert tail.last_record == b"second\n"
        assert (tail.torn_bytes, tail.torn_offset, tail.path) == (b"tor", 13, writer.path)

    def test_torn_first_write_of_a_day_keeps_the_previous_days_last_record(self, tmp_path):
        config = AuditConfig(base_path=tmp_path)
        clock = Clock(JAN_5)
        writer = AppendOnlyWriter(config, clock=clock)
        writer.write(b"day1\n")
        writer.close()
        # The next process created the next day's file and died during its first write.
        day2 = tmp_path / "hot" / "audit.TRADER-001.main.2026-01-06.0000.jsonl"
        day2.write_bytes(b"half")
        reopened = AppendOnlyWriter(config, clock=Clock(JAN_5 + DAY_NS))
        assert reopened.path == day2  # today's unsealed file is continued
        reopened.close()
        tail = reopened.tail
        assert tail.last_record == b"day1\n"
        assert (tail.torn_bytes, tail.torn_offset, tail.path) == (b"half", 0, day2)
        assert day2.read_bytes() == b"half\n"  # closed off with a newline, never truncated


class TestBatching:
    """Records that arrive while a write is in progress queue up and go out together, in order."""

    @staticmethod
    def _hold_the_write(writer: AppendOnlyWriter) -> None:
        # What another thread in the middle of its os.write looks like to an appender.
        with writer._mutex:
            writer._writing = True

    def test_queued_records_are_written_in_one_os_write_in_ticket_order(self, writer):
        writer.write(b"first\n")
        self._hold_the_write(writer)
        tickets = [writer.append(f"queued-{i}\n".encode()) for i in range(5)]
        assert all(not lead for _, lead in tickets)  # a write is in progress: nobody else leads
        assert [t for t, _ in tickets] == sorted(t for t, _ in tickets)
        batches_before = writer.stats.batches
        writer.commit(tickets[-1][0], lead=True)  # the writer in progress drains the queue
        assert writer.stats.batches == batches_before + 1
        assert writer.path.read_bytes() == b"first\n" + b"".join(f"queued-{i}\n".encode() for i in range(5))

    def test_a_full_buffer_blocks_the_appender_until_it_drains(self, tmp_path):
        import threading

        config = AuditConfig(base_path=tmp_path, max_buffer_bytes=64 * 1024, retry_interval_s=0.01)
        writer = AppendOnlyWriter(config, clock=Clock(JAN_5))
        try:
            self._hold_the_write(writer)
            big = b"x" * (40 * 1024) + b"\n"
            first, _ = writer.append(big)
            done = threading.Event()
            blocked = threading.Thread(target=lambda: (writer.append(big), done.set()))
            blocked.start()
            deadline = time.monotonic() + 10
            while writer.stats.blocked_appends == 0 and time.monotonic() < deadline:
                time.sleep(0.005)
            assert writer.stats.blocked_appends > 0 and not done.is_set()  # blocked, not dropped
            writer.commit(first, lead=True)
            blocked.join(10)
            assert done.is_set()
            with writer._mutex:
                writer._writing = True
            writer.commit(writer._queued, lead=True)
            assert writer.path.read_bytes() == big + big
        finally:
            writer.close()
