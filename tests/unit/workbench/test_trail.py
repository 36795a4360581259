"""open_trail and filters: hot and cold read as one table, counted once, days pruned, values never SQL."""

from __future__ import annotations

import datetime as dt
import re

import ibis
import pyarrow.parquet as pq
import pytest
from conftest import CONTROL, EXEC, MIDNIGHT, T0, S

from workbench import TrailNotFoundError, TrailNotVerifiedWarning, UnknownValueWarning, WorkbenchInputError, open_trail
from workbench.filters import event_types


def count(table) -> int:
    return int(table.count().execute())


class TestOpening:
    def test_hot_only_trail_is_read_whole(self, hand_trail):
        trail = open_trail(hand_trail.base)
        assert count(trail.events) == hand_trail.events
        assert trail.hot.rows == hand_trail.events and len(trail.hot.files) == 4

    def test_converted_days_come_from_cold_and_the_rest_from_hot(self, hand_trail):
        hand_trail.convert(only_jan5=True)
        trail = open_trail(hand_trail.base)
        assert count(trail.events) == hand_trail.events
        assert trail.hot.rows == hand_trail.events - hand_trail.jan5  # only 2026-01-06 is read from hot
        assert count(open_trail(hand_trail.base, include_hot=False).events) == hand_trail.jan5

    def test_events_only_in_hot_are_found_by_every_filter(self, hand_trail):
        hand_trail.convert(only_jan5=True)
        trail = open_trail(hand_trail.base)
        closed = trail.filter(event_type="trade.position_closed", start=MIDNIGHT)
        assert closed.select("order_id", "sequence").to_pyarrow().to_pylist() == [{"order_id": "O-2", "sequence": 9}]

    def test_records_in_both_hot_and_cold_count_once(self, hand_trail):
        hand_trail.convert()
        hand_trail.forget_conversion_of("2026-01-06")  # its hot files are read again, and are in cold too
        trail = open_trail(hand_trail.base)
        # Parquet files without their manifest entries: the cold store fails verification, and says so.
        assert {failure.kind.value for failure in trail.verification.failures} == {"root_invalid", "unexpected_file"}
        assert trail.hot.rows == hand_trail.events - hand_trail.jan5
        with pytest.warns(TrailNotVerifiedWarning, match="FAILED"):
            assert count(trail.events) == hand_trail.events
        keys = trail.events.select("stream", "sequence").distinct()
        assert count(keys) == hand_trail.events

    def test_fully_converted_trail_reads_no_hot_file(self, hand_trail):
        hand_trail.convert()
        trail = open_trail(hand_trail.base)
        assert trail.hot.files == [] and count(trail.events) == hand_trail.events

    def test_time_column_is_utc_next_to_ts_event(self, hand_trail):
        trail = open_trail(hand_trail.base)
        assert trail.events.columns[:2] == ("ts_event", "time")
        assert trail.events.schema()["time"].timezone == "UTC"
        first = trail.events.order_by("ts_event").limit(1).to_pandas().iloc[0]
        assert first["time"] == dt.datetime(2026, 1, 5, 23, 57, 50, tzinfo=dt.UTC)

    def test_refresh_sees_files_converted_since(self, hand_trail):
        trail = open_trail(hand_trail.base)
        hand_trail.convert()
        fresh = trail.refresh()
        assert fresh.hot.rows == 0 and count(fresh.events) == hand_trail.events

    def test_a_callers_database_file_is_left_as_it_was(self, hand_trail, tmp_path):
        connection = ibis.duckdb.connect(tmp_path / "analyst.ddb")
        trail = open_trail(hand_trail.base, connection)
        assert count(trail.events) == hand_trail.events
        connection.disconnect()
        assert ibis.duckdb.connect(tmp_path / "analyst.ddb").list_tables() == []

    def test_missing_trail_is_named(self, tmp_path):
        with pytest.raises(TrailNotFoundError, match=r"path=.*nowhere.*cold/ or hot/"):
            open_trail(tmp_path / "nowhere")

    def test_an_empty_trail_has_the_schema_and_no_rows(self, tmp_path):
        (tmp_path / "cold").mkdir()
        trail = open_trail(tmp_path)
        assert trail.verification.state == "unverified"  # nothing was checked, and it says so
        with pytest.warns(TrailNotVerifiedWarning, match="no records to check"):
            assert count(trail.events) == 0 and "realized_pnl" in trail.events.columns


class TestPartitionPruning:
    def files_read(self, trail, table) -> int:
        plan = trail.backend.raw_sql("EXPLAIN ANALYZE " + str(ibis.to_sql(table))).fetchall()[0][1]
        return sum(int(n) for n in re.findall(r"Total Files Read: (\d+)", plan))

    def test_a_window_reads_only_the_files_of_its_days(self, generated_trail):
        trail = open_trail(generated_trail.base_path)
        every = self.files_read(trail, trail.events)
        one_day = self.files_read(trail, trail.filter(start="2026-01-02 10:00", end="2026-01-02 11:00"))
        two_days = self.files_read(trail, trail.filter(start="2026-01-01 23:00", end="2026-01-02 01:00"))
        assert every == 9 and one_day == 3 and two_days == 6  # 3 streams x 3 days

    def test_an_end_bound_alone_skips_later_days(self, generated_trail):
        trail = open_trail(generated_trail.base_path)
        assert self.files_read(trail, trail.filter(end="2026-01-02")) == 3
        assert self.files_read(trail, trail.filter(start="2026-01-03")) == 3


