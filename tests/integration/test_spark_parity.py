"""Spark parity: every workbench analysis returns on a local Spark session exactly what it returns on DuckDB.

One trail, one Spark session and one DuckDB connection for the module. The trail is generated
through the real emitter (three streams over three days) plus two hand-written streams with the
cases engines disagree on: ties in time across streams and within one, records at midnight and one
nanosecond before it (partition boundaries, and a microsecond ``time`` that must not round up),
DECIMAL(38,18) values with 18 decimals and 17 integer digits, missing and blank reasons, Cyrillic,
Greek, emoji and a quote in sources, small and whole doubles in descriptions, nanosecond ``ts_init``
values next to NULLs, and a day that exists only in hot JSONL (nothing of 2026-01-03 is converted).

Results are compared as Python values from ``to_pyarrow()`` (decimals as ``Decimal``, exactly), in
the order the analysis returns them; analyses without a defined order are ordered here first.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyspark")

from audit_core import AuditConfig, AuditEventEmitter
from audit_core.cold.converter import ParquetConverter
from benchmarks.trail_gen import ALLOWED_SOURCES, FakeClock, generate_trail
from workbench.errors import UnknownValueWarning

pytestmark = pytest.mark.spark

S = 1_000_000_000
DAY2 = int(dt.datetime(2026, 1, 2, tzinfo=dt.UTC).timestamp()) * S  # 2026-01-02 00:00 UTC
DAY3 = DAY2 + 86_400 * S  # 2026-01-03 00:00 UTC: this day stays hot
UNICODE_SOURCE = "стратегия-α"  # noqa: RUF001 (Cyrillic and Greek on purpose)
EMOJI_SOURCE = "🚀 bot ñ"
QUOTED_SOURCE = "o'brien \"desk\""
BIG = Decimal("12345678901234567.123456789012345678")
TINY = Decimal("0.000000000000000001")
TS_INIT = 1_767_312_000_123_456_789  # needs all 19 digits: float64 would end it in ...768


def _write_edge_streams(base: Path) -> None:
    """Two more streams of the trail's trader, written through the emitter, with every hard case."""
    clock = FakeClock(DAY2 - 60 * S)
    edge, ties = (AuditEventEmitter(AuditConfig(base_path=base, trader_id="TRADER-001", stream_id=name,
                                                sync_writes=False), clock=clock) for name in ("edge", "edge_ties"))

    def at(ts: int) -> int:
        clock.now = ts
        return ts

    common = {"instrument_id": "EURUSD.SIM", "strategy_source": UNICODE_SOURCE, "currency": "USD"}
    # The day before midnight, converted to cold.
    edge.emit_param_change(UNICODE_SOURCE, "risk_multiplier", 1.0, 0.5, None, event_type="param.risk_change",
                           ts_event=at(DAY2 - 30 * S))
    edge.emit_param_change(EMOJI_SOURCE, "risk_multiplier", 0.5, 7.25, "   ", event_type="param.risk_change",
                           ts_event=at(DAY2 - 1))  # one nanosecond before midnight: time 23:59:59.999999
    edge.emit_signal(UNICODE_SOURCE, UNICODE_SOURCE, 0.0008, 1.0, instrument_id="EURUSD.SIM",
                     correlation_id="SIG-EDGE-1", ts_event=at(DAY2 - 1))
    ties.emit_param_change(QUOTED_SOURCE, "kelly_fraction", 0.25, 0.3, "drawdown > 10% — ручной",
                           event_type="param.risk_change", ts_event=at(DAY2 - 1))
    # Midnight exactly and after it, still converted (2026-01-02).
    edge.emit_trade("trade.order", EMOJI_SOURCE, correlation_id="SIG-EDGE-1", order_id="O-EDGE-1", side="BUY",
                    size=BIG, ts_init=TS_INIT, ts_event=at(DAY2), **{k: v for k, v in common.items()
                                                                   if k != "currency"})
    ties.emit_signal(EMOJI_SOURCE, UNICODE_SOURCE, -1e-05, 0.5, acted_on=False, filter_reason="low_confidence",
                     instrument_id="EURUSD.SIM", correlation_id="SIG-EDGE-2", ts_event=at(DAY2))
    for _ in range(3):  # three records of one stream at one nanosecond: sequence decides
        ties.emit_system("sys.heartbeat", EMOJI_SOURCE, {"note": "тик ⏱"}, ts_event=at(DAY2 + 5 * S))
    edge.emit_system("sys.heartbeat", UNICODE_SOURCE, {"note": "tie across streams"}, ts_event=at(DAY2 + 5 * S))
    edge.emit_trade("trade.fill", EMOJI_SOURCE, correlation_id="SIG-EDGE-1", order_id="O-EDGE-1", side="BUY",
                    size=BIG, price=Decimal("1.123456789012345678"), commission=TINY, slippage_bps=-TINY,
                    position_id="P-EDGE-1", ts_init=TS_INIT + 1, ts_event=at(DAY2 + 7 * S), **common)
    edge.emit_trade("trade.position_opened", EMOJI_SOURCE, correlation_id="SIG-EDGE-1", order_id="O-EDGE-1",
                    side="BUY", size=BIG, price=Decimal("1.123456789012345678"), realized_pnl=-TINY,
                    position_id="P-EDGE-1", ts_event=at(DAY2 + 7 * S), **common)
    # 2026-01-03: only in hot files. Midnight again, and a close with 18-decimal P&L.
    edge.emit_param_change(UNICODE_SOURCE, "risk_multiplier", 7.25, 1e-07, "", event_type="param.risk_change",
                           ts_event=at(DAY3))
    ties.emit_param_change(EMOJI_SOURCE, "risk_multiplier", 7.25, 2.0, "scheduled", event_type="param.risk_change",
                           ts_event=at(DAY3))
    edge.emit_trade("trade.order", EMOJI_SOURCE, correlation_id="SIG-EDGE-3", order_id="O-EDGE-2", side="SELL",
                    size=BIG, strategy_source=UNICODE_SOURCE, instrument_id="EURUSD.SIM", ts_event=at(DAY3 + 60 * S))
    edge.emit_trade("trade.fill", EMOJI_SOURCE, correlation_id="SIG-EDGE-3", order_id="O-EDGE-2", side="SELL",
                    size=BIG, price=Decimal("1.223456789012345678"), commission=TINY, position_id="P-EDGE-1",
                    ts_init=TS_INIT + 86_400 * S, ts_event=at(DAY3 + 61 * S), **common)
    edge.emit_trade("trade.position_closed", EMOJI_SOURCE, correlation_id="SIG-EDGE-1", order_id="O-EDGE-2",
                    side="BUY", size=BIG, price=Decimal("1.223456789012345678"),
                    realized_pnl=Decimal("1234567890123456.712345678901234567"), position_id="P-EDGE-1",
                    ts_event=at(DAY3 + 61 * S), **common)
    edge.emit_trade("trade.rejected", EMOJI_SOURCE, order_id="O-EDGE-3", reason=None, ts_event=at(DAY3 + 62 * S),
                    **common)
    edge.close()
    ties.close()


