"""What each fill should have done to the balances, per account type, and the fill-level checks.

Pure Python over rows already read from the trail (``workbench.pnl`` reads them), exact decimals.
The rules are NautilusTrader's ``AccountsManager`` (1.221), applied from what the observer's
``sys.fill_accounting`` record says about each fill; ``pnl_reconciliation``'s docstring and the
README state them for users.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

POSITION_RECORDS = ("trade.position_opened", "trade.position_changed", "trade.position_closed")
FILL_ACCOUNTING = "sys.fill_accounting"


@dataclass
class Booking:
    """Expected balance changes per currency, and what could not be checked or did not add up."""

    realized: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))  # margin P&L
    commissions: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))  # booked apart
    notional: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))  # cash fills
    converted: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))  # into this currency
    tolerance: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    records: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # records booked per currency
    closed: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # closing records booked
    needs_rate: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # currency -> from
    account_types: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    positions: set[str] = field(default_factory=set)  # booked here, per fill: not by the closed-record rule

    def expected(self, currency: str) -> Decimal:
        return (self.realized.get(currency, Decimal(0)) - self.commissions.get(currency, Decimal(0))
                + self.notional.get(currency, Decimal(0)) + self.converted.get(currency, Decimal(0)))


#: Identifiers that are unique only within the node that wrote them (two backtests both have a
#: fill ``SIM-1-001``): the booking and the checks compare them within one stream.
SCOPED = ("trade_id", "order_id", "position_id")


def scoped_id(stream: str | None, value: str | None) -> str | None:
    """``value`` qualified by the stream that recorded it: ``"nautilus:SIM-1-001"``."""
    return None if value is None else f"{stream}:{value}"


def scoped(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with ``SCOPED`` identifiers qualified by their ``stream`` (``scoped_id``)."""
    return [{**row, **{key: scoped_id(row.get("stream"), row.get(key)) for key in SCOPED if key in row}}
            for row in rows]


@dataclass
class Accounting:
    """The ``sys.fill_accounting`` records given: well-formed payloads by scoped ``trade_id``, and how many."""

    by_trade: dict[str, dict[str, Any]]
    records: int
    malformed: int


def accounting_by_trade(rows: list[dict[str, Any]]) -> Accounting:
    """The ``sys.fill_accounting`` payloads (ids scoped), parsed exactly.

    Payloads that do not parse or have a field of the wrong type are left out and counted: the
    fill checks report them, and their fills fail the checks rather than being believed.
    """
    found = {}
    for row in rows:
        try:
            payload = json.loads(row["payload"] or "{}", parse_float=Decimal)
        except ValueError:
            continue
        if isinstance(payload, dict) and _well_formed(payload):
            payload = scoped([{**payload, "stream": row.get("stream")}])[0]
            found[payload["trade_id"]] = payload
    return Accounting(found, len(rows), len(rows) - len(found))


_TEXT_FIELDS = ("order_id", "position_id", "account_id", "account_type", "account_currency", "base_currency",
                "quote_currency", "settlement_currency", "commission_currency")


def _well_formed(payload: dict[str, Any]) -> bool:
    """Whether every field the booking reads has the type the observer writes (read back: untrusted)."""
    if not isinstance(payload.get("trade_id"), str):
        return False
    if any(not isinstance(payload.get(key), (str, type(None))) for key in _TEXT_FIELDS):
        return False
    if payload.get("account_type") == "CASH" and not isinstance(payload.get("quote_currency"), str):
        return False
    rates, precisions = payload.get("xrates") or {}, payload.get("precisions") or {}
    if not isinstance(rates, dict) or not isinstance(precisions, dict):
        return False
    if any(type(value) is not int or not 0 <= value <= 18 for value in precisions.values()):
        return False
    decimals = [*rates.values(), *([] if payload.get("order_filled_qty") is None else [payload["order_filled_qty"]])]
    return all(isinstance(value, str) and _is_decimal(value) for value in decimals)


def _is_decimal(text: str) -> bool:
    try:
        return Decimal(text).is_finite()
    except ArithmeticError:
        return False


