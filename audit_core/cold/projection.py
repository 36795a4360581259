"""The cold projection: how each typed column of the cold store is derived from a record line.

The stored record is the evidence; every typed column the workbench reads (``COLUMNS``) is a
projection of it, computed by one DuckDB expression per column. The converter writes the columns
with these expressions, ``read_hot_file`` reads today's hot files with them, and ``verify_cold``
derives them again from each row's stored record and compares (``IS DISTINCT FROM``), so a column
edited after conversion is found by file, row and column.

``PROJECTION_VERSION`` numbers this mapping. It is stored in each manifest entry and in each
Parquet file's key-value metadata; changing any expression or column means a new version, and a
cold store is then rebuilt from its verified records (never rewritten as evidence).

The expressions read, per row: ``line`` (the whole record line, VARCHAR), ``j``
(``json_transform(line, structure())``), ``record`` (the cold layout of the line, or NULL to strip
``line``), ``torn_bytes`` and ``torn_ts`` (a torn line's bytes and the time it is filed under),
``source_line``, and the query parameter ``$stream``.
"""

from __future__ import annotations

import json

from audit_core.trust.record import STRIP_SQL

#: Version of ``COLUMNS`` and their expressions (see the module docstring).
PROJECTION_VERSION = 1
#: The Parquet key-value metadata key holding ``PROJECTION_VERSION``.
PROJECTION_METADATA_KEY = "ledgerline.projection_version"
#: The event type of a row that stands for a torn line.
TORN_EVENT_TYPE = "sys.torn_line"

#: The cold schema: (column, type, how it is read). Stable: a test pins it. "field" columns come
#: straight from the record's key of that name; "json" keeps the value as JSON text; "num:<key>"
#: is the value of <key> when it is a number, "text:<key>" when it is a string (decoded: no quotes,
#: no escapes), "bool:<key>" when it is true/false, "container:<key>" (JSON text) when it is an
#: array or object, NULL otherwise; "decimal" parses the decimal string exactly; "owner" is the
#: record's ``owner`` on ``param.*`` rows, else their ``source`` (a record without one, written
#: before the field existed or by its owner, is a change by the owner), NULL on other rows.
_DECIMAL = "DECIMAL(38,18)"
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("ts_event", "BIGINT", "field"),
    ("event_type", "VARCHAR", "field"),
    ("source", "VARCHAR", "field"),
    ("trader_id", "VARCHAR", "field"),
    ("stream", "VARCHAR", "stream"),
    ("sequence", "BIGINT", "field"),
    ("correlation_id", "VARCHAR", "field"),
    ("prev_hash", "VARCHAR", "field"),
    ("checksum", "VARCHAR", "field"),
    ("owner", "VARCHAR", "owner"),
    ("param_name", "VARCHAR", "field"),
    ("old_value", "VARCHAR", "json"),
    ("new_value", "VARCHAR", "json"),
    ("old_value_num", "DOUBLE", "num:old_value"),
    ("new_value_num", "DOUBLE", "num:new_value"),
    ("old_value_text", "VARCHAR", "text:old_value"),
    ("new_value_text", "VARCHAR", "text:new_value"),
    ("old_value_bool", "BOOLEAN", "bool:old_value"),
    ("new_value_bool", "BOOLEAN", "bool:new_value"),
    ("old_value_json", "VARCHAR", "container:old_value"),
    ("new_value_json", "VARCHAR", "container:new_value"),
    ("trigger_reason", "VARCHAR", "field"),
    ("strategy_source", "VARCHAR", "field"),
    ("signal_value", "DOUBLE", "field"),
    ("confidence", "DOUBLE", "field"),
    ("regime", "VARCHAR", "field"),
    ("acted_on", "BOOLEAN", "field"),
    ("filter_reason", "VARCHAR", "field"),
    ("instrument_id", "VARCHAR", "field"),
    ("order_id", "VARCHAR", "field"),
    ("side", "VARCHAR", "field"),
    ("size", _DECIMAL, "decimal"),
    ("price", _DECIMAL, "decimal"),
    ("expected_price", _DECIMAL, "decimal"),
    ("slippage_bps", _DECIMAL, "decimal"),
    ("realized_pnl", _DECIMAL, "decimal"),
    ("commission", _DECIMAL, "decimal"),
    ("currency", "VARCHAR", "field"),
    ("position_id", "VARCHAR", "field"),
    ("reason", "VARCHAR", "field"),
    ("order_type", "VARCHAR", "field"),
    ("venue_order_id", "VARCHAR", "field"),
    ("trade_id", "VARCHAR", "field"),
    ("liquidity_side", "VARCHAR", "field"),
    ("realized_return", _DECIMAL, "decimal"),
    ("avg_px_open", _DECIMAL, "decimal"),
    ("avg_px_close", _DECIMAL, "decimal"),
    ("duration_ns", "BIGINT", "field"),
    ("ts_init", "BIGINT", "field"),
    ("payload", "VARCHAR", "json"),
    ("record", "VARCHAR", "record"),
    ("source_line", "BIGINT", "batch"),
    ("torn_bytes", "BLOB", "batch"),
)


