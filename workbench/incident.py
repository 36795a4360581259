"""Incident reconstruction: every event around an instant, in true order, one readable line each.

Examples
--------
>>> import tempfile
>>> from benchmarks.trail_gen import generate_trail
>>> from workbench import open_trail, reconstruct_incident
>>> base = tempfile.mkdtemp()
>>> _ = generate_trail(base, events=400, days=1, seed=3)
>>> trail = open_trail(base)
>>> incident = reconstruct_incident(trail, "2026-01-01 12:00", minutes=30)
>>> frame = incident.to_pandas()
>>> list(frame.columns[:5])
['time', 'ts_event', 'offset_ns', 'event_type', 'source']
>>> bool(frame["offset_ns"].abs().max() <= 30 * 60 * 10**9)
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.types as ir

from workbench._columns import CHRONOLOGICAL, decimal_text, text
from workbench._time import to_duration_ns, to_ns

if TYPE_CHECKING:
    from workbench.trail import Trail

#: Columns of ``reconstruct_incident``'s result, in order.
INCIDENT_COLUMNS = (
    "time", "ts_event", "offset_ns", "event_type", "source", "description", "stream", "sequence",
    "trader_id", "correlation_id", "param_name", "old_value", "new_value", "new_value_num", "trigger_reason",
    "strategy_source", "signal_value", "confidence", "regime", "acted_on", "filter_reason", "instrument_id",
    "order_id", "side", "size", "price", "slippage_bps", "realized_pnl", "currency", "position_id", "reason",
    "payload",
)


def reconstruct_incident(
    trail: Trail,
    at: Any,
    minutes: float = 5,
    *,
    event_type: Any = None,
    source: Any = None,
) -> ir.Table:
    """Every event within ``minutes`` of ``at`` (both ends included), in true chronological order.

    Parameters
    ----------
    trail
        An opened trail.
    at
        The incident instant: a datetime (naive is UTC), nanoseconds, or ``"2026-01-05 14:32"``.
    minutes
        Half-width of the window, in minutes (or a ``timedelta``).
    event_type, source
        Optional narrowing, as in ``Trail.filter`` (``"param.*"``, ``["meta_controller"]``).

    Returns
    -------
    ir.Table
        Lazy; ordered by (``ts_event``, ``stream``, ``sequence``). Columns ``INCIDENT_COLUMNS``:
        ``time`` (UTC timestamp), ``ts_event`` (ns), ``offset_ns`` (``ts_event - at``), ``event_type``,
        ``source``, ``description`` (one readable line), chain position (``stream``, ``sequence``)
        and the fields a reader needs (parameter values and reasons, signal, order, fill, P&L, payload).
    """
    at_ns = to_ns(at, "at")
    half = to_duration_ns(minutes, "minutes")
    events = trail.filter(start=max(0, at_ns - half), end=at_ns + half + 1, event_type=event_type, source=source)
    rows = events.mutate(offset_ns=events.ts_event - at_ns, description=describe(events))
    return rows.select(*INCIDENT_COLUMNS).order_by(*CHRONOLOGICAL)


def describe(t: ir.Table) -> ir.StringValue:
    """One human-readable line per event, by event type; unknown types show their payload.

    Examples
    --------
    >>> import ibis
    >>> from workbench.incident import describe
    >>> from workbench.trail import cold_schema
    >>> t = ibis.memtable({"event_type": ["param.risk_change"], "source": ["meta_controller"],
    ...                    "param_name": ["risk_multiplier"], "old_value": ["1.0"], "new_value": ["0.5"],
    ...                    "trigger_reason": [None]}, schema=cold_schema().select(
    ...     ["event_type", "source", "param_name", "old_value", "new_value", "trigger_reason"]))
    >>> t.select(d=describe(t)).d.execute()[0]
    'meta_controller changed risk_multiplier: 1.0 -> 0.5 (no reason given)'
    """
    kind = t.event_type
    columns = set(t.columns)

    def col(name: str, missing: str = "?") -> ir.StringValue:
        if name not in columns:
            return ibis.literal(missing)
        value = t[name]
        return decimal_text(value).fill_null(missing) if value.type().is_decimal() else text(value, missing)

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
    shown = decimal_text(value) if value.type().is_decimal() else text(value)
    return ibis.ifelse(value.isnull(), ibis.literal(""), before + shown + after)