def book(fills: list[dict[str, Any]], positions: list[dict[str, Any]], accounting: dict[str, dict[str, Any]],
         window: tuple[int | None, int | None]) -> Booking:
    """Book every fill that has a ``sys.fill_accounting`` record and falls in ``window`` (``lo < ts <= hi``).

    ``fills``: ``trade.fill`` rows; ``positions``: position records, chronological. A margin fill
    books the change of its position's realized P&L that the fill caused (in the P&L currency,
    commissions in that currency included, as the engine nets them) and any commission in
    another currency against that currency; a cash fill books its signed notional in the quote
    currency, its quantity in the base currency (multi-currency accounts) and its commission.
    On a single-currency account every amount in another currency is converted with the rate the
    observer recorded (tolerance one minor unit of the account currency per converted fill);
    without one, both currencies are marked as needing a rate.
    """
    result = Booking()
    lo, hi = window

    def inside(ts: int) -> bool:
        return (lo is None or ts > lo) and (hi is None or ts <= hi)

    by_position: dict[str, dict[str, Any]] = {}
    for fill in fills:
        info = accounting.get(fill.get("trade_id") or "")
        if info is not None and info.get("position_id"):
            by_position.setdefault(info["position_id"], info)
    result.positions = set(by_position)

    def post(info: dict[str, Any], bucket: dict[str, Decimal], currency: str, amount: Decimal) -> str:
        """Book ``amount``; return the currency it was booked in."""
        account_currency = info.get("account_currency")
        if account_currency is None or currency == account_currency:
            bucket[currency] += amount
            result.records[currency] += 1
            return currency
        rate = (info.get("xrates") or {}).get(currency)
        if rate is None or Decimal(rate) <= 0:
            result.needs_rate[currency].add(currency)
            result.needs_rate[account_currency].add(currency)
            result.records[currency] += 1
            return currency
        # The engine multiplies a float by the rate and rounds to the account currency: allow one unit.
        result.converted[account_currency] += amount * Decimal(str(rate))
        result.tolerance[account_currency] += _minor_unit(info, account_currency)
        result.records[account_currency] += 1
        return str(account_currency)

    # Margin P&L, per fill: the change of the position's realized P&L at each position record.
    previous: dict[str, Decimal] = {}
    for record in positions:
        position_id = record.get("position_id")
        info = by_position.get(position_id or "")
        if info is None or info.get("account_type") == "CASH" or record.get("realized_pnl") is None:
            continue
        before = Decimal(0) if record["event_type"] == "trade.position_opened" else previous.get(position_id or "",
                                                                                              Decimal(0))
        pnl = Decimal(record["realized_pnl"])
        previous[position_id or ""] = pnl
        result.account_types[record["currency"]].add(info.get("account_type") or "MARGIN")
        if inside(record["ts_event"]) and pnl != before:
            rate_info = accounting.get(record.get("trade_id") or "", info)
            booked_in = post(rate_info, result.realized, record["currency"], pnl - before)
        else:  # where a change would have been booked: the account currency when converted
            target = info.get("account_currency")
            converts = target and target != record["currency"] and record["currency"] in (info.get("xrates") or {})
            booked_in = target if converts else record["currency"]
        if inside(record["ts_event"]) and record["event_type"] == "trade.position_closed":
            result.closed[booked_in] += 1
    for fill in fills:
        info = accounting.get(fill.get("trade_id") or "")
        if info is None or not inside(fill["ts_event"]):
            continue
        commission, currency = Decimal(fill.get("commission") or 0), fill.get("currency") or info.get(
            "commission_currency")
        cash = info.get("account_type") == "CASH"
        result.account_types[currency].add(info.get("account_type") or "MARGIN")
        if cash:
            sign = Decimal(1) if fill.get("side") == "BUY" else Decimal(-1)
            size, price = Decimal(fill.get("size") or 0), Decimal(fill.get("price") or 0)
            quote = info["quote_currency"]
            notional = -sign * size * price
            result.account_types[quote].add("CASH")
            post(info, result.notional, quote, notional)
            if info.get("account_currency") is None or info.get("account_currency") == quote:
                unit = _minor_unit(info, quote)
                if unit and notional % unit:  # the engine rounds the notional to the currency
                    result.tolerance[quote] += unit
            base = info.get("base_currency")
            if base and info.get("account_currency") is None:
                result.account_types[base].add("CASH")
                post(info, result.notional, base, sign * size)
            if commission:
                post(info, result.commissions, currency, commission)
        elif commission and currency != info.get("settlement_currency"):
            # Not netted into the position's P&L: paid from the commission currency's own balance.
            post(info, result.commissions, currency, commission)
    return result