@pytest.fixture(scope="module")
def trail_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("parity") / "trail"
    generate_trail(base, events=2_500, days=3, seed=21, convert=False)
    _write_edge_streams(base)
    converter = ParquetConverter(base / "hot", base / "cold")
    for path in sorted((base / "hot").glob("*.jsonl")):
        if ".2026-01-03." not in path.name:
            assert converter.convert_file(path).converted, path
    return base


@pytest.fixture(scope="module")
def spark() -> Any:
    """One local Spark session for the module (start-up takes seconds)."""
    from workbench import _spark

    session = _spark.local_session()
    yield _spark.connect(session)
    session.stop()


@pytest.fixture(scope="module")
def trails(trail_path: Path, spark: Any) -> dict[str, Any]:
    import ibis

    from workbench import open_trail

    # The stock Ibis connection, as a user would pass it: open_trail fetches results exactly anyway.
    return {"duckdb": open_trail(trail_path), "spark": open_trail(trail_path, ibis.pyspark.connect(spark._session))}


def rows(result: Any) -> list[dict[str, Any]]:
    return result.to_pyarrow().to_pylist()


def chrono(table: Any) -> Any:
    return table.order_by("ts_event", "stream", "sequence")


def _analyses() -> dict[str, Any]:
    import workbench as wb

    bounds = {"risk_multiplier": (0.0, 2.0), "kelly_fraction": (0.0, 1.0)}
    return {
        "events": lambda t: rows(chrono(t.events)),
        "filter_window_types_sources": lambda t: rows(chrono(t.filter(
            start="2026-01-01 23:59:59", end="2026-01-03 00:01", event_type=["param.*", "trade.*"],
            source=[UNICODE_SOURCE, EMOJI_SOURCE, QUOTED_SOURCE, "meta_controller"]))),
        "filter_family_exclude": lambda t: rows(chrono(t.filter(family=["order", "fill", "signal"],
                                                                exclude="trade.signal*"))),
        "causal_order": lambda t: rows(wb.chronological(t.events.select(
            "ts_event", "stream", "sequence", "event_type", "correlation_id"))),
        "filter_open_ended": lambda t: rows(chrono(t.filter(start=DAY3).select("ts_event", "stream", "sequence"))),
        "reconstruct_incident": lambda t: rows(wb.reconstruct_incident(t, DAY2, minutes=3)),
        "reconstruct_incident_day3": lambda t: rows(wb.reconstruct_incident(t, DAY3, minutes=2, event_type="param.*")),
        "state_at_before_midnight": lambda t: rows(wb.state_at(t, DAY2 - 1)),
        "state_at_midnight_tie": lambda t: rows(wb.state_at(t, DAY3)),
        "state_at_filtered": lambda t: rows(wb.state_at(t, DAY3, source=[UNICODE_SOURCE, EMOJI_SOURCE],
                                                        param_name="risk_multiplier")),
        "state_at_by_source": lambda t: rows(wb.state_at(t, DAY3, by_source=True)),
        "state_at_owner_typed": lambda t: rows(t.state_at(DAY2 - 1, param_name="risk_multiplier").select(
            "owner", "param_name", "value_num", "value_text", "value_bool", "value_json", "source", "ts_event")),
        "parameter_history": lambda t: rows(wb.parameter_history(t, "risk_multiplier")),
        "parameter_history_window": lambda t: rows(wb.parameter_history(
            t, "kelly_fraction", source=QUOTED_SOURCE, start="2026-01-01", end="2026-01-03")),
        "parameter_changes": lambda t: rows(chrono(wb.parameter_changes(t))),
        "trade_lifecycle_order": lambda t: rows(wb.trade_lifecycle(t, "O-EDGE-1")),
        "trade_lifecycle_correlation": lambda t: rows(wb.trade_lifecycle(t, correlation_id="SIG-EDGE-1")),
        "trade_lifecycle_generated": lambda t: rows(wb.trade_lifecycle(t, _first_generated_order(t))),
        "signal_conversion": lambda t: rows(wb.signal_conversion(t).summary),
        "signal_conversion_not_traded": lambda t: rows(wb.signal_conversion(t).not_traded),
        "signal_conversion_by_instrument": lambda t: rows(wb.signal_conversion(
            t, by="instrument_id", start="2026-01-02").summary),
        "pnl_by_strategy": lambda t: rows(wb.pnl_reconciliation(t).by_strategy),
        "pnl_reconciliation": lambda t: wb.pnl_reconciliation(t).to_pandas().to_dict("records"),
        "pnl_reconciliation_given": lambda t: wb.pnl_reconciliation(
            t, {"USD": "2000000.000000000000000001"}, starting_balances={"USD": "1000000"}).to_pandas().to_dict(
            "records"),
        "realized_pnl_series": lambda t: rows(wb.realized_pnl_series(t)),
        "unexplained_changes": lambda t: rows(wb.detect_unexplained_changes(
            t, bounds=bounds, allowed_sources=ALLOWED_SOURCES, integrity=False).findings),
        "unexplained_changes_mapping": lambda t: rows(wb.detect_unexplained_changes(
            t, allowed_sources={"risk_multiplier": ["meta_controller", UNICODE_SOURCE]},
            start=DAY2 - 60 * S, end=DAY3 + 60 * S, integrity=False).findings),
        "count_by_type": lambda t: rows(wb.count_by_type(t)),
        "count_by_type_source": lambda t: rows(wb.count_by_type(t, source=EMOJI_SOURCE)),
    }


