"""NautilusTrader Actor that records every order, fill and position event of a node in the audit trail.

Importable only with the ``nautilus`` extra installed; ``import audit_core`` never imports this.

Attach it to a node or a backtest and every strategy's executions reach the trail without a line
of strategy code. To link a fill back to the signal that caused it, and to measure slippage of a
market order against the price the strategy expected, strategies pass ``audit_tags(...)`` as the
order's ``tags`` when they submit.
"""

from __future__ import annotations

from decimal import Context, Decimal
from typing import Any

from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.events import (
    AccountState,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    PositionChanged,
    PositionClosed,
    PositionEvent,
    PositionOpened,
)
from nautilus_trader.model.identifiers import ClientOrderId

from audit_core.config import AuditConfig
from audit_core.events import COLD_DECIMAL_FRACTION_DIGITS, AuditEventType
from audit_core.hot.emitter import AuditEventEmitter
from audit_core.integrations._fill_accounting import FILL_ACCOUNTING, fill_accounting_payload

SIGNAL_TAG = "ledgerline:signal="
EXPECTED_PRICE_TAG = "ledgerline:expected_px="
_BPS = Decimal(10_000)


def audit_tags(signal_id: str | None = None, expected_price: Decimal | str | None = None) -> list[str]:
    """Order tags that carry the signal id and the expected price to the audit trail.

    ``strategy.order_factory.market(..., tags=audit_tags("SIG-17", expected_price=quote.ask_price))``
    makes the fills of that order carry ``correlation_id="SIG-17"`` and a slippage measured against
    ``expected_price`` (without it: the limit price, or the best quote when the order was submitted).
    """
    tags = []
    if signal_id is not None:
        tags.append(SIGNAL_TAG + signal_id)
    if expected_price is not None:
        tags.append(EXPECTED_PRICE_TAG + str(Decimal(str(expected_price))))
    return tags


def slippage_bps(side: str, expected: Decimal, filled: Decimal) -> Decimal:
    """Slippage in basis points, adverse positive for both sides: paying more on a BUY or
    receiving less on a SELL than expected is a positive number."""
    if side not in ("BUY", "SELL"):
        raise ValueError(f"side must be 'BUY' or 'SELL', got {side!r}")
    bps = (filled - expected) / expected * _BPS * (1 if side == "BUY" else -1)
    return cold_precision(bps)


#: The finest step the cold store's DECIMAL(38,18) columns hold.
_COLD_STEP = Decimal(1).scaleb(-COLD_DECIMAL_FRACTION_DIGITS)
_WIDE = Context(prec=80)


