"""Results in pandas are exact: 19-digit nanoseconds next to NULLs, DECIMAL(38,18) without Python objects.

Ibis 12's own DuckDB ``execute`` made an int64 column holding a NULL float64 (``ts_init`` ...789 came
back as ...768) and decimals Python ``Decimal`` objects. These tests read a real trail (emitter, hot
JSONL, then converted Parquet) through ``to_pandas()``/``execute()``/``to_pyarrow()`` on the default
connection and on connections a caller passes in.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import ibis
import pandas as pd
import pyarrow as pa
import pytest

from audit_core import AuditConfig, AuditEventEmitter
from audit_core.cold.converter import ParquetConverter
from benchmarks.trail_gen import FakeClock
from workbench import open_trail
from workbench._backend import ExactDuckDBBackend, exact_frame

S = 1_000_000_000
T0 = 1_767_657_480 * S  # 2026-01-05 23:58:00 UTC
TS_INIT = 1_767_657_480_123_456_789  # 19 digits: float64 would end it in ...768
BIG = Decimal("12345678901234567.123456789012345678")  # 17 integer digits, 18 decimals
PRICE = Decimal("1.123456789012345678")
DECIMAL = pd.ArrowDtype(pa.decimal128(38, 18))


def write_trail(base: Path) -> None:
    """A signal (acted on), a filtered signal, an order and a fill carrying ts_init; other rows have NULLs."""
    clock = FakeClock(T0)
    emitter = AuditEventEmitter(AuditConfig(base_path=base, trader_id="TRADER-001", stream_id="exec",
                                            sync_writes=False), clock=clock)
    emitter.emit_signal("signal_engine", "momentum", 0.82, 0.91, instrument_id="EURUSD.SIM",
                        correlation_id="SIG-1", ts_event=T0)
    emitter.emit_signal("signal_engine", "momentum", 0.1, 0.2, acted_on=False, filter_reason="below_threshold",
                        instrument_id="EURUSD.SIM", correlation_id="SIG-2", ts_event=T0 + S)
    emitter.emit_trade("trade.order", "AuditObserver", "EURUSD.SIM", correlation_id="SIG-1", order_id="O-1",
                       side="BUY", size=BIG, strategy_source="momentum", ts_event=T0 + 2 * S)
    emitter.emit_trade("trade.fill", "AuditObserver", "EURUSD.SIM", correlation_id="SIG-1", order_id="O-1",
                       side="BUY", size=BIG, price=PRICE, commission=Decimal("0.000000000000000001"),
                       ts_init=TS_INIT, ts_event=T0 + 3 * S)
    emitter.close()


@pytest.fixture(params=["hot", "cold"])
def base(request, tmp_path: Path) -> Path:
    """The trail unconverted (hot JSONL read into memory) or converted (Parquet)."""
    root = tmp_path / "trail"
    write_trail(root)
    if request.param == "cold":
        converter = ParquetConverter(root / "hot", root / "cold")
        for path in sorted((root / "hot").glob("*.jsonl")):
            assert converter.convert_file(path).converted
    return root


def frame_of(trail) -> pd.DataFrame:
    return trail.events.order_by("ts_event").to_pandas()


def check_exact(frame: pd.DataFrame) -> None:
    fill = frame[frame["event_type"] == "trade.fill"].iloc[0]
    assert str(frame["ts_init"].dtype) == "int64[pyarrow]"
    assert fill["ts_init"] == TS_INIT and type(fill["ts_init"]) is int
    assert frame["ts_init"].isna().tolist() == [True, True, True, False]  # NULLs kept, not 0 or NaN
    assert frame["ts_event"].tolist() == [T0, T0 + S, T0 + 2 * S, T0 + 3 * S]
    # Decimals: one Arrow column, no Python object per value; an element read out is exact.
    for name in ("size", "price", "commission", "realized_pnl"):
        assert frame[name].dtype == DECIMAL, name
    assert fill["price"] == PRICE and fill["size"] == BIG and fill["commission"] == Decimal("1E-18")
    assert frame["price"].isna().tolist() == [True, True, True, False]
    # Booleans and strings with NULLs keep them; time is display only, microseconds, UTC.
    assert str(frame["acted_on"].dtype) == "bool[pyarrow]"
    assert frame["acted_on"].tolist()[:2] == [True, False] and frame["acted_on"].isna().tolist()[2:] == [True, True]
    assert frame["order_id"].dtype == pd.ArrowDtype(pa.string())
    assert frame["order_id"].isna().tolist() == [True, True, False, False]
    assert str(frame["time"].dtype) == "datetime64[us, UTC]"
    assert not [name for name, dtype in frame.dtypes.items() if pd.api.types.is_object_dtype(dtype)]


def test_to_pandas_is_exact_on_the_default_connection(base):
    trail = open_trail(base)
    assert isinstance(trail.backend, ExactDuckDBBackend)
    check_exact(frame_of(trail))


@pytest.mark.parametrize("connect", [ibis.duckdb.connect, duckdb.connect], ids=["ibis", "duckdb"])
def test_to_pandas_is_exact_on_a_callers_connection(base, connect):
    connection = connect()
    trail = open_trail(base, connection)
    assert isinstance(trail.backend, ExactDuckDBBackend)
    assert trail.backend.con is getattr(connection, "con", connection)  # the caller's database, not a copy
    check_exact(frame_of(trail))


def test_a_callers_own_tables_join_the_trail_through_trail_backend(base, tmp_path):
    connection = ibis.duckdb.connect(tmp_path / "analyst.ddb")
    connection.create_table("orders_of_interest", ibis.memtable({"order_id": ["O-1"], "desk": ["fx"]}))
    trail = open_trail(base, connection)
    mine = trail.backend.table("orders_of_interest")
    joined = trail.events.join(mine, "order_id").select("event_type", "desk", "ts_init").order_by("ts_init")
    frame = joined.to_pandas()
    assert frame["event_type"].tolist() == ["trade.fill", "trade.order"] and frame["ts_init"].iloc[0] == TS_INIT


def test_a_stock_ibis_connection_itself_is_left_as_it_was(base):
    # What open_trail fixes: the same query through the caller's own Ibis object rounds the nanoseconds.
    connection = ibis.duckdb.connect()
    trail = open_trail(base, connection)
    sql = str(ibis.to_sql(trail.events.select("ts_init")))
    assert TS_INIT not in connection.sql(sql).to_pandas()["ts_init"].dropna().tolist()
    assert TS_INIT in trail.events.select("ts_init").to_pandas()["ts_init"].dropna().tolist()


def test_to_pyarrow_is_exact(base):
    table = open_trail(base).events.order_by("ts_event").select("ts_init", "price", "acted_on").to_pyarrow()
    assert table.schema.field("ts_init").type == pa.int64()
    assert table.schema.field("price").type == pa.decimal128(38, 18)
    assert table.to_pylist()[-1] == {"ts_init": TS_INIT, "price": PRICE, "acted_on": None}
    assert table.column("ts_init").to_pylist()[:3] == [None, None, None]


def test_a_result_of_the_expressions_arrow_schema_is_returned_as_ibis_returns_it(base, monkeypatch):
    """The Arrow schema a result is checked against is built once per Ibis schema (``_backend.arrow_result``),
    not for every result as Ibis builds it; a result of another Arrow type is still cast as Ibis casts it."""
    from ibis.formats.pyarrow import PyArrowSchema

    from workbench._backend import _duckdb_pyarrow_data, arrow_result

    events = open_trail(base).events
    query = lambda: events.order_by("ts_event").select("ts_init", "price", "event_type")  # noqa: E731
    first = query().to_pyarrow()
    built = []
    original = PyArrowSchema.from_ibis.__func__
    monkeypatch.setattr(PyArrowSchema, "from_ibis", classmethod(lambda cls, s: built.append(s) or original(cls, s)))
    again = query().to_pyarrow()
    assert built == [] and again.equals(first)
    narrow = pa.table({"ts_init": pa.array([1, None], pa.int32()), "price": pa.array([None, None], pa.null()),
                       "event_type": ["a", "b"]})
    expr = query()
    cast = arrow_result(expr, narrow, _duckdb_pyarrow_data())
    assert cast.equals(expr.__pyarrow_result__(narrow, data_mapper=_duckdb_pyarrow_data()))
    assert cast.schema.field("ts_init").type == pa.int64() and cast.schema.field("price").type == pa.decimal128(38, 18)


def test_columns_and_scalars(base):
    events = open_trail(base).events
    column = events.order_by("ts_event").ts_init.execute()
    assert isinstance(column, pd.Series) and column.name == "ts_init" and column.dtype == "int64[pyarrow]"
    assert column.tolist()[-1] == TS_INIT
    assert events.ts_init.max().execute() == TS_INIT
    assert events.price.sum().execute() == PRICE and isinstance(events.price.sum().execute(), Decimal)
    assert events.count().execute() == 4
    assert events.filter(events.ts_event < 0).ts_init.max().execute() is None
    assert events.time.min().execute() == pd.Timestamp(T0 // 1000, unit="us", tz="UTC")


def test_an_empty_result_has_the_same_dtypes(base):
    events = open_trail(base).events
    empty, full = events.filter(events.ts_event < 0).to_pandas(), events.to_pandas()
    assert len(empty) == 0 and empty.dtypes.to_dict() == full.dtypes.to_dict()


def test_exact_frame_keeps_arrow_types_and_nulls():
    table = pa.table({"n": pa.array([TS_INIT, None], pa.int64()), "d": pa.array([PRICE, None], pa.decimal128(38, 18)),
                      "t": pa.array([T0 // 1000, None], pa.timestamp("us", tz="UTC"))})
    frame = exact_frame(table)
    assert frame["n"].tolist() == [TS_INIT, pd.NA] and frame["d"].dtype == DECIMAL
    assert str(frame["t"].dtype) == "datetime64[us, UTC]" and frame["t"].isna().tolist() == [False, True]


def test_trail_events_have_no_description_but_analyses_add_it(base):
    from workbench import reconstruct_incident, trade_lifecycle
    from workbench.describe import with_description

    trail = open_trail(base)
    assert "description" not in trail.events.columns
    fills = with_description(trail.filter(event_type="trade.fill")).to_pandas()
    assert fills["description"].tolist() == [f"order O-1 filled: BUY {BIG} EURUSD.SIM @ {PRICE}"]
    assert "description" in reconstruct_incident(trail, T0, 1).columns
    assert "description" in trade_lifecycle(trail, "O-1").columns


def test_with_description_refuses_a_table_it_cannot_describe(base):
    from workbench import WorkbenchInputError
    from workbench.describe import with_description

    trail = open_trail(base)
    described = with_description(trail.events)
    with pytest.raises(WorkbenchInputError, match=r"already has a 'description' column"):
        with_description(described)
    with pytest.raises(WorkbenchInputError, match=r"no 'event_type' column: .*'ts_event'"):
        with_description(trail.events.select("ts_event"))