def _first_generated_order(trail: Any) -> str:
    fills = trail.filter(event_type="trade.position_closed", source="AuditObserver")
    return chrono(fills).select("order_id").limit(1).to_pyarrow().column("order_id")[0].as_py()


ANALYSES = sorted(_analyses())


@pytest.mark.parametrize("name", ANALYSES)
def test_analysis_returns_the_same_on_spark_as_on_duckdb(trails, name):
    analysis = _analyses()[name]
    on_duckdb = analysis(trails["duckdb"])
    assert on_duckdb, f"{name} returned nothing on DuckDB: the case proves nothing"
    assert analysis(trails["spark"]) == on_duckdb


class TestTrickyCasesAreInTheTrail:
    """The comparisons above mean something only if the hard cases are really there, on both engines."""

    def test_a_day_is_only_in_hot_files(self, trails):
        for trail in trails.values():
            assert trail.hot.rows > 0 and all(".2026-01-03." in file.name for file in trail.hot.files)
            day3 = trail.filter(start=DAY3).select("ts_event").to_pyarrow()
            assert day3.num_rows >= 7

    def test_a_nanosecond_before_midnight_stays_on_its_day(self, trails):
        for trail in trails.values():
            found = rows(trail.filter(start=DAY2 - 1, end=DAY2).select("time", "day").distinct())
            assert found == [{"time": dt.datetime(2026, 1, 1, 23, 59, 59, 999999, tzinfo=dt.UTC), "day": 1}]

    def test_decimals_and_nanoseconds_arrive_exactly(self, trails):
        for trail in trails.values():
            fill = rows(trail.filter(event_type="trade.fill", source=EMOJI_SOURCE, end=DAY3).select(
                "size", "price", "commission", "slippage_bps", "ts_init"))
            assert fill == [{"size": BIG, "price": Decimal("1.123456789012345678"), "commission": TINY,
                             "slippage_bps": -TINY, "ts_init": TS_INIT + 1}]

    def test_descriptions_write_numbers_the_same_way(self, trails):
        from workbench.describe import with_description

        for trail in trails.values():
            lines = [row["description"] for row in rows(with_description(trail.filter(
                event_type=["trade.signal", "param.*"], source=[UNICODE_SOURCE, EMOJI_SOURCE])).order_by(
                "ts_event", "stream", "sequence").select("description"))]
            assert f"{UNICODE_SOURCE} signal 0.0008 on EURUSD.SIM (confidence 1): acted on" in lines
            assert any("signal -0.00001 on" in line for line in lines)
            assert f"{UNICODE_SOURCE} changed risk_multiplier: 7.25 -> 1e-7 ()" in lines  # JSON text


