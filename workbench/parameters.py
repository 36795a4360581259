"""Parameter forensics: the value of every parameter at an instant, and one parameter's history.

Examples
--------
>>> import shutil, tempfile
>>> from benchmarks.trail_gen import generate_trail
>>> from workbench import open_trail, parameter_history, state_at
>>> base = tempfile.mkdtemp()
>>> _ = generate_trail(base, events=500, days=1, seed=2)
>>> trail = open_trail(base)
>>> state = state_at(trail, "2026-01-01 18:00").to_pandas()
>>> list(state.columns[:4])
['source', 'param_name', 'value', 'value_num']
>>> history = parameter_history(trail, "risk_multiplier").to_pandas()
>>> bool(history["ts_event"].is_monotonic_increasing)
True
>>> shutil.rmtree(base)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.types as ir

from workbench import filters
from workbench._columns import CHRONOLOGICAL
from workbench._time import to_ns

if TYPE_CHECKING:
    from workbench.trail import Trail

#: Columns of ``state_at``'s result.
STATE_COLUMNS = ("source", "param_name", "value", "value_num", "time", "ts_event", "event_type",
                 "trigger_reason", "stream", "sequence")
#: Columns of ``parameter_history``'s result.
HISTORY_COLUMNS = ("time", "ts_event", "source", "param_name", "old_value", "new_value", "old_value_num",
                   "new_value_num", "trigger_reason", "event_type", "correlation_id", "stream", "sequence")


def parameter_changes(trail: Trail, table: ir.Table | None = None) -> ir.Table:
    """Every parameter change (``param.*`` events with a ``param_name``); lazy, unordered."""
    t = trail.events if table is None else table
    return t.filter(*_is_change(t))


def _is_change(t: ir.Table) -> list[ir.BooleanValue]:
    return [filters.event_types(t, "param.*"), t.param_name.notnull()]


def state_at(
    trail: Trail,
    ts: Any,
    *,
    source: str | Iterable[str] | None = None,
    param_name: str | Iterable[str] | None = None,
) -> ir.Table:
    """The value of every parameter at instant ``ts``: its last change at or before ``ts``.

    One row per (``source``, ``param_name``) that changed at least once up to ``ts``; a change at
    exactly ``ts`` counts. Among changes at the same nanosecond the last in (stream, sequence)
    order wins.

    Parameters
    ----------
    trail
        An opened trail.
    ts
        The instant (datetime, nanoseconds, or ``"2026-01-05 14:32"``).
    source, param_name
        Only these sources / parameters.

    Returns
    -------
    ir.Table
        Lazy, ordered by ``param_name``, ``source``. Columns ``STATE_COLUMNS``: ``value`` is the
        new value as JSON text, ``value_num`` the same as a double when it is a number, and
        ``time``/``ts_event``/``event_type``/``trigger_reason``/``stream``/``sequence`` describe
        the change that set it.
    """
    at = to_ns(ts, "ts")
    t = trail.events
    predicates = [filters.time_window(t, end=at + 1), *_is_change(t)]  # one filter: Ibis compiles it faster
    if source is not None:
        predicates.append(filters.sources(t, source))
    if param_name is not None:
        predicates.append(t.param_name.isin(filters.string_values(param_name, "param_name")))
    changes = t.filter(*predicates)
    latest = ibis.window(group_by=["source", "param_name"], order_by=[ibis.desc(name) for name in CHRONOLOGICAL])
    ranked = changes.select(
        "source", "param_name", value=changes.new_value, value_num=changes.new_value_num, time=changes.time,
        ts_event=changes.ts_event, event_type=changes.event_type, trigger_reason=changes.trigger_reason,
        stream=changes.stream, sequence=changes.sequence, _rank=ibis.row_number().over(latest),
    )
    return ranked.filter(ranked._rank == 0).select(*STATE_COLUMNS).order_by("param_name", "source")


def parameter_history(
    trail: Trail,
    name: str,
    source: str | Iterable[str] | None = None,
    *,
    start: Any = None,
    end: Any = None,
) -> ir.Table:
    """Every change of parameter ``name`` (optionally by ``source``, within ``[start, end)``), in order.

    Returns
    -------
    ir.Table
        Lazy, ordered by (``ts_event``, ``stream``, ``sequence``); columns ``HISTORY_COLUMNS``.
    """
    (param,) = filters.string_values(name, "name")
    t = trail.filter(start=start, end=end, source=source)
    changes = parameter_changes(trail, t)
    return changes.filter(changes.param_name == param).select(*HISTORY_COLUMNS).order_by(*CHRONOLOGICAL)
