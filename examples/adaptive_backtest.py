"""A real NautilusTrader backtest of an adaptive FX strategy, fully audited, with an incident in it.

Market data is synthetic and deterministic (a seed): three USD-quoted FX pairs over four UTC days,
in regimes (trend, range, volatile, quiet nights) with a tape that speeds up and slows down. The
strategy ``AdaptiveFX`` runs the four reference components of ``examples.adaptive_control`` every
five minutes, records a consensus ``trade.signal`` per instrument (traded or not, and why), and
trades market orders tagged with the signal id, so the ``AuditObserver`` links every order, fill
and position to its signal.

The incident: on the third day at 14:32 UTC an operator console sets ``risk_multiplier`` to 4.0,
far outside the controller's own 0.25..1.0, with no reason. What follows is scripted, the same
for every seed (``INCIDENT_SCRIPT``): a clean rally that the trend followers buy into at four times
their normal size, then a sell-off that those larger positions run into. Drawdown builds until the
meta-controller flips to SYMPATHETIC, then DORSAL (where the strategy's target is flat, so the losses
are realized), and the AlphaEvolve bridge fires a DRAWDOWN trigger. The story is asserted on the
trail for several seeds (``tests/integration/test_demo_story.py``);
``notebooks/audit_forensics_example.ipynb`` is the walk an analyst takes to find it from the trail alone.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
import statistics
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.common.events import TimeEvent
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
from nautilus_trader.model.identifiers import InstrumentId, TraderId, Venue
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.test_kit.providers import TestInstrumentProvider
from nautilus_trader.trading.strategy import Strategy

from audit_core import AuditConfig, AuditEventEmitter
from audit_core.integrations._nautilus_compat import cycle_realized_pnl
from audit_core.integrations.observer import AuditObserver, AuditObserverConfig, audit_tags
from examples.adaptive_control import (
    AlphaEvolveBridge,
    MetaController,
    ParticlePortfolio,
    SOPSGillerSizer,
    SystemState,
)

START_NS = 1_767_571_200_000_000_000  # 2026-01-05 00:00:00 UTC, a Monday
DAY_NS = 86_400 * 10**9
MINUTE_NS = 60 * 10**9
DAYS = 4
INCIDENT_NS = START_NS + 2 * DAY_NS + (14 * 60 + 32) * MINUTE_NS  # 2026-01-07 14:32:00 UTC
INCIDENT_RISK_MULTIPLIER = 4.0
INCIDENT_SOURCE = "ops_console"
PAIRS = {"EUR/USD": 1.10000, "GBP/USD": 1.27000, "AUD/USD": 0.66000}
SUB_STRATEGIES = ("momentum", "mean_reversion", "breakout")
STARTING_BALANCE = Decimal(1_000_000)


# --- market data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Regime:
    name: str
    drift: float  # per hour, fraction of price
    sigma: float  # per sqrt(hour)
    quote_every_s: int
    mean_revert: float = 0.0  # pull towards the regime's start price, per hour


#: The market after the override, whatever the seed: (minutes after the incident it ends, regime).
#: A low-noise rally draws the trend followers in at the overridden size; the sell-off that follows is
#: the adverse move those larger positions run into; then the market calms down.
INCIDENT_SCRIPT = (
    (-75, None),
    (0, Regime("rally", 0.0120, 0.0006, 30)),
    (45, Regime("rally", 0.0060, 0.0006, 30)),
    (55, Regime("selloff", -0.2400, 0.0020, 10)),
    (165, Regime("aftermath", 0.0, 0.0015, 15)),
)


def regime_at(ts_ns: int, rng: random.Random) -> Regime:
    """The regime of each hour: quiet nights, then trend / range / volatile days; the incident's script."""
    hour = (ts_ns - START_NS) // (60 * MINUTE_NS)
    starts = INCIDENT_NS + INCIDENT_SCRIPT[0][0] * MINUTE_NS
    for ends_minutes, scripted in INCIDENT_SCRIPT[1:]:
        if starts <= ts_ns < INCIDENT_NS + ends_minutes * MINUTE_NS:
            return scripted
    if hour % 24 < 6:
        return Regime("night", 0.0, 0.0006, 90)
    choice = random.Random(hour * 7919 + rng.randint(0, 0)).random()
    if choice < 0.35:
        return Regime("trend", 0.0008 if hour % 2 else -0.0008, 0.0012, 30)
    if choice < 0.75:
        return Regime("range", 0.0, 0.0012, 30, mean_revert=1.5)
    return Regime("volatile", 0.0, 0.0025, 15)


