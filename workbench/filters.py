"""Predicates over trail tables: time windows that prune day partitions, event types with wildcards, ids.

Each function takes a table (``trail.events`` or anything derived from it that keeps the columns
it reads) and returns an Ibis boolean expression for ``table.filter(...)``. User values become Ibis
literals, never SQL text.

Examples
--------
>>> import ibis
>>> from workbench.filters import event_types, sources
>>> t = ibis.memtable({"event_type": ["trade.fill", "trade.order", "param.k_change"],
...                    "source": ["obs", "obs", "x' OR '1'='1"]})
>>> t.filter(event_types(t, "trade.*")).count().execute()
2
>>> t.filter(sources(t, "x' OR '1'='1")).count().execute()
1
>>> t.filter(sources(t, "x")).count().execute()
0
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import ibis
import ibis.expr.types as ir

from workbench._time import day_segments, to_ns, utc_day
from workbench.errors import WorkbenchInputError

_EVENT_PATTERN = re.compile(r"^[A-Za-z0-9_.*\-]+$")


def time_window(table: ir.Table, start: Any = None, end: Any = None) -> ir.BooleanValue:
    """Rows with ``start <= ts_event < end`` (either bound may be None), pruning day partitions.

    Bounds are anything ``to_ns`` accepts: datetimes (naive is UTC), dates, nanoseconds, or strings
    like ``"2026-01-05 14:32"``. Besides the ``ts_event`` comparison the predicate names the
    ``year``/``month``/``day`` partitions the window covers, so the engine skips other days' files.
    """
    start_ns = None if start is None else to_ns(start, "start")
    end_ns = None if end is None else to_ns(end, "end")
    predicates: list[ir.BooleanValue] = []
    if start_ns is not None:
        predicates.append(table.ts_event >= start_ns)
    if end_ns is not None:
        predicates.append(table.ts_event < end_ns)
    if start_ns is not None and end_ns is not None:
        if end_ns <= start_ns:
            raise WorkbenchInputError(f"end={end!r} is not after start={start!r}: the window is empty")
        predicates.append(partition_predicate(table, start_ns, end_ns - 1))
    elif end_ns is not None:
        day = utc_day(end_ns - 1) if end_ns > 0 else utc_day(0)
        predicates.append(_on_or_before(table, day.year, day.month, day.day))
    elif start_ns is not None:
        day = utc_day(start_ns)
        predicates.append(~_on_or_before(table, day.year, day.month, day.day) | _is_day(table, day))
    return _all(predicates) if predicates else ibis.literal(True)


def partition_predicate(table: ir.Table, first_ns: int, last_ns: int) -> ir.BooleanValue:
    """The day partitions holding ``first_ns..last_ns`` (inclusive), as year/month/day comparisons."""
    pieces = []
    for year, month_from, month_to, day_from, day_to in day_segments(utc_day(first_ns), utc_day(last_ns)):
        piece = [table.year == _part(year)]
        if month_from is not None and month_from == month_to:
            piece.append(table.month == _part(month_from))
        elif month_from is not None:
            piece.append(table.month.between(_part(month_from), _part(month_to)))
        if day_from is not None and day_from == day_to:
            piece.append(table.day == _part(day_from))
        elif day_from is not None:
            piece.append(table.day.between(_part(day_from), _part(day_to)))
        pieces.append(_all(piece))
    return _any(pieces)


def on_days(table: ir.Table, days: Iterable[Any]) -> ir.BooleanValue:
    """Rows in the day partitions of ``days`` (dates, UTC), as year/month/day comparisons: other days' files
    are skipped. No days: no rows."""
    pieces = [_is_day(table, day) for day in sorted(days)]
    return _any(pieces) if pieces else ibis.literal(False)


def _part(value: int) -> ir.IntegerValue:
    """A partition value as an int32 literal, the partition columns' type (Ibis would pick int8 or int16):
    on DuckDB, a literal of that type is lifted out of a query's shape (``workbench._compiled``)."""
    return ibis.literal(value, type="int32")


def _on_or_before(table: ir.Table, year: int, month: int, day: int) -> ir.BooleanValue:
    year, month, day = _part(year), _part(month), _part(day)  # type: ignore[assignment]
    return (table.year < year) | ((table.year == year) & (
        (table.month < month) | ((table.month == month) & (table.day <= day))))


def _is_day(table: ir.Table, day: Any) -> ir.BooleanValue:
    return (table.year == _part(day.year)) & (table.month == _part(day.month)) & (table.day == _part(day.day))


