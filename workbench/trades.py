"""Trade forensics: one order's lifecycle with latencies, and signal-to-trade conversion.

Examples
--------
>>> import shutil, tempfile
>>> from benchmarks.trail_gen import generate_trail
>>> from workbench import open_trail, signal_conversion, trade_lifecycle
>>> base = tempfile.mkdtemp()
>>> _ = generate_trail(base, events=400, days=1, seed=4)
>>> trail = open_trail(base)
>>> steps = trade_lifecycle(trail, correlation_id="SIG-1").to_pandas()
>>> steps["step"].iloc[0]
'signal'
>>> conversion = signal_conversion(trail).to_pandas()
>>> sorted(conversion["strategy_source"])
['breakout', 'mean_reversion', 'momentum']
>>> shutil.rmtree(base)
"""

from __future__ import annotations

import functools
import operator
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.types as ir

from workbench import _backend, _id_index, filters
from workbench._columns import CAUSAL_KEYS, CAUSAL_ORDER, causal_keys
from workbench._compiled import cached_table
from workbench.describe import with_description
from workbench.errors import WorkbenchInputError

if TYPE_CHECKING:
    import pandas as pd

    from workbench.trail import Trail
    from workbench.verification import VerificationStatus

#: Columns of ``trade_lifecycle``'s result.
LIFECYCLE_COLUMNS = (
    "time", "ts_event", "step", "event_type", "description", "since_previous_ns", "since_start_ns",
    "strategy_source", "instrument_id", "order_id", "correlation_id", "position_id", "side", "size", "price",
    "expected_price", "slippage_bps", "commission", "realized_pnl", "currency", "signal_value", "confidence",
    "acted_on", "filter_reason", "reason", "source", "stream", "sequence",
)
_STEPS = {
    "trade.signal": "signal", "trade.order": "order", "trade.order.accepted": "accepted", "trade.fill": "fill",
    "trade.rejected": "rejected", "trade.canceled": "canceled", "trade.position_opened": "position_opened",
    "trade.position_changed": "position_changed", "trade.position_closed": "position_closed",
    # The rest of an order's life, as the NautilusTrader observer records it; a stop's trigger price is
    # its expected_price (the record itself also carries trigger_price).
    "trade.order.updated": "updated", "trade.order.triggered": "triggered",
    "trade.order.pending_update": "pending_update", "trade.order.pending_cancel": "pending_cancel",
    "trade.order.modify_rejected": "modify_rejected", "trade.order.cancel_rejected": "cancel_rejected",
    "trade.order.emulated": "emulated", "trade.order.released": "released",
}


def trade_lifecycle(
    trail: Trail,
    order_id: str | None = None,
    *,
    correlation_id: str | None = None,
    start: Any = None,
    end: Any = None,
) -> ir.Table:
    """Signal, order, acceptance, fills, position opened/closed and realized P&L of one trade, in order.

    Give exactly one of ``order_id`` (the client order id) or ``correlation_id`` (the signal id that
    ``audit_tags`` put on the order). The result holds the records carrying that id, the signal
    whose id the order carries, and the position events its orders made plus the round trips those
    touched (each position record carries its opening signal's id); other round trips of a netting
    position id are left out. ``start``/``end``
    narrow the search to a time window.

    On a converted trail it first finds the trade's order and correlation ids (one or two small
    queries, executed when called: the rest stays lazy), then reads only the rows carrying one of
    them in the days whose cold files' id filters may hold them (``workbench._id_index``), so its
    cost grows with the trade and the rows per day, not with the trail's length. On Spark those
    rows are fetched when called too (``_backend.few_rows``).

    Returns
    -------
    ir.Table
        Lazy, in causal order (``workbench.chronological``: a signal before the order it caused
        even at the same nanosecond in another stream); columns ``LIFECYCLE_COLUMNS``:
        ``step`` (``signal``, ``order``, ``accepted``, ``updated``, ``triggered``, ``pending_update``,
        ``pending_cancel``, ``modify_rejected``, ``cancel_rejected``, ``emulated``, ``released``, ``fill``,
        ``rejected``, ``canceled``, ``position_opened``/``_changed``/``_closed``), ``since_previous_ns``
        (latency from the previous step, NULL on the first) and ``since_start_ns`` (from the first step).
    """
    if (order_id is None) == (correlation_id is None):
        raise WorkbenchInputError(
            f"give exactly one of order_id or correlation_id, got order_id={order_id!r}, "
            f"correlation_id={correlation_id!r}")
    t = trail.filter(start=start, end=end, check=False)
    if order_id is not None:
        (value,) = filters.string_values(order_id, "order_id")
        anchor = t.order_id == value
    else:
        (value,) = filters.string_values(correlation_id, "correlation_id")  # type: ignore[arg-type]
        anchor = t.correlation_id == value
    reading = _reading(trail, t, anchor, by_order=order_id is not None, value=value)
    if reading is not None:
        days, orders, correlations = reading
        # Every row the lifecycle returns or derives its rows from carries one of these ids: the engine
        # keeps those rows of those days before any join (a handful, not every signal and position record);
        # Spark, which would read them again at every reference below, reads them once (``few_rows``).
        t = _backend.few_rows(_rows_carrying(t.filter(_on_days(t, days)), orders, correlations))
    rows = causal_keys(_lifecycle_rows(t, "order_id" if order_id is not None else "correlation_id", value,
                                       few=reading is not None))
    ordered = ibis.window(order_by=list(CAUSAL_ORDER))
    derived = {
        "step": rows.event_type.substitute(_STEPS, else_=rows.event_type),
        "since_previous_ns": rows.ts_event - rows.ts_event.lag().over(ordered),
        "since_start_ns": rows.ts_event - rows.ts_event.min().over(ibis.window()),
    }
    columns = [derived[name].name(name) if name in derived else name for name in LIFECYCLE_COLUMNS]
    return rows.select(*columns, *CAUSAL_KEYS).order_by(*CAUSAL_ORDER).drop(*CAUSAL_KEYS)


