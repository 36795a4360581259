"""AppendOnlyWriter: O_APPEND, nothing rewritten, durable syncs, rotation bookkeeping."""

from __future__ import annotations

import fcntl
import hashlib
import os

import pytest

from audit_core import AppendOnlyWriter, AuditConfig, AuditWriteError

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
        assert writer.path.name == "audit.T-1.s1.2026-01-05.jsonl"

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

    def test_reopening_appends_to_the_same_days_file(self, tmp_path):
        config = AuditConfig(base_path=tmp_path)
        clock = Clock(JAN_5)
        first = AppendOnlyWriter(config, clock=clock)
        first.write(b"a\n")
        first.close()
        second = AppendOnlyWriter(config, clock=clock)
        second.write(b"b\n")
        second.close()
        assert second.path == first.path and first.path.read_bytes() == b"a\nb\n"
        assert second.tail.last_record == b"a\n"


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
        files = sorted(p.name for p in (tmp_path / "hot").iterdir())
        assert files == ["audit.TRADER-001.main.2026-01-05.jsonl", "audit.TRADER-001.main.2026-01-06.jsonl"]
        assert (tmp_path / "hot" / files[0]).read_bytes() == b"before\n"
        assert (tmp_path / "hot" / files[1]).read_bytes() == b"after\n"
        assert writer.stats.rotations == 1

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
        day2 = tmp_path / "hot" / "audit.TRADER-001.main.2026-01-06.jsonl"
        day2.write_bytes(b"half")
        reopened = AppendOnlyWriter(config, clock=Clock(JAN_5 + DAY_NS))
        reopened.close()
        tail = reopened.tail
        assert tail.last_record == b"day1\n"
        assert (tail.torn_bytes, tail.path) == (b"half", day2)