class TestAuditQueryOnSpark:
    def test_query_time_range_frames_are_equal(self, trails):
        import pandas as pd

        from workbench import AuditQuery

        frames = [AuditQuery(trail).query_time_range("2026-01-01 23:00", "2026-01-03 01:00", limit=None)
                  for trail in (trails["duckdb"], trails["spark"])]
        pd.testing.assert_frame_equal(frames[1], frames[0])
        # Exact on both engines: nullable int64 and decimals keep their Arrow types in pandas.
        assert str(frames[0]["ts_init"].dtype) == "int64[pyarrow]"
        assert str(frames[0]["price"].dtype) == "decimal128(38, 18)[pyarrow]"
        assert TS_INIT + 1 in frames[0]["ts_init"].dropna().tolist()

    def test_other_methods_are_equal(self, trails):
        import pandas as pd

        from workbench import AuditQuery

        duck, spark = AuditQuery(trails["duckdb"]), AuditQuery(trails["spark"])
        pd.testing.assert_frame_equal(spark.count_by_type(), duck.count_by_type())
        pd.testing.assert_frame_equal(spark.reconstruct_incident(DAY3, 2), duck.reconstruct_incident(DAY3, 2))
        pd.testing.assert_frame_equal(spark.get_parameter_history("risk_multiplier"),
                                      duck.get_parameter_history("risk_multiplier"))
        assert spark.verify_checksums().ok and duck.verify_checksums().ok

    def test_truncation_is_reported_the_same(self, trails):
        from workbench import AuditQuery, ResultTruncatedWarning

        for trail in trails.values():
            with pytest.warns(ResultTruncatedWarning):
                frame = AuditQuery(trail).query_time_range("2026-01-01", "2026-01-04", limit=5)
            assert len(frame) == 5 and frame.attrs["truncated"]


