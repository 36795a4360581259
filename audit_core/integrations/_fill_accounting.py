"""What a fill did to the account, as the engine books it: the ``sys.fill_accounting`` payload of one fill.

``workbench.pnl_reconciliation`` needs, per fill, facts the ``trade.fill`` record does not hold:
the account type (margin accounts book realized P&L, cash accounts book notional), the currencies
the instrument settles and quotes in, the order's filled quantity after the fill (so a missing or
extra fill record shows), and, on a single-currency account, the exchange rates the engine used to
convert the fill's P&L and commission into the account's currency. Recorded once per fill, next to
its ``trade.fill`` record, sharing its ``trade_id``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from nautilus_trader.model.enums import AccountType, OrderSide, PriceType
from nautilus_trader.model.events import OrderFilled

FILL_ACCOUNTING = "sys.fill_accounting"
#: ``AccountType.name`` as a lookup (``name`` is a Python-level property of the enum), read for every fill.
ACCOUNT_TYPES: dict[AccountType, str] = {account_type: account_type.name for account_type in AccountType}

#: ``fill_accounting_payload``'s memo: (instrument id, commission currency, account id) -> the
#: instrument and account it was read from, the instrument's part of the payload, and the
#: currencies whose rates into the account's currency each fill records.
Memo = dict[tuple[Any, Any, Any], tuple[Any, Any, dict[str, Any] | None, list[Any]]]


def fill_accounting_payload(cache: Any, event: OrderFilled, memo: Memo | None = None,
                            order: Any = None) -> dict[str, Any]:
    """The payload of the ``sys.fill_accounting`` record of ``event``, read from the node's cache.

    Rates are those ``AccountsManager._update_balance_single_currency`` asks the cache for (bid
    for a SELL, ask for a BUY, at the fill), written as the shortest decimal of the float the
    engine multiplies with; recorded only for a currency that differs from the account's.
    ``memo`` (a dict the caller keeps) saves what is the same for every fill of an instrument on
    an account from one fill to the next; ``order``: the fill's order, if the caller has it.
    """
    if order is None:
        order = cache.order(event.client_order_id)
    account = cache.account(event.account_id)
    instrument = cache.instrument(event.instrument_id)
    commission_currency = event.commission.currency
    payload: dict[str, Any] = {
        "trade_id": str(event.trade_id),
        "order_id": str(event.client_order_id),
        "position_id": None if event.position_id is None else str(event.position_id),
        "account_id": str(event.account_id),
        "commission_currency": str(commission_currency),
        "ts_init": event.ts_init,
    }
    if order is not None:
        payload["order_filled_qty"] = str(order.filled_qty.as_decimal())
        payload["order_quantity"] = str(order.quantity.as_decimal())
    key = (event.instrument_id, commission_currency, event.account_id)
    known = None if memo is None else memo.get(key)
    if known is None or known[0] is not instrument or known[1] is not account:
        known = (instrument, account, _instrument_part(instrument, commission_currency),
                 _rate_currencies(instrument, account, commission_currency))
        if memo is not None:
            memo[key] = known
    part = known[2]
    if part is not None:  # the instrument's part, None without an instrument
        payload |= part
    if account is not None:
        payload["account_type"] = ACCOUNT_TYPES[account.type]
        account_currency = account.base_currency
        payload["account_currency"] = None if account_currency is None else str(account_currency)
        if account_currency is not None:
            payload["xrates"] = _xrates(cache, event, known[3], account_currency)
    return payload


def _instrument_part(instrument: Any, commission_currency: Any) -> dict[str, Any] | None:
    """The instrument's currencies, multiplier, inverse flag and the currencies' precisions: the same
    for every fill of that instrument object (an instrument the cache replaces is read again)."""
    if instrument is None:
        return None
    base = instrument.get_base_currency()
    part: dict[str, Any] = {
        "base_currency": None if base is None else str(base),
        "quote_currency": str(instrument.quote_currency),
        "settlement_currency": str(instrument.get_settlement_currency()),
        "multiplier": str(instrument.multiplier.as_decimal()),
        "inverse": bool(instrument.is_inverse),
    }
    currencies = {base, instrument.quote_currency, instrument.get_settlement_currency(), commission_currency}
    # Minor units: the engine rounds each booked amount to its currency's precision. In code order:
    # a set of currencies iterates in an order that can differ from one process to the next.
    part["precisions"] = dict(sorted((str(c), c.precision) for c in currencies if c is not None))
    return part


def _rate_currencies(instrument: Any, account: Any, commission_currency: Any) -> list[Any]:
    """The fill's P&L and commission currencies other than the account's, in code order."""
    if account is None or account.base_currency is None:
        return []
    currencies = {commission_currency}
    if instrument is not None:
        # A margin account books P&L in the settlement currency, a cash account in the quote currency.
        cash = account.type == AccountType.CASH
        currencies.add(instrument.quote_currency if cash else instrument.get_settlement_currency())
    return sorted(currencies - {account.base_currency}, key=str)


def _xrates(cache: Any, event: OrderFilled, currencies: list[Any], account_currency: Any) -> dict[str, str]:
    """{currency: rate into the account's currency} for ``currencies`` (``_rate_currencies``)."""
    rates: dict[str, str] = {}
    if not currencies:
        return rates
    price_type = PriceType.BID if event.order_side == OrderSide.SELL else PriceType.ASK
    for currency in currencies:
        rate = cache.get_xrate(venue=event.instrument_id.venue, from_currency=currency,
                               to_currency=account_currency, price_type=price_type)
        if rate is not None:
            rates[str(currency)] = str(Decimal(repr(float(rate))))
    return rates
