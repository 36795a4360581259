"""The cold projection: how each typed column of the cold store is derived from a record line.

The stored record is the evidence; every typed column the workbench reads (``COLUMNS``) is a
projection of it, computed by one DuckDB expression per column. The converter writes the columns
with these expressions, ``read_hot_file`` reads today's hot files with them, and ``verify_cold``
derives them again from each row's stored record and compares (``IS DISTINCT FROM``), so a column
edited after conversion is found by file, row and column.

``PROJECTION_VERSION`` numbers this mapping. It is stored in each manifest entry and in each
Parquet file's key-value metadata; changing any expression or column means a new version, kept
here beside the old ones (``PROJECTIONS``): ``verify_cold`` derives each file's columns with the
version it was written with, so a store whose hot files are gone stays verifiable, and
``ledgerline convert --rebuild`` (``rebuild.py``) derives an old store's columns again with the
current version from its verified records (the evidence is carried over, never rewritten).

Versions: 1, the first; 2 adds ``record_format`` (the record's format version, ``RECORD_FORMAT``);
3 adds ``ts_recorded`` (when the emitter recorded the record; NULL for records before format 3);
4 drops the ``prev_hash`` column: a record's ``prev_hash`` is the checksum of the row one source
line before it in the same file, so ``record`` leaves it out only where that row gives it back
(``chained_rows``) and keeps it everywhere else (a file's first row, a day's first row, the row
after a torn line, a ``null`` one); and ``record`` leaves out the values of ``ts_event``,
``sequence`` and ``ts_recorded``, which are in their columns (``trust.record.INT_FIELDS``).

The expressions read, per row: ``line`` (the whole record line, VARCHAR), ``j``
(``json_transform(line, structure())``), ``record`` (the cold layout of the line, or NULL to strip
``line``), ``torn_bytes`` and ``torn_ts`` (a torn line's bytes and the time it is filed under),
``source_line``, and the query parameter ``$stream``.
"""

from __future__ import annotations

import json

from audit_core.trust.record import (
    BODY_SQL,
    INT_FIELDS,
    KEPT_PREV_SQL,
    QUOTED_HASH_LEN,
    STRIP_SQL,
    STRIPPED_SQL,
    SUFFIX_LEN,
    UNSTRIPPED_SQL,
    body_sql,
    insert_int_sql,
    strip_int_sql,
)

