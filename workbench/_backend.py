"""What depends on the Ibis backend: connecting, reading the cold Parquet, timestamps from nanoseconds.

Everything else in the workbench is portable Ibis. To run on another engine (Spark, issue 8),
this module is the one to extend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

#: Hive partition columns, as int32 on every backend (DuckDB would infer int64 or strings).
PARTITIONS = ("year", "month", "day")
UTC_TIMESTAMP = dt.Timestamp(timezone="UTC")
COLD_GLOB = "year=*/month=*/day=*/*.parquet"


@ibis.udf.scalar.builtin(name="make_timestamp_ns")
def _duckdb_timestamp_ns(nanoseconds: dt.int64) -> dt.Timestamp(scale=9):  # type: ignore[valid-type]
    """DuckDB's exact nanoseconds-to-timestamp (Ibis's floor division would go through a double)."""


@ibis.udf.scalar.builtin(name="timestamp_micros")
def _spark_timestamp_micros(microseconds: dt.int64) -> dt.Timestamp(scale=6):  # type: ignore[valid-type]
    """Spark's microseconds-to-timestamp."""


def connect_default() -> Any:
    """An in-process DuckDB connection (UTC session time zone, as Ibis sets it)."""
    return ibis.duckdb.connect()


def backend_name(backend: Any) -> str:
    return str(getattr(backend, "name", type(backend).__name__))


def read_cold(backend: Any, cold: Path) -> ir.Table | None:
    """The cold partitions as one table with int32 ``year``/``month``/``day``, or None if there are none.

    On DuckDB the partition values come from the paths (``hive_partitioning``), so a filter on
    them skips other days' files without opening them.
    """
    if not any(cold.glob(COLD_GLOB)):
        return None
    name = backend_name(backend)
    if name == "duckdb":
        import sqlglot

        hive_types = sqlglot.parse_one("{'year': 'INTEGER', 'month': 'INTEGER', 'day': 'INTEGER'}", read="duckdb")
        # Keep Parquet footers between queries (a cache only: results do not change).
        backend.raw_sql("SET parquet_metadata_cache = true")
        return backend.read_parquet(str(cold / COLD_GLOB), hive_partitioning=True, hive_types=hive_types)
    table = backend.read_parquet(str(cold))  # Spark and others discover hive partitions of a directory
    present = set(table.columns)
    return table.mutate(**{part: table[part].cast("int32") for part in PARTITIONS if part in present})


def event_time(backend: Any, ts_event: ir.IntegerValue) -> ir.TimestampValue:
    """``ts_event`` (ns) as a UTC timestamp, microsecond resolution, for charts and reading."""
    name = backend_name(backend)
    if name == "duckdb":
        return _duckdb_timestamp_ns(ts_event).cast(UTC_TIMESTAMP)
    if name == "pyspark":
        return _spark_timestamp_micros((ts_event // 1000).cast("int64")).cast(UTC_TIMESTAMP)
    epoch = ibis.timestamp("1970-01-01 00:00:00", timezone="UTC")
    return (epoch + (ts_event // 1000).cast("int64").as_interval("us")).cast(UTC_TIMESTAMP)


def as_view(backend: Any, table: ir.Table) -> ir.Table:
    """``table`` as a view of ``backend``, so that queries on it compile a one-table plan.

    Ibis compiles an expression's whole tree on every query; a view of the trail's definition
    (union, projection, deduplication) keeps that cost out of every analysis. Backends without
    views get the expression itself.
    """
    import uuid

    name = f"ledgerline_events_{uuid.uuid4().hex[:12]}"
    if backend_name(backend) == "duckdb":
        # A TEMP view: Ibis's create_view would write a lasting view into a database file the
        # caller opened, one that reads this session's temporary views. Registering the hot
        # memtable is what create_view does first.
        backend._register_in_memory_tables(table)
        backend.raw_sql(f'CREATE TEMP VIEW "{name}" AS {backend.compile(table)}')
        return backend.table(name)
    try:
        return backend.create_view(name, table)
    except (NotImplementedError, AttributeError):
        return table


def memtable(backend: Any, data: Any) -> ir.Table:
    """A small in-memory table (the hot rows) usable in queries of ``backend``."""
    del backend  # Ibis registers memtables with whichever backend executes them.
    return ibis.memtable(data)
