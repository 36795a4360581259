"""Backtests across venue and account types, run by strategies that ship inside NautilusTrader.

Each ``Setup`` is one venue (OMS type, account type, base currency, starting balances, fee model)
and one instrument, traded by an EMACross-family example strategy from
``nautilus_trader.examples.strategies`` on one-minute bars that the engine aggregates from
synthetic quotes (a fixed random walk), with the ``AuditObserver`` attached. ``run_setup`` runs
it, disposes the engine and returns what the engine itself says happened (every order event,
every position and account event published) next to the path of the trail.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.backtest.models import FixedFeeModel
from nautilus_trader.config import LoggingConfig
from nautilus_trader.model.currencies import BNB, BTC, USD, USDT
from nautilus_trader.model.data import BarType, QuoteTick
from nautilus_trader.model.enums import AccountType, OmsType
from nautilus_trader.model.identifiers import TraderId
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.test_kit.providers import TestInstrumentProvider

from audit_core.integrations.observer import AuditObserver, AuditObserverConfig

START_NS = 1_767_571_200_000_000_000  # 2026-01-05 00:00:00 UTC
STEP_NS = 10_000_000_000  # a quote every 10 s: six per one-minute bar


@dataclass(frozen=True)
class Setup:
    """One venue and instrument, and the example strategy that trades it."""

    name: str
    instrument: Callable[[], Any]
    oms_type: OmsType
    account_type: AccountType
    base_currency: Any
    starting_balances: tuple[Money, ...]
    strategy: str  # "ema_cross", "hedge", "long_only", "bracket", "trailing_stop"
    trade_size: Decimal
    start_price: float
    tick_steps: int = 3  # the walk moves up to this many price increments per quote
    fee_model: Callable[[], Any] | None = None
    ticks: int = 3_000


def _eurusd() -> Any:
    return TestInstrumentProvider.default_fx_ccy("EUR/USD")


SETUPS = {
    setup.name: setup for setup in (
        Setup("netting_margin", _eurusd, OmsType.NETTING, AccountType.MARGIN, USD,
              (Money(1_000_000, USD),), "ema_cross", Decimal(100_000), 1.10000),
        Setup("hedging_margin", lambda: TestInstrumentProvider.default_fx_ccy("GBP/USD"), OmsType.HEDGING,
              AccountType.MARGIN, USD, (Money(1_000_000, USD),), "hedge", Decimal(100_000), 1.27000),
        Setup("cash", TestInstrumentProvider.btcusdt_binance, OmsType.NETTING, AccountType.CASH, None,
              (Money(1_000_000, USDT), Money(10, BTC)), "long_only", Decimal("0.5"), 50_000.0, tick_steps=40),
        Setup("inverse_perpetual", TestInstrumentProvider.xbtusd_bitmex, OmsType.NETTING, AccountType.MARGIN,
              None, (Money(10, BTC),), "ema_cross", Decimal(10_000), 50_000.0, tick_steps=20),
        Setup("usdjpy_on_usd", lambda: TestInstrumentProvider.default_fx_ccy("USD/JPY"), OmsType.NETTING,
              AccountType.MARGIN, USD, (Money(1_000_000, USD),), "ema_cross", Decimal(100_000), 148.000),
        Setup("third_currency_fees", _eurusd, OmsType.NETTING, AccountType.MARGIN, None,
              (Money(1_000_000, USD), Money(100, BNB)), "ema_cross", Decimal(100_000), 1.10000,
              fee_model=lambda: FixedFeeModel(Money("0.05", BNB))),
        Setup("bracket", _eurusd, OmsType.NETTING, AccountType.MARGIN, USD, (Money(1_000_000, USD),),
              "bracket", Decimal(100_000), 1.10000, ticks=1_500),
        Setup("trailing_stop", _eurusd, OmsType.NETTING, AccountType.MARGIN, USD, (Money(1_000_000, USD),),
              "trailing_stop", Decimal(100_000), 1.10000),
    )
}


@dataclass
class SetupRun:
    """A finished, disposed backtest: what the engine published, and where the trail is."""

    setup: Setup
    base: Path
    orders: list[Any]  # engine.cache.orders(), each with its .events
    positions: list[Any] = field(default_factory=list)  # engine.cache.position_snapshots() + positions()
    position_events: list[Any] = field(default_factory=list)  # in publication order
    account_events: list[Any] = field(default_factory=list)
    balances: dict[str, Decimal] = field(default_factory=dict)  # the account's totals at the end
    observer_failures: int = 0


def quotes(instrument: Any, setup: Setup, seed: int = 11) -> list[QuoteTick]:
    """A fixed random walk of quotes one price increment wide."""
    rng = random.Random(seed)
    increment = Decimal(str(instrument.price_increment))
    precision = instrument.price_precision
    mid = Decimal(str(setup.start_price)).quantize(increment)
    size = Quantity(10_000_000, instrument.size_precision)
    ticks = []
    for i in range(setup.ticks):
        mid += increment * rng.randint(-setup.tick_steps, setup.tick_steps)
        ts = START_NS + i * STEP_NS
        ticks.append(QuoteTick(instrument.id, Price(mid - increment, precision), Price(mid + increment, precision),
                               size, size, ts, ts))
    return ticks


def _strategy(setup: Setup, instrument: Any) -> Any:
    bar_type = BarType.from_str(f"{instrument.id}-1-MINUTE-BID-INTERNAL")
    common = {"instrument_id": instrument.id, "bar_type": bar_type, "trade_size": setup.trade_size}
    if setup.strategy == "ema_cross":
        from nautilus_trader.examples.strategies.ema_cross import EMACross, EMACrossConfig
        return EMACross(EMACrossConfig(**common, request_bars=False, subscribe_trade_ticks=False))
    if setup.strategy == "hedge":
        from nautilus_trader.examples.strategies.ema_cross_hedge_mode import EMACross as HedgeCross
        from nautilus_trader.examples.strategies.ema_cross_hedge_mode import EMACrossConfig as HedgeConfig
        return HedgeCross(HedgeConfig(**common, subscribe_trade_ticks=False))
    if setup.strategy == "long_only":
        from nautilus_trader.examples.strategies.ema_cross_long_only import EMACrossLongOnly, EMACrossLongOnlyConfig
        return EMACrossLongOnly(EMACrossLongOnlyConfig(**common, request_historical_bars=False))
    if setup.strategy == "bracket":
        from nautilus_trader.examples.strategies.ema_cross_bracket import EMACrossBracket, EMACrossBracketConfig
        return EMACrossBracket(EMACrossBracketConfig(**common, bracket_distance_atr=1.0))
    if setup.strategy == "trailing_stop":
        from nautilus_trader.examples.strategies.ema_cross_trailing_stop import (
            EMACrossTrailingStop,
            EMACrossTrailingStopConfig,
        )
        return EMACrossTrailingStop(EMACrossTrailingStopConfig(
            **common, atr_period=20, trailing_atr_multiple=2.0, trailing_offset_type="PRICE", trigger_type="BID_ASK"))
    raise ValueError(f"unknown strategy {setup.strategy!r}")


def run_setup(setup: Setup, base: Path, stream_id: str = "nautilus") -> SetupRun:
    """Run ``setup`` with an ``AuditObserver`` writing stream ``stream_id`` to ``base``; dispose the engine."""
    engine = BacktestEngine(BacktestEngineConfig(
        trader_id=TraderId("BACKTESTER-001"), logging=LoggingConfig(log_level="ERROR", bypass_logging=True)))
    instrument = setup.instrument()
    venue_options: dict[str, Any] = {} if setup.fee_model is None else {"fee_model": setup.fee_model()}
    engine.add_venue(venue=instrument.id.venue, oms_type=setup.oms_type, account_type=setup.account_type,
                     base_currency=setup.base_currency, starting_balances=list(setup.starting_balances),
                     **venue_options)
    engine.add_instrument(instrument)
    engine.add_data(quotes(instrument, setup))
    engine.add_strategy(_strategy(setup, instrument))
    # No fdatasync per record: what is recorded is the same, and these runs test the records, not durability.
    observer = AuditObserver(AuditObserverConfig(base_path=str(base), stream_id=stream_id, sync_writes=False))
    engine.add_actor(observer)
    run = SetupRun(setup, base, orders=[])
    engine.kernel.msgbus.subscribe(topic="events.position.*", handler=run.position_events.append)
    engine.kernel.msgbus.subscribe(topic="events.account.*", handler=run.account_events.append)
    try:
        engine.run()
        run.orders = list(engine.cache.orders())
        account = engine.cache.account_for_venue(instrument.id.venue)
        run.balances = {str(currency): money.as_decimal() for currency, money in account.balances_total().items()}
        run.observer_failures = observer.failures
    finally:
        engine.dispose()
    return run
