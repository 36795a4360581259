"""A deterministic NautilusTrader backtest used by the observer tests and benchmark.

One FX venue (margin account), EUR/USD from TestInstrumentProvider, synthetic quotes on a fixed
random walk, and a small strategy that trades market and limit orders, gets one rejected and
cancels one, tagging each order with its signal id through ``audit_tags``.
"""

from __future__ import annotations

import random
from decimal import Decimal

from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, RiskEngineConfig, StrategyConfig
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide, TimeInForce
from nautilus_trader.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderDenied,
    OrderEmulated,
    OrderExpired,
    OrderFilled,
    OrderModifyRejected,
    OrderPendingCancel,
    OrderPendingUpdate,
    OrderRejected,
    OrderReleased,
    OrderSubmitted,
    OrderTriggered,
    OrderUpdated,
    PositionChanged,
    PositionClosed,
    PositionOpened,
)
from nautilus_trader.model.identifiers import InstrumentId, TraderId, Venue
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.test_kit.providers import TestInstrumentProvider
from nautilus_trader.trading.strategy import Strategy

from audit_core.integrations.observer import AuditObserver, AuditObserverConfig, audit_tags

START_NS = 1_767_571_200_000_000_000  # 2026-01-05 00:00:00 UTC
STARTING_BALANCE = Decimal(1_000_000)

#: NautilusTrader event class -> the trail's event type for it.
ORDER_EVENT_TYPES: dict[type, str] = {
    OrderSubmitted: "trade.order",
    OrderAccepted: "trade.order.accepted",
    OrderFilled: "trade.fill",
    OrderRejected: "trade.rejected",
    OrderDenied: "trade.rejected",
    OrderCanceled: "trade.canceled",
    OrderExpired: "trade.canceled",
    OrderUpdated: "trade.order.updated",
    OrderTriggered: "trade.order.triggered",
    OrderPendingUpdate: "trade.order.pending_update",
    OrderPendingCancel: "trade.order.pending_cancel",
    OrderModifyRejected: "trade.order.modify_rejected",
    OrderCancelRejected: "trade.order.cancel_rejected",
    OrderEmulated: "trade.order.emulated",
    OrderReleased: "trade.order.released",
}
#: sys.session_start and sys.session_end around every run.
SESSION_RECORDS = 2
POSITION_EVENT_TYPES: dict[type, str] = {
    PositionOpened: "trade.position_opened",
    PositionChanged: "trade.position_changed",
    PositionClosed: "trade.position_closed",
}


class ScenarioConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    trade_every: int = 20
    trade_size: int = 100_000


class ScenarioStrategy(Strategy):
    """Every ``trade_every`` quotes: flip the position with a market order; now and then rest a limit
    order far away and cancel it, or send an order the risk engine denies (over max notional)."""

    def __init__(self, config: ScenarioConfig) -> None:
        super().__init__(config)
        self.count = 0
        self.signal_no = 0
        self.resting = None

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        self.subscribe_quote_ticks(self.config.instrument_id)

    def on_quote_tick(self, tick: QuoteTick) -> None:
        self.count += 1
        if self.count % self.config.trade_every:
            return
        self.signal_no += 1
        signal = f"SIG-{self.signal_no:05d}"
        step = self.count // self.config.trade_every
        if self.resting is not None and self.resting.is_open:
            self.cancel_order(self.resting)
            self.resting = None
        if step % 7 == 3:
            price = Price(float(tick.bid_price) - 0.0100, self.instrument.price_precision)
            self.resting = self.order_factory.limit(
                self.config.instrument_id, OrderSide.BUY, Quantity.from_int(self.config.trade_size), price,
                time_in_force=TimeInForce.GTC, tags=audit_tags(signal),
            )
            self.submit_order(self.resting)
            return
        if step % 11 == 5:
            huge = self.order_factory.market(
                self.config.instrument_id, OrderSide.BUY, Quantity.from_int(50_000_000), tags=audit_tags(signal)
            )
            self.submit_order(huge)  # denied by the risk engine: over max notional
            return
        side = OrderSide.BUY if step % 2 else OrderSide.SELL
        expected = tick.ask_price if side == OrderSide.BUY else tick.bid_price
        order = self.order_factory.market(
            self.config.instrument_id, side, Quantity.from_int(self.config.trade_size),
            tags=audit_tags(signal, expected_price=expected.as_decimal()),
        )
        self.submit_order(order)

    def on_stop(self) -> None:
        self.cancel_all_orders(self.config.instrument_id)
        self.close_all_positions(self.config.instrument_id)


def quotes(instrument, count: int, step_ns: int, seed: int = 7, size: int = 10_000_000) -> list[QuoteTick]:
    rng = random.Random(seed)
    mid = 1.10000
    ticks = []
    for i in range(count):
        mid += rng.choice((-1, 1)) * rng.randint(0, 3) * 0.00001
        bid, ask = round(mid - 0.00001, 5), round(mid + 0.00001, 5)
        ts = START_NS + i * step_ns
        ticks.append(QuoteTick(
            instrument.id, Price(bid, 5), Price(ask, 5), Quantity.from_int(size), Quantity.from_int(size),
            ts, ts,
        ))
    return ticks


def build_engine(audit_base: str | None, *, ticks: int = 2_000, step_ns: int = 60_000_000_000,
                 trade_every: int = 20, stream_id: str = "nautilus",
                 quote_size: int = 10_000_000, strategy: Strategy | None = None,
                 observer_config: dict | None = None) -> tuple[BacktestEngine, Strategy, AuditObserver | None]:
    """The scenario's engine; ``strategy`` replaces ScenarioStrategy, ``observer_config`` adds to the
    observer's config (``sync_writes``, ``environment``)."""
    engine = BacktestEngine(BacktestEngineConfig(
        trader_id=TraderId("BACKTESTER-001"),
        logging=LoggingConfig(log_level="ERROR", bypass_logging=True),
        risk_engine=RiskEngineConfig(max_notional_per_order={"EUR/USD.SIM": 10_000_000}),
    ))
    engine.add_venue(
        venue=Venue("SIM"), oms_type=OmsType.NETTING, account_type=AccountType.MARGIN,
        base_currency=USD, starting_balances=[Money(STARTING_BALANCE, USD)],
    )
    instrument = TestInstrumentProvider.default_fx_ccy("EUR/USD")
    engine.add_instrument(instrument)
    engine.add_data(quotes(instrument, ticks, step_ns, size=quote_size))
    if strategy is None:
        strategy = ScenarioStrategy(ScenarioConfig(instrument_id=instrument.id, trade_every=trade_every))
    engine.add_strategy(strategy)
    observer = None
    if audit_base is not None:
        observer = AuditObserver(AuditObserverConfig(base_path=audit_base, stream_id=stream_id,
                                                     **(observer_config or {})))
        engine.add_actor(observer)
    return engine, strategy, observer
