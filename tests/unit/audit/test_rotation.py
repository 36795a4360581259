"""Daily rotation at UTC midnight, driven by a fake clock, and continuity of one stream across files.

Files are named ``audit.<trader>.<stream>.<day>.<segment>.jsonl``; a file is sealed (``<file>.seal``) when
the writer rotates away from it and when it closes, and a reopened stream never appends to a sealed file.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from audit_core import AuditConfig, AuditEventEmitter, AuditWriteError, FailureKind, verify
from audit_core._layout import hot_file_name, seal_path, utc_day
from audit_core.trust.record import GENESIS_HASH, split_record
from audit_core.trust.seals import read_seal

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


def file_for(config: AuditConfig, day: dt.date, segment: int = 0) -> Path:
    path = config.hot_path / f"audit.T-7.alpha.{day.isoformat()}.{segment:04d}.jsonl"
    assert path.name == hot_file_name("T-7", "alpha", day, segment)
    return path


def hot_names(config: AuditConfig) -> list[str]:
    """Names of the hot JSONL files (not the seals, not the stream lock), in stream order."""
    return sorted(p.name for p in config.hot_path.glob("*.jsonl"))


def seal_names(config: AuditConfig) -> list[str]:
    return sorted(p.name for p in config.hot_path.glob("*.seal"))


def next_file_of(path: Path) -> str | None:
    """The ``next_file`` a file's seal names; the file must be sealed."""
    seal = read_seal(path)
    assert seal is not None, f"{path.name} is not sealed"
    assert seal["file"] == path.name
    return seal["next_file"]


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

        assert hot_names(config) == [
            "audit.T-7.alpha.2026-01-05.0000.jsonl",
            "audit.T-7.alpha.2026-01-06.0000.jsonl",
        ]
        # Rotation sealed the first day and named its successor; close sealed the last one.
        assert seal_names(config) == [name + ".seal" for name in hot_names(config)]
        assert next_file_of(file_for(config, DAY_5)) == file_for(config, DAY_6).name
        assert next_file_of(file_for(config, DAY_6)) is None
        assert [r["ts_event"] for r in records(file_for(config, DAY_5))] == times[:2]
        assert [r["ts_event"] for r in records(file_for(config, DAY_6))] == times[2:]

    def test_two_midnights_give_three_files_and_lose_nothing(self, tmp_path):
        config = write_three_days(tmp_path)

        days = [DAY_5, DAY_6, DAY_7]
        assert hot_names(config) == [file_for(config, d).name for d in days]
        assert seal_names(config) == [file_for(config, d).name + ".seal" for d in days]
        assert [next_file_of(file_for(config, d)) for d in days] == [
            file_for(config, DAY_6).name, file_for(config, DAY_7).name, None
        ]
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
        assert report.sealed_files == 3
        assert report.to_text().splitlines()[0] == (
            f"OK: 3 file(s), {len(TIMES_TWO_MIDNIGHTS)} record(s), 1 stream(s), 3 sealed, checksums SHA-256"
        )
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

        assert not any(name.startswith("audit.T-7.alpha.2026-01-06.") for name in hot_names(config))
        assert hot_names(config) == [file_for(config, DAY_5).name, file_for(config, DAY_7).name]
        assert [len(records(file_for(config, d))) for d in (DAY_5, DAY_7)] == [1, 1]
        # The seal links the files that exist, so the empty day is not a missing file.
        assert next_file_of(file_for(config, DAY_5)) == file_for(config, DAY_7).name
        report = verify(tmp_path)
        assert report.ok, report.to_text()
        assert report.sealed_files == 2

    def test_no_rotation_when_disabled(self, tmp_path):
        config = AuditConfig(base_path=tmp_path, trader_id="T-7", stream_id="alpha", rotate_daily=False)
        clock, set_time = fake_clock(DAY_5_LATE)
        with AuditEventEmitter(config, clock=clock) as emitter:
            emit_at(emitter, set_time, TIMES_TWO_MIDNIGHTS)

        assert hot_names(config) == [file_for(config, DAY_5).name]
        assert seal_names(config) == [file_for(config, DAY_5).name + ".seal"]
        assert next_file_of(file_for(config, DAY_5)) is None
        assert len(records(file_for(config, DAY_5))) == len(TIMES_TWO_MIDNIGHTS)


