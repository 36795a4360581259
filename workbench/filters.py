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

import operator
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import ibis.expr.types as ir

from workbench import _nodes
from workbench._time import day_segments, to_ns, utc_day
from workbench.errors import WorkbenchInputError

_EVENT_PATTERN = re.compile(r"^[A-Za-z0-9_.*\-]+$")


#: ``Lit``'s type names as Ibis types. Ibis parses a type name by building its whole type grammar
#: (thousands of parser objects) for each name the first time in a process: 8 of the ~40 garbage
#: collector passes of a new process's first open and query, which then met a full collection.
_IBIS_TYPES = {"int64": dt.int64, "int32": dt.int32, "string": dt.string}


class Lit(NamedTuple):
    """A value in a predicate recipe and its Ibis type: what a query's shape leaves out (``workbench._compiled``)."""

    value: Any
    dtype: str

    @property
    def ibis_type(self) -> dt.DataType:
        """``dtype`` as an Ibis type."""
        known = _IBIS_TYPES.get(self.dtype)
        return known if known is not None else dt.dtype(self.dtype)

    def literal(self) -> ir.Value:
        """The Ibis literal of this value, of its type."""
        return ibis.literal(self.value, type=self.ibis_type)


#: A predicate as data: nested tuples naming the operation (``build`` says which), column names and
#: ``Lit`` values. Two recipes that differ only in their ``Lit`` values build the same expression
#: shape, so a query's SQL can be compiled once per shape before any Ibis expression is built
#: (``recipe_shape``). Every predicate below is written once, as a recipe, and built by ``build``.
Recipe = tuple[Any, ...]


def time_window(table: ir.Table, start: Any = None, end: Any = None) -> ir.BooleanValue:
    """Rows with ``start <= ts_event < end`` (either bound may be None), pruning day partitions.

    Bounds are anything ``to_ns`` accepts: datetimes (naive is UTC), dates, nanoseconds, or strings
    like ``"2026-01-05 14:32"``. Besides the ``ts_event`` comparison the predicate names the
    ``year``/``month``/``day`` partitions the window covers, so the engine skips other days' files.
    """
    return build(table, window_recipe(start, end))


def window_recipe(start: Any = None, end: Any = None) -> Recipe:
    """``time_window``'s predicate as a recipe (``build``)."""
    start_ns = None if start is None else to_ns(start, "start")
    end_ns = None if end is None else to_ns(end, "end")
    predicates: list[Recipe] = []
    if start_ns is not None:
        predicates.append(("cmp", ">=", "ts_event", Lit(start_ns, "int64")))
    if end_ns is not None:
        predicates.append(("cmp", "<", "ts_event", Lit(end_ns, "int64")))
    if start_ns is not None and end_ns is not None:
        if end_ns <= start_ns:
            raise WorkbenchInputError(f"end={end!r} is not after start={start!r}: the window is empty")
        predicates.append(partition_recipe(start_ns, end_ns - 1))
    elif end_ns is not None:
        day = utc_day(end_ns - 1) if end_ns > 0 else utc_day(0)
        predicates.append(_on_or_before(day.year, day.month, day.day))
    elif start_ns is not None:
        day = utc_day(start_ns)
        predicates.append(("any", (("not", _on_or_before(day.year, day.month, day.day)), _is_day(day))))
    return ("all", tuple(predicates)) if predicates else ("true",)


def partition_predicate(table: ir.Table, first_ns: int, last_ns: int) -> ir.BooleanValue:
    """The day partitions holding ``first_ns..last_ns`` (inclusive), as year/month/day comparisons."""
    return build(table, partition_recipe(first_ns, last_ns))


def partition_recipe(first_ns: int, last_ns: int) -> Recipe:
    """``partition_predicate`` as a recipe (``build``)."""
    pieces = []
    for year, month_from, month_to, day_from, day_to in day_segments(utc_day(first_ns), utc_day(last_ns)):
        piece: list[Recipe] = [("cmp", "==", "year", _part(year))]
        if month_from is not None and month_from == month_to:
            piece.append(("cmp", "==", "month", _part(month_from)))
        elif month_from is not None:
            piece.append(("between", "month", _part(month_from), _part(month_to)))
        if day_from is not None and day_from == day_to:
            piece.append(("cmp", "==", "day", _part(day_from)))
        elif day_from is not None:
            piece.append(("between", "day", _part(day_from), _part(day_to)))
        pieces.append(("all", tuple(piece)))
    return ("any", tuple(pieces))