#: Version of ``COLUMNS`` and their expressions (see the module docstring).
PROJECTION_VERSION = 4
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
Columns = tuple[tuple[str, str, str], ...]
_VERSION_1: Columns = (
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
_VERSION_3: Columns = (*_VERSION_1[:9], ("record_format", "SMALLINT", "format"), ("ts_recorded", "BIGINT", "field"),
                       *_VERSION_1[9:])
#: Every projection version's columns. "format" is the record's ``format``, 1 when it has none.
PROJECTIONS: dict[int, Columns] = {
    1: _VERSION_1,
    2: (*_VERSION_1[:9], ("record_format", "SMALLINT", "format"), *_VERSION_1[9:]),
    3: _VERSION_3,
    4: tuple(column for column in _VERSION_3 if column[0] != "prev_hash"),
}
#: The prior row's checksum as a JSON value for ``chained_rows``: quoted, or ``null`` when there is none.
_PRIOR_JSON = """coalesce('"' || prior || '"', 'null')"""
#: The first version without a ``prev_hash`` column (its records chain to the row one source line before).
DERIVED_PREV_HASH_SINCE = 4
#: The columns the converter writes now.
COLUMNS = PROJECTIONS[PROJECTION_VERSION]


def _one_step_sql() -> tuple[str, str]:
    """(guard, record): where ``guard`` holds, ``record`` is what ``strip_int_sql`` of each of ``INT_FIELDS``
    in turn makes of a working ``record`` (``STRIP_SQL``'s), built as one string from three slices.

    The guard asks for the layout every current record has: ``ts_event`` first, then the first
    ``"sequence":``, then the first ``"ts_recorded":``, each followed by its column's text and a
    comma. There each step of the chain finds its key where it is in the first record (taking out
    digits neither hides nor makes a key), so the slices are the chain's result. Other records
    (older formats without ``ts_recorded``, anything unusual) are left to the chain itself.
    """
    assert INT_FIELDS == ("ts_event", "sequence", "ts_recorded")  # the layout order the slices follow
    first = '"ts_event":'
    ts_text = "CAST(ts_event AS VARCHAR)"
    ts_end = f"({len(first) + 2} + length({ts_text}))"  # ts_event's value starts after '{"ts_event":'
    guard = [f"starts_with(record, '{{{first}' || {ts_text} || ',')"]
    spans = []  # (value start, value end) of sequence and ts_recorded
    for name in INT_FIELDS[1:]:
        key, text = f'"{name}":', f"CAST({name} AS VARCHAR)"
        at = f"instr(record, '{key}')"
        # The first key is followed by the text and a comma (instr, not substr: it counts no characters).
        guard.append(f"{at} > 0 AND instr(record, '{key}' || {text} || ',') = {at}")
        spans.append((f"({at} + {len(key)})", f"({at} + {len(key)} + length({text}))"))
    guard += [f"{ts_end} < instr(record, '\"sequence\":')", f"{spans[0][1]} < instr(record, '\"ts_recorded\":')"]
    record = " || ".join([
        f"'{{{first}'", f"substr(record, {ts_end}, {spans[0][0]} - {ts_end})",
        f"substr(record, {spans[0][1]}, {spans[1][0]} - {spans[0][1]})", f"substr(record, {spans[1][1]})",
    ])
    return "(" + " AND ".join(guard) + ")", record


def _fast_record_sql() -> tuple[str, str, str]:
    """(positions, guard, record): where ``guard`` holds, ``record`` is the cold record that ``STRIP_SQL``
    and then ``without_int_values`` make of a working row's ``line`` (before ``_keep_underivable_prev_hashes``
    of ``_parquet.py`` puts a prev_hash back, which gives the same record either way round: see below),
    cut from the line in one step; ``positions`` is the SELECT list of the columns both read.

    The guard asks for the layout of every current record line, with each value where the first
    occurrence of its key puts it: ``{"ts_event":`` and its column's text and a comma first, then
    ``"sequence":`` and its text and a comma, then ``"prev_hash":`` and the quoted prev_hash
    column (the 66 characters ``STRIP_SQL`` takes out), then ``"ts_recorded":`` and its text and a
    comma inside the body (before the checksum field). A key cannot occur inside a JSON string (its
    closing quote would be escaped), and the junctions cutting makes hold no key, so there each
    step of the plain rules finds what the guard found; and putting the prev_hash column back (its
    text is what was cut) changes no key's first occurrence either. The positions are computed
    once per row in an inner SELECT: DuckDB evaluates a repeated ``instr`` each time (on the
    benchmark file this costs about 1.3 us a row where ``STRIP_SQL`` and the one step took 6).
    """
    assert INT_FIELDS == ("ts_event", "sequence", "ts_recorded")  # the layout order the slices follow
    head = '{"ts_event":'
    seq_key, prev_key, rec_key = ('"sequence":', '"prev_hash":', '"ts_recorded":')
    positions = ", ".join([
        f"instr(line, '{seq_key}') + {len(seq_key)} AS _seq_at",
        f"instr(line, '{prev_key}') + {len(prev_key)} AS _prev_at",
        f"instr(line, '{rec_key}') + {len(rec_key)} AS _rec_at", "CAST(j.ts_event AS VARCHAR) AS _ts_text",
        "CAST(j.sequence AS VARCHAR) AS _seq_text", "CAST(j.ts_recorded AS VARCHAR) AS _rec_text",
    ])
    ts_end = f"({len(head) + 1} + length(_ts_text))"  # ts_event's value starts after '{"ts_event":'
    seq_end, rec_end = "(_seq_at + length(_seq_text))", "(_rec_at + length(_rec_text))"
    prev_end = f"(_prev_at + {QUOTED_HASH_LEN})"
    body_end = f"(length(line) - {SUFFIX_LEN})"  # the last character before the checksum field
    guard = " AND ".join([
        f"starts_with(line, '{head}' || _ts_text || ',')", f"{ts_end} < _seq_at - {len(seq_key)}",
        "substr(line, _seq_at, length(_seq_text) + 1) = _seq_text || ','", f"{seq_end} < _prev_at - {len(prev_key)}",
        f"substr(line, _prev_at, {QUOTED_HASH_LEN}) = '\"' || j.prev_hash || '\"'",
        f"{prev_end} <= _rec_at - {len(rec_key)}",
        "substr(line, _rec_at, length(_rec_text) + 1) = _rec_text || ','", f"{rec_end} <= {body_end}",
    ])
    record = " || ".join([
        f"'{head}'", f"substr(line, {ts_end}, _seq_at - {ts_end})",
        f"substr(line, {seq_end}, _prev_at - {seq_end})", f"substr(line, {prev_end}, _rec_at - {prev_end})",
        f"substr(line, {rec_end}, {body_end} - {rec_end} + 1)", "'}'",
    ])
    return positions, "(" + guard + ")", "(" + record + ")"


#: ``_fast_record_sql``: the columns ``working_rows`` adds, and where and how ``record`` is cut in one step.
_POSITIONS, _FAST_GUARD, _FAST_RECORD = _fast_record_sql()
#: Whether a working row's ``record`` takes one step to leave its ``INT_FIELDS`` values out (``_one_step_sql``).
ONE_STEP_SQL, _ONE_STEP_RECORD = _one_step_sql()
#: The working column (``select(working=True)``) of the rows whose records still hold their ``INT_FIELDS`` values.
INTS_LEFT = "ints_left"

#: A decimal string DuckDB parses as DECIMAL(18,9) to the same value as DECIMAL(38,18): a sign, at most
#: 9 integer and 9 fraction digits, no exponent. Casting VARCHAR to DECIMAL(38,18) (128-bit) costs
#: about 5 us a value in DuckDB 1.5, to DECIMAL(18,9) (64-bit) about 0.1 us; widening is exact. (TRY_CAST:
#: DuckDB may evaluate a CASE branch on rows it does not take, and a long value must not raise there.)
_SMALL_DECIMAL = r"-?[0-9]{1,9}(\.[0-9]{1,9})?"


#: Columns that are not derived from the record but carry it (``record``, ``torn_bytes``, ``source_line``):
#: the hashes bind them, not a projection.
STORED_KINDS = frozenset({"record", "batch"})


def derived_columns(version: int = PROJECTION_VERSION) -> Columns:
    """The columns of ``version`` that ``verify_cold`` derives again and compares."""
    return tuple(column for column in PROJECTIONS[version] if column[2] not in STORED_KINDS)


def structure(version: int = PROJECTION_VERSION) -> str:
    """The json_transform structure of ``version``: each line is parsed once, into one struct."""
    keys = {"prev_hash": "VARCHAR"}  # stripped out of ``record`` by STRIP_SQL, in every version
    for name, sql_type, kind in PROJECTIONS[version]:
        if kind == "format":
            keys["format"] = sql_type
        elif kind == "field":
            keys[name] = sql_type
        elif kind in ("json",):
            keys[name] = "JSON"
        elif kind == "owner":
            keys[name] = "VARCHAR"
        elif kind == "decimal":
            keys[name] = "VARCHAR"  # the exact text; cast below
    return json.dumps(keys)


def derivation(name: str, sql_type: str, kind: str) -> str:
    """The DuckDB expression (typed, without an alias) of one column of a projection."""
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
    elif kind == "format":
        expression = "CASE WHEN torn_bytes IS NULL THEN coalesce(j.format, 1) END"
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
    elif kind == "decimal" and sql_type == _DECIMAL:
        value = f"j.{name}"
        # ``|| ''``: DuckDB 1.5 would push a plain cast down into the scan, which casts every row.
        expression = (f"CASE WHEN regexp_full_match({value}, '{_SMALL_DECIMAL}') "
                      f"THEN CAST(TRY_CAST({value} AS DECIMAL(18,9)) AS {sql_type}) "
                      f"ELSE CAST({value} || '' AS {sql_type}) END")
    else:
        expression = f"j.{name}"
    return f"CAST({expression} AS {sql_type})"


def select(version: int = PROJECTION_VERSION, *, working: bool = False) -> str:
    """The SELECT list that turns rows (see the module docstring) into the cold schema of ``version``.

    ``working``: the rows a converter or rebuild will write with ``_parquet.write_partitions``
    (read them through ``working_rows``, which adds the columns this list needs): from version 4 on,
    with the record's ``prev_hash`` in a last column, which ``write_partitions`` puts back into
    ``record`` where ``chained_rows`` could not derive it, and leaves out of the file; and with
    ``record`` already without its ``INT_FIELDS`` values where ``_FAST_RECORD`` applies, the column
    ``ints_left`` marking the rows ``without_int_values`` must still take them out of.
    Without it (``read_hot_file``), ``record`` keeps its ``prev_hash`` from version 4 on.
    """
    columns = [f"{derivation(*column)} AS {column[0]}" for column in PROJECTIONS[version]]
    if version >= DERIVED_PREV_HASH_SINCE:
        if working:
            columns = [f"CAST(coalesce(record, CASE WHEN {_FAST_GUARD} THEN {_FAST_RECORD} ELSE {STRIP_SQL} END) "
                       "AS VARCHAR) AS record" if column.endswith(" AS record") else column for column in columns]
            columns.append("CAST(j.prev_hash AS VARCHAR) AS prev_hash")
            columns.append(f"torn_bytes IS NULL AND NOT (record IS NULL AND coalesce({_FAST_GUARD}, false)) "
                           f"AS {INTS_LEFT}")
        else:
            columns = [f"CAST(coalesce(record, {UNSTRIPPED_SQL}) AS VARCHAR) AS record" if column.endswith(" AS record")
                       else column for column in columns]
    return ",\n    ".join(columns)


def working_rows(source: str, version: int = PROJECTION_VERSION) -> str:
    """A SELECT of the working rows (``select(working=True)``) of ``source`` (see the module docstring)."""
    if version >= DERIVED_PREV_HASH_SINCE:
        source = f"(SELECT *, {_POSITIONS} FROM {source})"
    return f"SELECT {select(version, working=True)} FROM {source}"


def without_int_values(rows: str) -> str:
    """SQL of working ``rows`` (``working_rows``, version 4 on) whose records leave out their
    ``INT_FIELDS`` values. The rows ``ints_left`` marks (the others took ``_FAST_RECORD`` already)
    get ``strip_int_sql`` of each field in turn, taken in one step where ``ONE_STEP_SQL`` holds."""
    rows = f"""(SELECT * REPLACE (CASE WHEN {INTS_LEFT} AND {ONE_STEP_SQL} THEN {_ONE_STEP_RECORD}
                                       ELSE record END AS record,
                                  {INTS_LEFT} AND NOT coalesce({ONE_STEP_SQL}, false) AS {INTS_LEFT}) FROM {rows})"""
    for name in INT_FIELDS:  # the rest one field a step: each step reads the record the one before made
        rows = (f"(SELECT * REPLACE (CASE WHEN {INTS_LEFT} THEN {strip_int_sql('record', name)} ELSE record END "
                f"AS record) FROM {rows})")
    return f"(SELECT * EXCLUDE ({INTS_LEFT}) FROM {rows})"


def chained_rows(files: str, version: int | None) -> str:
    """SQL of the rows of cold Parquet ``files`` with each record's checksummed ``body`` and its ``prev_hash``.

    ``files`` is a ``read_parquet(..., filename = true)`` call. Before version 4 ``prev_hash`` is a
    column and ``BODY_SQL`` puts it back into ``record``. From version 4 on, a ``record`` whose
    ``prev_hash`` value is left out (``STRIPPED_SQL``) takes the checksum of the row one source line
    before it in the same file (none: ``body`` stays without it, so it fails its checksum); any
    other record still holds its own. ``body`` is NULL on a torn line's row.
    """
    if version is None or version < DERIVED_PREV_HASH_SINCE:
        return f"(SELECT *, CASE WHEN torn_bytes IS NULL THEN {BODY_SQL} END AS body FROM {files})"
    rows = _with_prev_hash(files)
    for name in INT_FIELDS:  # one field a step: each step reads the body the one before made
        rows = f"(SELECT * REPLACE ({insert_int_sql('body', name)} AS body) FROM {rows})"
    return rows


def _with_prev_hash(files: str) -> str:
    """``chained_rows`` of projection 4 before its ``INT_FIELDS`` are put back."""
    return f"""(SELECT * EXCLUDE (prior_file, next_line, prior),
                       CASE WHEN torn_bytes IS NULL THEN
                            CASE WHEN {STRIPPED_SQL} THEN {body_sql(_PRIOR_JSON, quoted=False)}
                                 ELSE record END END AS body,
                       CASE WHEN {STRIPPED_SQL} THEN prior ELSE {KEPT_PREV_SQL} END AS prev_hash
                FROM {files} LEFT JOIN (SELECT filename AS prior_file, source_line + 1 AS next_line, checksum AS prior
                                        FROM {files} WHERE torn_bytes IS NULL) AS prior_rows
                     ON prior_file = filename AND next_line = source_line)"""
