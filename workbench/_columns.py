"""Column helpers shared by the analyses: true chronological order, readable decimals."""

from __future__ import annotations

import ibis.expr.types as ir

#: True chronological order of records: time, then stream, then the stream's own sequence.
CHRONOLOGICAL = ("ts_event", "stream", "sequence")


def chronological(table: ir.Table) -> ir.Table:
    """``table`` ordered by (``ts_event``, ``stream``, ``sequence``): ties in time broken by sequence."""
    return table.order_by(*CHRONOLOGICAL)


def decimal_text(value: ir.Value) -> ir.StringValue:
    """A DECIMAL(38,18) as short text: ``1.100120000000000000`` becomes ``1.10012``, ``100.000...`` ``100``."""
    return value.cast("string").re_replace(r"\.?0+$", "")


def text(value: ir.Value, missing: str = "?") -> ir.StringValue:
    """Any value as text for a description, ``missing`` when NULL."""
    return value.cast("string").fill_null(missing)