def on_days(table: ir.Table, days: Iterable[Any]) -> ir.BooleanValue:
    """Rows in the day partitions of ``days`` (dates, UTC), as year/month/day comparisons: other days' files
    are skipped. No days: no rows."""
    pieces = tuple(_is_day(day) for day in sorted(days))
    return build(table, ("any", pieces) if pieces else ("false",))


def _part(value: int | None) -> Lit:
    """A partition value as an int32 literal, the partition columns' type (Ibis would pick int8 or int16):
    on DuckDB, a literal of that type is lifted out of a query's shape (``workbench._compiled``)."""
    return Lit(value, "int32")


def _on_or_before(year: int, month: int, day: int) -> Recipe:
    day_in_month: Recipe = ("all", (("cmp", "==", "month", _part(month)), ("cmp", "<=", "day", _part(day))))
    in_year: Recipe = ("all", (("cmp", "==", "year", _part(year)),
                               ("any", (("cmp", "<", "month", _part(month)), day_in_month))))
    return ("any", (("cmp", "<", "year", _part(year)), in_year))


def _is_day(day: Any) -> Recipe:
    return ("all", (("cmp", "==", "year", _part(day.year)), ("cmp", "==", "month", _part(day.month)),
                    ("cmp", "==", "day", _part(day.day))))


def event_types(table: ir.Table, patterns: str | Iterable[str]) -> ir.BooleanValue:
    """Rows whose ``event_type`` matches any pattern; ``*`` matches any run of characters.

    ``"trade.*"`` is every event type starting ``trade.``: signals (``trade.signal``) as well as
    orders, fills and positions (use ``family=`` in ``Trail.filter`` or ``exclude="trade.signal*"``
    to tell them apart); not ``"trade"`` itself. ``"*.fill"`` is every fill, ``"param.risk_change"``
    exactly that type.
    """
    return build(table, event_types_recipe(patterns))


def event_types_recipe(patterns: str | Iterable[str]) -> Recipe:
    """``event_types`` as a recipe (``build``)."""
    values = string_values(patterns, "event_type")
    exact = [p for p in values if "*" not in p]
    predicates: list[Recipe] = [isin_recipe("event_type", exact)] if exact else []
    for pattern in values:
        if not _EVENT_PATTERN.match(pattern):
            raise WorkbenchInputError(
                f"event_type={pattern!r}: patterns are dotted names with '*' wildcards, like 'trade.*'")
        if "*" not in pattern:
            continue
        stem = pattern.rstrip("*")
        if "*" not in stem:
            predicates.append(("startswith", "event_type", Lit(stem, "string")))
        else:
            regex = "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"
            predicates.append(("re_search", "event_type", Lit(regex, "string")))
    return ("any", tuple(predicates))


def isin_recipe(column: str, values: Iterable[str]) -> Recipe:
    """Rows whose ``column`` is one of the strings ``values`` (``string_values`` checks them first)."""
    return ("isin", column, tuple(Lit(value, "string") for value in values))


def where(table: ir.Table, recipes: Iterable[Recipe], literals: Iterator[ir.Value] | None = None) -> ir.Table:
    """``table.filter(...)`` of the ``recipes``' predicates (``build``): the same Ibis node, built directly.

    ``Table.filter`` binds each predicate and rewrites it for reductions and window functions, which
    a recipe's comparisons never hold: half of a trail filter's ~1.5 ms of Ibis, on every call. The
    node is the one ``Table.filter`` makes (its predicates split at ``&`` and each kept once), as
    ``tests/unit/workbench/test_compiled.py`` checks.
    """
    from ibis.expr.rewrites import flatten_predicates

    parent = table.op()
    columns = _nodes.fields(parent)
    predicates = [_predicate(table, columns, recipe, literals) for recipe in recipes]
    if not predicates:
        return table
    return _nodes.filtered(parent, tuple(dict.fromkeys(flatten_predicates(predicates)))).to_expr()