def event_types(table: ir.Table, patterns: str | Iterable[str]) -> ir.BooleanValue:
    """Rows whose ``event_type`` matches any pattern; ``*`` matches any run of characters.

    ``"trade.*"`` is every event type starting ``trade.``: signals (``trade.signal``) as well as
    orders, fills and positions (use ``family=`` in ``Trail.filter`` or ``exclude="trade.signal*"``
    to tell them apart); not ``"trade"`` itself. ``"*.fill"`` is every fill, ``"param.risk_change"``
    exactly that type.
    """
    values = string_values(patterns, "event_type")
    exact = [p for p in values if "*" not in p]
    predicates = [table.event_type.isin(exact)] if exact else []
    for pattern in values:
        if not _EVENT_PATTERN.match(pattern):
            raise WorkbenchInputError(
                f"event_type={pattern!r}: patterns are dotted names with '*' wildcards, like 'trade.*'")
        if "*" not in pattern:
            continue
        stem = pattern.rstrip("*")
        if "*" not in stem:
            predicates.append(table.event_type.startswith(stem))
        else:
            regex = "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"
            predicates.append(table.event_type.re_search(regex))
    return _any(predicates)


#: Event families (``Trail.filter(family=...)``) and the event-type patterns each covers.
FAMILIES: dict[str, tuple[str, ...]] = {
    "parameter": ("param.*",),
    "signal": ("trade.signal*",),
    "order": ("trade.order*", "trade.rejected*", "trade.canceled*"),
    "fill": ("trade.fill*",),
    "position": ("trade.position_*",),
    "system": ("sys.*",),
}


def family_patterns(families: str | Iterable[str]) -> list[str]:
    """The event-type patterns of one family or several (``FAMILIES``); an unknown name raises, naming them."""
    patterns: list[str] = []
    for name in string_values(families, "family"):
        if name not in FAMILIES:
            raise WorkbenchInputError(f"family={name!r} is not a family; expected one of {sorted(FAMILIES)}")
        patterns += FAMILIES[name]
    return patterns


def pattern_matches(pattern: str, event_type: str) -> bool:
    """Whether ``event_type`` matches ``pattern`` by the rule of ``event_types`` (``*``: any run of characters)."""
    regex = "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"
    return re.match(regex, event_type) is not None


def sources(table: ir.Table, values: str | Iterable[str]) -> ir.BooleanValue:
    """Rows written by any of these sources (exact names)."""
    return table.source.isin(string_values(values, "source"))


def traders(table: ir.Table, values: str | Iterable[str]) -> ir.BooleanValue:
    """Rows of any of these trader ids."""
    return table.trader_id.isin(string_values(values, "trader"))


def strategies(table: ir.Table, values: str | Iterable[str]) -> ir.BooleanValue:
    """Rows of any of these strategies (``strategy_source``: signals, orders, fills, positions)."""
    return table.strategy_source.isin(string_values(values, "strategy"))


def instruments(table: ir.Table, values: str | Iterable[str]) -> ir.BooleanValue:
    """Rows about any of these instruments (``instrument_id``)."""
    return table.instrument_id.isin(string_values(values, "instrument"))


def correlation_ids(table: ir.Table, values: str | Iterable[str]) -> ir.BooleanValue:
    """Rows carrying any of these correlation ids (a signal and the orders, fills, positions it caused)."""
    return table.correlation_id.isin(string_values(values, "correlation_id"))


def string_values(values: str | Iterable[str], argument: str) -> list[str]:
    """One string or several as a non-empty list; anything else raises ``WorkbenchInputError`` naming ``argument``."""
    items = [values] if isinstance(values, str) else values
    try:
        result = list(items)
    except TypeError:
        raise WorkbenchInputError(f"{argument}={values!r}: expected a string or an iterable of strings") from None
    if not result:
        raise WorkbenchInputError(f"{argument}={values!r} matches nothing; pass None to not filter on it")
    for item in result:
        if not isinstance(item, str):
            raise WorkbenchInputError(f"{argument}={values!r}: {item!r} is a {type(item).__name__}, expected a string")
    return result


def _all(predicates: list[ir.BooleanValue]) -> ir.BooleanValue:
    result = predicates[0]
    for predicate in predicates[1:]:
        result = result & predicate
    return result


def _any(predicates: list[ir.BooleanValue]) -> ir.BooleanValue:
    result = predicates[0]
    for predicate in predicates[1:]:
        result = result | predicate
    return result
