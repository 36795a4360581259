"""Parameter forensics: the value in force of every parameter at an instant, one parameter's history.

A parameter belongs to a component, its ``owner`` (``meta_controller`` owns ``risk_multiplier``);
a change is made by a ``source``, usually the owner itself, sometimes someone else (an operator's
``ops_console`` overriding it). The value in force is the owner's parameter's latest change,
whoever made it. A record without an ``owner`` (written before the field existed, or by the
owner) is a change by its owner: ``owner`` reads as its ``source``.

Values: ``value``/``old_value``/``new_value`` are the raw JSON text; the typed columns hold the
same value by kind (``*_num`` a double for numbers, ``*_text`` a string without JSON quotes or
escapes, ``*_bool`` for true/false, ``*_json`` JSON text of arrays and objects), NULL when it is
of another kind. ``decode_values`` turns the JSON text into Python objects, on request.

Examples
--------
>>> import shutil, tempfile
>>> from audit_core import AuditConfig, AuditEventEmitter
>>> from workbench import open_trail, parameter_history, state_at
>>> from workbench.parameters import decode_values
>>> base = tempfile.mkdtemp()
>>> T = 1_767_623_520_000_000_000  # 2026-01-05 14:32:00 UTC
>>> with AuditEventEmitter(AuditConfig(base_path=base, sync_writes=False), clock=lambda: T) as audit:
...     _ = audit.emit_param_change("meta_controller", "risk_multiplier", None, 1.0, "initial value", ts_event=T)
...     _ = audit.emit_param_change("meta_controller", "regime", None, "VENTRAL", "initial value", ts_event=T)
...     _ = audit.emit_param_change("ops_console", "risk_multiplier", 1.0, 8.0, None, owner="meta_controller",
...                                 ts_event=T + 60 * 10**9)
...     _ = audit.emit_param_change("meta_controller", "risk_multiplier", 8.0, 0.5, "drawdown > 10%",
...                                 ts_event=T + 48 * 60 * 10**9)
>>> trail = open_trail(base)
>>> state = state_at(trail, T + 30 * 60 * 10**9).to_pandas()   # the override is in force
>>> print(state[["owner", "param_name", "value", "value_num", "value_text", "source"]].to_string(index=False))
          owner      param_name     value  value_num value_text          source
meta_controller          regime "VENTRAL"       <NA>    VENTRAL meta_controller
meta_controller risk_multiplier       8.0        8.0       <NA>     ops_console
>>> after = state_at(trail, T + 48 * 60 * 10**9, param_name="risk_multiplier").to_pandas()
>>> after[["value_num", "source", "trigger_reason"]].to_dict("records")
[{'value_num': 0.5, 'source': 'meta_controller', 'trigger_reason': 'drawdown > 10%'}]
>>> breakdown = state_at(trail, T + 30 * 60 * 10**9, param_name="risk_multiplier", by_source=True).to_pandas()
>>> print(breakdown[["owner", "source", "value", "in_force"]].to_string(index=False))
          owner          source value  in_force
meta_controller meta_controller   1.0     False
meta_controller     ops_console   8.0      True
>>> history = parameter_history(trail, "risk_multiplier").to_pandas()
>>> print(history[["owner", "source", "old_value_num", "new_value_num"]].to_string(index=False))
          owner          source  old_value_num  new_value_num
meta_controller meta_controller           <NA>            1.0
meta_controller     ops_console            1.0            8.0
meta_controller meta_controller            8.0            0.5
>>> decode_values(state_at(trail, T + 1)).set_index("param_name")["value"].to_dict()
{'regime': 'VENTRAL', 'risk_multiplier': 1.0}
>>> shutil.rmtree(base)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.types as ir

from workbench import _parameter_index, filters
from workbench._columns import CHRONOLOGICAL
from workbench.errors import WorkbenchInputError

if TYPE_CHECKING:
    import pandas as pd

    from workbench.trail import Trail

#: The typed forms of a value, as column suffixes: ``new_value_num``, ``value_text``, ...
VALUE_KINDS = ("num", "text", "bool", "json")
#: Columns of ``state_at``'s result.
STATE_COLUMNS = ("owner", "param_name", "value", "value_num", "value_text", "value_bool", "value_json", "source",
                 "trigger_reason", "ts_event", "time", "event_type", "stream", "sequence")
#: Columns of ``state_at(..., by_source=True)``: one row per (owner, source, parameter).
BY_SOURCE_COLUMNS = (*STATE_COLUMNS, "in_force")
#: Columns of ``parameter_history``'s result.
HISTORY_COLUMNS = ("time", "ts_event", "owner", "source", "param_name", "old_value", "new_value",
                   *(f"{side}_value_{kind}" for kind in VALUE_KINDS for side in ("old", "new")),
                   "trigger_reason", "event_type", "correlation_id", "stream", "sequence")
#: JSON text columns ``decode_values`` decodes by default (those of them a frame has).
JSON_VALUE_COLUMNS = ("value", "old_value", "new_value")


def parameter_changes(trail: Trail, table: ir.Table | None = None) -> ir.Table:
    """Every parameter change (``param.*`` events with a ``param_name``); lazy, unordered."""
    t = trail.events if table is None else table
    return t.filter(*_is_change(t))


def _is_change(t: ir.Table) -> list[ir.BooleanValue]:
    # The range says ``param.*`` again, in a form the engine checks against each row group's min/max
    # ``event_type``: the day's trade and signal files (most of its rows) are skipped without being read.
    return [filters.event_types(t, "param.*"), t.event_type >= "param.", t.event_type < "param/",
            t.param_name.notnull()]


def state_at(
    trail: Trail,
    ts: Any,
    *,
    owner: str | Iterable[str] | None = None,
    param_name: str | Iterable[str] | None = None,
    source: str | Iterable[str] | None = None,
    by_source: bool = False,
) -> ir.Table:
    """What was in force at instant ``ts``: each parameter's latest change at or before ``ts``.

    One row per (``owner``, ``param_name``) changed at least once up to ``ts``, from its latest
    change whoever made it: after ``meta_controller`` sets ``risk_multiplier`` to 1.0 and
    ``ops_console`` overrides it to 8.0, the row holds 8.0 with ``source`` ``ops_console``, until
    ``meta_controller`` changes it again. A change at exactly ``ts`` counts. Among changes of one
    parameter at the same nanosecond the last in (``stream``, ``sequence``) order wins.

    Parameters
    ----------
    trail
        An opened trail.
    ts
        The instant (int nanoseconds, the exact form; a datetime or ``"2026-01-05 14:32"``).
    owner, param_name
        Only these owners / parameters.
    source
        Only rows whose value was set by these sources (applied after the value in force is
        found: ``source="ops_console"`` lists the parameters an override still holds, not the
        operator's last change of parameters changed since).
    by_source
        One row per (``owner``, ``source``, ``param_name``) instead: each source's latest change
        of each parameter, with ``in_force`` telling which of them holds the value in force.

    Returns
    -------
    ir.Table
        Lazy, ordered by ``owner``, ``param_name`` (and ``source``). Columns ``STATE_COLUMNS``
        (``BY_SOURCE_COLUMNS`` with ``by_source``): ``value`` is the new value as JSON text,
        ``value_num``/``value_text``/``value_bool``/``value_json`` the same value by kind (NULL
        when it is of another kind), ``source`` and ``trigger_reason`` who set it and why, and
        ``ts_event``/``time``/``event_type``/``stream``/``sequence`` the change that set it.

    Raises
    ------
    WorkbenchInputError
        ``ts`` is not an instant, or a filter value is not a string.
    """
    at = trail.to_ns(ts, "ts")
    for argument, values in (("owner", owner), ("param_name", param_name), ("source", source)):
        trail.check_values(argument, values)
    t = trail.events
    predicates = [filters.time_window(t, end=at + 1), *_is_change(t)]  # one filter: Ibis compiles it faster
    if owner is not None:
        predicates.append(t.owner.isin(filters.string_values(owner, "owner")))
    if param_name is not None:
        predicates.append(t.param_name.isin(filters.string_values(param_name, "param_name")))
    # The day of ``at`` and each parameter's last change before it (``_parameter_index``); by source, a
    # source's latest change can be older than its parameter's, which the index does not record.
    reading = None if by_source else _parameter_index.plan(trail, at)
    if reading is not None:
        instants = sorted(reading.instants)
        # No row before the earliest instant or day to read: as a bound of its own, the engine checks
        # it against each row group's ``ts_event`` range (the instants' ``IN`` sits inside an ``OR``).
        earliest = min([*instants, _parameter_index.day_start(min(reading.whole_days))])
        predicates += [filters.on_days(t, reading.whole_days | reading.instant_days),
                       filters.on_days(t, reading.whole_days) | t.ts_event.isin(
                           [ibis.literal(ts, "int64") for ts in instants]),
                       t.ts_event >= ibis.literal(earliest, "int64")]
    changes = t.filter(*predicates)
    if not by_source:
        # Each parameter's latest change as one aggregate (an ordered ``first``/``max_by`` of the row by
        # its chronological key): a third of the CPU of numbering every change in a window, measured.
        row = ibis.struct({name: _state_value(changes, name) for name in STATE_COLUMNS[2:]})
        latest = ibis.struct({name: changes[name] for name in CHRONOLOGICAL})
        result = changes.group_by(["owner", "param_name"]).aggregate(_row=row.argmax(latest)).unpack("_row")
        columns, order = STATE_COLUMNS, ("owner", "param_name")
    else:
        newest_first = [ibis.desc(name) for name in CHRONOLOGICAL]
        ranked = changes.select(
            "owner", "param_name", **{name: _state_value(changes, name) for name in STATE_COLUMNS[2:]},
            _rank=ibis.row_number().over(ibis.window(group_by=["owner", "param_name"], order_by=newest_first)),
        )
        per_source = ibis.window(group_by=["owner", "source", "param_name"], order_by=newest_first)
        ranked = ranked.mutate(_source_rank=ibis.row_number().over(per_source))
        result = ranked.filter(ranked._source_rank == 0)
        result = result.mutate(in_force=result._rank == 0)
        columns, order = BY_SOURCE_COLUMNS, ("owner", "param_name", "source")
    if source is not None:
        result = result.filter(filters.sources(result, source))
    return result.select(*columns).order_by(*order)


def _state_value(changes: ir.Table, name: str) -> ir.Value:
    """Column ``name`` of ``state_at``'s result from a change: ``value*`` from ``new_value*``, the rest as is."""
    return changes[f"new_{name}"] if name.startswith("value") else changes[name]


def parameter_history(
    trail: Trail,
    name: str,
    source: str | Iterable[str] | None = None,
    *,
    owner: str | Iterable[str] | None = None,
    start: Any = None,
    end: Any = None,
) -> ir.Table:
    """Every change of parameter ``name`` (optionally by ``source``, of ``owner``, within ``[start, end)``), in order.

    Returns
    -------
    ir.Table
        Lazy, ordered by (``ts_event``, ``stream``, ``sequence``); columns ``HISTORY_COLUMNS``: who
        owns the parameter (``owner``) and who changed it (``source``), the old and new values as
        JSON text and typed (``*_num``, ``*_text``, ``*_bool``, ``*_json``), and why.
    """
    (param,) = filters.string_values(name, "name")
    trail.check_values("param_name", param)
    trail.check_values("owner", owner)
    t = trail.filter(start=start, end=end, source=source)
    changes = parameter_changes(trail, t)
    predicates = [changes.param_name == param]
    if owner is not None:
        predicates.append(changes.owner.isin(filters.string_values(owner, "owner")))
    return changes.filter(*predicates).select(*HISTORY_COLUMNS).order_by(*CHRONOLOGICAL)


def decode_values(frame: Any, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A pandas copy of ``frame`` whose JSON text value columns hold the decoded Python values.

    ``"8.0"`` becomes ``8.0``, ``'"VENTRAL"'`` ``'VENTRAL'``, ``'{"a": 1}'`` ``{'a': 1}``; a JSON
    ``null`` and a missing value both become None. The default frames keep JSON text and the typed
    columns (exact, and the same on every engine); this is for reading values as Python objects.

    Parameters
    ----------
    frame
        A pandas DataFrame, or an Ibis table (executed here), e.g. ``state_at``'s result.
    columns
        The JSON text columns to decode; by default those of ``JSON_VALUE_COLUMNS`` (``value``,
        ``old_value``, ``new_value``) the frame has.

    Returns
    -------
    pandas.DataFrame
        A copy; the decoded columns have dtype ``object``.

    Raises
    ------
    WorkbenchInputError
        A column named in ``columns`` is not in the frame.
    """
    import pandas as pd

    data = frame.copy() if isinstance(frame, pd.DataFrame) else frame.to_pandas()
    if columns is None:
        names = [name for name in JSON_VALUE_COLUMNS if name in data.columns]
    else:
        names = filters.string_values(columns, "columns")
        missing = [name for name in names if name not in data.columns]
        if missing:
            raise WorkbenchInputError(f"columns={list(columns)!r}: {missing} not in the frame's columns "
                                      f"{list(data.columns)}")
    for name in names:
        data[name] = pd.Series([None if text is None or text is pd.NA or (isinstance(text, float) and text != text)
                                else json.loads(text) for text in data[name]], index=data.index, dtype=object)
    return data