class TestSparkSpecifics:
    def test_an_injection_attempt_as_a_source_matches_nothing(self, trails):
        for trail in trails.values():
            with pytest.warns(UnknownValueWarning, match=r"matches nothing in this trail"):
                assert int(trail.filter(source="x' OR '1'='1").count().execute()) == 0
            assert int(trail.filter(source=QUOTED_SOURCE).count().execute()) == 1

    def test_a_query_shape_is_compiled_once_and_strings_keep_spark_escapes(self, trails):
        # Spark reads a backslash in a string literal as an escape and '' as two strings run together:
        # values put back into SQL compiled once per shape (``workbench._compiled``) are written as Ibis
        # writes them for Spark, so the SQL is Ibis's own and a quote or backslash cannot end the string.
        values = [QUOTED_SOURCE, EMOJI_SOURCE, "x\\' OR '1'='1", "x\\", "o\\'brien", "tab\there"]
        counts = {}
        for engine, trail in trails.items():
            t = trail.events
            shapes = trail.backend.compiled_shapes
            before = shapes.compiles
            for value in values:
                expr = t.filter(t.source == value).select("source", "stream", "sequence").order_by("stream",
                                                                                                  "sequence")
                if engine == "spark":
                    assert shapes.sql(expr, None) == str(trail.backend.compile(expr)), value
            counts[engine] = [rows(t.filter(t.source == value).select("source", "stream", "sequence").order_by(
                "stream", "sequence")) for value in values]
            assert shapes.compiles - before == 1, engine  # one shape, whatever the value
        assert counts["spark"] == counts["duckdb"]
        assert [len(found) for found in counts["spark"]][:1] == [1] and not any(counts["spark"][2:])

    def test_a_day_window_prunes_partitions(self, trails):
        trail = trails["spark"]
        expr = trail.filter(start="2026-01-02 10:00", end="2026-01-02 11:00")
        session = trail.backend._session
        session.conf.set("spark.sql.maxMetadataStringLength", "10000")  # explain strings in full
        plan = session.sql(trail.backend.compile(expr))._jdf.queryExecution().executedPlan().toString()
        scans = re.findall(r"PartitionFilters: (.*), PushedFilters", plan)
        assert scans and all(re.search(r"\(year#\d+ = 2026\).*\(month#\d+ = 1\).*\(day#\d+ = 2\)", found)
                             for found in scans), plan

    def test_an_ordered_query_is_not_sampled_first(self, trails):
        # Over more than one shuffle partition Spark samples a sort's input to choose range bounds, running
        # the plan under the sort (the Parquet scan) twice; one range needs no bounds. Adaptive execution
        # would add a job per stage.
        trail = trails["spark"]
        plan = _executed_plan(trail, chrono(trail.filter(start="2026-01-02 10:00", end="2026-01-02 11:00")))
        exchanges = re.findall(r"Exchange rangepartitioning\(.*?, (\d+)\)", plan)
        assert exchanges == ["1"] and "AdaptiveSparkPlan" not in plan, plan

    def test_a_trade_lifecycle_reads_the_files_once(self, trails):
        # Spark computes a subquery again at every reference: the narrowed rows are fetched once
        # (``_backend.few_rows``), so the lifecycle's query reads none of the files (on a 1M-event trail it
        # read them 141 times), and the fetched rows are let go with the expression.
        import gc

        import workbench as wb

        trail = trails["spark"]
        session = trail.backend._session
        before = {table.name for table in session.catalog.listTables()}
        lifecycle = wb.trade_lifecycle(trail, "O-EDGE-1")
        # (The trail's described view, made on first use, stays with the trail: not the lifecycle's.)
        fetched = {table.name for table in session.catalog.listTables()
                   if not table.name.startswith("ledgerline_described_")} - before
        plan = _executed_plan(trail, lifecycle)
        assert "FileScan" not in plan and "LocalTableScan" in plan, plan
        assert len(fetched) == 1, fetched
        assert rows(lifecycle) == rows(wb.trade_lifecycle(trails["duckdb"], "O-EDGE-1"))
        del lifecycle
        gc.collect()
        assert not fetched & {table.name for table in session.catalog.listTables()}

    def test_a_trade_lifecycles_rows_are_read_by_one_scan(self, trails, monkeypatch):
        # Spark reads the files again for every branch of a union: the rows carrying the trade's ids are
        # one filter of one scan there (a scan per id, DuckDB's fastest, made the lifecycle ~1.3x slower).
        import ibis.expr.operations as ops

        import workbench as wb
        from workbench import _spark

        seen = []
        fetched = _spark.fetched
        monkeypatch.setattr(_spark, "fetched", lambda backend, table: seen.append(table) or fetched(backend, table))
        assert rows(wb.trade_lifecycle(trails["spark"], "O-EDGE-1")) == rows(
            wb.trade_lifecycle(trails["duckdb"], "O-EDGE-1"))
        (table,) = seen
        assert not list(table.op().find(ops.Union)) and len(list(table.op().find(ops.Filter))) >= 1

    def test_a_trade_lifecycles_rows_are_fetched_described(self, trails):
        # The rows a lifecycle fetches carry their description, read from the trail's described view: the
        # lifecycle's query reads it by name, where it held the description's expression twice (40k
        # characters of SQL for Spark to parse and plan on every call, over a few dozen rows).
        import workbench as wb

        trail = trails["spark"]
        lifecycle = wb.trade_lifecycle(trail, "O-EDGE-1")
        sql = str(trail.backend.compile(lifecycle))
        assert "ledgerline_rows_" in sql and "' changed '" not in sql and len(sql) < 20_000, len(sql)
        assert rows(lifecycle) == rows(wb.trade_lifecycle(trails["duckdb"], "O-EDGE-1"))

    def test_a_trade_lifecycles_query_over_its_fetched_rows_shuffles_nothing_and_joins_nothing(self, trails):
        # Each isin subquery over the fetched rows was a broadcast job of its own, and each window and the
        # causal sort an exchange (a stage): the rows are picked by windows, and the fetched rows are one
        # partition, which already satisfies every window's and sort's distribution.
        import workbench as wb

        trail = trails["spark"]
        for lifecycle in (wb.trade_lifecycle(trail, "O-EDGE-1"),
                          wb.trade_lifecycle(trail, correlation_id="SIG-EDGE-1")):
            plan = _executed_plan(trail, lifecycle)
            assert "ledgerline_rows_" in str(trail.backend.compile(lifecycle))
            assert [plan.count("Exchange"), plan.count("Join")] == [0, 0], plan

    def test_an_incident_reads_the_files_once(self, trails):
        # The causal order's blocks (a trade's records at one instant) were an aggregate joined back: Spark
        # scanned the window's files a second time for it and broadcast it in a job of its own. A window
        # over the one scan finds them.
        import workbench as wb

        trail = trails["spark"]
        window = _executed_plan(trail, trail.filter(start=DAY2 - 180 * S, end=DAY2 + 180 * S + 1))
        plan = _executed_plan(trail, wb.reconstruct_incident(trail, DAY2, minutes=3))
        assert [plan.count("FileScan"), plan.count("BroadcastExchange")] == [
            window.count("FileScan"), window.count("BroadcastExchange")], plan

    def test_signal_conversion_reads_the_files_once(self, trails):
        # Spark scanned the window's files a second time for the signals' groups, and broadcast them in a
        # job of its own (a quarter of the summary's CPU on a day of 333k events); a window over the one
        # scan finds the same groups.
        import workbench as wb

        trail = trails["spark"]
        conversion = wb.signal_conversion(trail, start="2026-01-02")
        window = _executed_plan(trail, trail.filter(start="2026-01-02"))  # the trail's view: hot rows too
        for expr in (conversion.summary, conversion.not_traded):
            plan = _executed_plan(trail, expr)
            assert [plan.count("FileScan"), plan.count("BroadcastExchange")] == [
                window.count("FileScan"), window.count("BroadcastExchange")], plan

    def test_a_trade_lifecycle_asked_again_reuses_its_rows_and_sql(self, trails):
        # The fetched rows are named by their digest: the same trade's lifecycle has the same shape and
        # reuses its compiled SQL (a fresh name per call made Ibis compile the whole query again, 1-2 s
        # at 10M events); another trade's rows get a view of their own; a view shared by two expressions
        # stays until the last of them goes.
        import gc

        import workbench as wb

        trail = trails["spark"]
        session, shapes = trail.backend._session, trail.backend.compiled_shapes

        def views() -> set[str]:
            return {table.name for table in session.catalog.listTables() if table.name.startswith("ledgerline_rows")}

        # Views of earlier tests' expressions that are garbage but not yet collected would hide this one's.
        gc.collect()
        before = views()
        first = wb.trade_lifecycle(trail, "O-EDGE-1")
        expected = rows(wb.trade_lifecycle(trails["duckdb"], "O-EDGE-1"))
        assert rows(first) == expected
        compiles = shapes.compiles
        again = wb.trade_lifecycle(trail, "O-EDGE-1")
        assert rows(again) == expected and shapes.compiles == compiles
        (shared,) = views() - before
        other = wb.trade_lifecycle(trail, "O-EDGE-2")
        assert rows(other) == rows(wb.trade_lifecycle(trails["duckdb"], "O-EDGE-2")) != expected
        assert len(views() - before) == 2
        del first
        gc.collect()
        assert shared in views() and rows(again) == expected
        del again, other
        gc.collect()
        assert not (views() - before)

    def test_the_trails_view_holds_an_analyzed_plan(self, trails):
        # A view created from SQL text is parsed and analyzed again in every query that reads it (0.4-0.5 s
        # of a 1-hour query on 1M events); one created from a DataFrame keeps its analyzed plan.
        session = trails["spark"].backend._session
        catalog = session._jsparkSession.sessionState().catalog()
        names = [table.name for table in session.catalog.listTables() if table.name.startswith("ledgerline_events_")]
        assert names
        for name in names:
            assert not catalog.getRawTempView(name).get().tableMeta().viewText().isDefined(), name

    def test_a_description_is_read_from_a_view_planned_once(self, trails):
        # Spark parses and analyzes the description's ~13k characters of SQL in every query that holds
        # it; rows of the trail read it from a view of the trail whose plan holds it analyzed.
        from workbench.describe import with_description

        session = trails["spark"].backend._session
        catalog = session._jsparkSession.sessionState().catalog()
        described = {}
        for engine, trail in trails.items():
            expr = with_description(trail.filter(event_type="trade.*")).order_by(
                "ts_event", "stream", "sequence").select("ts_event", "stream", "sequence", "description")
            described[engine] = rows(expr)
        sql = str(trails["spark"].backend.compile(expr))
        assert "ledgerline_described_" in sql and "CASE" not in sql and len(sql) < 2_000
        assert described["spark"] == described["duckdb"] and len(described["spark"]) > 100
        names = [table.name for table in session.catalog.listTables() if table.name.startswith("ledgerline_described_")]
        assert names and all(not catalog.getRawTempView(name).get().tableMeta().viewText().isDefined()
                             for name in names)

    def test_a_changed_row_is_described_as_changed(self, trails):
        # The view describes the trail's rows as stored: rows changed on the way (a mutate, a join) get the
        # description computed from what they hold, never the view's line for the row they came from.
        import ibis

        from workbench.describe import with_description

        found = {}
        for engine, trail in trails.items():
            changed = trail.filter(event_type="param.*").mutate(source=ibis.literal("someone else"))
            found[engine] = [row["description"] for row in rows(with_description(changed).order_by(
                "ts_event", "stream", "sequence").select("description"))]
            assert found[engine] and all(line.startswith("someone else changed ") for line in found[engine])
        assert found["spark"] == found["duckdb"]

    def test_time_is_a_utc_timestamp(self, trails):
        schema = trails["spark"].events.schema()
        assert schema["time"].timezone == "UTC" and schema["ts_event"].is_int64()
        assert trails["spark"].events.schema() == trails["duckdb"].events.schema()

    def test_the_backend_shortcut_opens_the_same_trail(self, trail_path, trails):
        from workbench import open_trail

        trail = open_trail(trail_path, backend="spark")  # the running session is reused
        assert trail.backend._session is trails["spark"].backend._session
        assert rows(chrono(trail.events.select("ts_event", "stream", "sequence"))) == rows(
            chrono(trails["duckdb"].events.select("ts_event", "stream", "sequence")))

    def test_an_unknown_backend_name_is_refused(self, trail_path):
        from workbench import WorkbenchInputError, open_trail

        with pytest.raises(WorkbenchInputError, match=r"backend='sparc'.*'duckdb', 'spark'"):
            open_trail(trail_path, backend="sparc")


