"""Column helpers shared by the analyses: causal chronological order, readable decimals and doubles.

Examples
--------
>>> import ibis
>>> from workbench._columns import chronological
>>> t = ibis.memtable({"ts_event": [5, 5, 5], "stream": ["a-observer", "a-observer", "z-strategy"],
...                    "sequence": [0, 1, 0], "event_type": ["trade.order", "trade.fill", "trade.signal"],
...                    "correlation_id": ["S-1", "S-1", "S-1"]})
>>> chronological(t).event_type.to_pyarrow().to_pylist()
['trade.signal', 'trade.order', 'trade.fill']
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import ibis
import ibis.expr.types as ir

#: Storage order of records: time, then stream, then the stream's own sequence. ``chronological``
#: refines it for ties in time between records of one trade.
CHRONOLOGICAL = ("ts_event", "stream", "sequence")

#: Causal rank of a trade record within one instant: a signal causes the order, the order its
#: acceptance (or rejection), then fills (or a cancel), then the position records.
CAUSAL_STEPS = {
    "trade.signal": 0, "trade.order": 1, "trade.order.accepted": 2, "trade.rejected": 2, "trade.fill": 3,
    "trade.canceled": 3, "trade.position_opened": 4, "trade.position_changed": 5, "trade.position_closed": 6,
}
#: Helper columns ``causal_keys`` adds, and the full causal sort order over them.
CAUSAL_KEYS = ("_anchor_stream", "_anchor_sequence", "_causal_step")
CAUSAL_ORDER = ("ts_event", *CAUSAL_KEYS, "stream", "sequence")


def causal_keys(table: ir.Table) -> ir.Table:
    """``table`` plus the sort keys of causal order (``_anchor_stream``, ``_anchor_sequence``, ``_causal_step``).

    The rule (also in the README): records at the same ``ts_event`` that share a ``correlation_id``
    and are trade records (``CAUSAL_STEPS``) form one block. The block sits where its first record
    in (``stream``, ``sequence``) order sits, and inside it records go signal -> order ->
    accepted/rejected -> fill/canceled -> position opened -> changed -> closed (ties by stream,
    sequence). Every other record keeps its own (``stream``, ``sequence``) place, so the emit order
    within a stream holds for unlinked records. Needs ``ts_event``, ``stream``, ``sequence``,
    ``event_type`` and ``correlation_id``.
    """
    from workbench._backend import reads_files_per_reference

    if reads_files_per_reference(table):
        return _causal_keys_by_window(table)
    # Only blocks of two or more records need a key of their own: they are found by one narrow
    # aggregate (few rows) and joined back, which costs the engine far less than a window over
    # every column of every row would (the window form below, on DuckDB: reconstruct_incident
    # 1.19-1.23x raw SQL against 0.95-1.09x with this one, measured at 1M and 10M events).
    lifecycle = table.event_type.isin(list(CAUSAL_STEPS))
    linked = table.filter(lifecycle, table.correlation_id.notnull())
    # The block's first record: the smallest (stream, sequence), compared as a struct (field by field).
    position = ibis.struct({"stream": linked.stream, "sequence": linked.sequence})
    blocks = linked.group_by(_block_ts=linked.ts_event, _block_id=linked.correlation_id).aggregate(
        _records=linked.count(), _first=position.min())
    blocks = blocks.filter(blocks._records > 1)
    joined = table.left_join(blocks, [table.ts_event == blocks._block_ts, table.correlation_id == blocks._block_id])
    # A trade record's step, -1 for other records: a CASE, where ``isin`` (repeated in each key below)
    # became a join against the list per key on DuckDB (three extra joins, a fifth of an incident's query).
    step = joined.event_type.substitute(CAUSAL_STEPS, else_=-1)
    in_block = joined._first.notnull() & (step >= 0)  # equi-join: a hash join
    first_stream = joined._first["stream"]
    first_sequence = joined._first["sequence"]
    keyed = joined.mutate(
        _anchor_stream=ibis.ifelse(in_block, first_stream, joined.stream),
        _anchor_sequence=ibis.ifelse(in_block, first_sequence, joined.sequence),
        _causal_step=ibis.ifelse(in_block, step, 0),
    )
    return keyed.drop("_block_ts", "_block_id", "_records", "_first")


def _causal_keys_by_window(table: ir.Table) -> ir.Table:
    """``causal_keys`` for an engine that reads ``table``'s files again for each reference (Spark): the
    blocks found by a window over the rows, where the aggregate joined back scanned the files a second
    time and broadcast the blocks in a job of its own (an incident's ±5 minutes: a day's files twice)."""
    step = table.event_type.substitute(CAUSAL_STEPS, else_=-1)
    linked = (step >= 0) & table.correlation_id.notnull()
    block = ibis.window(group_by=[table.ts_event, table.correlation_id])
    position = ibis.struct({"stream": table.stream, "sequence": table.sequence})
    first = position.min(where=linked).over(block)
    in_block = linked & (linked.cast("int64").sum().over(block) > 1)
    return table.mutate(
        _anchor_stream=ibis.ifelse(in_block, first["stream"], table.stream),
        _anchor_sequence=ibis.ifelse(in_block, first["sequence"], table.sequence),
        _causal_step=ibis.ifelse(in_block, step, 0),
    )


def chronological(table: ir.Table) -> ir.Table:
    """``table`` in causal chronological order (``causal_keys``), without the helper columns.

    The order is total and the same on every backend: time, then the causal block's place, then
    the step within it, then (``stream``, ``sequence``).
    """
    keyed = causal_keys(table)
    return keyed.order_by(*CAUSAL_ORDER).drop(*CAUSAL_KEYS)


def decimal_text(value: ir.Value) -> ir.StringValue:
    """A DECIMAL(38,18) as short text: ``1.100120000000000000`` becomes ``1.10012``, ``100.000...`` ``100``."""
    return value.cast("string").re_replace(r"\.?0+$", "")


def text(value: ir.Value, missing: str = "?") -> ir.StringValue:
    """Any value as text for a description, ``missing`` when NULL."""
    return value.cast("string").fill_null(missing)


def float_text(value: ir.FloatingValue) -> ir.StringValue:
    """A double as plain decimal text, the same on every engine: ``8e-4`` is ``0.0008``, ``1.0`` is ``1``.

    Engines agree on a double's shortest digits but not on how they print them (Spark ``8.0E-4``
    and ``1.0E7``, DuckDB ``0.0008`` and ``10000000.0``), so text with an exponent is taken apart
    (sign, the digit before the point, the others, the exponent) and written again without one;
    ``nan``, ``inf`` and ``-inf`` as they are. Exact across DuckDB and Spark for magnitudes from
    1e-300 to 1e16; past that, and for subnormals, Java 17's ``Double.toString`` may print a digit
    more than needed. Kept flat (no step nests another's expression): SQL text grows with nesting.
    """
    import ibis

    raw = value.cast("string").lower()
    scientific = r"^(-?)([0-9])\.?([0-9]*)e([-+]?[0-9]+)$"
    is_scientific = raw.re_search(scientific)
    sign, lead = raw.re_extract(scientific, 1), raw.re_extract(scientific, 2)
    rest = raw.re_extract(scientific, 3).re_replace("0+$", "")
    exponent = ibis.ifelse(is_scientific, raw.re_extract(scientific, 4), "0").cast("int64")
    zeros = ibis.literal("0")
    unscaled = ibis.cases(
        (exponent < 0, sign + "0." + zeros.repeat(-exponent - 1) + lead + rest),
        (rest.length() <= exponent, sign + lead + rest + zeros.repeat(exponent - rest.length())),
        else_=sign + lead + rest.substr(0, exponent) + "." + rest.substr(exponent),
    )
    plain = ibis.ifelse(raw.contains("."), raw.re_replace("0+$", "").re_replace("[.]$", ""), raw)
    return ibis.cases((is_scientific, unscaled), (raw.re_search("^-?[0-9]"), plain),
                      else_=raw.replace("infinity", "inf"))


def float_texts(values: Any) -> Any:
    """``float_text`` of a pyarrow double array, computed in Python (on DuckDB, for the describe macro).

    The same text (``tests/unit/workbench/test_compiled.py`` compares them on edge cases and random
    doubles): Python's ``repr`` and DuckDB's cast print the same shortest digits, written again here
    without an exponent. DuckDB binds ``float_text``'s SQL (5,000 characters, some thirty regular
    expressions) in about 3 ms per column on every query that describes rows, more than describing
    an hour of rows costs; the describe macro (``describe.FLOAT_TEXT_FUNCTION``) trims DuckDB's
    own text in SQL and calls this only for text with an exponent.
    """
    import pyarrow as pa

    return pa.array([None if value is None else _float_text(value) for value in values.to_pylist()], pa.string())


def _float_text(value: float) -> str:
    text = repr(value)
    if "e" in text:  # 1e+16, 1.5e-07: the same digits, the point moved (Decimal writes them out)
        text = format(Decimal(text), "f")
    elif "n" in text:  # inf, -inf; DuckDB shows a NaN's sign bit
        return "-nan" if text == "nan" and math.copysign(1.0, value) < 0 else text
    return text.rstrip("0").rstrip(".") if "." in text else text
