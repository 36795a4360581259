"""One readable line per audit record: what ``trail.events.description`` holds.

Examples
--------
>>> import ibis
>>> from workbench.describe import describe
>>> columns = ["event_type", "source", "param_name", "old_value", "new_value", "trigger_reason"]
>>> t = ibis.memtable([("param.risk_change", "meta_controller", "risk_multiplier", "1.0", "0.5", None)],
...                   schema=dict.fromkeys(columns, "string"))
>>> t.select(d=describe(t)).d.execute()[0]
'meta_controller changed risk_multiplier: 1.0 -> 0.5 (no reason given)'
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from workbench._columns import decimal_text, float_text


def describe(t: ir.Table) -> ir.StringValue:
    """One human-readable line per event of ``t``, by event type; unknown types show their payload.

    Reads whichever of the cold columns ``t`` has (a missing one reads as ``?``). ``open_trail``
    puts it in ``trail.events.description``, so queries select it rather than rebuild it.
    """
    kind = t.event_type
    columns = set(t.columns)

    def col(name: str, missing: str = "?") -> ir.StringValue:
        if name not in columns:
            return ibis.literal(missing)
        return _text(t[name]).fill_null(missing)

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
        (kind == "trade.fill", "order " + order + " filled: " + col("side") + " " + col("size") + " "
         + col("instrument_id") + " @ " + col("price") + _optional(t, "slippage_bps", " (slippage ", " bps)")),
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


def _optional(t: ir.Table, name: str, before: str, after: str) -> ir.StringValue:
    """``before + value + after`` when the row has a value in column ``name``, else nothing."""
    if name not in t.columns:
        return ibis.literal("")
    value = t[name]
    shown = _text(value)
    return ibis.ifelse(value.isnull(), ibis.literal(""), before + shown + after)


def _text(value: ir.Value) -> ir.StringValue:
    """A value as text, the same on every engine (decimals and doubles without exponents or padding)."""
    if value.type().is_decimal():
        return decimal_text(value)
    if value.type().is_floating():
        return float_text(value)
    return value.cast("string")