class TestTamperingWithDayFiles:
    def test_deleting_the_middle_day_is_a_gap_a_chain_break_and_a_missing_file(self, tmp_path):
        config = write_three_days(tmp_path)
        first_day = file_for(config, DAY_5)
        middle = records(file_for(config, DAY_6))
        last_day = file_for(config, DAY_7)
        file_for(config, DAY_6).unlink()
        seal_path(file_for(config, DAY_6)).unlink()  # the deleter removes the seal too

        report = verify(tmp_path)

        assert not report.ok
        found = {(f.kind, f.sequence, f.file, f.line) for f in report.failures}
        assert (FailureKind.SEQUENCE_GAP, middle[0]["sequence"], str(last_day), 1) in found
        assert (FailureKind.CHAIN_BREAK, middle[-1]["sequence"] + 1, str(last_day), 1) in found
        # The first day's seal names the deleted file as its successor.
        missing = [f for f in report.failures if f.kind is FailureKind.FILE_MISSING]
        assert [(f.file, f.sequence) for f in missing] == [(str(first_day), middle[0]["sequence"] - 1)]
        assert file_for(config, DAY_6).name in missing[0].detail

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
        # The first day's seal names the old name of the moved file as its successor.
        (missing,) = [f for f in report.failures if f.kind is FailureKind.FILE_MISSING]
        assert (missing.file, missing.sequence) == (str(file_for(config, DAY_5)), moved[0]["sequence"] - 1)
        first = next(f for f in report.failures if f.kind is not FailureKind.FILE_MISSING)
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
        """After a clean close the day's file is sealed: the next emitter starts segment 0001 of the day."""
        config = config_for(tmp_path)
        clock, set_time = fake_clock(DAY_5_LATE)
        with AuditEventEmitter(config, clock=clock) as first:
            emit_at(first, set_time, [DAY_5_LATE, DAY_5_LATE + 1, DAY_5_LATE + 2])
            last_hash = first.last_hash
        sealed = file_for(config, DAY_5).read_bytes()
        assert read_seal(file_for(config, DAY_5)) is not None

        with AuditEventEmitter(config, clock=clock) as second:
            assert second.writer.stream_id == "alpha"
            assert second.writer.path == file_for(config, DAY_5, segment=1)
            assert (second.next_sequence, second.last_hash) == (3, last_hash)
            event = second.emit_param_change("restart", "k", 1, 2)

        assert (event.sequence, event.prev_hash) == (3, last_hash)
        assert file_for(config, DAY_5).read_bytes() == sealed  # the sealed file was not appended to
        assert [r["sequence"] for r in records(file_for(config, DAY_5))] == [0, 1, 2]
        assert [r["sequence"] for r in records(file_for(config, DAY_5, segment=1))] == [3]
        assert hot_names(config) == [file_for(config, DAY_5).name, file_for(config, DAY_5, segment=1).name]
        report = verify(tmp_path)
        assert report.ok, report.to_text()
        assert (report.records, report.sealed_files, len(report.streams)) == (4, 2, 1)

    def test_new_emitter_after_a_crash_on_the_same_day_appends_to_the_unsealed_file(self, tmp_path, crash):
        config = config_for(tmp_path)
        clock, set_time = fake_clock(DAY_5_LATE)
        first = AuditEventEmitter(config, clock=clock)
        emit_at(first, set_time, [DAY_5_LATE, DAY_5_LATE + 1, DAY_5_LATE + 2])
        last_hash = first.last_hash
        crash(first)
        assert read_seal(file_for(config, DAY_5)) is None
        assert verify(tmp_path).ok  # the newest file of a stream may be unsealed

        with AuditEventEmitter(config, clock=clock) as second:
            assert second.writer.stream_id == "alpha"
            assert second.writer.path == file_for(config, DAY_5)
            assert (second.next_sequence, second.last_hash) == (3, last_hash)
            event = second.emit_param_change("restart", "k", 1, 2)

        assert (event.sequence, event.prev_hash) == (3, last_hash)
        assert hot_names(config) == [file_for(config, DAY_5).name]
        assert [r["sequence"] for r in records(file_for(config, DAY_5))] == [0, 1, 2, 3]
        assert next_file_of(file_for(config, DAY_5)) is None
        report = verify(tmp_path)
        assert report.ok, report.to_text()
        assert (report.records, report.sealed_files) == (4, 1)

    def test_new_emitter_after_a_crash_on_an_earlier_day_seals_the_leftover_file(self, tmp_path, crash):
        config = config_for(tmp_path)
        clock, set_time = fake_clock(DAY_5_LATE)
        first = AuditEventEmitter(config, clock=clock)
        emit_at(first, set_time, [DAY_5_LATE, DAY_5_LATE + 1])
        last_hash = first.last_hash
        crash(first)
        leftover = file_for(config, DAY_5).read_bytes()
        set_time(MIDNIGHT_7 + _NS)

        with AuditEventEmitter(config, clock=clock) as second:
            assert second.writer.path == file_for(config, DAY_7)
            assert next_file_of(file_for(config, DAY_5)) == file_for(config, DAY_7).name
            assert (second.next_sequence, second.last_hash) == (2, last_hash)
            event = second.emit_param_change("restart", "k", 1, 2)

        assert (event.sequence, event.prev_hash) == (2, last_hash)
        assert file_for(config, DAY_5).read_bytes() == leftover
        assert hot_names(config) == [file_for(config, DAY_5).name, file_for(config, DAY_7).name]
        assert [r["sequence"] for r in records(file_for(config, DAY_7))] == [2]
        report = verify(tmp_path)
        assert report.ok, report.to_text()
        assert (report.records, report.sealed_files) == (3, 2)

    def test_second_emitter_while_the_first_is_open_gets_its_own_stream(self, tmp_path):
        """One stream per process: an explicit stream_id that is held is refused, a default one moves on."""
        clock, _ = fake_clock(DAY_5_LATE)
        with AuditEventEmitter(config_for(tmp_path), clock=clock) as first:
            first.emit_param_change("first", "k", 0, 1)
            with pytest.raises(AuditWriteError, match="held by another process"):
                AuditEventEmitter(config_for(tmp_path), clock=clock)
            default = AuditConfig(base_path=tmp_path, trader_id="T-7", sync_writes=False)
            with AuditEventEmitter(default, clock=clock) as main, AuditEventEmitter(default, clock=clock) as other:
                assert (main.writer.stream_id, other.writer.stream_id) == ("main", "main-2")
                assert other.emit_param_change("other", "k", 0, 1).sequence == 0
            assert first.emit_param_change("first", "k", 1, 2).sequence == 1

        report = verify(tmp_path)
        assert report.ok, report.to_text()
        assert sorted(summary.stream for summary in report.streams.values()) == ["T-7.alpha", "T-7.main", "T-7.main-2"]

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
        assert next_file_of(file_for(config, DAY_7)) is None  # sealed by the clean close, before day 8 existed
        assert next_file_of(file_for(config, dt.date(2026, 1, 8))) == file_for(config, dt.date(2026, 1, 9)).name
        report = verify(tmp_path)
        assert report.ok, report.to_text()
        assert report.records == len(TIMES_TWO_MIDNIGHTS) + 2
        assert report.sealed_files == 5
        (summary,) = report.streams.values()
        assert len(summary.files) == 5

    def test_empty_newest_file_is_skipped_when_resuming(self, tmp_path, crash):
        """A process that opened a new day's file and died before writing leaves it empty and unsealed."""
        config = config_for(tmp_path)
        clock, set_time = fake_clock(DAY_5_LATE)
        with AuditEventEmitter(config, clock=clock) as first:
            emit_at(first, set_time, [DAY_5_LATE, DAY_5_LATE + 1])
            last_hash = first.last_hash
        set_time(MIDNIGHT_6 + _NS)
        crash(AuditEventEmitter(config, clock=clock))  # creates today's file, writes nothing, dies
        assert file_for(config, DAY_6).stat().st_size == 0
        assert read_seal(file_for(config, DAY_6)) is None

        with AuditEventEmitter(config, clock=clock) as reopened:
            assert reopened.writer.path == file_for(config, DAY_6)  # today's unsealed file is continued
            assert (reopened.next_sequence, reopened.last_hash) == (2, last_hash)
            event = reopened.emit_param_change("restart", "k", 1, 2)

        assert [(r["sequence"], r["prev_hash"]) for r in records(file_for(config, DAY_6))] == [(2, last_hash)]
        assert event.sequence == 2
        report = verify(tmp_path)
        assert report.ok, report.to_text()
        assert (report.records, report.sealed_files) == (3, 2)

    def test_empty_sealed_file_is_skipped_when_resuming(self, tmp_path):
        """A process that opened a new day's file and closed cleanly without writing leaves it empty and sealed."""
        config = config_for(tmp_path)
        clock, set_time = fake_clock(DAY_5_LATE)
        with AuditEventEmitter(config, clock=clock) as first:
            emit_at(first, set_time, [DAY_5_LATE, DAY_5_LATE + 1])
            last_hash = first.last_hash
        set_time(MIDNIGHT_6 + _NS)
        AuditEventEmitter(config, clock=clock).close()  # creates today's file, writes nothing, seals it
        assert file_for(config, DAY_6).stat().st_size == 0
        seal = read_seal(file_for(config, DAY_6))
        assert seal is not None and seal["records"] == 0 and seal["last_sequence"] is None

        with AuditEventEmitter(config, clock=clock) as reopened:
            assert reopened.writer.path == file_for(config, DAY_6, segment=1)
            assert (reopened.next_sequence, reopened.last_hash) == (2, last_hash)
            reopened.emit_param_change("restart", "k", 1, 2)

        assert file_for(config, DAY_6).stat().st_size == 0
        assert [(r["sequence"], r["prev_hash"]) for r in records(file_for(config, DAY_6, segment=1))] == [
            (2, last_hash)
        ]
        report = verify(tmp_path)
        assert report.ok, report.to_text()
        assert (report.records, report.sealed_files) == (3, 3)