def cold_precision(value: Decimal) -> Decimal:
    """A computed or float-derived decimal rounded (half even) to the 18 decimal places the trail
    stores: a ratio like a slippage has 28 significant digits, ``Decimal(str(1.2e-05))`` 21 decimal
    places, and the event model refuses digits the cold store would drop. Never ``-0``."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -COLD_DECIMAL_FRACTION_DIGITS:
        value = value.quantize(_COLD_STEP, context=_WIDE)
    return value if value else Decimal(0)


def _float_decimal(value: float) -> Decimal:
    """A NautilusTrader float (average prices, returns) as the decimal the trail stores."""
    return cold_precision(Decimal(str(value)))


class AuditObserverConfig(ActorConfig, frozen=True):
    """Configuration of the ``AuditObserver``.

    Args:
        base_path: Root of the audit trail (hot files go to ``base_path/hot``).
        stream_id: This node's stream (one per process).
        hmac_key_env: Environment variable holding the trail's HMAC key, if it is keyed.
        sync_writes: Make trade records durable before the handler returns (keep True in production).
        signing_key_path: File with the Ed25519 private key that signs seals (``ledgerline keygen``).
        signing_key_env: Environment variable holding that key instead.
    """

    base_path: str = "audit_trail"
    stream_id: str = "nautilus"
    hmac_key_env: str | None = None
    sync_writes: bool = True
    signing_key_path: str | None = None
    signing_key_env: str | None = None


class AuditObserver(Actor):
    """Records orders, fills, rejections, cancels and positions of every strategy on the node.

    ``ts_event`` of each record is NautilusTrader's own event timestamp (and ``ts_init`` is kept);
    prices, quantities, commissions and P&L are exact decimal strings from ``Price``/``Quantity``/
    ``Money``. A failure to record never stops the node: it is logged through NautilusTrader's
    logger and counted in ``failures``.
    """

    def __init__(self, config: AuditObserverConfig | None = None, emitter: AuditEventEmitter | None = None) -> None:
        super().__init__(config or AuditObserverConfig())
        self._audit_config = config or AuditObserverConfig()
        self._emitter = emitter
        self._owns_emitter = emitter is None
        self._expected: dict[ClientOrderId, tuple[Decimal | None, str | None]] = {}
        self._signals: dict[ClientOrderId, str] = {}  # opening order -> signal, until its position closes
        self.failures = 0
        self.recorded = 0

    @property
    def emitter(self) -> AuditEventEmitter:
        assert self._emitter is not None, "the observer has not started"
        return self._emitter

    def on_start(self) -> None:
        if self._emitter is None:
            cfg = self._audit_config
            # The node's clock: wall time live, simulated time in a backtest, so a backtest's files
            # are dated (and rotate at midnight) by the time it simulates.
            self._emitter = AuditEventEmitter(AuditConfig(
                base_path=cfg.base_path,
                trader_id=str(self.trader_id),
                stream_id=cfg.stream_id,
                hmac_key_env=cfg.hmac_key_env,
                sync_writes=cfg.sync_writes,
                signing_key_path=cfg.signing_key_path,
                signing_key_env=cfg.signing_key_env,
            ), clock=self.clock.timestamp_ns)
        # Publishers use events.order.{strategy_id} and events.position.{strategy_id}.
        self.msgbus.subscribe(topic="events.order.*", handler=self._on_order_event)
        self.msgbus.subscribe(topic="events.position.*", handler=self._on_position_event)
        self.msgbus.subscribe(topic="events.account.*", handler=self._on_account_state)
        # Topics already published before this actor started (a venue's first account state) do not
        # pick up new wildcard subscribers in NautilusTrader 1.221: subscribe to them by name too.
        for account in self.cache.accounts():
            self.msgbus.subscribe(topic=f"events.account.{account.id}", handler=self._on_account_state)
            self._on_account_state(account.last_event)  # the starting balances, for reconciliation

    def on_stop(self) -> None:
        # Keep recording: strategies stopping after this actor still close positions, and those
        # fills belong in the trail. Make what is written durable now; on_dispose closes and seals.
        if self._emitter is not None:
            self._emitter.flush()

    def on_dispose(self) -> None:
        self.msgbus.unsubscribe(topic="events.order.*", handler=self._on_order_event)
        self.msgbus.unsubscribe(topic="events.position.*", handler=self._on_position_event)
        self.msgbus.unsubscribe(topic="events.account.*", handler=self._on_account_state)
        for account in self.cache.accounts():
            if self.msgbus.is_subscribed(f"events.account.{account.id}", self._on_account_state):
                self.msgbus.unsubscribe(topic=f"events.account.{account.id}", handler=self._on_account_state)
        if self._owns_emitter and self._emitter is not None:
            self._emitter.close()
            self._emitter = None

    # --- handlers -----------------------------------------------------------------------------

    def _on_order_event(self, event: OrderEvent) -> None:
        try:
            self._record_order_event(event)
        except Exception as exc:
            self._failed(event, exc)
        if isinstance(event, OrderFilled):  # a record of its own: recorded, or counted as a failure
            try:
                self._record_fill_accounting(event)
            except Exception as exc:
                self._failed(event, exc)

    def _on_position_event(self, event: PositionEvent) -> None:
        try:
            self._record_position_event(event)
        except Exception as exc:
            self._failed(event, exc)

    def _on_account_state(self, event: AccountState) -> None:
        """Balances as the venue reports them, so P&L can be reconciled from the trail alone."""
        try:
            self.emitter.emit_system("sys.account_state", "AuditObserver", {
                "account_id": str(event.account_id),
                "account_type": event.account_type.name,
                "balances": {
                    str(b.currency): {"total": str(b.total.as_decimal()), "locked": str(b.locked.as_decimal()),
                                      "free": str(b.free.as_decimal())}
                    for b in event.balances
                },
                "ts_init": event.ts_init,
            }, ts_event=event.ts_event)
            self.recorded += 1
        except Exception as exc:
            self._failed(event, exc)

    def _failed(self, event: Any, exc: Exception) -> None:
        # Never stop the node for the audit trail, and never stay silent about it.
        self.failures += 1
        self.log.error(f"AuditObserver could not record {type(event).__name__}: {exc!r}")

    def _record_order_event(self, event: OrderEvent) -> None:
        order = self.cache.order(event.client_order_id)
        common = self._common(event, order)
        if order is not None and event.client_order_id not in self._expected:
            # Usually on OrderSubmitted; an order the risk engine denies is never submitted.
            self._remember_expectation(order)
        if isinstance(event, OrderSubmitted):
            expected, signal = self._expected[event.client_order_id]
            self._emit(AuditEventType.TRADE_ORDER, event, common, correlation_id=signal,
                       expected_price=expected, price=_price_of(order))
        elif isinstance(event, OrderAccepted):
            self._emit("trade.order.accepted", event, common, venue_order_id=str(event.venue_order_id),
                       price=_price_of(order))
        elif isinstance(event, OrderFilled):
            expected, _ = self._expected.get(event.client_order_id, (None, None))
            side = _side(event.order_side)
            filled = event.last_px.as_decimal()
            self._emit(
                AuditEventType.TRADE_FILL, event, {**common, "side": side, "size": event.last_qty.as_decimal()},
                price=filled,
                expected_price=expected,
                slippage_bps=None if expected is None else slippage_bps(side, expected, filled),
                commission=event.commission.as_decimal(),
                currency=str(event.commission.currency),
                liquidity_side=event.liquidity_side.name,
                venue_order_id=str(event.venue_order_id),
                trade_id=str(event.trade_id),
                position_id=None if event.position_id is None else str(event.position_id),
            )
        elif isinstance(event, (OrderRejected, OrderDenied)):
            self._emit(AuditEventType.TRADE_REJECTED, event, common, reason=str(event.reason),
                       price=_price_of(order))
        elif isinstance(event, (OrderCanceled, OrderExpired)):
            reason = "expired" if isinstance(event, OrderExpired) else "canceled"
            self._emit(AuditEventType.TRADE_CANCELED, event, common, reason=reason, price=_price_of(order))
        if order is not None and order.is_closed:
            self._expected.pop(event.client_order_id, None)

    def _record_position_event(self, event: PositionEvent) -> None:
        event_type = {
            PositionOpened: AuditEventType.TRADE_POSITION_OPENED,
            PositionChanged: AuditEventType.TRADE_POSITION_CHANGED,
            PositionClosed: AuditEventType.TRADE_POSITION_CLOSED,
        }[type(event)]
        signal = self._signals.get(event.opening_order_id)
        if isinstance(event, PositionClosed):
            self._signals.pop(event.opening_order_id, None)
        position = self.cache.position(event.position_id)
        last_fill = position.last_event if position is not None else None
        fields: dict[str, Any] = {
            # The order whose fill opened, changed or closed the position.
            "order_id": str(last_fill.client_order_id if last_fill is not None else event.opening_order_id),
            "trade_id": None if last_fill is None else str(last_fill.trade_id),
            "side": _side(event.entry),
            "size": event.quantity.as_decimal(),
            "price": event.last_px.as_decimal(),
            "position_id": str(event.position_id),
            "strategy_source": str(event.strategy_id),
            "avg_px_open": _float_decimal(event.avg_px_open),
            "ts_init": event.ts_init,
        }
        if event.realized_pnl is not None:
            fields["realized_pnl"] = event.realized_pnl.as_decimal()
            fields["currency"] = str(event.realized_pnl.currency)
        if isinstance(event, PositionClosed):
            fields["realized_return"] = _float_decimal(event.realized_return)
            fields["avg_px_close"] = _float_decimal(event.avg_px_close)
            fields["duration_ns"] = event.duration_ns
        self.emitter.emit_trade(event_type, "AuditObserver", str(event.instrument_id), correlation_id=signal,
                                ts_event=event.ts_event, **{k: v for k, v in fields.items() if v is not None})
        self.recorded += 1

    def _record_fill_accounting(self, event: OrderFilled) -> None:
        """What the fill did to the account (``sys.fill_accounting``), for ``pnl_reconciliation``."""
        self.emitter.emit_system(FILL_ACCOUNTING, "AuditObserver", fill_accounting_payload(self.cache, event),
                                 correlation_id=self._expected.get(event.client_order_id, (None, None))[1],
                                 ts_event=event.ts_event)
        self.recorded += 1

    # --- helpers ------------------------------------------------------------------------------

    def _common(self, event: OrderEvent, order: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {"order_id": str(event.client_order_id), "strategy_source": str(event.strategy_id),
                                  "ts_init": event.ts_init}
        if order is not None:
            fields |= {
                "side": _side(order.side),
                "size": order.quantity.as_decimal(),
                "order_type": order.order_type.name,
            }
        return fields

    def _emit(self, event_type: str, event: OrderEvent, fields: dict[str, Any], **extra: Any) -> None:
        _, signal = self._expected.get(event.client_order_id, (None, None))
        merged = {**fields, **{k: v for k, v in extra.items() if v is not None}}
        correlation_id = merged.pop("correlation_id", signal)
        self.emitter.emit_trade(event_type, "AuditObserver", str(event.instrument_id),
                                correlation_id=correlation_id, ts_event=event.ts_event, **merged)
        self.recorded += 1

    def _remember_expectation(self, order: Any) -> tuple[Decimal | None, str | None]:
        """Expected price (tag, else limit price, else best quote now) and signal id of an order."""
        expected: Decimal | None = None
        signal: str | None = None
        for tag in order.tags or ():
            if tag.startswith(SIGNAL_TAG):
                signal = tag[len(SIGNAL_TAG):]
            elif tag.startswith(EXPECTED_PRICE_TAG):
                expected = Decimal(tag[len(EXPECTED_PRICE_TAG):])
        if expected is None:
            expected = _price_of(order)
        if expected is None:
            quote = self.cache.quote_tick(order.instrument_id)
            if quote is not None:
                best = quote.ask_price if order.side == OrderSide.BUY else quote.bid_price
                expected = best.as_decimal()
        self._expected[order.client_order_id] = (expected, signal)
        if signal is not None:
            self._signals[order.client_order_id] = signal
        return expected, signal


def _side(side: OrderSide) -> str:
    return "BUY" if side == OrderSide.BUY else "SELL"


def _price_of(order: Any) -> Decimal | None:
    if order is None or not order.has_price:
        return None
    return order.price.as_decimal()  # type: ignore[no-any-return]
