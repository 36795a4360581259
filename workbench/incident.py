"""Incident reconstruction: every event around an instant, in true order, one readable line each.

Examples
--------
>>> import shutil, tempfile
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
>>> shutil.rmtree(base)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ibis.expr.types as ir

from workbench._columns import chronological
from workbench._compiled import cached_table
from workbench._time import to_duration_ns
from workbench.describe import with_description
from workbench.filters import Lit

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
    """Every event within ``minutes`` of ``at`` (both ends included), in causal chronological order.

    Parameters
    ----------
    trail
        An opened trail.
    at
        The incident instant: int64 nanoseconds (a result's ``ts_event``, exact), a pandas
        ``Timestamp`` (nanoseconds kept), a datetime (naive is UTC), or ``"2026-01-05 14:32"``.
    minutes
        Half-width of the window, in minutes (or a ``timedelta``).
    event_type, source
        Optional narrowing, as in ``Trail.filter`` (``"param.*"``, ``["meta_controller"]``).

    Returns
    -------
    ir.Table
        Lazy; in causal order (``workbench.chronological``: time, then signal -> order -> fill ->
        position among records of one trade at the same nanosecond, then stream and sequence).
        Columns ``INCIDENT_COLUMNS``: ``time`` (UTC timestamp, microseconds, for display),
        ``ts_event`` (int64 ns, exact), ``offset_ns`` (``ts_event - at``), ``event_type``,
        ``source``, ``description`` (one readable line), chain position (``stream``, ``sequence``)
        and the fields a reader needs (parameter values and reasons, signal, order, fill, P&L, payload).
    """
    at_ns = trail.to_ns(at, "at")
    half = to_duration_ns(minutes, "minutes")
    trail.check_values("event_type", event_type)
    trail.check_values("source", source)
    recipes = trail.filter_recipes(start=max(0, at_ns - half), end=at_ns + half + 1, event_type=event_type,
                                   source=source, check=False)
    return cached_table(trail, "reconstruct_incident", recipes, _incident, (Lit(at_ns, "int64"),))


def _incident(rows: ir.Table, at: ir.IntegerValue) -> ir.Table:
    """The incident's rows: ``rows`` described, ``offset_ns`` from ``at``, in causal order."""
    events = with_description(rows)
    offset = (events.ts_event - at).name("offset_ns")
    return chronological(events.select(*[offset if name == "offset_ns" else name for name in INCIDENT_COLUMNS]))
