"""Realized P&L from the trail alone, with exact decimals, reconciled against recorded balances.

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

from workbench._columns import CHRONOLOGICAL
from workbench.errors import WorkbenchInputError

if TYPE_CHECKING:
    import pandas as pd

    from workbench.trail import Trail

ACCOUNT_STATE = "sys.account_state"
POSITION_CLOSED = "trade.position_closed"
#: Columns of ``PnlReconciliation.to_pandas()``.
RECONCILIATION_COLUMNS = ("currency", "realized_pnl", "balance_start", "balance_end", "balance_change",
                          "difference", "reconciled", "positions_closed", "start_ts", "end_ts")
#: Columns of ``realized_pnl_series``.
SERIES_COLUMNS = ("time", "ts_event", "group", "currency", "realized_pnl", "cumulative_pnl", "position_id",
                  "instrument_id", "strategy_source")


def realized_pnl_series(trail: Trail, by: str = "strategy_source", *, start: Any = None, end: Any = None) -> ir.Table:
    """Every closed position's realized P&L over time, with its running total per ``by`` and currency.

    Returns
    -------
    ir.Table
        Lazy, ordered by (``ts_event``, ``stream``, ``sequence``); columns ``SERIES_COLUMNS``
        (``group`` is the value of ``by``; P&L columns are exact DECIMAL(38,18)).
    """
    if by not in trail.events.columns:
        raise WorkbenchInputError(f"by={by!r} is not a column of the trail; try 'strategy_source' or 'instrument_id'")
    closed = trail.filter(start=start, end=end, event_type=POSITION_CLOSED)
    running = ibis.window(group_by=[closed[by], closed.currency], order_by=list(CHRONOLOGICAL),
                          preceding=None, following=0)
    series = closed.mutate(group=closed[by], cumulative_pnl=closed.realized_pnl.sum().over(running))
    return series.select(*SERIES_COLUMNS, "stream", "sequence").order_by(*CHRONOLOGICAL).drop("stream", "sequence")


@dataclass
class PnlReconciliation:
    """Realized P&L per currency against the change of the balances recorded in the trail.

    ``by_strategy`` (lazy): realized P&L, commissions and closed positions per
    (``strategy_source``, ``instrument_id``, ``currency``). ``to_pandas()``: one row per currency
    (``RECONCILIATION_COLUMNS``), all money as ``decimal.Decimal``; ``difference`` is
    ``balance_change - realized_pnl``, exactly ``0`` when they reconcile.
    """

    trail: Trail
    by_strategy: ir.Table
    start: int | None = None
    end: int | None = None
    balances: Mapping[str, Decimal] | None = None
    starting_balances: Mapping[str, Decimal] | None = None

    @cached_property
    def frame(self) -> pd.DataFrame:
        import pandas as pd

        t = self.trail.filter(start=self.start, end=self.end)
        states = _balances(t.filter(t.event_type == ACCOUNT_STATE).select("ts_event", "payload", *CHRONOLOGICAL[1:])
                           .order_by(*CHRONOLOGICAL).to_pyarrow().to_pylist())
        first_ts = states[0][0] if states else None
        last_ts = states[-1][0] if states else None
        closed = t.filter(t.event_type == POSITION_CLOSED)
        if first_ts is not None:  # P&L after the first recorded balance, up to the last one
            closed = closed.filter(closed.ts_event > first_ts, closed.ts_event <= last_ts)
        totals = {row["currency"]: (row["realized_pnl"] or Decimal(0), row["positions_closed"]) for row in
                  closed.group_by("currency").aggregate(realized_pnl=closed.realized_pnl.sum(),
                                                        positions_closed=closed.count()).to_pyarrow().to_pylist()}
        recorded_start: dict[str, Decimal] = {}
        recorded_end: dict[str, Decimal] = {}
        for _, balances in states:  # a currency's first and last recorded total
            recorded_end.update(balances)
            for currency, total in balances.items():
                recorded_start.setdefault(currency, total)
        start_balances = dict(self.starting_balances if self.starting_balances is not None else recorded_start)
        end_balances = dict(self.balances if self.balances is not None else recorded_end)
        rows = []
        for currency in sorted(set(totals) | set(start_balances) | set(end_balances), key=str):
            realized, count = totals.get(currency, (Decimal(0), 0))
            begin, finish = start_balances.get(currency), end_balances.get(currency)
            change = None if begin is None or finish is None else finish - begin
            difference = None if change is None else change - realized
            rows.append((currency, realized, begin, finish, change, difference, difference == 0, count,
                         first_ts, last_ts))
        return pd.DataFrame(rows, columns=list(RECONCILIATION_COLUMNS))

    @property
    def ok(self) -> bool:
        """True when every currency's difference is exactly zero."""
        return bool(self.frame["reconciled"].all())

    def to_pandas(self) -> pd.DataFrame:
        """One row per currency (executes the queries once; later calls reuse the result)."""
        return self.frame.copy()


def pnl_reconciliation(
    trail: Trail,
    balances: Mapping[str, Decimal | str | int] | None = None,
    *,
    starting_balances: Mapping[str, Decimal | str | int] | None = None,
    start: Any = None,
    end: Any = None,
) -> PnlReconciliation:
    """Realized P&L summed from the trail, exactly, against the balances recorded in it (or given).

    The P&L of a currency is the sum of ``realized_pnl`` over ``trade.position_closed`` records
    (NautilusTrader's realized P&L of a closed position includes its commissions) after the first
    ``sys.account_state`` record in the window and up to the last one; the balance change is the
    last state's total minus the first's. A closing record and the account state it caused share a
    timestamp, the state coming after it in the stream.

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
    """
    from workbench._time import to_ns

    t = trail.filter(start=start, end=end)
    closed = t.filter(t.event_type == POSITION_CLOSED)
    fills = t.filter(t.event_type == "trade.fill")
    keys = ["strategy_source", "instrument_id", "currency"]
    pnl = closed.group_by(keys).aggregate(realized_pnl=closed.realized_pnl.sum(), positions_closed=closed.count())
    fees = fills.group_by(keys).aggregate(commission=fills.commission.sum(), fills=fills.count())
    by_strategy = pnl.outer_join(fees, keys).select(
        *[ibis.coalesce(pnl[key], fees[key]).name(key) for key in keys],
        realized_pnl=pnl.realized_pnl, positions_closed=pnl.positions_closed.fill_null(0),
        commission=fees.commission, fills=fees.fills.fill_null(0),
    ).order_by(*keys)
    return PnlReconciliation(
        trail, by_strategy,
        start=None if start is None else to_ns(start, "start"), end=None if end is None else to_ns(end, "end"),
        balances=_decimals(balances, "balances"), starting_balances=_decimals(starting_balances, "starting_balances"),
    )


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


def _balances(rows: list[dict[str, Any]]) -> list[tuple[int, dict[str, Decimal]]]:
    """(ts_event, {currency: total}) of each account state, from its JSON payload, exactly."""
    states = []
    for row in rows:
        payload = json.loads(row["payload"] or "{}", parse_float=Decimal)
        balances = payload.get("balances") or {}
        states.append((row["ts_event"], {currency: Decimal(str(balance["total"]))
                                         for currency, balance in balances.items() if "total" in balance}))
    return states