def _executed_plan(trail: Any, expr: Any) -> str:
    session = trail.backend._session
    session.conf.set("spark.sql.maxMetadataStringLength", "10000")  # explain strings in full
    return str(session.sql(trail.backend.compile(expr))._jdf.queryExecution().executedPlan().toString())


class TestParquetReader:
    """The converter's v1 pages let Spark use its vectorized reader; a store with an older converter's v2 pages
    (BYTE_STREAM_SPLIT doubles, which that reader refuses) still opens, with the row reader."""

    def test_the_cold_files_are_read_by_the_vectorized_reader(self, trails):
        trail = trails["spark"]
        session = trail.backend._session
        assert session.conf.get("spark.sql.parquet.enableVectorizedReader") == "true"
        plan = session.sql(trail.backend.compile(trail.events))._jdf.queryExecution().executedPlan().toString()
        assert "Batched: true" in plan, plan

    def test_a_store_with_v2_pages_is_read_with_the_row_reader(self, trail_path, trails, tmp_path, monkeypatch):
        import shutil

        from audit_core.cold import _parquet
        from workbench import _spark, open_trail

        old = tmp_path / "old"
        shutil.copytree(trail_path, old, ignore=shutil.ignore_patterns("cold"))
        monkeypatch.setattr(_parquet, "COPY_OPTIONS", _parquet.COPY_OPTIONS.replace("V1", "V2"))
        converter = ParquetConverter(old / "hot", old / "cold")
        for path in sorted((old / "hot").glob("*.jsonl")):
            if ".2026-01-03." not in path.name:
                assert converter.convert_file(path).converted, path
        monkeypatch.undo()
        assert any(_parquet.uses_byte_stream_split(file) for file in (old / "cold").rglob("*.parquet"))
        session = trails["spark"].backend._session.newSession()  # its own SQL settings, the same JVM
        trail = open_trail(old, _spark.connect(session))
        assert session.conf.get("spark.sql.parquet.enableVectorizedReader") == "false"
        assert rows(chrono(trail.events)) == rows(chrono(trails["duckdb"].events))
        assert rows(trail.state_at(DAY3)) == rows(trails["duckdb"].state_at(DAY3))
        # A new store opened later on the same session keeps the row reader: the old one's tables read lazily.
        open_trail(trail_path, _spark.connect(session))
        assert session.conf.get("spark.sql.parquet.enableVectorizedReader") == "false"
        assert trails["spark"].backend._session.conf.get("spark.sql.parquet.enableVectorizedReader") == "true"


def test_spark_results_carry_the_trails_verification_as_duckdbs_do(trails):
    """A result says how its trail was verified on every backend. On Spark the trail's rows are a
    projection over its view, the described rows and a lifecycle's fetched rows views of their own:
    none of them was recognised as the trail's, so Spark results carried no verification at all."""
    import workbench as wb

    def states(trail: Any) -> list[tuple[Any, Any]]:
        frames = [trail.filter(start=DAY2, end=DAY2 + 60 * S).to_pandas(),
                  wb.with_description(trail.filter(start=DAY2, end=DAY2 + 60 * S)).to_pandas(),
                  wb.trade_lifecycle(trail, "O-EDGE-1").to_pandas()]
        return [(frame.attrs.get("verification_state"), frame.attrs.get("verification")) for frame in frames]

    duckdb, spark = states(trails["duckdb"]), states(trails["spark"])
    assert all(state is not None for state, _ in duckdb), duckdb
    assert [state for state, _ in spark] == [state for state, _ in duckdb]
    assert all(summary for _, summary in spark), spark