def synthetic_quotes(instrument, start_price: float, seed: int) -> list[QuoteTick]:
    """Deterministic quotes for DAYS days: regime by hour, tape speed by regime."""
    rng = random.Random(seed)
    ticks, ts, price, anchor, current = [], START_NS, start_price, start_price, None
    end = START_NS + DAYS * DAY_NS
    while ts < end:
        regime = regime_at(ts, rng)
        if regime is not current:
            anchor, current = price, regime
        dt_hours = regime.quote_every_s / 3600
        shock = rng.gauss(0.0, 1.0) * regime.sigma * math.sqrt(dt_hours)
        pull = regime.mean_revert * (anchor - price) / price * dt_hours
        price *= math.exp(regime.drift * dt_hours + pull + shock)
        half_spread = 0.00001 if regime.name not in ("selloff", "aftermath") else 0.00002
        bid, ask = round(price - half_spread, 5), round(price + half_spread, 5)
        ticks.append(QuoteTick(
            instrument.id, Price(bid, 5), Price(ask, 5), Quantity.from_int(5_000_000), Quantity.from_int(5_000_000),
            ts, ts,
        ))
        ts += regime.quote_every_s * 10**9 + rng.randint(0, 999) * 10**6
    return ticks


# --- the strategy --------------------------------------------------------------------------------


class AdaptiveFXConfig(StrategyConfig, frozen=True):
    instrument_ids: tuple[str, ...]
    audit_base: str
    signing_key_path: str | None = None
    bar_minutes: int = 5
    signal_threshold: float = 0.2
    min_confidence: float = 0.35
    max_units: int = 5_000_000
    seed: int = 7
    incident_ns: int | None = INCIDENT_NS


