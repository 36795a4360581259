"""What depends on the Ibis backend: connecting, exact results, reading the cold Parquet, timestamps.

Everything else in the workbench is portable Ibis. Spark's own pieces (a local session, Arrow
tables as views) are in ``workbench._spark``, called only from here.

Results in pandas (``to_pandas()``/``execute()``) are built from Arrow by ``pandas_result``, the
same on DuckDB (``ExactDuckDBBackend``) and Spark (``_spark.ExactSparkBackend``). Ibis 12's own
DuckDB ``execute`` turns every column holding a NULL into Python objects and then a nullable int64
into float64 (``ts_init`` ...789 came back as ...768), and decimals into ``Decimal`` objects, one
per value (a 1M-row frame took 13-24 s and 4.3-4.7 GB). Here every column keeps its Arrow type
(``exact_dtype`` says which pandas dtype each becomes), so values, NULLs and the 19 digits of a
nanosecond instant arrive as stored, without a Python object per value.

Examples
--------
>>> import duckdb, ibis
>>> from workbench._backend import ExactDuckDBBackend
>>> con = ExactDuckDBBackend.from_connection(duckdb.connect())
>>> t = con.sql("SELECT * FROM (VALUES (1767657480123456789, 1.5::DECIMAL(38,18)), "
...             "(NULL, NULL)) AS v(ts_init, price)")
>>> frame = t.to_pandas()
>>> frame.ts_init.tolist()
[1767657480123456789, <NA>]
>>> str(frame.price.dtype)
'decimal128(38, 18)[pyarrow]'
>>> t.ts_init.max().execute()
1767657480123456789
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import ibis.expr.types as ir
from ibis.backends.duckdb import Backend as DuckDBBackend

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


#: Names ``open_trail(path, backend=...)`` accepts instead of a connection.
BACKEND_NAMES = ("duckdb", "spark")


#: Rows per Arrow batch streamed out of DuckDB: large, so that a result's columns are a few long
#: chunks (pandas operations on an ArrowDtype column work chunk by chunk).
STREAM_BATCH_ROWS = 1_000_000


def exact_dtype(arrow_type: Any) -> Any:
    """The pandas dtype of a result column of ``arrow_type``: Arrow's own, except for timestamps.

    - int64 (``ts_event``, ``ts_init``, ``sequence``, ...), int32, bool, double: ``pd.ArrowDtype``,
      exact with NULLs (NULL is ``pd.NA``; numpy int64 cannot hold one, and Ibis made the column
      float64, rounding 19-digit nanoseconds; a double's NULL stays distinct from NaN).
    - decimals (money, sizes, prices: DECIMAL(38,18)): ``pd.ArrowDtype(decimal128(38, 18))``; an
      element read out is an exact ``decimal.Decimal``, but no Python object is built per value.
    - strings: ``pd.ArrowDtype(pa.string())``, Arrow's buffers as they are, the fastest: the object
      dtype costs a Python ``str`` per value (seconds per million rows), and
      ``pd.StringDtype("pyarrow")`` copies every column into large_string.
    - timestamps (``time``): None, pyarrow's default: numpy ``datetime64[us, UTC]`` (the column's
      own unit and time zone, as Ibis returns it), what pandas and charts expect of a time column.
      ``time`` is for display only: it holds microseconds, and a nanosecond unit would only pad
      them with zeros; ``ts_event`` (int64 ns) is the exact instant.
    """
    import pandas as pd
    import pyarrow.types as pat

    if pat.is_timestamp(arrow_type):
        return None
    return pd.ArrowDtype(arrow_type)


def exact_frame(table: Any) -> Any:
    """A pyarrow Table as a pandas DataFrame with ``exact_dtype`` columns (no copy but the timestamps)."""
    return table.to_pandas(types_mapper=exact_dtype)


def pandas_result(expr: ir.Expr, table: Any, data_mapper: Any = None) -> Any:
    """What ``expr.execute()`` returns, built from the Arrow ``table`` its query fetched.

    A table expression gives an ``exact_frame``; a column its Series; a scalar the Python value
    (``int``, ``decimal.Decimal``, ``pandas.Timestamp``, ``None``), as Ibis converts one value.
    A frame or Series read from an opened trail carries its verification status in
    ``attrs["verification"]`` (the summary) and ``attrs["verification_state"]``.
    ``data_mapper`` is the backend's Ibis ``PyArrowData`` class, which casts the Arrow columns to
    the expression's schema first (so DuckDB and Spark results have the same Arrow types).
    """
    import pandas as pd

    if isinstance(expr, ir.Scalar):
        # One value: Python objects are exact (int, Decimal) and cost nothing here.
        values = pd.DataFrame({name: column.to_pylist() for name, column in zip(table.column_names, table.columns,
                                                                                 strict=True)})
        return expr.__pandas_result__(values)
    from workbench.verification import annotate

    table = arrow_result(expr.as_table(), table, data_mapper)
    frame = annotate(expr, exact_frame(table))  # attrs["verification"]: how verified the trail read is
    if isinstance(expr, ir.Column):
        column = frame[frame.columns[0]]
        column.attrs.update(frame.attrs)
        return column
    return frame


def arrow_result(expr: ir.Expr, table: Any, data_mapper: Any) -> Any:
    """``expr.__pyarrow_result__(table, data_mapper=data_mapper)``: the Arrow result cast to ``expr``'s schema.

    A table whose Arrow schema is already the one of ``expr``'s schema is returned as it is, as Ibis
    returns it; Ibis builds that Arrow schema again for every result (0.5 ms for the 56 columns of a
    trail's rows), here it is built once per schema (``_arrow_schema``).
    """
    if isinstance(expr, ir.Table) and table.schema == _arrow_schema(expr.schema()):
        return table
    return expr.__pyarrow_result__(table, data_mapper=data_mapper)


@functools.lru_cache(maxsize=256)
def _arrow_schema(schema: ibis.Schema) -> Any:
    """The Arrow schema of an Ibis ``schema``, as Ibis's ``PyArrowData.convert_table`` writes it."""
    from ibis.formats.pyarrow import PyArrowSchema

    return PyArrowSchema.from_ibis(schema)


class ExactDuckDBBackend(DuckDBBackend):  # type: ignore[misc]
    """Ibis's DuckDB backend with exact pandas results (``pandas_result``) and streamed fetches.

    ``execute`` (and so ``to_pandas()``) and ``to_pyarrow()`` differ from Ibis's; compilation,
    views and reading files are Ibis's own. Both stream the result out of DuckDB
    (``arrow_table``): Ibis's ``to_arrow_table()`` makes DuckDB collect the whole result before
    converting it, which held every row twice (1,281 MiB peak for a 1M-row, 46-column read that
    streams in 738 MiB).
    """

    #: Whether queries reuse SQL compiled for an earlier expression of the same shape
    #: (``workbench._compiled``); False compiles every expression with Ibis (the portable path).
    reuse_compiled_sql = True

    @property
    def compiled_shapes(self) -> Any:
        """This connection's compiled SQL per expression shape (``workbench._compiled.CompiledShapes``),
        kept for the whole process (``_compiled.SHARED``)."""
        shapes = self.__dict__.get("_compiled_shapes")
        if shapes is None:
            from workbench._compiled import SHARED, CompiledShapes

            shapes = self.__dict__["_compiled_shapes"] = CompiledShapes(self, store=SHARED["shapes"])
        return shapes

    @property
    def compiled_calls(self) -> Any:
        """This connection's SQL per analysis call shape (``workbench._compiled.CompiledCalls``), or None
        when ``reuse_compiled_sql`` is False (every analysis then builds its expression)."""
        if not self.reuse_compiled_sql:
            return None
        calls = self.__dict__.get("_compiled_calls")
        if calls is None:
            from workbench._compiled import SHARED, CompiledCalls

            calls = self.__dict__["_compiled_calls"] = CompiledCalls(self, store=SHARED["calls"])
        return calls

    def template_sql(self, expr: ir.Expr, limit: int | str | None) -> str:
        """The SQL ``compiled_shapes`` keeps for a query shape: Ibis's, with its nested projections merged
        where that is safe (``flat_query_sql``), which DuckDB binds faster on every call of the shape."""
        sql = str(self.compile(expr, limit=limit))
        flat = flat_query_sql(self, expr, sql) if limit is None else None
        return sql if flat is None else flat

    def _to_duckdb_relation(self, expr: ir.Expr, *, params: Mapping[Any, Any] | None = None,
                            limit: int | str | None = None, **kwargs: Any) -> Any:
        """Ibis's relation for ``expr``, its SQL compiled once per shape (``compiled_shapes``) unless
        ``params`` are given or ``reuse_compiled_sql`` is False."""
        if params or kwargs or not self.reuse_compiled_sql:
            return super()._to_duckdb_relation(expr, params=params, limit=limit, **kwargs)
        return self.con.sql(self._prepared_sql(expr, limit))

    def _prepared_sql(self, expr: ir.Expr, limit: int | str | None) -> str:
        """The SQL of ``expr`` (``compiled_shapes``), after Ibis's pre-execute hooks when it needs them.

        The hooks register in-memory tables and define UDFs; each walks the whole tree (up to 2 ms
        of an incident's query). The walk that keys the shape finds whether any such node is
        there; a table over a record batch reader already read from (Ibis's warning) runs them too.
        """
        op = expr.op()
        calls = self.__dict__.get("_compiled_calls")
        if limit is None and calls is not None and isinstance(op, ops.SQLStringView) and op in calls.made:
            return op.query  # an analysis's SQL, compiled from its expression (``_compiled.CompiledCalls``)
        sql, hooked = self.compiled_shapes.prepare(expr.as_table(), limit)
        if hooked or self._record_batch_readers_consumed:
            self._run_pre_execute_hooks(expr)
        return sql

    def arrow_table(self, expr: ir.Expr, /, *, params: Mapping[Any, Any] | None = None,
                    limit: int | str | None = None, **kwargs: Any) -> Any:
        """The result of ``expr`` as a pyarrow Table as DuckDB returns it (before Ibis's type casts)."""
        if params or kwargs or not self.reuse_compiled_sql:
            relation = self._to_duckdb_relation(expr, params=params, limit=limit, **kwargs)
            return relation.to_arrow_reader(STREAM_BATCH_ROWS).read_all()
        # A query, not a relation: ``con.sql`` plans the statement once to make the relation and again
        # to run it (4 ms of a 6 ms count_by_type, measured); streamed out the same (the same peak memory).
        sql = self._prepared_sql(expr, limit)
        return self.con.execute(sql).to_arrow_reader(STREAM_BATCH_ROWS).read_all()

    def to_pyarrow(self, expr: ir.Expr, /, *, params: Mapping[Any, Any] | None = None,
                   limit: int | str | None = None, **kwargs: Any) -> Any:
        table = self.arrow_table(expr, params=params, limit=limit, **kwargs)
        return arrow_result(expr, table, _duckdb_pyarrow_data())

    def execute(self, expr: ir.Expr, /, *, params: Mapping[Any, Any] | None = None,
                limit: int | str | None = None, **kwargs: Any) -> Any:
        """Execute ``expr``: a pandas DataFrame, Series or scalar with ``exact_dtype`` columns."""
        table = self.arrow_table(expr, params=params, limit=limit, **kwargs)
        return pandas_result(expr, table, _duckdb_pyarrow_data())


@functools.cache
def _duckdb_pyarrow_data() -> type:
    """Ibis's ``DuckDBPyArrowData`` (``ibis.backends.duckdb.converter``): the Arrow type casts of a DuckDB
    result, NULL-typed columns as nulls. Written out here because importing Ibis's module imports pandas
    (0.3 to 0.5 s of a new process's first query; ``to_pyarrow`` needs no pandas).
    """
    import pyarrow as pa
    from ibis.formats.pyarrow import PyArrowData

    class DuckDBPyArrowData(PyArrowData):  # type: ignore[misc]
        @classmethod
        def convert_scalar(cls, scalar: Any, dtype: dt.DataType) -> Any:
            if dtype.is_null():
                return pa.scalar(None)
            return super().convert_scalar(scalar, dtype)

        @classmethod
        def convert_column(cls, column: Any, dtype: dt.DataType) -> Any:
            if dtype.is_null():
                return pa.nulls(len(column))
            return super().convert_column(column, dtype)

    return DuckDBPyArrowData


def connect_default() -> ExactDuckDBBackend:
    """An in-process DuckDB connection (UTC session time zone, as Ibis sets it) with exact results."""
    import duckdb

    return ExactDuckDBBackend.from_connection(duckdb.connect())


def exact_duckdb(connection: Any) -> ExactDuckDBBackend:
    """An ``ExactDuckDBBackend`` over ``connection``: a ``duckdb`` connection or an Ibis DuckDB backend.

    Both objects use the same DuckDB connection (the same database, temporary tables and
    settings); Ibis sets its session time zone to UTC, as ``ibis.duckdb.connect`` does. Ibis
    refuses one expression over tables of two backend objects: to join your own tables with
    ``trail.events``, take them from ``trail.backend`` (``trail.backend.table("positions")``).
    """
    if isinstance(connection, ExactDuckDBBackend):
        return connection
    return ExactDuckDBBackend.from_connection(getattr(connection, "con", connection))


def resolve(backend: Any) -> Any:
    """An Ibis backend from what ``open_trail`` was given: None (DuckDB), a name, or a connection.

    ``"duckdb"`` is a new in-process DuckDB connection; ``"spark"`` an Ibis pyspark backend over
    a local session (``workbench._spark.local_session``: ``local[2]``, UTC, no UI). A caller's
    DuckDB connection (Ibis's or a plain ``duckdb`` one) is used through an ``ExactDuckDBBackend``
    over it, a pyspark one through ``_spark.ExactSparkBackend``: results are exact on either.
    """
    if backend is None or backend == "duckdb":
        return connect_default()
    if backend == "spark":
        from workbench import _spark

        return _spark.connect()
    if isinstance(backend, str):
        from workbench.errors import WorkbenchInputError

        raise WorkbenchInputError(
            f"backend={backend!r} is not a backend name; expected one of {BACKEND_NAMES} or an Ibis connection")
    if backend_name(backend) == "pyspark":
        from workbench import _spark

        return _spark.exact(backend)  # the same session, results fetched through Arrow
    if backend_name(backend) == "duckdb" or _is_duckdb_connection(backend):
        return exact_duckdb(backend)  # the same connection, exact pandas results
    return backend


def _is_duckdb_connection(value: Any) -> bool:
    """Whether ``value`` is a plain ``duckdb`` connection (not an Ibis backend)."""
    import duckdb

    return isinstance(value, duckdb.DuckDBPyConnection)


def backend_name(backend: Any) -> str:
    return str(getattr(backend, "name", type(backend).__name__))


def read_cold(backend: Any, cold: Path, unreadable: list[tuple[Path, str]] | None = None,
              extent: list[int | None] | None = None, files: list[Path] | None = None) -> ir.Table | None:
    """The cold partitions as one table with int32 ``year``/``month``/``day``, or None if there are none.

    On DuckDB the partition values come from the paths (``hive_partitioning``), so a filter on
    them skips other days' files without opening them.

    Files written before a column joined the cold schema (``audit_core.cold.projection.COLUMNS``)
    still open: the column reads as NULL in their rows (``record_format`` in files of projection 1,
    which did not derive it, until ``ledgerline convert --rebuild``), and ``owner`` as the row's
    ``source`` on ``param.*`` rows (a record without an owner is a change by its owner). Every file's
    footer is read here (``workbench._footers``: parsed once per process for the same footer bytes):
    only when the files' columns differ are they read by name (DuckDB ``union_by_name``, Spark
    ``mergeSchema``), because DuckDB's default takes the first file's columns and silently drops the
    others, and ``union_by_name`` costs every query on the trail a footer read of every file (+5 to
    15 ms a query on 90 files, measured).

    A file whose footer cannot be read (truncated, not Parquet) is left out and appended to
    ``unreadable`` as (path, why); the others are then read by name instead of by glob.

    ``extent``, when given, receives the first and last ``ts_event`` of the files read, from the
    same footers' column statistics, or (None, None) when a file has none (``Trail.time_range``).
    ``files`` are the store's Parquet files (``COLD_GLOB``, sorted) when the caller listed them already.
    """
    from workbench._footers import read_footers

    files = sorted(cold.glob(COLD_GLOB)) if files is None else files
    columns, damaged, first_last = read_footers(files)
    if extent is not None:
        extent[:] = first_last
    if damaged:
        if unreadable is not None:
            unreadable.extend(damaged)
        files = [file for file in files if file not in dict(damaged)]
    if not files:
        return None
    mixed = len(columns) > 1
    name = backend_name(backend)
    if name == "duckdb":
        import sqlglot

        hive_types = sqlglot.parse_one("{'year': 'INTEGER', 'month': 'INTEGER', 'day': 'INTEGER'}", read="duckdb")
        # Keep Parquet footers between queries (a cache only: results do not change).
        backend.raw_sql("SET parquet_metadata_cache = true")
        options: dict[str, Any] = {"hive_partitioning": True, "hive_types": hive_types}
        if mixed:
            options["union_by_name"] = True
        where: Any = str(cold / COLD_GLOB) if not damaged else [str(file) for file in files]
        return _with_every_column(_duckdb_read_parquet(backend, where, options), mixed)
    if name == "pyspark":
        from workbench import _spark

        _spark.prepare_for_cold(backend, files)
        # Spark, too, takes one file's columns unless told to merge them.
        spark_options = {"mergeSchema": "true"} if mixed else {}
        if damaged:  # files named one by one would lose Spark's partition discovery
            spark_options["ignoreCorruptFiles"] = "true"
        table = backend.read_parquet(str(cold), **spark_options)
    else:
        table = backend.read_parquet(str(cold))  # others discover hive partitions of a directory
    present = set(table.columns)
    table = table.mutate(**{part: table[part].cast("int32") for part in PARTITIONS if part in present})
    return _with_every_column(table, mixed)


def _duckdb_read_parquet(backend: Any, where: Any, options: dict[str, Any]) -> ir.Table:
    """Ibis's DuckDB ``read_parquet`` (a temporary view of ``SELECT * FROM read_parquet(...)``), keeping
    the ``read_parquet`` call by the view's name for ``_flat_sql``, which puts it in place of the view."""
    import sqlglot as sg
    import sqlglot.expressions as sge
    from ibis import util

    name = util.gen_name("read_parquet")
    reader = backend.compiler.f.read_parquet(util.normalize_filenames(where),
                                             *[sg.to_identifier(key).eq(sge.convert(value))
                                               for key, value in options.items()])
    backend._create_temp_view(name, sg.select(sge.Star()).from_(reader))
    backend.__dict__.setdefault("_ledgerline_readers", {})[name] = reader
    # The view's columns as DuckDB binds them (``backend.table(name)`` asks the same, then parses each
    # type name again: ~6 ms of a cold start, for type names that repeat from one open to the next).
    columns = backend.con.execute(f'DESCRIBE "{name}"').fetchall()
    schema = ibis.schema({column: duckdb_type(sql_type, nullable == "YES")
                          for column, sql_type, nullable, *_ in columns})
    return ops.DatabaseTable(name, schema=schema, source=backend,
                             namespace=ops.Namespace(catalog=None, database=None)).to_expr()


@functools.lru_cache(maxsize=256)
def duckdb_type(sql_type: str, nullable: bool) -> dt.DataType:
    """Ibis's type for a DuckDB type name, as ``backend.table`` reads it (``DuckDBType.from_string``); a
    type (immutable) per name, parsed once per process."""
    from ibis.backends.sql.datatypes import DuckDBType

    return DuckDBType.from_string(sql_type, nullable=nullable)


def _with_every_column(table: ir.Table, mixed: bool) -> ir.Table:
    """``table`` with the columns of the current cold schema its files lack, as NULL; ``owner`` defaulted."""
    from workbench.trail import cold_schema

    schema = cold_schema()
    present = set(table.columns)
    missing = {name: ibis.null(schema[name]) for name in schema.names if name not in present}
    owner_default = ibis.ifelse(table.event_type.startswith("param."), table.source, ibis.null(dt.string))
    if "owner" in missing:
        missing["owner"] = owner_default
    elif mixed:  # the rows of older files have a NULL owner
        missing["owner"] = table.owner.coalesce(owner_default)
    return table.mutate(**missing) if missing else table


def event_time(backend: Any, ts_event: ir.IntegerValue) -> ir.TimestampValue:
    """``ts_event`` (ns) as a UTC timestamp, microsecond resolution, for charts and reading."""
    name = backend_name(backend)
    if name == "duckdb":
        return _duckdb_timestamp_ns(ts_event).cast(UTC_TIMESTAMP)
    if name == "pyspark":
        # Exact: Ibis compiles ``//`` on Spark as FLOOR(a / b) over doubles, which rounds 19-digit
        # nanoseconds (23:59:59.999999999 would become the next midnight).
        micros = (ts_event.cast(dt.Decimal(20, 0)) / 1000).floor().cast("int64")
        return _spark_timestamp_micros(micros).cast(UTC_TIMESTAMP)
    epoch = ibis.timestamp("1970-01-01 00:00:00", timezone="UTC")
    return (epoch + (ts_event // 1000).cast("int64").as_interval("us")).cast(UTC_TIMESTAMP)


#: The SQL and schema of trail views defined in this process (``events_view``), by what defines them.
_VIEWS: dict[tuple[Any, ...], tuple[str, ibis.Schema]] = {}
#: Definitions kept at most (one per trail and set of files opened).
MAX_VIEWS = 64


def definition_key(backend: Any, tables: tuple[ir.Table | None, ...], *values: Any) -> tuple[Any, ...] | None:
    """What the definition of a trail's view built from ``tables`` and ``values`` depends on, or None
    when it cannot be told (other backends than DuckDB, an in-memory table, no table at all).

    ``tables`` are built by ``read_cold`` and ``memtable`` from their sources alone (code aside):
    a ``read_parquet`` view is named by the call it holds (the files and options) and the schema
    DuckDB gave it, a table by its name and schema. ``values`` are the literals the definition
    adds (the hot rows' time bounds).
    """
    if backend_name(backend) != "duckdb" or all(table is None for table in tables):
        return None  # no tables: the definition is an empty in-memory table, registered per connection
    readers = backend.__dict__.get("_ledgerline_readers", {})
    parts: list[Any] = []
    for table in tables:
        if table is None:
            parts.append(None)
            continue
        op = table.op()
        if op.find(ops.InMemoryTable):
            return None
        for source in op.find(ops.DatabaseTable):
            reader = readers.get(source.name)
            parts.append((source.name if reader is None else ("read_parquet", reader.sql(dialect="duckdb")),
                          tuple(source.schema.items())))
    return (*parts, *values)


def events_view(backend: Any, build: Any, key: tuple[Any, ...] | None,
                direct: Any = None) -> tuple[ir.Table, ir.Table | None]:
    """``as_view(backend, build())`` and the definition ``build()`` returned; on DuckDB, a definition
    already seen in this process (``key``: ``definition_key``) is not built again: the view is
    created from the SQL it compiled to (building and compiling it costs 20 to 50 ms of a cold start)
    and the definition returned is None. Nor is one that ``direct()`` writes without Ibis
    (``cold_view_sql``: the SQL and schema, or None when it cannot).
    """
    cached = _VIEWS.get(key) if key is not None else None
    if cached is None and direct is not None and backend_name(backend) == "duckdb":
        cached = direct()
        if cached is not None and key is not None:
            _keep_view(key, cached)
    if cached is not None:
        return _temp_view(backend, *cached), None
    table = build()
    if backend_name(backend) != "duckdb":
        return as_view(backend, table), table
    view, sql = _duckdb_view(backend, table)
    if key is not None and not any(name in sql for name in backend.__dict__.get("_ledgerline_readers", {})):
        _keep_view(key, (sql, view.schema()))
    return view, table


def _keep_view(key: tuple[Any, ...], definition: tuple[str, ibis.Schema]) -> None:
    if len(_VIEWS) >= MAX_VIEWS:
        _VIEWS.clear()
    _VIEWS[key] = definition


def cold_view_sql(backend: Any, cold: ir.Table, names: tuple[str, ...]) -> tuple[str, ibis.Schema] | None:
    """The SQL and schema of the DuckDB view of a trail with no hot rows, written without Ibis: what
    ``_duckdb_view`` makes of ``trail.events_of(backend, cold.select(*names), ...)``, to the character
    (``tests/unit/workbench/test_cold_start.py`` compares them). None when ``cold`` is not a bare
    ``read_cold`` table holding every column of ``names`` (files with other columns): Ibis builds those.

    Building and compiling that Ibis expression, then merging its projections, cost 15 to 25 ms of
    a new process's first ``open_trail``; this costs about 1 ms. The Ibis expression stays the
    definition (other backends, hot rows, older files); this is its DuckDB text for the common case.
    """
    import sqlglot as sg
    import sqlglot.expressions as sge

    op = cold.op()
    reader = backend.__dict__.get("_ledgerline_readers", {}).get(op.name) if isinstance(op, ops.DatabaseTable) else None
    if reader is None or not set(names) <= set(op.schema.names):
        return None
    first = ("ts_event", "event_type", "source")

    def column(name: str) -> Any:
        return sge.Column(this=sg.to_identifier(name, quoted=True), table=sg.to_identifier("t0", quoted=True))

    time = sge.Cast(this=sge.Anonymous(this="make_timestamp_ns", expressions=[column("ts_event")]),
                    to=backend.compiler.type_mapper.from_ibis(UTC_TIMESTAMP))
    columns = [column("ts_event"), sge.Alias(this=time, alias=sg.to_identifier("time", quoted=True)),
               column("event_type"), column("source"), *[column(name) for name in names if name not in first]]
    query = sge.select(*columns).from_(sge.Table(this=reader.copy(),
                                                 alias=sge.TableAlias(this=sg.to_identifier("t0", quoted=True))))
    types = op.schema
    schema = _view_schema([("ts_event", types["ts_event"]), ("time", UTC_TIMESTAMP),
                           *[(name, types[name]) for name in ("event_type", "source")],
                           *[(name, types[name]) for name in names if name not in first]])
    return str(query.sql(dialect="duckdb")), schema


def as_view(backend: Any, table: ir.Table) -> ir.Table:
    """``table`` as a view of ``backend``, so that queries on it compile a one-table plan.

    Ibis compiles an expression's whole tree on every query; a view of the trail's definition
    (union, projection, deduplication) keeps that cost out of every analysis. Backends without
    views get the expression itself.
    """
    import uuid

    if backend_name(backend) == "duckdb":
        return _duckdb_view(backend, table)[0]
    name = f"ledgerline_events_{uuid.uuid4().hex[:12]}"
    if backend_name(backend) == "pyspark":
        from workbench import _spark

        view = _spark.create_view(backend, name, table)
    else:
        try:
            view = backend.create_view(name, table)
        except (NotImplementedError, AttributeError):
            return table
    if backend_name(backend) == "pyspark":
        # Ibis reads Spark's TIMESTAMP (an instant, microseconds) back without time zone or scale;
        # DuckDB's TIMESTAMPTZ reads back as timestamp('UTC', 6): the same type on both.
        view = view.mutate(time=view.time.cast(dt.Timestamp(timezone="UTC", scale=6)))
        _spark.describable(view, functools.partial(_spark_describe_view, backend))
    return view


def _spark_describe_view(backend: Any, view: ir.Table) -> ir.Table:
    """A trail's Spark ``view`` with its ``description``, as a view of its own (``_spark.describe_view``)."""
    from workbench import _spark, verification
    from workbench.describe import describe

    described = _spark.describe_view(backend, view, describe)
    verification.register_derived_view(described, view)  # its results carry the trail's verification
    return described


def _duckdb_view(backend: Any, table: ir.Table) -> tuple[ir.Table, str]:
    """``as_view`` on DuckDB, and the SQL of the view's definition."""
    # Registering the hot memtable is what Ibis's create_view does first.
    backend._register_in_memory_tables(table)
    sql = _flat_sql(backend, table)
    return _temp_view(backend, sql, _view_schema(table.schema().items())), sql


def _view_schema(columns: Any) -> ibis.Schema:
    """The schema of a view defined by columns (name, type): the definition's, but a timestamp without a
    scale has microseconds (DuckDB's); ``backend.table(name)`` would ask DuckDB and parse every
    column type again (~20 ms of a cold start)."""
    return ibis.schema({column: dt.Timestamp(timezone=dtype.timezone, scale=6)
                        if dtype.is_timestamp() and dtype.scale is None else dtype
                        for column, dtype in columns})


def _temp_view(backend: Any, sql: str, schema: ibis.Schema) -> ir.Table:
    """A new TEMP view of DuckDB ``sql`` whose columns are ``schema``, as an Ibis table.

    TEMP: Ibis's create_view would write a lasting view into a database file the caller opened,
    one that reads this session's temporary views.

    Named by its SQL and schema, not at random: SQL compiled for queries of the view names it, and
    is kept per process (``_compiled.SHARED``), so the same trail opened on a new connection reuses
    it, while another definition (other files, hot rows, bounds, columns) is another name and
    never meets it. The same name on one connection is the same definition: replacing it changes nothing.
    """
    import hashlib

    digest = hashlib.sha256(f"{sql}\0{schema!r}".encode()).hexdigest()[:24]
    name = f"ledgerline_events_{digest}"
    backend.raw_sql(f'CREATE OR REPLACE TEMP VIEW "{name}" AS {sql}')
    from workbench import _nodes

    # An ops.DatabaseTable that keeps its fields: every trail filter and analysis is built on it.
    return _nodes.DatabaseTable(name, schema=schema, source=backend,
                                namespace=ops.Namespace(catalog=None, database=None)).to_expr()


def _flat_sql(backend: Any, table: ir.Table) -> str:
    """DuckDB SQL of ``table`` with its nested projections merged into one and the ``read_parquet``
    views of ``read_cold`` replaced by the ``read_parquet`` call they hold.

    DuckDB binds every layer of a view on every query that reads it: Ibis writes the trail's
    definition as a projection of a projection of a view (55 columns each), which cost each query
    ~1 ms of planning over a single projection of ``read_parquet`` (0.7 to 1.5 ms CPU per query,
    measured on 200k events), a fifth of a 5 ms ``count_by_type``.
    """
    import sqlglot.expressions as sge
    from sqlglot.optimizer.merge_subqueries import merge_subqueries

    # A copy: Ibis's tree shares nodes between places, which merging would rewrite in one place only.
    query = merge_subqueries(backend.compiler.to_sqlglot(table).copy())
    readers = backend.__dict__.get("_ledgerline_readers", {})
    for source in list(query.find_all(sge.Table)):
        reader = readers.get(source.name) if not source.args.get("db") else None
        if reader is not None:
            source.replace(sge.Table(this=reader.copy(), alias=source.args.get("alias")))
    return str(query.sql(dialect="duckdb"))


#: Nodes ``flat_query_sql`` merges the SQL of: a projection, filter, sort or aggregate of one table (what a
#: notebook's query of a trail is); anything else (joins, unions, limits, windows, subqueries) stays as Ibis
#: writes it.
_FLAT_RELATIONS = (ops.DatabaseTable, ops.Filter, ops.Project, ops.Sort, ops.Aggregate)
_NOT_FLAT_VALUES = (ops.WindowFunction, ops.Subquery)


def flat_query_sql(backend: Any, expr: ir.Expr, sql: str) -> str | None:
    """DuckDB SQL of ``expr`` (a query of one table; ``sql`` as Ibis compiles it) with its nested subqueries
    merged, or None (also when ``sql`` has none).

    Ibis writes each projection over a filter as a subquery (described rows, then the columns chosen,
    then their order: three levels, the middle one of 57 values); DuckDB binds every level of every query
    (0.3 to 0.5 ms CPU per call of an 8-column 1-hour query or a ``count_by_type``, measured with EXPLAIN).
    Merged by sqlglot's ``merge_subqueries``, as ``_flat_sql`` merges a trail view's definition. None when
    ``expr`` holds another kind of node (``_FLAT_RELATIONS``), or the merged query would not name the
    columns of ``expr`` in its order.
    """
    import sqlglot as sg
    import sqlglot.expressions as sge
    from sqlglot.optimizer.merge_subqueries import merge_subqueries
    from sqlglot.optimizer.qualify import qualify

    op = expr.op()
    tables = []
    for node in op.find((ops.Relation, *_NOT_FLAT_VALUES)):
        if not isinstance(node, _FLAT_RELATIONS):
            return None
        if isinstance(node, ops.DatabaseTable):
            tables.append(node)
    if len(tables) != 1 or tables[0].namespace.catalog or tables[0].namespace.database:
        return None
    table = tables[0]
    types = backend.compiler.type_mapper
    schema = {table.name: {name: types.to_string(dtype) for name, dtype in table.schema.items()}}
    try:
        # From the text: Ibis's tree holds a builtin function's call (the describe macro) in a form whose
        # columns ``merge_subqueries`` does not rewrite; parsed, it is an ordinary call.
        query = sg.parse_one(sql, dialect="duckdb")
        if query.find(sge.Subquery) is None:
            return None
        query = merge_subqueries(qualify(query, schema=schema, dialect="duckdb", quote_identifiers=True,
                                         validate_qualify_columns=False))
    except Exception:  # sqlglot could not qualify or merge it: Ibis's own SQL
        return None
    if not isinstance(query, sge.Select) or query.named_selects != list(expr.as_table().schema().names):
        return None
    return str(query.sql(dialect="duckdb"))


def described_rows(table: ir.Table) -> ir.Table | None:
    """``table`` with its ``description`` read from a view that holds the expression planned (Spark), or None:
    then ``describe`` is computed in the query (``workbench._spark.described`` says when)."""
    import sys

    spark = sys.modules.get("workbench._spark")  # loaded by any Spark trail; without one, nothing to read
    return None if spark is None else spark.described(table)


def reads_files_per_reference(table: ir.Table) -> bool:
    """Whether ``table``'s engine reads its files again for each reference to them in one query (Spark:
    every branch of a union is a scan of its own), where DuckDB filters one scan per branch cheaply.
    False for a table of no backend (an in-memory table, executed by the default backend)."""
    try:
        backend = table._find_backend(use_default=False)
    except ibis.common.exceptions.IbisError:
        return False
    return backend_name(backend) == "pyspark"


def few_rows(table: ir.Table) -> ir.Table:
    """``table``, whose rows are few and which one query reads several times, ready for that query.

    On Spark its rows are computed now, once, and the query reads them from memory
    (``_spark.fetched``): Spark would compute the subquery again at every reference. Other backends
    get ``table`` itself (DuckDB plans the references together).
    """
    backend = table._find_backend(use_default=False)
    if backend_name(backend) != "pyspark":
        return table
    from workbench import _spark

    return _spark.fetched(backend, table)


def memtable(backend: Any, data: Any) -> ir.Table:
    """A small in-memory table (the hot rows, a pyarrow Table) usable in queries of ``backend``.

    On Spark the rows become a temporary view built from Arrow (``_spark.register_arrow``): Ibis's
    memtable goes through pandas there, which fails on DECIMAL NULLs and turns nullable int64
    into float64. On DuckDB they are copied into a temporary table.
    """
    name = backend_name(backend)
    if name == "pyspark":
        from workbench import _spark

        return _spark.register_arrow(backend, data)
    if name == "duckdb":
        # A temporary DuckDB table, not an Arrow scan: DuckDB 1.5.6 pushes join bloom filters into
        # scans, and an Arrow scan refuses them ("Pushdown Filter Type BLOOM_FILTER is not currently
        # supported in PyArrow Scans"), which broke trade_lifecycle over unconverted rows.
        # Named by the first number free in the connection, not at random: a trail opened again on a
        # new connection then has the same definition, whose SQL ``events_view`` keeps. (The caller's
        # connection may be wrapped by a new backend object at every open: DuckDB's catalog says.)
        taken = {row[0] for row in backend.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE temporary AND starts_with(table_name, 'ledgerline_hot_')"
        ).fetchall()}
        number = next(n for n in itertools.count() if f"ledgerline_hot_{n}" not in taken)
        return backend.create_table(f"ledgerline_hot_{number}", data, temp=True)
    return ibis.memtable(data)  # Ibis registers memtables with whichever backend executes them.
