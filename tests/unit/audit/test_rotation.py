"""Daily rotation at UTC midnight, driven by a fake clock, and continuity of one stream across files."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Callable
from pathlib import Path

from audit_core import AuditConfig, AuditEventEmitter, FailureKind, verify
from audit_core._layout import utc_day
from audit_core.integrity import GENESIS_HASH, split_record

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NS = 1_000_000_000


def utc_ns(*args: int, nanosecond: int = 0) -> int:
    """Nanoseconds since the epoch of a UTC date-time (microsecond precision plus ``nanosecond``)."""
    return (dt.datetime(*args, tzinfo=dt.UTC) - _EPOCH) // dt.timedelta(microseconds=1) * 1000 + nanosecond


def fake_clock(start_ns: int) -> tuple[Callable[[], int], Callable[[int], None]]:
    """A clock that returns a settable integer: ``(clock, set_time)``."""
    now = start_ns

    def clock() -> int:
        return now

    def set_time(ns: int) -> None:
        nonlocal now
        now = ns

    return clock, set_time


DAY_5_LATE = utc_ns(2026, 1, 5, 23, 59, 59, 900_000)
MIDNIGHT_6 = utc_ns(2026, 1, 6)
MIDNIGHT_7 = utc_ns(2026, 1, 7)
DAY_5 = dt.date(2026, 1, 5)
DAY_6 = dt.date(2026, 1, 6)
DAY_7 = dt.date(2026, 1, 7)


def config_for(tmp_path: Path) -> AuditConfig:
    return AuditConfig(base_path=tmp_path, trader_id="T-7", stream_id="alpha", sync_writes=False)


def file_for(config: AuditConfig, day: dt.date) -> Path:
    return config.hot_path / f"audit.T-7.alpha.{day.isoformat()}.jsonl"


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def emit_at(emitter: AuditEventEmitter, set_time: Callable[[int], None], times: list[int]) -> None:
    for index, ns in enumerate(times):
        set_time(ns)
        emitter.emit_param_change("rotation-test", "k", index, index + 1)


#: Write times across two midnights: the last nanosecond of a day, exact midnight, and either side.
TIMES_TWO_MIDNIGHTS = [
    DAY_5_LATE,
    DAY_5_LATE + 50_000_000,
    MIDNIGHT_6 - 1,
    MIDNIGHT_6,
    MIDNIGHT_6 + 100_000_000,
    MIDNIGHT_7 - 1,
    MIDNIGHT_7,
    MIDNIGHT_7 + 100_000_000,
]


def write_three_days(tmp_path: Path) -> AuditConfig:
    config = config_for(tmp_path)
    clock, set_time = fake_clock(DAY_5_LATE)
    with AuditEventEmitter(config, clock=clock) as emitter:
        emit_at(emitter, set_time, TIMES_TWO_MIDNIGHTS)
    return config


class TestRotationAtUtcMidnight:
    def test_one_midnight_gives_two_files_with_each_event_in_its_day(self, tmp_path):
        config = config_for(tmp_path)
        clock, set_time = fake_clock(DAY_5_LATE)
        times = [DAY_5_LATE, DAY_5_LATE + 50_000_000, MIDNIGHT_6 + 50_000_000, MIDNIGHT_6 + 100_000_000]
        with AuditEventEmitter(config, clock=clock) as emitter:
            emit_at(emitter, set_time, times)
            assert emitter.writer.stats.rotations == 1

        assert sorted(p.name for p in config.hot_path.iterdir()) == [
            "audit.T-7.alpha.2026-01-05.jsonl",
            "audit.T-7.alpha.2026-01-06.jsonl",
        ]
        assert [r["ts_event"] for r in records(file_for(config, DAY_5))] == times[:2]
        assert [r["ts_event"] for r in records(file_for(config, DAY_6))] == times[2:]

    def test_two_midnights_give_three_files_and_lose_nothing(self, tmp_path):
        config = write_three_days(tmp_path)

        days = [DAY_5, DAY_6, DAY_7]
        assert sorted(p.name for p in config.hot_path.iterdir()) == [file_for(config, d).name for d in days]
        total = 0
        for day in days:
            day_records = records(file_for(config, day))
            assert day_records, f"no records for {day}"
            assert all(utc_day(r["ts_event"]) == day for r in day_records)
            total += len(day_records)
        assert total == len(TIMES_TWO_MIDNIGHTS)

    def test_boundary_nanoseconds_land_in_the_right_file(self, tmp_path):
        config = write_three_days(tmp_path)

        assert records(file_for(config, DAY_5))[-1]["ts_event"] == MIDNIGHT_6 - 1
        assert records(file_for(config, DAY_6))[0]["ts_event"] == MIDNIGHT_6
        assert records(file_for(config, DAY_6))[-1]["ts_event"] == MIDNIGHT_7 - 1
        assert records(file_for(config, DAY_7))[0]["ts_event"] == MIDNIGHT_7

    def test_sequence_and_chain_continue_across_files(self, tmp_path):
        config = write_three_days(tmp_path)

        lines = [line for day in (DAY_5, DAY_6, DAY_7) for line in file_for(config, day).read_bytes().splitlines()]
        fields = [split_record(line) for line in lines]
        assert [f.sequence for f in fields] == list(range(len(TIMES_TWO_MIDNIGHTS)))
        assert fields[0].prev_hash == GENESIS_HASH
        assert all(later.prev_hash == earlier.checksum for earlier, later in itertools.pairwise(fields))
        for earlier_day, later_day in ((DAY_5, DAY_6), (DAY_6, DAY_7)):
            last = split_record(file_for(config, earlier_day).read_bytes().splitlines()[-1])
            first = split_record(file_for(config, later_day).read_bytes().splitlines()[0])
            assert first.sequence == last.sequence + 1
            assert first.prev_hash == last.checksum

    def test_verify_sees_one_stream_over_all_files(self, tmp_path):
        config = write_three_days(tmp_path)

        report = verify(tmp_path)

        assert report.ok, report.to_text()
        assert report.records == len(TIMES_TWO_MIDNIGHTS)
        assert len(report.streams) == 1
        (summary,) = report.streams.values()
        assert summary.stream == "T-7.alpha"
        assert summary.files == [str(file_for(config, d)) for d in (DAY_5, DAY_6, DAY_7)]
        assert (summary.first_sequence, summary.last_sequence) == (0, len(TIMES_TWO_MIDNIGHTS) - 1)

    def test_a_day_without_events_gets_no_file(self, tmp_path):
        config = config_for(tmp_path)
        clock, set_time = fake_clock(DAY_5_LATE)
        with AuditEventEmitter(config, clock=clock) as emitter:
            emit_at(emitter, set_time, [DAY_5_LATE, MIDNIGHT_7 + 5 * _NS])

        assert not file_for(config, DAY_6).exists()
        assert [len(records(file_for(config, d))) for d in (DAY_5, DAY_7)] == [1, 1]
        assert verify(tmp_path).ok

    def test_no_rotation_when_disabled(self, tmp_path):
        config = AuditConfig(base_path=tmp_path, trader_id="T-7", stream_id="alpha", rotate_daily=False)
        clock, set_time = fake_clock(DAY_5_LATE)
        with AuditEventEmitter(config, clock=clock) as emitter:
            emit_at(emitter, set_time, TIMES_TWO_MIDNIGHTS)

        assert [p.name for p in config.hot_path.iterdir()] == [file_for(config, DAY_5).name]
        assert len(records(file_for(config, DAY_5))) == len(TIMES_TWO_MIDNIGHTS)


class TestTamperingWithDayFiles:
    def test_deleting_the_middle_day_is_a_gap_and_a_chain_break(self, tmp_path):
        config = write_three_days(tmp_path)
        middle = records(file_for(config, DAY_6))
        last_day = file_for(config, DAY_7)
        file_for(config, DAY_6).unlink()

        report = verify(tmp_path)

        assert not report.ok
        found = {(f.kind, f.sequence, f.file, f.line) for f in report.failures}
        assert (FailureKind.SEQUENCE_GAP, middle[0]["sequence"], str(last_day), 1) in found
        assert (FailureKind.CHAIN_BREAK, middle[-1]["sequence"] + 1, str(last_day), 1) in found

    def test_deleting_the_first_day_is_detected(self, tmp_path):
        """The docstring of ``verify`` promises that a deleted day breaks the chain; the first day too."""
        config = write_three_days(tmp_path)
        file_for(config, DAY_5).unlink()

        report = verify(tmp_path)

        assert not report.ok, "a stream starting at a sequence other than 0 went unnoticed"
        assert report.failures[0].kind is FailureKind.SEQUENCE_GAP
        assert report.failures[0].sequence == 0

    def test_renaming_a_day_to_a_later_date_is_detected(self, tmp_path):
        config = write_three_days(tmp_path)
        moved = records(file_for(config, DAY_6))
        file_for(config, DAY_6).rename(file_for(config, dt.date(2026, 1, 8)))

        report = verify(tmp_path)

        assert not report.ok
        first = report.failures[0]
        assert (first.kind, first.sequence, first.file) == (
            FailureKind.SEQUENCE_GAP, moved[0]["sequence"], str(file_for(config, DAY_7))
        )
        repeats = [f.sequence for f in report.failures if f.kind is FailureKind.SEQUENCE_REPEAT]
        assert moved[0]["sequence"] in repeats

    def test_renaming_the_first_day_past_the_others_is_detected(self, tmp_path):
        config = write_three_days(tmp_path)
        file_for(config, DAY_5).rename(file_for(config, dt.date(2026, 1, 9)))

        report = verify(tmp_path)

        assert not report.ok
        assert any(f.kind is FailureKind.SEQUENCE_REPEAT and f.sequence == 0 for f in report.failures)
        assert any(f.kind is FailureKind.CHAIN_BREAK and f.sequence == 0 for f in report.failures)


class TestReopeningTheStream:
    def test_new_emitter_on_the_same_day_continues_the_sequence_and_chain(self, tmp_path):
        config = config_for(tmp_path)
        clock, set_time = fake_clock(DAY_5_LATE)
        with AuditEventEmitter(config, clock=clock) as first:
            emit_at(first, set_time, [DAY_5_LATE, DAY_5_LATE + 1, DAY_5_LATE + 2])
            last_hash = first.last_hash

        with AuditEventEmitter(config, clock=clock) as second:
            assert (second.next_sequence, second.last_hash) == (3, last_hash)
            event = second.emit_param_change("restart", "k", 1, 2)

        assert (event.sequence, event.prev_hash) == (3, last_hash)
        assert [r["sequence"] for r in records(file_for(config, DAY_5))] == [0, 1, 2, 3]
        assert verify(tmp_path).ok

    def test_new_emitter_after_midnight_continues_from_the_last_file(self, tmp_path):
        config = write_three_days(tmp_path)
        last = split_record(file_for(config, DAY_7).read_bytes().splitlines()[-1])
        clock, set_time = fake_clock(utc_ns(2026, 1, 8, 9, 30))

        with AuditEventEmitter(config, clock=clock) as reopened:
            assert (reopened.next_sequence, reopened.last_hash) == (last.sequence + 1, last.checksum)
            emit_at(reopened, set_time, [utc_ns(2026, 1, 8, 9, 30), utc_ns(2026, 1, 9, 0, 0, 1)])

        day_8 = records(file_for(config, dt.date(2026, 1, 8)))
        assert [(r["sequence"], r["prev_hash"]) for r in day_8] == [(last.sequence + 1, last.checksum)]
        assert records(file_for(config, dt.date(2026, 1, 9)))[0]["sequence"] == last.sequence + 2
        report = verify(tmp_path)
        assert report.ok, report.to_text()
        assert report.records == len(TIMES_TWO_MIDNIGHTS) + 2
        (summary,) = report.streams.values()
        assert len(summary.files) == 5

    def test_empty_newest_file_is_skipped_when_resuming(self, tmp_path):
        """A process that opened a new day's file and died before writing leaves it empty."""
        config = config_for(tmp_path)
        clock, set_time = fake_clock(DAY_5_LATE)
        with AuditEventEmitter(config, clock=clock) as first:
            emit_at(first, set_time, [DAY_5_LATE, DAY_5_LATE + 1])
            last_hash = first.last_hash
        set_time(MIDNIGHT_6 + _NS)
        AuditEventEmitter(config, clock=clock).close()  # creates today's file, writes nothing
        assert file_for(config, DAY_6).stat().st_size == 0

        with AuditEventEmitter(config, clock=clock) as reopened:
            assert (reopened.next_sequence, reopened.last_hash) == (2, last_hash)
            reopened.emit_param_change("restart", "k", 1, 2)

        assert verify(tmp_path).ok