#: Columns that are not derived from the record but carry it (``record``, ``torn_bytes``, ``source_line``):
#: the hashes bind them, not a projection.
STORED_KINDS = frozenset({"record", "batch"})
#: The columns ``verify_cold`` derives again and compares.
DERIVED_COLUMNS = tuple((name, sql_type, kind) for name, sql_type, kind in COLUMNS if kind not in STORED_KINDS)


def structure() -> str:
    """The json_transform structure: each line is parsed once, into one struct."""
    keys = {}
    for name, sql_type, kind in COLUMNS:
        if kind == "field":
            keys[name] = sql_type
        elif kind in ("json",):
            keys[name] = "JSON"
        elif kind == "owner":
            keys[name] = "VARCHAR"
        elif kind == "decimal":
            keys[name] = "VARCHAR"  # the exact text; cast below
    return json.dumps(keys)


def derivation(name: str, sql_type: str, kind: str) -> str:
    """The DuckDB expression (typed, without an alias) of one column of ``COLUMNS``."""
    if name == "ts_event":
        expression = "coalesce(j.ts_event, torn_ts)"
    elif name == "event_type":
        expression = f"CASE WHEN torn_bytes IS NULL THEN j.event_type ELSE '{TORN_EVENT_TYPE}' END"
    elif kind == "stream":
        expression = "$stream"
    elif kind == "record":
        expression = f"coalesce(record, {STRIP_SQL})"
    elif kind == "batch":
        expression = name
    elif kind == "owner":
        expression = "CASE WHEN starts_with(j.event_type, 'param.') THEN coalesce(j.owner, j.source) END"
    elif kind.startswith("num:"):
        value = f"j.{kind[4:]}"
        numeric = f"json_type({value}) IN ('BIGINT', 'UBIGINT', 'DOUBLE')"
        expression = f"CASE WHEN {numeric} THEN TRY_CAST({value} AS DOUBLE) END"  # TRY: CASE may not guard
    elif kind.startswith("text:"):
        value = f"j.{kind[5:]}"
        # json_extract_string decodes the JSON string exactly (\", \\, \u00e9, surrogate pairs).
        expression = f"CASE WHEN json_type({value}) = 'VARCHAR' THEN json_extract_string({value}, '$') END"
    elif kind.startswith("bool:"):
        value = f"j.{kind[5:]}"
        expression = f"CASE WHEN json_type({value}) = 'BOOLEAN' THEN TRY_CAST({value} AS BOOLEAN) END"
    elif kind.startswith("container:"):
        value = f"j.{kind[10:]}"
        expression = f"CASE WHEN json_type({value}) IN ('ARRAY', 'OBJECT') THEN {value} END"
    else:
        expression = f"j.{name}"
    return f"CAST({expression} AS {sql_type})"


#: The SELECT list that turns rows (see the module docstring) into the cold schema.
SELECT = ",\n    ".join(f"{derivation(*column)} AS {column[0]}" for column in COLUMNS)