def _lifecycle_rows(t: ir.Table, key: str, value: str, *, few: bool) -> ir.Table:
    """The rows of ``t`` in the lifecycle of the rows whose ``key`` column is ``value``, described
    (``with_description``): the anchored rows; the signals whose
    correlation id an anchored row carries; and the position records of an anchored row's position id
    that one of the anchor's orders made (their order id is an anchored order's or fill's) or that belong
    to a round trip those orders touched (a position record with one of those order ids carries the
    round trip's correlation id, its opening signal's). A netting venue reuses one position id for
    every round trip of an instrument: only the round trips the anchor's orders touched are kept.

    Two plans of this one rule, held equal by ``tests/unit/workbench/test_lifecycle_plans.py``:

    - ``few`` (``t`` holds only the rows carrying the trade's ids): windows over ``t`` ("does a row
      with my correlation id, position id or order id qualify?"), one read of ``t`` and no join.
      Spark ran each subquery of the other plan as a broadcast job of its own (5 jobs). The rows are
      described first: the windows' projection would hide a fetched row's description from Spark's
      twin (``_spark.described``) and the query would hold the whole expression again.
    - otherwise (``t`` is the whole trail): ``isin`` subqueries, each a small hash join. Windows
      partitioned over every row cost DuckDB ~100x more (5.6 s against 60 ms on 1M hot rows).
    """
    def positions(table: ir.Table) -> ir.BooleanValue:
        return table.event_type.startswith("trade.position_")

    if few:
        def any_of(condition: ir.BooleanValue, by: ir.Column) -> ir.BooleanValue:
            """Whether some row with this row's (non-NULL) ``by`` value meets ``condition``."""
            hits = ibis.ifelse(condition, 1, 0).max().over(ibis.window(group_by=by))
            return by.notnull() & (hits == 1)

        t = with_description(t)
        anchored = (t[key] == value).fill_null(False)
        marked = t.mutate(
            _anchored=anchored,
            _signal=t.event_type.startswith("trade.signal") & any_of(anchored, t.correlation_id),
            _position=positions(t) & any_of(anchored, t.position_id),
            _own_order=any_of(anchored & t.event_type.isin(["trade.order", "trade.fill"]), t.order_id),
        )
        # A second step: whether a round trip was touched depends on the first step's _own_order.
        marked = marked.mutate(_touched=any_of(positions(marked) & marked._own_order, marked.correlation_id))
        keep = marked._anchored | marked._signal | (marked._position & (marked._own_order | marked._touched))
        return marked.filter(keep).drop("_anchored", "_signal", "_position", "_own_order", "_touched")
    # Three simple filters, not one OR: each keeps its predicates next to the scan (an OR over IN
    # subqueries makes the engine build every row of the trail first).
    anchor = t[key] == value
    anchored_rows = t.filter(anchor)
    other = anchor.isnull() | ~anchor  # rows not already in anchored_rows
    signals = t.filter(t.event_type.startswith("trade.signal"), other,
                       t.correlation_id.isin(anchored_rows.correlation_id))
    position_rows = t.filter(positions(t), other, t.position_id.isin(anchored_rows.position_id))
    own = anchored_rows.filter(anchored_rows.event_type.isin(["trade.order", "trade.fill"])).order_id
    made = position_rows.filter(position_rows.order_id.isin(own))
    touched = t.filter(positions(t), t.order_id.isin(own)).correlation_id
    kept = made.union(position_rows.filter(position_rows.correlation_id.isin(touched)), distinct=True)
    return with_description(anchored_rows.union(signals).union(kept))


