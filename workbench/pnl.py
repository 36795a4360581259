"""Realized P&L from the trail alone, by one rule, with exact decimals, reconciled against recorded balances.

``pnl_reconciliation`` reconciles by account type (margin, cash, converted amounts) and checks
fills against orders and positions; its docstring and the README say exactly what it checks.

**The rule** (``realized_pnl_events``; ``pnl_reconciliation``, ``realized_pnl_series`` and
``charts.pnl_over_time`` all use it). A record counts towards realized P&L, with its
``realized_pnl`` as recorded, exactly when

1. it is a ``trade.position_closed`` record carrying ``realized_pnl`` (what the NautilusTrader
   ``AuditObserver`` writes: the round trip's realized P&L, commissions included); or
2. it is a ``trade.fill`` record carrying ``realized_pnl`` (emitters that follow the original
   specification's ``TradeEvent``) and no record of kind 1 with the same (``trader_id``,
   ``position_id``) is in the trail: when there is one, that closing record already holds the
   trade's P&L and the fill is not counted again. A fill without ``position_id`` always counts.

No other record counts. ``trade.position_opened`` and ``trade.position_changed`` carry the
position's P&L so far (NautilusTrader: minus the opening commission, then any partial closes),
which its closing record repeats: summing them too counted one trade up to three times. Values are
summed as recorded (the workbench never subtracts commissions itself), exactly (DECIMAL(38,18)),
per ``currency``. Whether a fill is covered is decided over everything given (the whole trail
for a ``Trail``) before a ``start``/``end`` window applies, so consecutive windows add up to the
whole. The P&L a still-open position has realized by partial closes counts once its closing
record is written, not before.

Examples
--------
>>> import shutil, tempfile
>>> from benchmarks.trail_gen import generate_trail
>>> from workbench import open_trail, pnl_reconciliation
>>> base = tempfile.mkdtemp()
>>> _ = generate_trail(base, events=600, days=1, seed=5)
>>> reconciliation = pnl_reconciliation(open_trail(base))
>>> frame = reconciliation.to_pandas()
>>> list(frame.columns[:4])
['currency', 'realized_pnl', 'balance_start', 'balance_end']
>>> reconciliation.ok
True
>>> shutil.rmtree(base)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.types as ir

from workbench import filters
from workbench._booking import (
    FILL_ACCOUNTING,
    POSITION_RECORDS,
    accounting_by_trade,
    book,
    fill_problems,
    scoped,
    scoped_id,
)
from workbench._columns import CHRONOLOGICAL
from workbench.errors import WorkbenchInputError

if TYPE_CHECKING:
    import pandas as pd

    from workbench.trail import Trail
    from workbench.verification import VerificationStatus

ACCOUNT_STATE = "sys.account_state"
POSITION_CLOSED = "trade.position_closed"
FILL = "trade.fill"
#: Columns of ``PnlReconciliation.to_pandas()``.
RECONCILIATION_COLUMNS = ("currency", "realized_pnl", "balance_start", "balance_end", "balance_change",
                          "difference", "reconciled", "positions_closed", "pnl_records", "start_ts", "end_ts",
                          "account_type", "commission", "notional", "converted", "expected_change", "tolerance",
                          "status")
#: The columns of fills and position records the booking reads.
FILL_COLUMNS = ("trade_id", "order_id", "side", "size", "price", "commission", "currency", "position_id")
POSITION_COLUMNS = ("position_id", "realized_pnl", "currency", "side", "size", "trade_id")
#: Columns of ``realized_pnl_series``.
SERIES_COLUMNS = ("time", "ts_event", "group", "currency", "realized_pnl", "cumulative_pnl", "position_id",
                  "instrument_id", "strategy_source", "event_type")
#: What ``PnlReconciliation.to_text()`` says when ``ok`` is None.
NOTHING_TO_RECONCILE = "nothing to reconcile"


def realized_pnl_events(trail: Trail | ir.Table, *, start: Any = None, end: Any = None) -> ir.Table:
    """The records that carry realized P&L under the module's rule, each trade counted once.

    Parameters
    ----------
    trail
        An opened trail, or a table of its rows (``trail.events`` or one derived from it) with at
        least ``event_type`` and ``realized_pnl``; without ``position_id`` no fill is found covered,
        without ``trader_id`` coverage is by ``position_id`` alone.
    start, end
        Only records with ``start <= ts_event < end``; coverage is still decided over everything
        given, so a fill whose position closes after ``end`` is not counted in this window either.

    Returns
    -------
    ir.Table
        Lazy and unordered (order with ``.order_by("ts_event", "stream", "sequence")``); the columns
        of the input, ``trade.position_closed`` and ``trade.fill`` rows only.

    Raises
    ------
    WorkbenchInputError
        ``trail`` is neither a ``Trail`` nor a table with ``event_type`` and ``realized_pnl``.

    Examples
    --------
    >>> import ibis
    >>> from decimal import Decimal
    >>> rows = ibis.memtable({
    ...     "event_type": ["trade.fill", "trade.position_opened", "trade.fill", "trade.position_closed",
    ...                    "trade.fill"],
    ...     "position_id": ["P-1", "P-1", "P-1", "P-1", "P-2"],
    ...     "realized_pnl": [Decimal("-2.20"), Decimal("-2.20"), Decimal("95.60"), Decimal("95.60"),
    ...                      Decimal("10.00")]})
    >>> counted = realized_pnl_events(rows).to_pandas()
    >>> sorted(zip(counted.event_type, counted.position_id, counted.realized_pnl))
    [('trade.fill', 'P-2', Decimal('10.00')), ('trade.position_closed', 'P-1', Decimal('95.60'))]
    """
    from workbench.trail import Trail

    if isinstance(trail, Trail):
        t = trail.events
    elif isinstance(trail, ir.Table):
        t = trail
    else:
        raise WorkbenchInputError(f"trail={trail!r} ({type(trail).__name__}): expected a Trail or an Ibis table "
                                  "of trail rows")
    missing = [column for column in ("event_type", "realized_pnl") if column not in t.columns]
    if missing:
        raise WorkbenchInputError(f"trail has no column {missing[0]!r}: expected a table with event_type and "
                                  f"realized_pnl, got columns {list(t.columns)}")
    carries = t.realized_pnl.notnull()
    closed = t.filter(t.event_type == POSITION_CLOSED, carries)
    fills = t.filter(t.event_type == FILL, carries)
    if "position_id" in t.columns:
        keys = [key for key in ("trader_id", "position_id") if key in t.columns]
        covering = closed.filter(closed.position_id.notnull()).select(*keys).distinct()
        fills = fills.anti_join(covering, keys)  # SQL equality: a NULL position_id covers nothing
    counted = closed.union(fills)
    return _window(counted, start, end)


def realized_pnl_series(trail: Trail, by: str = "strategy_source", *, start: Any = None, end: Any = None) -> ir.Table:
    """Every realized P&L record (the module's rule) over time, with its running total per ``by`` and currency.

    Parameters
    ----------
    trail
        An opened trail.
    by
        The grouping column (``strategy_source``, ``instrument_id``, ...); its value is ``group``.
    start, end
        Only records with ``start <= ts_event < end`` (coverage decided over the whole trail).

    Returns
    -------
    ir.Table
        Lazy, ordered by (``ts_event``, ``stream``, ``sequence``); columns ``SERIES_COLUMNS``
        (P&L columns are exact DECIMAL(38,18); ``event_type`` says which kind of record counted).
        No rows when the trail holds no realized P&L.

    Raises
    ------
    WorkbenchInputError
        ``by`` is not a column of the trail.

    Examples
    --------
    >>> import shutil, tempfile
    >>> from benchmarks.trail_gen import generate_trail
    >>> from workbench import open_trail
    >>> base = tempfile.mkdtemp()
    >>> _ = generate_trail(base, events=600, days=1, seed=5)
    >>> series = realized_pnl_series(open_trail(base), by="instrument_id").to_pandas()
    >>> set(series.event_type)
    {'trade.position_closed'}
    >>> shutil.rmtree(base)
    """
    if by not in trail.events.columns:
        raise WorkbenchInputError(f"by={by!r} is not a column of the trail; try 'strategy_source' or 'instrument_id'")
    counted = realized_pnl_events(trail, start=start, end=end)
    running = ibis.window(group_by=[counted[by], counted.currency], order_by=list(CHRONOLOGICAL),
                          preceding=None, following=0)
    series = counted.mutate(group=counted[by], cumulative_pnl=counted.realized_pnl.sum().over(running))
    return series.select(*SERIES_COLUMNS, "stream", "sequence").order_by(*CHRONOLOGICAL).drop("stream", "sequence")


@dataclass(repr=False)
class PnlReconciliation:
    """Realized P&L per currency (the module's rule) against the change of the balances recorded in the trail.

    ``by_strategy`` (lazy): realized P&L, the records counted, closed positions, commissions and
    fills per (``strategy_source``, ``instrument_id``, ``currency``); ``realized_pnl`` is NULL for a
    group without P&L records. ``to_pandas()``: one row per currency (``RECONCILIATION_COLUMNS``),
    all money as ``decimal.Decimal``; ``difference`` is ``balance_change - expected_change``
    (``expected_change`` = ``realized_pnl - commission + notional + converted``), exactly ``0``
    when they reconcile (or within ``tolerance``); ``reconciled`` is True or False, or None for a
    currency without both a starting and a final balance or that needs a rate (``status`` says
    which). ``fill_checks``/``fill_problems``: the fill-level checks. ``ok`` sums it up;
    ``to_text()`` says it in words, ending with the trail's verification status
    (``verification``), which ``to_pandas()`` carries in ``attrs["verification"]``.
    """

    trail: Trail
    by_strategy: ir.Table
    start: int | None = None
    end: int | None = None
    balances: Mapping[str, Decimal] | None = None
    starting_balances: Mapping[str, Decimal] | None = None
    events: ir.Table | None = None

    @cached_property
    def _checked(self) -> tuple[pd.DataFrame, int, list[str]]:
        import pandas as pd

        rows = self.events if self.events is not None else self.trail.events
        t = self.trail.filter(start=self.start, end=self.end, table=rows, check=False)
        states = _balances(t.filter(t.event_type == ACCOUNT_STATE).select("ts_event", "payload", *CHRONOLOGICAL[1:])
                           .order_by(*CHRONOLOGICAL).to_pyarrow().to_pylist())
        first_ts = states[0][0] if states else None
        last_ts = states[-1][0] if states else None
        # Fills, positions and their accounting over everything given: a position's P&L before the
        # window is what its first change in the window is measured from, and the fill checks are
        # about the whole trail.
        fills = scoped(_rows(rows, FILL, FILL_COLUMNS))
        positions = scoped(_rows(rows, POSITION_RECORDS, POSITION_COLUMNS))
        accounting = accounting_by_trade(_rows(rows, FILL_ACCOUNTING, ("payload",)))
        booking = book(fills, positions, accounting.by_trade, (first_ts, last_ts))
        checks, problems = fill_problems(fills, positions, accounting)
        counted = realized_pnl_events(rows, start=self.start, end=self.end)
        if first_ts is not None:  # P&L after the first recorded balance, up to the last one
            counted = counted.filter(counted.ts_event > first_ts, counted.ts_event <= last_ts)
        totals: dict[str, list[Any]] = {}
        for row in counted.select("currency", "realized_pnl", "event_type", *(
                key for key in ("stream", "position_id") if key in counted.columns)).to_pyarrow().to_pylist():
            if scoped_id(row.get("stream"), row.get("position_id")) in booking.positions:
                continue  # booked fill by fill (its sys.fill_accounting records), not by its closing record
            total = totals.setdefault(row["currency"], [Decimal(0), 0, 0])
            total[0] += row["realized_pnl"]
            total[1] += row["event_type"] == POSITION_CLOSED
            total[2] += 1
        recorded_start: dict[tuple[str, str], Decimal] = {}
        recorded_end: dict[tuple[str, str], Decimal] = {}
        for _, balances in states:  # each account's first and last recorded total per currency
            recorded_end.update(balances)
            for key, total in balances.items():
                recorded_start.setdefault(key, total)
        start_balances = _per_currency(recorded_start) if self.starting_balances is None else dict(
            self.starting_balances)
        end_balances = _per_currency(recorded_end) if self.balances is None else dict(self.balances)
        frame_rows = []
        currencies = set(totals) | set(start_balances) | set(end_balances) | set(booking.records)
        for currency in sorted(currencies, key=str):
            realized, closed, records = totals.get(currency, (Decimal(0), 0, 0))
            realized += booking.realized.get(currency, Decimal(0))
            records += booking.records.get(currency, 0)
            closed += booking.closed.get(currency, 0)
            expected = realized + booking.expected(currency) - booking.realized.get(currency, Decimal(0))
            tolerance = booking.tolerance.get(currency, Decimal(0))
            begin, finish = start_balances.get(currency), end_balances.get(currency)
            change = None if begin is None or finish is None else finish - begin
            difference = None if change is None else change - expected
            if booking.needs_rate.get(currency):
                reconciled, status = None, "needs a rate for " + ", ".join(sorted(booking.needs_rate[currency]))
            elif difference is None:
                reconciled, status = None, "no balances to compare"
            else:
                reconciled = abs(difference) <= tolerance
                status = "reconciled" if reconciled else "NOT reconciled"
            frame_rows.append((currency, realized, begin, finish, change, difference, reconciled, int(closed or 0),
                               records, first_ts, last_ts, "/".join(sorted(booking.account_types.get(currency, ())))
                               or None, booking.commissions.get(currency, Decimal(0)),
                               booking.notional.get(currency, Decimal(0)),
                               booking.converted.get(currency, Decimal(0)), expected, tolerance, status))
        return pd.DataFrame(frame_rows, columns=list(RECONCILIATION_COLUMNS)), checks, problems

    @property
    def frame(self) -> pd.DataFrame:
        return self._checked[0]

    @property
    def fill_checks(self) -> int:
        """How many fill-level checks ran (fill/accounting pairs, orders, positions); 0 without fill accounting."""
        return self._checked[1]

    @property
    def fill_problems(self) -> list[str]:
        """What the fill-level checks found, one line each (a missing or extra fill); empty when none."""
        return list(self._checked[2])

    @property
    def ok(self) -> bool | None:
        """Whether the realized P&L and the balances agree exactly, in every currency.

        False when a fill-level check failed (``fill_problems``), when a currency's difference is
        beyond its tolerance, or when a currency with P&L has no balances to compare it with. None
        when there is nothing to reconcile (no realized P&L or booked fill in the window, after
        the first recorded balance and up to the last; or no currency with both a starting and a
        final balance), or when a currency needs a conversion rate the trail does not hold and
        nothing else failed: such a currency is neither matched nor mismatched. True only when
        every currency's difference is exactly zero, or within its ``tolerance`` (one minor unit
        per amount the engine converted or rounded). Test it with ``is True``: ``None`` is falsy
        but is not a failure to reconcile.
        """
        return self._verdict()[0]

    @property
    def verification(self) -> VerificationStatus:
        """The verification status of the trail the P&L was read from (``trail.verification``)."""
        return self.trail.verification

    def to_pandas(self) -> pd.DataFrame:
        """One row per currency (executes the queries once; later calls reuse the result)."""
        frame = self.frame.copy()
        frame.attrs.update(verification=self.verification.summary, verification_state=self.verification.state)
        return frame

    def to_text(self) -> str:
        """The verdict in one line, then one line per currency (executes the queries once).

        Returns
        -------
        str
            ``"P&L reconciled exactly"`` (or within the engine's rounding), ``"P&L NOT reconciled"``
            (with the first failed fill check, if any), ``"P&L not reconciled: ... need a
            conversion rate"`` or ``"P&L: nothing to reconcile (why)"``, then for each currency its
            realized P&L, what was booked apart from it, the records counted, the balances, the
            difference and its status, then ``"trail "`` and the trail's verification summary.
        """
        _, verdict = self._verdict()
        lines = [verdict]
        for row in self.frame.itertuples():
            balances = ("no balances to compare" if row.balance_change is None else
                        f"balance {_text(row.balance_start)} -> {_text(row.balance_end)} "
                        f"(change {_text(row.balance_change)}), difference {_text(row.difference)}")
            booked = "".join(f", {name} {_text(value)}" for name, value in (
                ("commissions apart", row.commission), ("notional", row.notional), ("converted in", row.converted))
                if value)
            lines.append(f"  {row.currency}: realized {_text(row.realized_pnl)}{booked} from {row.pnl_records} "
                         f"record(s); {balances}; {row.status}")
        lines.append(f"trail {self.verification.summary}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        unverified = "" if self.verification.ok else f" [trail {self.verification.state}]"
        return f"<PnlReconciliation: {self._verdict()[1]}{unverified}>"

    def _verdict(self) -> tuple[bool | None, str]:
        frame, checks, problems = self._checked
        if problems:
            return False, f"P&L NOT reconciled: {len(problems)} fill check(s) failed ({problems[0]}...)"
        if not frame["pnl_records"].sum():
            where = "in the window" if self.start is not None or self.end is not None else "in the trail"
            if len(frame) and frame["start_ts"].notna().any():
                where += " between the first and the last recorded balance"
            return None, (f"P&L: {NOTHING_TO_RECONCILE} (no realized P&L records {where}: no "
                          "trade.position_closed or trade.fill carrying realized_pnl)")
        if frame["balance_change"].isna().all():
            return None, (f"P&L: {NOTHING_TO_RECONCILE} (no currency has both a starting and a final balance: "
                          "no sys.account_state records and none given)")
        rated = frame["status"].str.startswith("needs a rate")
        failed = [(value is not None and not value) or (value is None and not needs)
                  for value, needs in zip(frame["reconciled"], rated, strict=True)]
        if any(failed):
            return False, "P&L NOT reconciled"
        if rated.any():
            return None, ("P&L not reconciled: " + ", ".join(frame.currency[rated]) + " need a conversion rate "
                          "the trail does not record (neither matched nor mismatched)")
        exact = all(value == 0 for value in frame["difference"])
        fills = f" and {checks} fill checks" if checks else ""
        if exact:
            return True, f"P&L reconciled exactly{fills}"
        return True, f"P&L reconciled within the engine's rounding of converted amounts{fills}"


def pnl_reconciliation(
    trail: Trail,
    balances: Mapping[str, Decimal | str | int] | None = None,
    *,
    starting_balances: Mapping[str, Decimal | str | int] | None = None,
    start: Any = None,
    end: Any = None,
    events: ir.Table | None = None,
) -> PnlReconciliation:
    """Each currency's balance change against what the fills should have done to it, by account type, plus fill checks.

    What it checks, per currency: the change of the recorded balances (the last
    ``sys.account_state`` in the window minus the first, summed over accounts; or ``balances`` /
    ``starting_balances``) against the expected change from what happened after the first state
    and up to the last (a record and the account state it caused share a timestamp, the state
    coming after it in the stream):

    * fills with a ``sys.fill_accounting`` record (the NautilusTrader observer) are booked by
      account type: on a margin account the change of the position's realized P&L each fill caused
      (commissions in the P&L currency included) and commissions in any other currency against
      that currency; on a cash account the signed notional in the quote currency, the quantity in
      the base currency (multi-currency account) and the commission; on a single-currency account
      an amount in another currency converted with the engine's rate recorded at the fill, or,
      without one, the currencies are reported as needing a rate (``reconciled`` None);
    * P&L of positions without such records counts by the module's rule (``realized_pnl_events``:
      closed positions, commissions included, and fills carrying ``realized_pnl`` no closing
      record covers).

    ``tolerance`` is zero, or one minor unit per amount the engine converted or rounded. The
    fill-level checks (``fill_problems``) run over every row given, whatever the window, when
    the rows hold any ``sys.fill_accounting``: every fill has its accounting record and vice versa,
    each order's filled quantity equals the sum of its fill records, each position's fill records
    net to its last recorded quantity. Funding and rollover are not recorded, so not booked.

    Parameters
    ----------
    trail
        An opened trail.
    balances
        Final balances per currency to reconcile against instead of the last recorded state
        (for example from a broker statement); exact decimals or decimal strings.
    starting_balances
        Balances at the start instead of the first recorded state.
    start, end
        Only this time window.
    events
        A table derived from ``trail.events`` (filtered, or edited) to reconcile instead of the
        whole trail.

    Returns
    -------
    PnlReconciliation
        ``by_strategy`` lazy; ``to_pandas()``, ``ok`` (True; False; None when nothing was checked
        or a currency needs a rate), ``fill_problems`` and ``to_text()`` execute the comparison once.

    Raises
    ------
    WorkbenchInputError
        A balance is a float or not a decimal number.

    Examples
    --------
    >>> import shutil, tempfile
    >>> from benchmarks.trail_gen import generate_trail
    >>> from workbench import open_trail
    >>> base = tempfile.mkdtemp()
    >>> _ = generate_trail(base, events=600, days=1, seed=5)
    >>> trail = open_trail(base)
    >>> pnl_reconciliation(trail).to_text().splitlines()[0]
    'P&L reconciled exactly'
    >>> nothing = pnl_reconciliation(trail, end="2000-01-01")
    >>> nothing.ok is None, nothing
    (True, <PnlReconciliation: P&L: nothing to reconcile (no realized P&L records in the window...)>)
    >>> shutil.rmtree(base)
    """
    from workbench._time import to_ns

    rows = trail.events if events is None else events
    counted = realized_pnl_events(rows, start=start, end=end)
    window = trail.filter(start=start, end=end, table=rows)
    # A plain predicate, not filter(event_type=...): a trail without fills is not a typo to warn about.
    fills = window.filter(window.event_type == FILL)
    keys = ["strategy_source", "instrument_id", "currency"]
    pnl = counted.group_by(keys).aggregate(realized_pnl=counted.realized_pnl.sum(), pnl_records=counted.count(),
                                           positions_closed=(counted.event_type == POSITION_CLOSED).sum())
    fees = fills.group_by(keys).aggregate(commission=fills.commission.sum(), fills=fills.count())
    by_strategy = pnl.outer_join(fees, keys).select(
        *[ibis.coalesce(pnl[key], fees[key]).name(key) for key in keys],
        realized_pnl=pnl.realized_pnl, pnl_records=pnl.pnl_records.fill_null(0),
        positions_closed=pnl.positions_closed.fill_null(0).cast("int64"),
        commission=fees.commission, fills=fees.fills.fill_null(0),
    ).order_by(*keys)
    return PnlReconciliation(
        trail, by_strategy,
        start=None if start is None else to_ns(start, "start"), end=None if end is None else to_ns(end, "end"),
        balances=_decimals(balances, "balances"), starting_balances=_decimals(starting_balances, "starting_balances"),
        events=events,
    )


def _window(table: ir.Table, start: Any, end: Any) -> ir.Table:
    """``start <= ts_event < end`` on any table: with the day partitions pruned when it has them."""
    from workbench._backend import PARTITIONS
    from workbench._time import to_ns

    if start is None and end is None:
        return table
    if all(part in table.columns for part in PARTITIONS):
        return table.filter(filters.time_window(table, start, end))
    start_ns = None if start is None else to_ns(start, "start")
    end_ns = None if end is None else to_ns(end, "end")
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise WorkbenchInputError(f"end={end!r} is not after start={start!r}: the window is empty")
    return table.filter(*([] if start_ns is None else [table.ts_event >= start_ns]),
                        *([] if end_ns is None else [table.ts_event < end_ns]))


def _text(value: Any) -> str:
    """Money as plain decimal text without trailing zeros or an exponent: ``95.600`` is ``95.6``."""
    return f"{value.normalize():f}" if isinstance(value, Decimal) else str(value)


def _decimals(values: Mapping[str, Any] | None, argument: str) -> dict[str, Decimal] | None:
    if values is None:
        return None
    result = {}
    for currency, value in values.items():
        if isinstance(value, (float, bool)):
            raise WorkbenchInputError(f"{argument}[{currency!r}]={value!r}: pass a Decimal or a decimal string, "
                                      "not a float (inexact)")
        try:
            result[currency] = Decimal(value)
        except (ArithmeticError, ValueError, TypeError):
            raise WorkbenchInputError(f"{argument}[{currency!r}]={value!r} is not a decimal number") from None
    return result


def _balances(rows: list[dict[str, Any]]) -> list[tuple[int, dict[tuple[str, str], Decimal]]]:
    """(ts_event, {(account, currency): total}) of each account state, from its JSON payload, exactly.

    The account is its ``account_id`` within the stream that recorded it: two backtests written
    to one trail both have an account ``SIM-001``.
    """
    states = []
    for row in rows:
        payload = json.loads(row["payload"] or "{}", parse_float=Decimal)
        balances = payload.get("balances") or {}
        account = f"{row.get('stream')}:{payload.get('account_id')}"
        states.append((row["ts_event"], {(account, currency): Decimal(str(balance["total"]))
                                         for currency, balance in balances.items() if "total" in balance}))
    return states


def _per_currency(balances: Mapping[tuple[str, str], Decimal]) -> dict[str, Decimal]:
    """The accounts' totals summed per currency."""
    totals: dict[str, Decimal] = {}
    for (_, currency), total in balances.items():
        totals[currency] = totals.get(currency, Decimal(0)) + total
    return totals


def _rows(table: ir.Table, event_types: str | tuple[str, ...], columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """Records of ``event_types`` (``ts_event`` and ``columns`` that exist), chronological, as Python rows."""
    kinds = [event_types] if isinstance(event_types, str) else list(event_types)
    chosen = [column for column in columns if column in table.columns]
    found = table.filter(table.event_type.isin(kinds)).order_by(*CHRONOLOGICAL)
    streams = ["stream"] if "stream" in table.columns else []
    return found.select("ts_event", "event_type", *streams, *chosen).to_pyarrow().to_pylist()  # type: ignore[no-any-return]