def fill_problems(fills: list[dict[str, Any]], positions: list[dict[str, Any]],
                  given: Accounting) -> tuple[int, list[str]]:
    """The fill-level checks: (how many checks ran, what failed), over every row given.

    1. every ``trade.fill`` has its ``sys.fill_accounting`` record and every such record its fill
       (same ``trade_id``), once the rows hold any (well-formed or not: a malformed or duplicate
       accounting record is a failure of its own);
    2. each order's filled quantity (the largest ``order_filled_qty`` recorded for it) equals the
       sum of its fills' sizes;
    3. each position with fills the observer accounted for: the sum of its fills' signed sizes
       equals the signed quantity of its last position record (0 once closed).
    """
    problems: list[str] = []
    checks = 0
    if not given.records:
        return checks, problems
    accounting = given.by_trade
    checks += 1
    if given.malformed:
        problems.append(f"{given.malformed} sys.fill_accounting record(s) malformed or with a duplicate trade_id: "
                        "left out")
    seen: dict[str, int] = defaultdict(int)
    filled: dict[str, Decimal] = defaultdict(Decimal)
    net: dict[str, Decimal] = defaultdict(Decimal)
    for fill in fills:
        trade_id = fill.get("trade_id") or ""
        seen[trade_id] += 1
        size = Decimal(fill.get("size") or 0)
        filled[fill.get("order_id") or ""] += size
        if fill.get("position_id"):
            net[fill["position_id"]] += size if fill.get("side") == "BUY" else -size
    for trade_id, count in sorted(seen.items()):
        checks += 1
        if trade_id not in accounting:
            problems.append(f"fill {trade_id}: no sys.fill_accounting record (an extra fill record?)")
        elif count > 1:
            problems.append(f"fill {trade_id}: {count} trade.fill records")
    for trade_id in sorted(set(accounting) - set(seen)):
        checks += 1
        problems.append(f"fill {trade_id} of order {accounting[trade_id].get('order_id')}: accounted for, "
                        "but no trade.fill record")
    orders: dict[str, Decimal] = {}
    for info in accounting.values():
        if info.get("order_filled_qty") is not None:
            order_id = info.get("order_id") or ""
            orders[order_id] = max(orders.get(order_id, Decimal(0)), Decimal(str(info["order_filled_qty"])))
    for order_id, quantity in sorted(orders.items()):
        checks += 1
        if filled.get(order_id, Decimal(0)) != quantity:
            problems.append(f"order {order_id}: filled quantity {_text(quantity)}, its fills sum to "
                            f"{_text(filled.get(order_id, Decimal(0)))}")
    accounted = {info.get("position_id") for info in accounting.values()}
    last: dict[str, dict[str, Any]] = {}
    for record in positions:
        if record.get("position_id") in accounted:
            last[record["position_id"]] = record
    for position_id, record in sorted(last.items()):
        checks += 1
        size = Decimal(record.get("size") or 0)
        signed = size if record.get("side") == "BUY" else -size
        if net.get(position_id, Decimal(0)) != signed:
            problems.append(f"position {position_id}: recorded quantity {_text(signed)}, its fills net to "
                            f"{_text(net.get(position_id, Decimal(0)))}")
    return checks, problems


def _minor_unit(info: dict[str, Any], currency: str) -> Decimal:
    precision = (info.get("precisions") or {}).get(currency)
    return Decimal(0) if precision is None else Decimal(1).scaleb(-int(precision))


def _text(value: Decimal) -> str:
    return f"{value.normalize():f}"