class TestFilters:
    @pytest.mark.parametrize(("pattern", "expected"), [
        ("trade.*", 9), ("param.*", 4), ("param.risk_change", 3), ("*.fill", 2), ("trade.*ed", 2),
        (["sys.*", "trade.fill"], 5),
    ])
    def test_event_type_wildcards(self, hand_trail, pattern, expected):
        trail = open_trail(hand_trail.base)
        assert count(trail.filter(event_type=pattern)) == expected

    def test_a_type_prefix_without_wildcard_matches_nothing_and_says_so(self, hand_trail):
        trail = open_trail(hand_trail.base)
        with pytest.warns(UnknownValueWarning, match=r"event_type='trade' matches nothing in this trail; "
                                                     r"did you mean 'trade\.\*'"):
            assert count(trail.filter(event_type="trade")) == 0

    def test_every_id_filter(self, hand_trail):
        trail = open_trail(hand_trail.base)
        assert count(trail.filter(source="AuditObserver")) == 8
        assert count(trail.filter(source=["kelly_sizer", "manual_override"])) == 2
        assert count(trail.filter(trader="TRADER-001")) == hand_trail.events
        assert count(trail.filter(strategy="mean_reversion")) == 3
        assert count(trail.filter(instrument="EURUSD.SIM")) == 9
        assert count(trail.filter(correlation_id="SIG-1")) == 5
        assert count(trail.filter(strategy="momentum", event_type="trade.signal")) == 2

    @pytest.mark.parametrize("start", [
        "2026-01-05 23:59", "2026-01-05T23:59:00Z", "2026-01-06 00:59:00+01:00", T0 + 60 * S,
        dt.datetime(2026, 1, 5, 23, 59), dt.datetime(2026, 1, 6, 0, 59, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    ])
    def test_instants_in_every_form_mean_the_same(self, hand_trail, start):
        trail = open_trail(hand_trail.base)
        assert count(trail.filter(start=start, end=MIDNIGHT)) == 6

    def test_a_window_across_midnight_spans_cold_and_hot(self, hand_trail):
        hand_trail.convert(only_jan5=True)
        trail = open_trail(hand_trail.base)
        rows = trail.filter(start=T0 + 90 * S, end=MIDNIGHT + 30 * S + 1).order_by("ts_event", "stream", "sequence")
        assert [(r["stream"], r["sequence"]) for r in rows.select("stream", "sequence").to_pyarrow().to_pylist()] == [
            (EXEC, 5), (CONTROL, 3), (EXEC, 6)]

    def test_the_end_is_excluded_and_an_empty_window_is_empty(self, hand_trail):
        trail = open_trail(hand_trail.base)
        assert count(trail.filter(start=T0, end=T0 + 1)) == 1
        assert count(trail.filter(start=T0 + 1, end=T0 + 30 * S)) == 0
        assert count(trail.filter(start="2030-01-01", end="2030-01-02")) == 0

    def test_filters_compose_on_a_derived_table(self, hand_trail):
        trail = open_trail(hand_trail.base)
        params = trail.filter(event_type="param.*")
        assert count(trail.filter(source="manual_override", table=params)) == 1
        assert count(params.filter(event_types(params, "param.k_change"))) == 1


class TestUserValuesNeverBecomeSql:
    INJECTION = "x' OR '1'='1"

    def test_a_quoted_source_matches_nothing(self, hand_trail):
        trail = open_trail(hand_trail.base, on_unknown="ignore")
        assert count(trail.filter(source=self.INJECTION)) == 0
        assert count(trail.filter(strategy=self.INJECTION)) == 0
        assert count(trail.filter(correlation_id=[self.INJECTION, "SIG-2"])) == 1

    def test_a_source_with_quotes_is_matched_exactly(self, tmp_path):
        from audit_core import AuditConfig, AuditEventEmitter

        with AuditEventEmitter(AuditConfig(base_path=tmp_path, sync_writes=False)) as emitter:
            emitter.emit_system("sys.note", self.INJECTION, {"text": "a source named like an attack"})
            emitter.emit_system("sys.note", "x", {})
        trail = open_trail(tmp_path)
        assert trail.filter(source=self.INJECTION).select("source").to_pyarrow().to_pylist() == [
            {"source": self.INJECTION}]

    def test_an_event_type_with_quotes_is_refused(self, hand_trail):
        trail = open_trail(hand_trail.base)
        with pytest.raises(WorkbenchInputError, match=r"event_type=.*x' OR"):
            trail.filter(event_type=self.INJECTION)


class TestErrorsNameTheArgument:
    @pytest.mark.parametrize(("kwargs", "message"), [
        ({"start": "14:32"}, r"start='14:32' does not start with a date"),
        ({"start": "2026-13-45"}, r"start='2026-13-45' is not a readable time"),
        ({"end": 1.5}, r"end=1.5 \(float\) is not an instant"),
        ({"start": -1}, r"start=-1: nanoseconds"),
        ({"start": T0, "end": T0}, r"end=.* is not after start"),
        ({"source": []}, r"source=\[\] matches nothing"),
        ({"source": ["a", 3]}, r"source=\['a', 3\]: 3 is a int, expected a string"),
        ({"instrument": 7}, r"instrument=7: expected a string or an iterable"),
    ])
    def test_bad_filters(self, hand_trail, kwargs, message):
        trail = open_trail(hand_trail.base)
        with pytest.raises(WorkbenchInputError, match=message):
            trail.filter(**kwargs)

    def test_input_errors_are_value_errors(self):
        assert issubclass(WorkbenchInputError, ValueError)


def test_a_query_error_is_raised_not_an_empty_result(generated_trail):
    trail = open_trail(generated_trail.base_path)
    victim = sorted(generated_trail.cold_path.glob("year=*/month=*/day=*/*.parquet"))[0]
    assert pq.read_metadata(victim).num_rows > 0
    victim.write_bytes(b"not parquet at all")
    with pytest.raises(Exception, match=r"(?i)parquet|magic|invalid"):
        trail.events.count().execute()


class TestKeyedTrails:
    def test_with_the_key_converted_hot_files_are_not_read_again(self, tmp_path):
        """Manifest entries of a keyed trail are authentic only with its key: without it the workbench
        reads every hot file (same answers, rows counted once); with it only the unconverted ones."""
        from audit_core import AuditConfig, AuditEventEmitter
        from audit_core.cold.converter import ParquetConverter

        key = "workbench-test-key"
        now = [T0]
        config = AuditConfig(base_path=tmp_path, sync_writes=False, hmac_key=key)
        with AuditEventEmitter(config, clock=lambda: now[0]) as audit:
            for day in range(2):
                now[0] = T0 + day * 86_400 * S
                for value in range(3):
                    audit.emit_param_change("meta", "k", value, value + 1, "test", ts_event=now[0] + value)
        first = sorted((tmp_path / "hot").glob("*.jsonl"))[0]
        assert ParquetConverter(tmp_path / "hot", tmp_path / "cold", hmac_key=key.encode()).convert_file(
            first).converted
        without = open_trail(tmp_path)
        keyed = open_trail(tmp_path, hmac_key=key.encode())
        assert len(without.hot.files) == 2 and len(keyed.hot.files) == 1
        assert keyed.verification.state == "verified" and without.verification.state == "unverified"
        with pytest.warns(TrailNotVerifiedWarning, match="looks keyed"):
            assert count(without.events) == 6
        assert count(keyed.events) == 6
        assert len(keyed.refresh().hot.files) == 1  # refresh keeps the keys


class TestOpenTrailReadsNoMoreThanItMust:
    """Cold start and per-query costs of open_trail (issue 19): the answers are the engine's own."""

    def engine_range(self, trail) -> tuple[int, int]:
        events = trail.events
        (row,) = events.aggregate(first=events.ts_event.min(), last=events.ts_event.max()).to_pyarrow().to_pylist()
        return row["first"], row["last"]

    def test_time_range_comes_from_footers_and_hot_rows_and_is_the_engines(self, hand_trail):
        hand_trail.convert(only_jan5=True)  # 2026-01-05 in cold, 2026-01-06 in hot
        trail = open_trail(hand_trail.base)
        assert trail.hot.rows > 0
        assert trail._time_range is not None  # known at open: no min/max query before the first analysis
        assert trail.time_range() == self.engine_range(trail)

    def test_a_file_without_statistics_makes_the_engine_answer(self, hand_trail):
        hand_trail.convert()
        (file, *_) = sorted((hand_trail.base / "cold").glob("year=*/month=*/day=*/*.parquet"))
        pq.write_table(pq.read_table(file), file, write_statistics=False)  # the same rows, no min/max
        trail = open_trail(hand_trail.base, verify=False)
        assert trail._time_range is None
        with pytest.warns(TrailNotVerifiedWarning):
            first, last = trail.time_range()
        assert (first, last) == self.engine_range(trail) and first == T0 - 10 * S

    def test_the_unit_check_still_refuses_seconds(self, hand_trail):
        hand_trail.convert()
        trail = open_trail(hand_trail.base)
        with pytest.raises(WorkbenchInputError, match="as seconds"):
            trail.filter(start=T0 // S, end=T0 // S + 60)

    def test_the_view_is_one_projection_of_read_parquet(self, hand_trail):
        hand_trail.convert()
        trail = open_trail(hand_trail.base)
        (sql,) = trail.backend.con.execute(
            "SELECT sql FROM duckdb_views() WHERE view_name = ?", [trail.events.op().name]).fetchone()
        # DuckDB binds every layer of a view on every query: Ibis's nesting cost each query ~1 ms.
        assert sql.count("SELECT") == 1 and "read_parquet(" in sql.lower()
        assert count(trail.events) == hand_trail.events