class AdaptiveFX(Strategy):
    """Every bar: read the market, let the components adapt, then one consensus signal per instrument."""

    def __init__(self, config: AdaptiveFXConfig) -> None:
        super().__init__(config)
        self.ids = [InstrumentId.from_str(i) for i in config.instrument_ids]
        self.closes: dict[InstrumentId, deque[float]] = {i: deque(maxlen=60) for i in self.ids}
        self.last_mid: dict[InstrumentId, float] = {}
        self.quotes_in_bar = 0
        self.prev_subsignals: dict[InstrumentId, dict[str, float]] = {}
        self.cumulative = dict.fromkeys(SUB_STRATEGIES, 0.0)
        self.peak_equity = float(STARTING_BALANCE)
        self.signal_no = 0
        self.audit: AuditEventEmitter | None = None

    # lifecycle

    def on_start(self) -> None:
        cfg = self.config
        # Simulated time for every record, so the components' stream and the observer's agree.
        self.audit = AuditEventEmitter(AuditConfig(
            base_path=cfg.audit_base, trader_id=str(self.trader_id), stream_id="strategy",
            signing_key_path=cfg.signing_key_path,
        ), clock=self.clock.timestamp_ns)
        self.meta = MetaController(self.audit, SUB_STRATEGIES, drawdown_scale=0.02, volatility_scale=0.0015)
        self.sizer = SOPSGillerSizer(self.audit)
        self.particle_portfolio = ParticlePortfolio(self.audit, SUB_STRATEGIES, particles=150, seed=cfg.seed)
        self.bridge = AlphaEvolveBridge(self.audit)
        for instrument_id in self.ids:
            self.subscribe_quote_ticks(instrument_id)
        self.clock.set_timer("bar", dt.timedelta(minutes=cfg.bar_minutes), callback=self.on_bar)
        if cfg.incident_ns is not None:
            self.clock.set_time_alert_ns("incident", cfg.incident_ns, callback=self.on_incident)

    def on_stop(self) -> None:
        for instrument_id in self.ids:
            self.close_all_positions(instrument_id)

    def on_dispose(self) -> None:
        if self.audit is not None:
            self.audit.close()

    # market

    def on_quote_tick(self, tick: QuoteTick) -> None:
        self.last_mid[tick.instrument_id] = (float(tick.bid_price) + float(tick.ask_price)) / 2
        self.quotes_in_bar += 1

    def on_incident(self, event: TimeEvent) -> None:
        # Someone at the operator console overrides the risk knob, without saying why.
        self.meta.set_parameter("risk_multiplier", INCIDENT_RISK_MULTIPLIER, source=INCIDENT_SOURCE)

    def on_bar(self, event: TimeEvent) -> None:
        if len(self.last_mid) < len(self.ids):
            return
        bar_returns = {}
        subsignals = {}
        for instrument_id in self.ids:
            closes = self.closes[instrument_id]
            mid = self.last_mid[instrument_id]
            bar_returns[instrument_id] = (mid / closes[-1] - 1.0) if closes else 0.0
            closes.append(mid)
            subsignals[instrument_id] = self._subsignals(closes)
        self._adapt(bar_returns, subsignals)
        for instrument_id in self.ids:
            if len(self.closes[instrument_id]) >= 25:
                self._decide(instrument_id, subsignals[instrument_id])
        self.prev_subsignals = subsignals
        self.quotes_in_bar = 0

    # the components

    def _subsignals(self, closes: deque[float]) -> dict[str, float]:
        if len(closes) < 25:
            return dict.fromkeys(SUB_STRATEGIES, 0.0)
        window = list(closes)[-25:]
        returns = [b / a - 1.0 for a, b in itertools.pairwise(window)]
        vol = statistics.pstdev(returns) or 1e-9
        momentum = math.tanh((window[-1] / window[-7] - 1.0) / (vol * math.sqrt(6)) / 2)
        mean, spread = statistics.fmean(window), statistics.pstdev(window) or 1e-9
        mean_reversion = -math.tanh((window[-1] - mean) / spread / 2)
        high, low = max(window[:-1]), min(window[:-1])
        breakout = 0.8 if window[-1] > high else -0.8 if window[-1] < low else 0.0
        return {"momentum": momentum, "mean_reversion": mean_reversion, "breakout": breakout}

    def _adapt(self, bar_returns: dict[InstrumentId, float], subsignals: dict[InstrumentId, dict[str, float]]) -> None:
        # How each sub-strategy's last signals would have done over this bar.
        performance = {}
        for name in SUB_STRATEGIES:
            made = [self.prev_subsignals[i][name] * bar_returns[i] for i in self.ids if i in self.prev_subsignals]
            performance[name] = statistics.fmean(made) if made else 0.0
            self.cumulative[name] += performance[name]
        volatility = statistics.fmean(
            statistics.pstdev([b / a - 1.0 for a, b in itertools.pairwise(list(c)[-13:])] or [0.0])
            for c in self.closes.values()
        )
        harmony = statistics.fmean(
            (s["momentum"] * s["breakout"] + s["momentum"] * -s["mean_reversion"]) / 2 for s in subsignals.values()
        )
        equity = float(STARTING_BALANCE) + self._pnl()
        self.peak_equity = max(self.peak_equity, equity)
        drawdown = 1.0 - equity / self.peak_equity
        self.meta.update(drawdown, volatility, max(-1.0, min(1.0, harmony * 3)))
        self.particle_portfolio.update(performance)
        self.meta.reweight(dict(self.particle_portfolio.strategy_weights), temperature=1.0)
        self.sizer.adapt(volatility, self.quotes_in_bar / (self.config.bar_minutes * len(self.ids)))
        self.bridge.check(harmony=self.meta.market_harmony.value, drawdown=drawdown, performance=self.cumulative)

    def _pnl(self) -> float:
        """Realized plus unrealized P&L in USD (every pair is USD-quoted)."""
        total = 0.0
        for instrument_id in self.ids:
            # Portfolio.realized_pnl changed meaning in NautilusTrader 1.231 (cumulative over a netting
            # position's cycles): the same figure on every supported release, so the run is the same.
            total += cycle_realized_pnl(self.cache, instrument_id)
            unrealized = self.portfolio.unrealized_pnl(instrument_id)
            total += float(unrealized) if unrealized is not None else 0.0
        return total

    def _decide(self, instrument_id: InstrumentId, subsignals: dict[str, float]) -> None:
        cfg = self.config
        consensus = self.particle_portfolio.consensus(subsignals)
        weights = self.particle_portfolio.strategy_weights
        leader = max(SUB_STRATEGIES, key=lambda name: abs(weights[name] * subsignals[name]))
        self.signal_no += 1
        signal_id = f"SIG-{self.signal_no:06d}"
        target = self.sizer.size(consensus.value, self.meta.risk_multiplier)
        target = target if consensus.value > 0 else -target
        dorsal = self.meta.system_state == SystemState.DORSAL
        if dorsal:
            target = Decimal(0)  # shut down: flat, so what the drawdown cost is realized, not carried
        position = self.cache.positions_open(instrument_id=instrument_id, strategy_id=self.id)
        current = sum(
            (p.quantity.as_decimal() if p.is_long else -p.quantity.as_decimal() for p in position), Decimal(0)
        )
        delta = target - current
        if dorsal:
            outcome = "regime_filter" if current == 0 else None
        elif abs(consensus.value) < cfg.signal_threshold:
            outcome = "below_threshold"
        elif consensus.confidence < cfg.min_confidence:
            outcome = "low_confidence"
        elif abs(target) > cfg.max_units:
            outcome = "risk_limit"
        elif abs(delta) < Decimal(20_000):
            outcome = "already_positioned"
        else:
            outcome = None
        self.particle_portfolio.record_signal(
            consensus, regime=self.meta.system_state.value, instrument_id=str(instrument_id),
            correlation_id=signal_id, acted_on=outcome is None, filter_reason=outcome, strategy_source=leader,
        )
        if outcome is not None:
            return
        side = OrderSide.BUY if delta > 0 else OrderSide.SELL
        quote = self.cache.quote_tick(instrument_id)
        expected = quote.ask_price if side == OrderSide.BUY else quote.bid_price
        order = self.order_factory.market(
            instrument_id, side, Quantity.from_int(int(abs(delta))),
            tags=audit_tags(signal_id, expected_price=expected.as_decimal()),
        )
        self.submit_order(order)


