"""One readable line per audit record, added to a query's rows on request.

``trail.events`` has no description column (a view holding the long expression slows every query
on it); ``with_description(rows)`` adds one to the rows a query narrowed to, and
``reconstruct_incident`` and ``trade_lifecycle`` include it.

Examples
--------
>>> import ibis
>>> from workbench.describe import describe, with_description
>>> columns = ["event_type", "source", "param_name", "old_value", "new_value", "trigger_reason"]
>>> t = ibis.memtable([("param.risk_change", "meta_controller", "risk_multiplier", "1.0", "0.5", None)],
...                   schema=dict.fromkeys(columns, "string"))
>>> t.select(d=describe(t)).d.execute()[0]
'meta_controller changed risk_multiplier: 1.0 -> 0.5 (no reason given)'
>>> with_description(t).columns[-1]
'description'
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import ibis.expr.types as ir

from workbench import _nodes
from workbench._columns import decimal_text, float_text, float_texts


def describe(t: ir.Table) -> ir.StringValue:
    """One human-readable line per event of ``t``, by event type; unknown types show their payload.

    Reads whichever of the cold columns ``t`` has (a missing one reads as ``?``). A column
    expression of ``t``; ``with_description(t)`` adds it to ``t`` as ``description``.
    """
    return _describe(t, float_text)


def _describe(t: ir.Table, floats: Callable[[ir.FloatingValue], ir.StringValue]) -> ir.StringValue:
    """``describe(t)`` with doubles written by ``floats`` (``float_text``, or on DuckDB its function twin)."""
    kind = t.event_type
    columns = set(t.columns)

    def text(value: ir.Value) -> ir.StringValue:
        return _text(value, floats)

    def col(name: str, missing: str = "?") -> ir.StringValue:
        if name not in columns:
            return ibis.literal(missing)
        return text(t[name]).fill_null(missing)

    order = col("order_id")
    branches = [
        (kind.startswith("param."),
         col("source") + " changed " + col("param_name") + ": " + col("old_value", "null") + " -> "
         + col("new_value", "null") + " (" + col("trigger_reason", "no reason given") + ")"),
    ]
    if "acted_on" in columns:
        branches.append((kind.startswith("trade.signal"),
                         col("strategy_source") + " signal " + col("signal_value") + " on " + col("instrument_id")
                         + " (confidence " + col("confidence") + "): "
                         + ibis.ifelse(t.acted_on.fill_null(True), ibis.literal("acted on"),
                                       "filtered, " + col("filter_reason"))))
    branches += [
        (kind == "trade.order", col("strategy_source") + " submitted order " + order + ": " + col("side") + " "
         + col("size") + " " + col("instrument_id")),
        (kind == "trade.order.accepted", "order " + order + " accepted (venue id " + col("venue_order_id") + ")"),
        # The rest of an order's life (NautilusTrader observer): updated, triggered, pending_update, ...
        (kind.startswith("trade.order."), "order " + order + " " + kind.substr(12).replace("_", " ")
         + _optional(t, "price", " @ ", "", text) + _optional(t, "reason", ": ", "", text)),
        (kind == "trade.fill", "order " + order + " filled: " + col("side") + " " + col("size") + " "
         + col("instrument_id") + " @ " + col("price") + _optional(t, "slippage_bps", " (slippage ", " bps)", text)),
        (kind == "trade.rejected", "order " + order + " rejected: " + col("reason", "no reason given")),
        (kind == "trade.canceled", "order " + order + " " + col("reason", "canceled")),
        (kind == "trade.position_opened", col("strategy_source") + " opened position " + col("position_id") + ": "
         + col("side") + " " + col("size") + " " + col("instrument_id") + " @ " + col("price")),
        (kind == "trade.position_changed", "position " + col("position_id") + " changed: " + col("side") + " "
         + col("size") + " " + col("instrument_id") + ", realized P&L " + col("realized_pnl", "0") + " "
         + col("currency", "")),
        (kind == "trade.position_closed", col("strategy_source") + " closed position " + col("position_id") + " on "
         + col("instrument_id") + ": realized P&L " + col("realized_pnl") + " " + col("currency", "")),
    ]
    fallback = kind + " from " + col("source") + ": " + col("payload", "{}").substr(0, 160)
    return ibis.cases(*branches, else_=fallback)


def with_description(table: ir.Table) -> ir.Table:
    """``table`` with a ``description`` column (``describe(table)``) after its own columns; lazy.

    Narrow ``table`` first (``trail.filter(...)``, a ``select`` of the rows wanted): the line is
    computed only for the rows a query returns, and a select that leaves it out costs nothing.

    Parameters
    ----------
    table
        Rows of ``trail.events`` (or a table with some of its columns, such as ``event_type``,
        ``source``, ``param_name``, ``order_id``).

    Returns
    -------
    ir.Table
        ``table``'s columns, then ``description`` (string).

    Raises
    ------
    WorkbenchInputError
        ``table`` already has a ``description`` column, or no ``event_type`` column.

    Examples
    --------
    >>> import shutil, tempfile
    >>> from benchmarks.trail_gen import generate_trail
    >>> from workbench import open_trail
    >>> base = tempfile.mkdtemp()
    >>> _ = generate_trail(base, events=200, days=1, seed=5)
    >>> trail = open_trail(base)
    >>> fills = with_description(trail.filter(event_type="trade.fill"))
    >>> fills.select("description").limit(1).to_pandas()["description"][0].startswith("order ")
    True
    >>> shutil.rmtree(base)
    """
    from workbench.errors import WorkbenchInputError

    if "description" in table.columns:
        raise WorkbenchInputError("table already has a 'description' column: with_description(table) adds one; "
                                  "pass the table without it (table.drop('description'))")
    if "event_type" not in table.columns:
        raise WorkbenchInputError(f"table has no 'event_type' column: a description is written per event type; "
                                  f"got columns {list(table.columns)}")
    from workbench._backend import described_rows

    rows = described_rows(table)
    if rows is not None:  # Spark: read from a view holding the expression, planned once
        return rows
    fields = _nodes.fields(table.op())
    described = _described(table, fields)
    if not isinstance(described.op(), ops.ScalarUDF):  # the portable expression (not DuckDB)
        return table.mutate(description=described)
    # The macro's call: the node ``table.mutate`` makes, built from one set of the table's fields
    # (``mutate`` would make them again, and bind and rewrite the call, ~1 ms of Ibis per query),
    # without Ibis's validation of its 57 values (``_nodes``: they are the table's own fields).
    node = _nodes.project(table.op(), {**fields, "description": described.op()})
    return _nodes.Rows(_nodes.derived(node, ("describe", type(described.op()))))


#: Every column ``describe`` reads (when the table has it).
DESCRIBE_COLUMNS = (
    "event_type", "source", "param_name", "old_value", "new_value", "trigger_reason", "strategy_source",
    "signal_value", "instrument_id", "confidence", "acted_on", "filter_reason", "order_id", "side", "size",
    "venue_order_id", "price", "slippage_bps", "reason", "position_id", "realized_pnl", "currency", "payload",
)


def _described(table: ir.Table, fields: Any = None) -> ir.StringValue:
    """``describe(table)``; on DuckDB, a call of a temporary macro holding the same expression.

    The expression is long (its SQL about 14k characters): built, compiled and bound on every
    query it would cost more than the rows it describes. The macro's body is ``describe`` compiled
    once per process (per column types), with doubles written by the function ``FLOAT_TEXT_FUNCTION``
    (the same text as ``float_text``, whose SQL alone took DuckDB ~3 ms per column to bind on every
    query), so DuckDB computes the same text; other backends get ``describe`` itself.
    """
    from workbench._backend import backend_name

    try:
        backend = table._find_backend(use_default=False)
    except Exception:  # no backend, or more than one: the portable expression
        return describe(table)
    if backend_name(backend) != "duckdb" or not hasattr(backend, "con"):
        return describe(table)
    columns = tuple((name, table.schema()[name]) for name in DESCRIBE_COLUMNS if name in table.columns)
    name, body, call = _duckdb_describe(columns)
    registered = backend.__dict__.setdefault("_ledgerline_macros", set())
    if name not in registered:
        if FLOAT_TEXT_FUNCTION not in registered:
            _register_float_text(backend.con)
            registered.add(FLOAT_TEXT_FUNCTION)
        parameters = ", ".join(f'"{column}"' for column, _ in columns)
        backend.con.execute(f"CREATE OR REPLACE TEMP MACRO {name}({parameters}) AS {body}")
        registered.add(name)
    fields = table.op().fields if fields is None else fields
    # The call's arguments are the table's fields of the types the macro was made for (``columns``):
    # made without Ibis's validation of its 23 arguments (``_nodes``).
    node = _nodes.make(call, **{argument: fields[column] for argument, (column, _) in zip(call.__argnames__, columns,
                                                                                          strict=True)})
    return node.to_expr()


#: The DuckDB macro the describe macro writes doubles with: ``float_text`` for DuckDB's own text of a
#: double. DuckDB writes a double with an exponent exactly where Python's ``repr`` does (magnitude
#: below 1e-4 or from 1e16 on) and otherwise its shortest digits, an integer with ``.0``; so an
#: integer below 1e16 is written as the integer it is exactly, any other value in that range as DuckDB
#: writes it, and the rest (exponents, infinities, NaN, both zeros) goes to the Python function
#: ``FLOAT_TEXT_PYTHON`` (``_columns.float_texts``, right for any double). Trimming DuckDB's text
#: instead (``rtrim``) cost 270 ns a value, twice the cast itself: ~2 ms of a 10M trail's hour.
FLOAT_TEXT_FUNCTION = "ledgerline_float_text"
FLOAT_TEXT_PYTHON = "ledgerline_float_text_py"
_FLOAT_TEXT_SQL = ("CASE WHEN x IS NULL THEN NULL "
                   "WHEN x <> 0 AND x = trunc(x) AND abs(x) < 1e16 THEN CAST(CAST(x AS HUGEINT) AS VARCHAR) "
                   "WHEN x <> trunc(x) AND abs(x) >= 1e-4 AND abs(x) < 1e16 THEN CAST(x AS VARCHAR) "
                   f"ELSE {FLOAT_TEXT_PYTHON}(x) END")


@ibis.udf.scalar.builtin(name=FLOAT_TEXT_FUNCTION)
def _duckdb_float_text(value: dt.float64) -> dt.string:  # type: ignore[empty-body]
    """``float_text(value)`` on DuckDB (``FLOAT_TEXT_FUNCTION``), not 5,000 characters of SQL to bind per query."""


def _duckdb_floats(value: ir.FloatingValue) -> ir.StringValue:
    return _duckdb_float_text(value) if value.type().is_float64() else float_text(value)


def _register_float_text(con: Any) -> None:
    """Register ``FLOAT_TEXT_PYTHON`` and the macro ``FLOAT_TEXT_FUNCTION`` on a DuckDB connection, unless
    it has them (a second backend object over one connection: DuckDB refuses a second function of a name).

    A Python function costs DuckDB a few microseconds a value to call (Arrow both ways, the GIL):
    3 ms for an hour's signals, measured, so only text with an exponent goes to it.
    """
    present = con.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name = ?",
                          [FLOAT_TEXT_PYTHON]).fetchone()
    if not (present and present[0]):
        con.create_function(FLOAT_TEXT_PYTHON, float_texts, ["DOUBLE"], "VARCHAR", type="arrow")
    con.execute(f"CREATE OR REPLACE TEMP MACRO {FLOAT_TEXT_FUNCTION}(x) AS {_FLOAT_TEXT_SQL}")


@functools.cache
def _duckdb_describe(columns: tuple[tuple[str, Any], ...]) -> tuple[str, str, Any]:
    """The DuckDB macro of ``describe`` over ``columns`` (name, Ibis type): its name, body and the Ibis node
    class of its call (an Ibis builtin)."""
    import hashlib

    import sqlglot.expressions as sge
    from ibis.backends.sql.compilers import DuckDBCompiler

    unbound = ibis.table(dict(columns), name="ledgerline_describe_input")
    select = DuckDBCompiler().to_sqlglot(unbound.select(description=_describe(unbound, _duckdb_floats)))
    (aliased,) = select.expressions
    body = aliased.this.transform(lambda node: sge.column(node.name, quoted=True)
                                  if isinstance(node, sge.Column) else node)
    sql = body.sql(dialect="duckdb")
    digest = hashlib.sha256(repr(columns).encode() + sql.encode()).hexdigest()[:16]
    name = f"ledgerline_describe_{digest}"
    arguments = [f"a{i}" for i in range(len(columns))]
    namespace: dict[str, Any] = {}
    exec(f"def {name}({', '.join(arguments)}): ...", namespace)  # fixed identifiers only
    function = ibis.udf.scalar.builtin(namespace[name], name=name,
                                       signature=(tuple(dtype for _, dtype in columns), dt.string))
    return name, sql, type(function(*[unbound[column] for column, _ in columns]).op())


def _optional(t: ir.Table, name: str, before: str, after: str,
              text: Callable[[ir.Value], ir.StringValue]) -> ir.StringValue:
    """``before + text(value) + after`` when the row has a value in column ``name``, else nothing."""
    if name not in t.columns:
        return ibis.literal("")
    value = t[name]
    return ibis.ifelse(value.isnull(), ibis.literal(""), before + text(value) + after)


def _text(value: ir.Value, floats: Callable[[ir.FloatingValue], ir.StringValue]) -> ir.StringValue:
    """A value as text, the same on every engine (decimals and doubles without exponents or padding)."""
    if value.type().is_decimal():
        return decimal_text(value)
    if value.type().is_floating():
        return floats(value)
    return value.cast("string")
