"""Apache Spark for the workbench: a local session, exact results through Arrow, hot rows as views.

Only ``workbench._backend`` calls this module; the analyses never do. pyspark is imported when a
function here runs, so the workbench works without the ``spark`` extra.

Why a subclass of Ibis's pyspark backend: Ibis 12 fetches Spark results through
``DataFrame.toPandas()``, where an int64 column with NULLs becomes float64 (a nanosecond
timestamp such as ``ts_init`` loses its last digits) and Spark's TIMESTAMP reads back without its
time zone. ``ExactSparkBackend`` fetches through ``DataFrame.toArrow()`` (Spark 4) instead and
builds pandas frames with ``workbench._backend.pandas_result``, as ``ExactDuckDBBackend`` does, so
both engines return the same values and dtypes. Everything else (compilation, views, reading Parquet) is Ibis's.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import ibis
from ibis.backends.pyspark import Backend as _IbisSparkBackend

ibis.pyspark  # noqa: B018 (loading the backend through ibis registers its options, which its compiler reads)

#: Settings of the local session ``local_session`` builds (``spark.master`` aside).
LOCAL_CONF = {
    # The trail's instants are UTC; Ibis sets this too, but a session built here starts right.
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    # One shuffle partition: the analyses narrow to a day or a trade before they group, join or sort,
    # so a shuffle carries few rows. It also spares every ORDER BY a second run of the plan under it:
    # over more than one partition Spark first samples the sort's input to choose range bounds,
    # reading the Parquet files again (measured on the 1-hour query: 3 jobs and 2x the JVM CPU, against
    # 1 job). The default, 200, made 200 tiny tasks per shuffle.
    "spark.sql.shuffle.partitions": "1",
    # Adaptive execution re-plans after every shuffle or broadcast, each run as a job of its own: on
    # these small queries that is pure overhead (count_by_type: 4 jobs with it, 1 without, and less
    # JVM CPU; signal_conversion: 7 and 2). What it adapts to (skew, partition sizes) does not arise
    # with one partition.
    "spark.sql.adaptive.enabled": "false",
    # Arrow between Python and the JVM (hot rows in, results out).
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}


def local_session(cores: int = 2, **conf: str) -> Any:
    """A local ``SparkSession`` (``local[cores]``) with ``LOCAL_CONF`` and ``conf`` on top.

    ``SPARK_LOCAL_IP`` is set to 127.0.0.1 unless already set: the driver binds to loopback and
    no host name lookup can stall start-up. If a session is already running in this process it is
    returned, with the runtime SQL settings of ``LOCAL_CONF`` and ``conf`` applied to it.
    """
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    settings = {**LOCAL_CONF, **conf}
    builder = SparkSession.builder.master(f"local[{cores}]").appName("ledgerline-workbench")
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    for key, value in settings.items():
        if key.startswith("spark.sql."):
            session.conf.set(key, value)
    return session


class ExactSparkBackend(_IbisSparkBackend):  # type: ignore[misc]
    """Ibis's pyspark backend, fetching results through Arrow so that values arrive exactly.

    Queries reuse the SQL compiled for an earlier expression of the same shape
    (``workbench._compiled``, as on DuckDB): Ibis compiling a workbench analysis costs as much as
    Spark planning it (reconstruct_incident's description, trade_lifecycle).
    """

    #: Whether queries reuse SQL compiled for an earlier expression of the same shape.
    reuse_compiled_sql = True

    @property
    def compiled_shapes(self) -> Any:
        """This backend's compiled SQL per expression shape (``workbench._compiled.CompiledShapes``)."""
        shapes = self.__dict__.get("_compiled_shapes")
        if shapes is None:
            from workbench._compiled import CompiledShapes

            shapes = self.__dict__["_compiled_shapes"] = CompiledShapes(self, render=spark_literal)
        return shapes

    def _sql(self, expr: Any, params: Mapping[Any, Any] | None, limit: int | str | None, kwargs: Any) -> str:
        self._run_pre_execute_hooks(expr)
        if params or kwargs or not self.reuse_compiled_sql:
            return str(self.compile(expr.as_table(), params=params, limit=limit, **kwargs))
        return str(self.compiled_shapes.sql(expr.as_table(), limit))

    def to_pyarrow(self, expr: Any, /, *, params: Mapping[Any, Any] | None = None, limit: int | str | None = None,
                   **kwargs: Any) -> Any:
        table = self._session.sql(self._sql(expr, params, limit, kwargs)).toArrow()
        return expr.__pyarrow_result__(table)

    def execute(self, expr: Any, /, *, params: Mapping[Any, Any] | None = None, limit: int | str | None = None,
                **kwargs: Any) -> Any:
        """Execute ``expr``; pandas results as on DuckDB (``workbench._backend.pandas_result``)."""
        from workbench._backend import pandas_result

        table = self._session.sql(self._sql(expr, params, limit, kwargs)).toArrow()
        return pandas_result(expr, table)


def spark_literal(value: Any) -> str:
    """A value ``workbench._compiled`` lifts (int or str), written as Ibis writes it in Spark SQL.

    Strings through sqlglot's Spark generator, Ibis's own path (``\\'`` and ``\\\\`` escapes: Spark
    reads a backslash in a literal as an escape, and DuckDB's doubled quote as two strings run together).
    Integers as on DuckDB.
    """
    if isinstance(value, str):
        import sqlglot.expressions as sge
        from ibis.backends.sql.compilers.pyspark import compiler

        return str(sge.convert(value).sql(dialect=compiler.dialect))
    from workbench._compiled import _render

    return _render(value)


def connect(session: Any = None) -> ExactSparkBackend:
    """An ``ExactSparkBackend`` over ``session`` (default ``local_session()``)."""
    return ExactSparkBackend().connect(local_session() if session is None else session)


def exact(backend: Any) -> ExactSparkBackend:
    """``backend`` itself if it fetches exactly, else an ``ExactSparkBackend`` over the same session.

    Temporary views belong to the session, so tables registered through either object are
    visible to both.
    """
    return backend if isinstance(backend, ExactSparkBackend) else connect(backend._session)


def create_view(backend: Any, name: str, table: Any) -> Any:
    """``table`` as the temporary view ``name`` holding Spark's analyzed plan; returns it as an Ibis table.

    Ibis's ``create_view`` writes ``CREATE TEMPORARY VIEW ... AS <SQL>``: Spark keeps the SQL text and
    parses and analyzes it again in every query that reads the view. A view made from a DataFrame keeps
    the plan analyzed once, over the same rows (the Parquet files were listed when the trail was opened,
    either way). Measured A/B in one session on 1M events (under load): 0-20% less driver+JVM CPU per
    query, most on the longest plans (reconstruct_incident 20%, signal_conversion 10%, a 1-hour query ~1%).
    """
    backend._register_in_memory_tables(table)
    backend._session.sql(str(backend.compile(table))).createOrReplaceTempView(name)
    return backend.table(name)


def register_arrow(backend: Any, table: Any, prefix: str = "ledgerline_hot") -> Any:
    """``table`` (pyarrow) as a temporary Spark view; returns it as an Ibis table of ``backend``.

    Ibis's own memtable goes through pandas, where a DECIMAL column with NULLs fails and int64
    with NULLs becomes float64. Spark 4 builds a DataFrame from Arrow directly, keeping int64,
    DECIMAL(38,18) and NULLs as they are.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    backend._session.createDataFrame(table).createOrReplaceTempView(name)
    return backend.table(name)


#: Tables whose rows have a twin with a ``description`` column (``described``): a table's op -> its twin's
#: op, or a function making the twin on first use. Weak: an entry goes with the table it describes.
_TWINS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def describable(table: Any, make_twin: Callable[[Any], Any]) -> None:
    """Let ``described`` read descriptions of ``table``'s rows from ``make_twin(table)``: ``table``'s columns
    and rows, then ``description`` (``workbench.describe.describe`` of each row), made when first needed.
    (``make_twin`` is given ``table`` rather than holding it: an entry holding its own key would never go.)"""
    _TWINS[table.op()] = make_twin


def described(table: Any) -> Any:
    """``table`` with its ``description`` column read from twins (``describable``), or None where it cannot be.

    Spark parses and analyzes the description's SQL (about 13k characters) in every query that holds it:
    a third of a narrow 1-hour query's time and more of an incident's. A twin is a view whose plan holds
    the expression analyzed once (``describe_view``), or fetched rows already described; a query reads
    its ``description`` by name. The twin takes the place of each described table in ``table``'s tree;
    the result is used only when ``description`` reaches the top, which it does only through nodes that
    keep their input's rows and columns as they are (filters, sorts, limits, unions): every other node
    names its columns, so a row changed on the way (a ``mutate``, a join, an aggregate) would lose it, and
    the caller falls back to computing the expression.
    """
    if not _TWINS:
        return None
    op = table.op()
    try:
        bases = list(op.find(lambda node: node in _TWINS))
    except TypeError:  # a node that cannot be weakly referred to: none of the twins' tables
        return None
    if not bases:
        return None
    twins = {}
    for base in bases:
        twin = _TWINS[base]
        if callable(twin):
            twin = _TWINS[base] = twin(base.to_expr()).op()
        twins[base] = twin
    try:
        rows = op.replace(twins).to_expr()
        schema = rows.schema()
    except Exception:  # a node refusing the twin's extra column (a union of described and plain rows)
        return None
    if list(schema.names) != [*table.columns, "description"] or not schema["description"].is_string():
        return None
    return rows


def describe_view(backend: Any, table: Any, describe: Callable[[Any], Any]) -> Any:
    """``table`` (a trail's view, ``create_view``) and ``describe(table)`` as ``description``, a view of its own
    whose plan Spark analyzed once; its timestamp read back as ``table``'s."""
    name = f"ledgerline_described_{uuid.uuid4().hex[:12]}"
    view = create_view(backend, name, table.mutate(description=describe(table)))
    schema = table.schema()
    return view.select(*[view[column].cast(schema[column]).name(column) if view.schema()[column] != schema[column]
                         else view[column] for column in schema.names], view.description)


def fetched(backend: Any, table: Any) -> Any:
    """The rows of ``table`` (an Ibis table of ``backend``), computed now, as a temporary view of them.

    For a few rows that one query reads several times: Spark inlines every reference to a subquery,
    so each is computed again where it is used (``trade_lifecycle`` read its narrowed rows at every one
    of its references: 141 Parquet scans and 40 broadcast joins per call on a 1M-event trail, 30 s).
    The view holds the fetched rows (a local relation, no file read), with ``table``'s column types;
    it is dropped when no Ibis expression refers to it any more. Rows that ``described`` can describe
    are fetched with their ``description`` too, and the table returned is ``describable`` from them.

    The view is named by a digest of its rows (and their schema): the same rows give the same name, so
    a query over them has the same shape as before and reuses its compiled SQL (``ExactSparkBackend``),
    where a fresh name per call made Ibis compile trade_lifecycle's query again on every call (1-2 s).
    A name always means the same rows, so expressions sharing one cannot see each other's rows; the
    view is dropped when the last of them goes.
    """
    from workbench import verification

    # Rows of a described table (a trail's) are fetched with their description, read by name from its
    # twin: a query over the fetched rows that describes them then reads it by name too (``described``),
    # where it held the whole expression (trade_lifecycle: 40k characters of SQL, twice the description,
    # for Spark to parse, analyze and optimize on every call, over a few dozen rows).
    with_description = described(table)
    rows = (table if with_description is None else with_description).to_pyarrow()
    name = f"ledgerline_rows_{_digest(rows)}"
    session = backend._session
    key = (id(session), name)
    # Registered again even when an expression already holds it (the same rows): a view dropped or
    # replaced behind this module's back is put right. In one partition: a single partition satisfies
    # every window's and sort's distribution, so a query over the rows shuffles nothing (the lifecycle's
    # windows and causal sort were 5 exchanges, a stage each: on 1M events its final query's toArrow
    # took 430-670 ms with them, 300-480 without, under load 2-4).
    session.createDataFrame(rows).coalesce(1).createOrReplaceTempView(name)
    _VIEW_USERS[key] = _VIEW_USERS.get(key, 0) + 1
    view = backend.table(name)
    weakref.finalize(view.op(), _release_view, session, name)
    verification.register_derived_view(view, table)  # results over these rows say how their trail was verified
    schema = table.schema()
    # Arrow's timestamp reads back from Spark without its time zone: the columns as ``table`` has them.
    columns = [view[column].cast(schema[column]).name(column) if view.schema()[column] != schema[column]
               else view[column] for column in schema.names]
    plain = view.select(*columns)
    if with_description is not None:
        twin = view.select(*columns, view.description)
        describable(plain, lambda _: twin)
    return plain


#: Live Ibis tables per fetched view (session id, view name): ``fetched`` shares a view between equal rows.
_VIEW_USERS: dict[tuple[int, str], int] = {}


def _digest(rows: Any) -> str:
    """A digest of a pyarrow Table's schema and values (its Arrow IPC stream)."""
    import hashlib

    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:24]


def _release_view(session: Any, name: str) -> None:
    key = (id(session), name)
    users = _VIEW_USERS.pop(key, 1) - 1
    if users > 0:
        _VIEW_USERS[key] = users
        return
    with contextlib.suppress(Exception):  # a stopped session, or the interpreter shutting down: nothing to free
        session.catalog.dropTempView(name)


#: Spark's switch for its vectorized (columnar, fast) Parquet reader.
VECTORIZED_READER = "spark.sql.parquet.enableVectorizedReader"
#: Set on a session once a cold file using BYTE_STREAM_SPLIT was opened through it: the reader stays off.
ROW_READER_MARK = "ledgerline.parquet.rowReader"


def prepare_for_cold(backend: Any, files: Iterable[Path]) -> bool:
    """Session settings for reading the cold Parquet ``files`` on Spark 4.0; returns whether the fast reader stays on.

    The converter writes v1 data pages (PLAIN and dictionary encodings), which Spark's vectorized
    reader reads. Stores converted before that hold v2 pages, where DuckDB encodes DOUBLE columns as
    BYTE_STREAM_SPLIT, which the vectorized reader refuses ("Unsupported encoding: BYTE_STREAM_SPLIT"):
    if any file uses it, the session falls back to the parquet-mr row reader (several times slower), and keeps
    it for good (``ROW_READER_MARK``), because tables opened earlier on the session read lazily and one
    of them may hold such files. ``ledgerline convert --rebuild`` writes an old store again in v1 pages.
    Only the footers are read (the encodings of each row group's DOUBLE and FLOAT columns).
    """
    from audit_core.cold._parquet import uses_byte_stream_split

    session = backend._session
    if any(uses_byte_stream_split(file) for file in files):
        session.conf.set(ROW_READER_MARK, "true")
    if session.conf.get(ROW_READER_MARK, "false") == "true":
        session.conf.set(VECTORIZED_READER, "false")
        return False
    return str(session.conf.get(VECTORIZED_READER, "true")).lower() == "true"