#: Up to this many ids get a scan each; more are read by two scans with IN lists.
_SCANS = 16


def _rows_carrying(t: ir.Table, orders: set[str], correlations: set[str]) -> ir.Table:
    """The rows of ``t`` whose ``order_id`` is one of ``orders`` or whose ``correlation_id`` is one of
    ``correlations``, each row once.

    One scan per id, each with one ``=`` comparison: DuckDB filters a Parquet scan by an equality but
    uses an IN list or an OR only to skip row groups, reading every other row of the day whole first
    (thousands of signal and position records, for a few). The scans are disjoint: a row has one
    order id, and one correlation id, and rows with one of ``orders`` are left out of the others.
    """
    if _backend.reads_files_per_reference(t):
        # Spark reads the files again for each branch of a union: one scan, keeping a row that carries
        # any of the ids (once: a filter). Padded lists (``_padded``): one query shape for most trades.
        found = [t[column].isin(_padded(sorted(ids), least)) for column, ids, least
                 in (("order_id", orders, 2), ("correlation_id", correlations, 4)) if ids]
        return t.filter(functools.reduce(operator.or_, found)) if found else t.filter(ibis.literal(False))
    if len(orders) + len(correlations) > _SCANS:
        by_order = t.filter(t.order_id.isin(sorted(orders)))
        return by_order.union(t.filter(t.correlation_id.isin(sorted(correlations)),
                                       t.order_id.isnull() | ~t.order_id.isin(sorted(orders))))
    # Padded (a repeated id's scan keeps no row) so that most trades share one query shape, compiled
    # once (``workbench._compiled``).
    nothing = ibis.literal(False)
    ordered = _padded(sorted(orders), 2)
    scans = [t.filter(t.order_id == value, *([nothing] if n >= len(orders) else []))
             for n, value in enumerate(ordered or [""])]
    others = [t.order_id.isnull() | ~t.order_id.isin(ordered)] if orders else []
    padded = _padded(sorted(correlations), 4)
    scans += [t.filter(t.correlation_id == value, *others, *([nothing] if n >= len(correlations) else []))
              for n, value in enumerate(padded)]
    rows = scans[0]
    for scan in scans[1:]:
        rows = rows.union(scan)
    return rows


def _padded(values: list[Any], least: int) -> list[Any]:
    """``values`` with its last repeated up to ``least`` or the next power of two: a query over them has the
    same shape (``workbench._compiled``) for any count in that range. Empty stays empty."""
    size = least
    while size < len(values):
        size *= 2
    return values + values[-1:] * (size - len(values)) if values else values


def _on_days(t: ir.Table, days: frozenset[Any]) -> ir.BooleanValue:
    """``filters.on_days`` over ``days`` padded (``_padded``): a repeated day changes no answer, only the shape."""
    return filters.on_days(t, _padded(sorted(days), 4))