def _predicate(table: ir.Table, columns: Any, recipe: Recipe, literals: Iterator[ir.Value] | None) -> Any:
    """``build(table, recipe, literals).op()``, its nodes made by ``workbench._nodes`` (no Ibis validation)
    where a column meets a value of its own type; Ibis's API builds the rest (and checks it).

    ``columns`` are ``table``'s fields (``_nodes.fields``). Literals are consumed in ``build``'s order.
    """
    def value(lit: Lit) -> Any:
        return _nodes.literal(lit.value, lit.ibis_type) if literals is None else next(literals).op()

    def typed(column: str, *lits: Lit) -> bool:
        return column in columns and all(type(columns[column].dtype) is type(lit.ibis_type) for lit in lits)

    kind = recipe[0]
    if kind in ("all", "any"):
        parts = [_predicate(table, columns, part, literals) for part in recipe[1]]
        result = parts[0]
        for part in parts[1:]:
            result = _nodes.make(ops.And if kind == "all" else ops.Or, left=result, right=part)
        return result
    if kind == "not":
        return _nodes.make(ops.Not, arg=_predicate(table, columns, recipe[1], literals))
    if kind == "cmp" and typed(recipe[2], recipe[3]):
        return _nodes.make(_COMPARISON_NODES[recipe[1]], left=columns[recipe[2]], right=value(recipe[3]))
    if kind == "between" and typed(recipe[1], recipe[2], recipe[3]):
        low = value(recipe[2])
        return _nodes.make(ops.Between, arg=columns[recipe[1]], lower_bound=low, upper_bound=value(recipe[3]))
    if kind == "isin" and recipe[2] and typed(recipe[1], *recipe[2]):
        return _nodes.make(ops.InValues, value=columns[recipe[1]], options=tuple(value(lit) for lit in recipe[2]))
    if kind == "startswith" and typed(recipe[1], recipe[2]) and columns[recipe[1]].dtype.is_string():
        return _nodes.make(ops.StartsWith, arg=columns[recipe[1]], start=value(recipe[2]))
    return build(table, recipe, literals).op()


def build(table: ir.Table, recipe: Recipe, literals: Iterator[ir.Value] | None = None) -> ir.BooleanValue:
    """The Ibis predicate of ``recipe`` over ``table``.

    ``literals``, when given, stands in for the recipe's ``Lit`` values in the order ``recipe_shape``
    lists them (``workbench._compiled`` passes placeholders); by default each ``Lit`` is
    ``ibis.literal(value, dtype)``.
    """
    def value(lit: Lit) -> ir.Value:
        return lit.literal() if literals is None else next(literals)

    kind = recipe[0]
    if kind in ("all", "any"):
        parts = [build(table, part, literals) for part in recipe[1]]
        return _all(parts) if kind == "all" else _any(parts)
    if kind == "not":
        return ~build(table, recipe[1], literals)
    if kind == "cmp":
        _, operator, column, lit = recipe
        return _COMPARISONS[operator](table[column], value(lit))
    if kind == "between":
        low = value(recipe[2])
        return table[recipe[1]].between(low, value(recipe[3]))
    if kind == "isin":
        return table[recipe[1]].isin([value(lit) for lit in recipe[2]])
    if kind == "startswith":
        return table[recipe[1]].startswith(value(recipe[2]))
    if kind == "re_search":
        return table[recipe[1]].re_search(value(recipe[2]))
    if kind in ("true", "false"):
        return ibis.literal(kind == "true")
    raise ValueError(f"not a predicate recipe: {recipe!r}")


_COMPARISONS: dict[str, Callable[[Any, Any], ir.BooleanValue]] = {
    ">=": operator.ge, ">": operator.gt, "<": operator.lt, "<=": operator.le, "==": operator.eq}

#: ``_COMPARISONS`` as the Ibis nodes they make.
_COMPARISON_NODES = {">=": ops.GreaterEqual, ">": ops.Greater, "<": ops.Less, "<=": ops.LessEqual, "==": ops.Equals}


def recipe_shape(recipe: Recipe, values: list[Lit]) -> Recipe:
    """``recipe`` with each ``Lit`` replaced by its type, appending the ``Lit`` to ``values`` in the
    order ``build`` consumes them: recipes with equal shapes build expressions that differ only in those values."""
    if isinstance(recipe, Lit):
        values.append(recipe)
        return ("$", recipe.dtype)
    if isinstance(recipe, tuple):
        return tuple(recipe_shape(part, values) for part in recipe)
    return recipe


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
    return build(table, isin_recipe("source", string_values(values, "source")))


def traders(table: ir.Table, values: str | Iterable[str]) -> ir.BooleanValue:
    """Rows of any of these trader ids."""
    return build(table, isin_recipe("trader_id", string_values(values, "trader")))


def strategies(table: ir.Table, values: str | Iterable[str]) -> ir.BooleanValue:
    """Rows of any of these strategies (``strategy_source``: signals, orders, fills, positions)."""
    return build(table, isin_recipe("strategy_source", string_values(values, "strategy")))


def instruments(table: ir.Table, values: str | Iterable[str]) -> ir.BooleanValue:
    """Rows about any of these instruments (``instrument_id``)."""
    return build(table, isin_recipe("instrument_id", string_values(values, "instrument")))


def correlation_ids(table: ir.Table, values: str | Iterable[str]) -> ir.BooleanValue:
    """Rows carrying any of these correlation ids (a signal and the orders, fills, positions it caused)."""
    return build(table, isin_recipe("correlation_id", string_values(values, "correlation_id")))


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