# --- running it ----------------------------------------------------------------------------------


def build_engine(audit_base: Path, *, seed: int = 7, signing_key_path: Path | None = None,
                 incident: bool = True) -> tuple[BacktestEngine, AdaptiveFX, AuditObserver]:
    engine = BacktestEngine(BacktestEngineConfig(
        trader_id=TraderId("BACKTESTER-001"),
        logging=LoggingConfig(log_level="ERROR", bypass_logging=True),
    ))
    engine.add_venue(
        venue=Venue("SIM"), oms_type=OmsType.NETTING, account_type=AccountType.MARGIN,
        base_currency=USD, starting_balances=[Money(STARTING_BALANCE, USD)], default_leverage=Decimal(30),
    )
    ids = []
    for n, (pair, price) in enumerate(PAIRS.items()):
        instrument = TestInstrumentProvider.default_fx_ccy(pair)
        engine.add_instrument(instrument)
        engine.add_data(synthetic_quotes(instrument, price, seed * 1000 + n))
        ids.append(str(instrument.id))
    key = None if signing_key_path is None else str(signing_key_path)
    strategy = AdaptiveFX(AdaptiveFXConfig(
        instrument_ids=tuple(ids), audit_base=str(audit_base), signing_key_path=key, seed=seed,
        incident_ns=INCIDENT_NS if incident else None,
    ))
    engine.add_strategy(strategy)
    observer = AuditObserver(AuditObserverConfig(base_path=str(audit_base), stream_id="nautilus",
                                                 signing_key_path=key))
    engine.add_actor(observer)
    return engine, strategy, observer


def run_backtest(audit_base: Path, *, seed: int = 7, signing_key_path: Path | None = None,
                 incident: bool = True) -> AdaptiveFX:
    """Run the whole backtest; the trail is closed and sealed when this returns."""
    engine, strategy, observer = build_engine(audit_base, seed=seed, signing_key_path=signing_key_path,
                                              incident=incident)
    try:
        engine.run()
    finally:
        engine.dispose()
    if observer.failures:
        raise RuntimeError(f"the AuditObserver failed to record {observer.failures} event(s)")
    return strategy