def _reading(trail: Trail, t: ir.Table, anchor: ir.BooleanValue, *, by_order: bool,
             value: str) -> tuple[frozenset[Any], set[str], set[str]] | None:
    """The days holding every row ``trade_lifecycle`` returns or derives them from, and the order and
    correlation ids each such row carries one of; None to read every row.

    Such a row carries the anchor ``value``, an order id of the anchor's orders and fills (``own``),
    or the correlation id of an anchored record (its signal) or of a round trip its orders touched:
    those ids are read first from the days that may hold them (``_id_index``), then the days holding
    any of them are the answer.
    """
    days = _id_index.days_holding(trail, [value])
    if days is None:
        return None
    columns = ("event_type", "order_id", "correlation_id")
    rows = t.filter(_on_days(t, days), anchor).select(*columns).to_pyarrow().to_pylist() if days else []
    own = {row["order_id"] for row in rows if row["event_type"] in ("trade.order", "trade.fill")} - {None}
    correlations = {row["correlation_id"] for row in rows} - {None}
    if by_order:  # own is at most {value}: the position records its orders made are among the rows read
        made = [row for row in rows if row["order_id"] in own]
    elif own:
        own_days = _id_index.days_holding(trail, own)
        if own_days is None:
            return None
        made = t.filter(_on_days(t, own_days), t.order_id.isin(_padded(sorted(own), 4))).select(
            *columns).to_pyarrow().to_pylist()
    else:
        made = []
    correlations.update(row["correlation_id"] for row in made
                        if str(row["event_type"]).startswith("trade.position_") and row["correlation_id"])
    orders = own | {value} if by_order else own
    if not by_order:
        correlations.add(value)
    every = _id_index.days_holding(trail, orders | correlations)
    return None if every is None else (every, orders, correlations)


#: Columns of ``SignalConversion.summary`` (after the ``by`` column).
CONVERSION_COLUMNS = ("signals", "acted_on", "filtered", "orders", "rejected", "filled_orders", "fills",
                      "conversion_rate", "fill_rate")


@dataclass(frozen=True)
class SignalConversion:
    """Signals emitted, acted on and traded per group, and why the others were not traded.

    ``summary``: one row per group (the ``by`` column, then ``CONVERSION_COLUMNS``):
    ``conversion_rate`` = acted_on / signals, ``fill_rate`` = filled_orders / orders (NULL when
    the denominator is 0). ``not_traded``: one row per group and ``filter_reason`` with
    ``signals`` and ``share`` (of the group's filtered signals). Both lazy. ``verification``: the
    status of the trail they were read from (their frames carry it in ``attrs["verification"]``).
    """

    by: str
    summary: ir.Table
    #: Builds ``not_traded`` on first use: its window costs Ibis ~5 ms to build, as much as the
    #: summary's query takes DuckDB on a day of a 1M-event trail, and most callers read only the summary.
    build_not_traded: Callable[[], ir.Table] = field(repr=False, compare=False)
    verification: VerificationStatus | None = None

    @functools.cached_property
    def not_traded(self) -> ir.Table:
        """Signals not traded per group and ``filter_reason`` (``signals``, ``share``), lazy."""
        return self.build_not_traded()

    def to_pandas(self) -> pd.DataFrame:
        """The summary as a DataFrame (executes the query)."""
        return self.summary.to_pandas()


def signal_conversion(
    trail: Trail,
    by: str = "strategy_source",
    *,
    start: Any = None,
    end: Any = None,
    strategy: Any = None,
    instrument: Any = None,
    window: Any = None,
) -> SignalConversion:
    """Signal-to-trade conversion per ``by`` (a column: ``strategy_source``, ``instrument_id``, ``regime``...).

    Parameters
    ----------
    trail
        An opened trail.
    by
        Group column (``strategy_source``, ``instrument_id``, ``regime``...). Orders, fills and
        rejections are counted in the group of the signal whose id they carry; one without a
        signal, in its own group.
    start, end
        Only events with ``start <= ts_event < end`` (either may be None), as in every analysis.
    strategy, instrument
        Only these strategies (``strategy_source``) / instruments, as in ``Trail.filter``.
    window
        Deprecated alias of ``(start, end)``; warns ``DeprecationWarning``.

    Returns
    -------
    SignalConversion
        ``summary`` and ``not_traded``, lazy; ``to_pandas()`` executes the summary.
    """
    if by not in trail.events.columns:
        raise WorkbenchInputError(f"by={by!r} is not a column of the trail; try 'strategy_source' or 'instrument_id'")
    if window is not None:
        warnings.warn("signal_conversion(window=(start, end)) is deprecated: pass start= and end= as every "
                      "analysis takes them", DeprecationWarning, stacklevel=2)
        if start is not None or end is not None:
            raise WorkbenchInputError(f"window={window!r} and start=/end= both given: pass only start= and end=")
        start, end = _window(window)
    trail.check_values("strategy", strategy)
    trail.check_values("instrument", instrument)
    recipes = trail.filter_recipes(start=start, end=end, strategy=strategy, instrument=instrument, check=False,
                                   event_type=["trade.signal*", "trade.order", "trade.fill", "trade.rejected"])
    # On DuckDB each is compiled once per shape (``_compiled.cached_table``): building the summary's
    # expression cost Ibis more than DuckDB needs to answer it for a day.
    summary = cached_table(trail, ("signal_conversion", by), recipes, functools.partial(_conversion_summary, by=by))
    return SignalConversion(by, summary, lambda: cached_table(
        trail, ("signal_not_traded", by), recipes, functools.partial(_not_traded, by=by)), trail.verification)


def _signal_grouped(t: ir.Table, by: str) -> ir.Table:
    """Signals, orders, fills and rejections of ``t`` with the columns counted, each in its signal's ``by`` group."""
    # Only the columns counted: a join over every column of the trail costs Ibis ~10 ms to build.
    t = t.select(*dict.fromkeys(["event_type", "acted_on", "order_id", "filter_reason", "correlation_id", by]))
    is_signal = t.event_type.startswith("trade.signal")
    if _backend.reads_files_per_reference(t):
        # Spark scans the day's files again for the grouped copy and broadcasts it in a job of its own:
        # a window over the one scan finds the same group (rows without a correlation id are in none).
        group = t[by].min(where=is_signal).over(ibis.window(group_by=t.correlation_id))
        signal_group = ibis.ifelse(t.correlation_id.notnull(), group, ibis.null(t[by].type()))
        return t.select(*[name for name in ("event_type", "acted_on", "order_id", "filter_reason") if name != by],
                        **{by: ibis.ifelse(is_signal, t[by], ibis.coalesce(signal_group, t[by]))})
    # An order, fill or rejection counts for the group of the signal it carries (its correlation id):
    # the strategy that emitted the signal, not the execution component that placed the order.
    # Grouped over ``t`` itself (the signal rows picked by the aggregate's ``where``), not a filter of it:
    # the query then names one relation twice, which the engine reads once (a CTE), where a filtered
    # copy scanned the day's files a second time (a third of the query's time on DuckDB, measured).
    signal_groups = t.group_by("correlation_id").aggregate(_signal_group=t[by].min(where=is_signal))
    joined = t.left_join(signal_groups, t.correlation_id == signal_groups.correlation_id)
    return joined.select(
        *[name for name in ("event_type", "acted_on", "order_id", "filter_reason") if name != by],
        **{by: ibis.ifelse(joined.event_type.startswith("trade.signal"), joined[by],
                           ibis.coalesce(joined._signal_group, joined[by]))},
    )


def _conversion_summary(rows: ir.Table, *, by: str) -> ir.Table:
    t = _signal_grouped(rows, by)
    is_signal = t.event_type.startswith("trade.signal")
    is_fill = t.event_type == "trade.fill"
    counts = t.group_by(by).aggregate(
        signals=is_signal.sum(),
        acted_on=(is_signal & t.acted_on.fill_null(False)).sum(),
        filtered=(is_signal & ~t.acted_on.fill_null(True)).sum(),
        orders=(t.event_type == "trade.order").sum(),
        rejected=(t.event_type == "trade.rejected").sum(),
        filled_orders=t.order_id.nunique(where=is_fill),
        fills=is_fill.sum(),
    )
    return counts.select(
        by, *CONVERSION_COLUMNS[:-2],
        conversion_rate=counts.acted_on / counts.signals.nullif(0),
        fill_rate=counts.filled_orders / counts.orders.nullif(0),
    ).order_by(by)


def _not_traded(rows: ir.Table, *, by: str) -> ir.Table:
    t = _signal_grouped(rows, by)
    filtered = t.filter(t.event_type.startswith("trade.signal") & ~t.acted_on.fill_null(True))
    reasons = filtered.group_by([by, "filter_reason"]).aggregate(signals=filtered.count())
    reasons = reasons.mutate(share=reasons.signals / reasons.signals.sum().over(ibis.window(group_by=by)))
    return reasons.order_by(by, ibis.desc("signals"), "filter_reason")


def _window(window: Any) -> tuple[Any, Any]:
    if window is None:
        return None, None
    if isinstance(window, (tuple, list)) and len(window) == 2:
        return window[0], window[1]
    raise WorkbenchInputError(f"window={window!r}: expected (start, end), either may be None")
