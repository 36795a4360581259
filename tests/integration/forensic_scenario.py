"""A three-day forensic scenario with planted incidents, and its truth computed without the workbench.

The trail is what four processes of one trader would leave behind, each through its own
``AuditEventEmitter`` (its own stream and chain), on one fake clock:

- ``a-observer``: the NautilusTrader observer (``AuditObserver``): orders, acceptances,
  rejections, fills without ``realized_pnl``, positions opened (``realized_pnl`` = minus the
  opening commission, as NautilusTrader reports it) and closed (the round trip's P&L, carrying the
  opening signal's id), and ``sys.account_state`` balances after each realized P&L;
- ``m-carry``: a strategy that emits in the original specification's style: its own signals,
  orders and fills, each fill carrying its own ``realized_pnl`` (in JPY), no position records;
- ``ops``: the operations console, which overrides parameters it does not own;
- ``z-strategy``: the signal engine's signals and the controllers' parameter changes.

Planted (names are the module's constants):

- ``risk_multiplier``, owned by ``meta_controller``: 1.0 on day 1; ``ops_console`` sets it to 8.0
  at ``T0`` (a nanosecond that is not round) with no reason and ``owner="meta_controller"``;
  ``meta_controller`` resets it to 1.0 at ``T_RESET`` (48 minutes later).
- Typed values with owners: a string (``regime_state`` "VENTRAL" -> "DORSAL"), a bool
  (``trading_enabled``), a dict (``strategy_weights``), a list (``allowed_instruments``), ints and
  floats; ``entry_threshold`` owned by two strategies and changed by one source; changes at
  23:59:59.999999999 and 00:00:00.000000000 of both midnights; two changes of one parameter by
  two sources in the same nanosecond on two streams (``T_PARAM_TIE``).
- At ``T_TIE`` a momentum signal (``z-strategy``) and its order, fill and position (``a-observer``,
  which sorts first) share one nanosecond, linked by ``SIG_TIE``; an unlinked record on each
  stream shares it too.
- The incident window ``T0`` +- 5 minutes has records exactly on both edges and one nanosecond
  outside each.
- P&L traps: fills with ``realized_pnl`` (carry), position records (momentum, mean_reversion),
  one closing fill that also carries ``realized_pnl`` while a ``trade.position_closed`` covers the
  same order and position (counted once), positions opened and never closed; balances in
  ``sys.account_state`` move by exactly the realized P&L.
- Signals acted on and filtered for the reasons of ``FILTER_REASONS``; rejected orders.

Days 1 and 2 of ``a-observer`` and ``m-carry``, and day 1 of the other streams, are converted to
cold Parquet; the rest stays hot JSONL, so most analyses read both (the ``T_TIE`` signal is hot,
its order and fill cold).

The truth functions below (``causal_order``, ``state_at``, ``incident``, ``realized_pnl_records``,
``conversion``...) are plain Python over the records parsed back from the hot JSONL with
``audit_core.events.parse_record``; they follow the rules of issue 14's contract, written out in
each docstring, and never import the workbench.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections import Counter
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from audit_core import AuditConfig, AuditEventEmitter, parse_record
from audit_core._layout import parse_hot_file_name
from benchmarks.trail_gen import FakeClock

S = 1_000_000_000
MINUTE = 60 * S
HOUR = 60 * MINUTE
DAY = 24 * HOUR
DAY1 = int(dt.datetime(2026, 3, 10, tzinfo=dt.UTC).timestamp()) * S  # a Tuesday, 00:00 UTC
DAY2 = DAY1 + DAY  # first midnight
DAY3 = DAY2 + DAY  # second midnight
START = DAY1 + 8 * HOUR  # first record
END = DAY3 + 16 * HOUR  # last record: the final account state

T0 = DAY2 + 9 * HOUR + 17 * MINUTE + 42 * S + 123_456_789  # the override: 2026-03-11 09:17:42.123456789
T_RESET = T0 + 48 * MINUTE
T_TIE = T0 + 90 * S + 987_654_321  # signal, order, fill and position in one nanosecond
T_TIE_CLOSE = DAY3 + 10 * HOUR + 555  # the tie trade's round trip is closed on day 3 (hot)
T_PARAM_TIE = DAY2 + 16 * HOUR + 1
INCIDENT_MINUTES = 5
CONVERSION_START, CONVERSION_END = DAY2, DAY3 + 12 * HOUR

TRADER = "TRADER-001"
OBSERVER, CARRY, OPS, STRATEGY = "a-observer", "m-carry", "ops", "z-strategy"
STREAM_IDS = (OBSERVER, CARRY, OPS, STRATEGY)
#: Cold converted: (stream id, day) pairs; everything else stays hot.
CONVERTED = {(OBSERVER, DAY1), (OBSERVER, DAY2), (CARRY, DAY1), (CARRY, DAY2), (OPS, DAY1), (STRATEGY, DAY1)}
SIG_TIE, SIG_TIE_CLOSE = "SIG-TIE", "SIG-TIE-CLOSE"
OBSERVER_SOURCE, SIGNAL_SOURCE, CARRY_SOURCE = "AuditObserver", "signal_engine", "carry_strategy"
FILTER_REASONS = ("below_threshold", "regime_filter", "risk_limit", "cooldown", "low_confidence")
#: strategy -> (instrument it trades at random, stream of its signals and trades)
STRATEGIES = {"momentum": "EURUSD.SIM", "mean_reversion": "GBPUSD.SIM", "carry": "USDJPY.SIM"}
#: instrument -> (first price, tick, P&L currency, money quantum)
INSTRUMENTS = {
    "EURUSD.SIM": (Decimal("1.08500"), Decimal("0.00001"), "USD", Decimal("0.01")),
    "GBPUSD.SIM": (Decimal("1.27300"), Decimal("0.00001"), "USD", Decimal("0.01")),
    "AUDUSD.SIM": (Decimal("0.65800"), Decimal("0.00001"), "USD", Decimal("0.01")),
    "NZDUSD.SIM": (Decimal("0.60100"), Decimal("0.00001"), "USD", Decimal("0.01")),
    "USDJPY.SIM": (Decimal("148.000"), Decimal("0.001"), "JPY", Decimal("1")),
}
START_BALANCES = {"USD": Decimal("1000000.00"), "JPY": Decimal("150000000")}
TS_INIT_LAG = 1_234  # the observer's ts_init: a few ns before ts_event, never a round number


@dataclasses.dataclass(frozen=True)
class Record:
    """One record as written: its stream (``<trader_id>.<stream_id>``, as the cold schema names it) and event."""

    stream: str
    event: Any  # an AuditEvent subclass; Any so truth code reads fields without casts

    @property
    def ts(self) -> int:
        return int(self.event.ts_event)

    @property
    def sequence(self) -> int:
        return int(self.event.sequence)

    @property
    def key(self) -> tuple[str, int]:
        return (self.stream, self.sequence)

    @property
    def event_type(self) -> str:
        return str(self.event.event_type)

    def get(self, name: str) -> Any:
        """A field of the event, None when its type has no such field."""
        return getattr(self.event, name, None)


def stream_key(stream_id: str) -> str:
    return f"{TRADER}.{stream_id}"


@dataclasses.dataclass
class Scenario:
    """A written trail: where it is, what was emitted, and what its hot JSONL holds."""

    base: Path
    emitted: list[Record]  # in emit order
    balances: list[tuple[int, dict[str, Decimal]]]  # the broker's balances, as each account state wrote them

    @property
    def hot_path(self) -> Path:
        return self.base / "hot"

    @property
    def cold_path(self) -> Path:
        return self.base / "cold"


# --- writing ---------------------------------------------------------------------------------


@dataclasses.dataclass
class _Step:
    ts: int
    stream_id: str
    method: str
    kwargs: dict[str, Any]
    order: int = 0  # insertion order: the stream order of steps at one ts
    pnl: tuple[str, Decimal] | None = None  # (currency, amount) the broker books when this is written


@dataclasses.dataclass
class _Position:
    position_id: str
    side: str
    size: Decimal
    price: Decimal
    commission: Decimal
    opened_ts: int
    signal_id: str


class _Builder:
    """Collects the steps of the scenario; ``write`` emits them in time order."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.steps: list[_Step] = []
        self.prices = {name: price for name, (price, *_) in INSTRUMENTS.items()}
        self.positions: dict[tuple[str, str], _Position] = {}
        self.ids = iter(range(1, 1_000_000))
        self.regime = "VENTRAL"

    def add(self, ts: int, stream_id: str, method: str, pnl: tuple[str, Decimal] | None = None, **kwargs: Any) -> None:
        self.steps.append(_Step(ts, stream_id, method, kwargs, len(self.steps), pnl))

    def param(self, ts: int, source: str, name: str, old: Any, new: Any, reason: str | None, *,
              event_type: str = "param.state_change", owner: str | None = None, stream_id: str = STRATEGY) -> None:
        kwargs: dict[str, Any] = {"source": source, "param_name": name, "old_value": old, "new_value": new,
                                  "trigger_reason": reason, "event_type": event_type}
        if owner is not None:
            kwargs["owner"] = owner  # issue 14's new keyword (helper B's change)
        self.add(ts, stream_id, "emit_param_change", **kwargs)

    def account_state(self, ts: int) -> None:
        """The observer's record of the account; balances are filled in when it is written."""
        self.add(ts, OBSERVER, "emit_system", event_type="sys.account_state", source=OBSERVER_SOURCE, payload=None)

    def move(self, instrument: str) -> Decimal:
        tick = INSTRUMENTS[instrument][1]
        self.prices[instrument] += tick * self.rng.randint(-40, 40)
        return self.prices[instrument]

    # --- a signal and what it causes ---------------------------------------------------------

    def signal(self, ts: int, strategy: str, instrument: str, *, acted: bool, reason: str | None = None,
               signal_id: str | None = None, tie: bool = False, hybrid_close: bool = False,
               rejected: bool = False) -> str:
        signal_id = signal_id or f"SIG-{next(self.ids)}"
        stream_id = CARRY if strategy == "carry" else STRATEGY
        source = CARRY_SOURCE if strategy == "carry" else SIGNAL_SOURCE
        if tie:  # an unlinked record of the strategy's stream in the same nanosecond, before the signal
            self.add(ts, stream_id, "emit_system", event_type="sys.evolution_trigger", source="meta_controller",
                     payload={"generation": 42, "reason": "fitness plateau"})
        self.add(ts, stream_id, "emit_signal", source=source, strategy_source=strategy,
                 signal_value=round(self.rng.uniform(-1, 1), 4), confidence=round(self.rng.uniform(0.05, 1), 4),
                 acted_on=acted, filter_reason=None if acted else reason, regime=self.regime,
                 instrument_id=instrument, correlation_id=signal_id)
        if acted:
            if strategy == "carry":
                self.spec_trade(ts, instrument, signal_id)
            else:
                self.observed_trade(ts, strategy, instrument, signal_id, tie=tie, hybrid_close=hybrid_close,
                                    rejected=rejected)
        return signal_id

    def observed_trade(self, ts: int, strategy: str, instrument: str, signal_id: str, *, tie: bool,
                       hybrid_close: bool, rejected: bool) -> None:
        """Order, acceptance, fill and position records as the NautilusTrader observer writes them."""
        rng = self.rng
        _, _, currency, quantum = INSTRUMENTS[instrument]
        position = self.positions.get((strategy, instrument))
        side = rng.choice(("BUY", "SELL")) if position is None else ("SELL" if position.side == "BUY" else "BUY")
        size = position.size if position is not None else Decimal(rng.choice((10_000, 50_000, 100_000)))
        order_id = f"O-{next(self.ids)}"
        position_id = position.position_id if position is not None else f"P-{next(self.ids)}"
        expected = self.prices[instrument]
        common = {"source": OBSERVER_SOURCE, "instrument_id": instrument, "correlation_id": signal_id,
                  "order_id": order_id, "strategy_source": strategy, "side": side}

        def trade(when: int, event_type: str, pnl: tuple[str, Decimal] | None = None, **fields: Any) -> None:
            self.add(when, OBSERVER, "emit_trade", pnl, event_type=event_type, ts_init=when - TS_INIT_LAG,
                     **{**common, **fields})

        order_ts = ts if tie else ts + rng.randint(50_000, 400_000)
        trade(order_ts, "trade.order", size=size, order_type="MARKET", expected_price=expected)
        if rejected:
            trade(order_ts + 200_000, "trade.rejected", size=size, reason="max notional exceeded")
            return
        fill_ts = order_ts
        if not tie:  # a market order in NautilusTrader's simulator has no acceptance; a venue's does
            trade(order_ts + rng.randint(100_000, 900_000), "trade.order.accepted", size=size,
                  venue_order_id=f"V-{order_id}")
            fill_ts = order_ts + rng.randint(1_000_000, 9_000_000)
        price = self.move(instrument)
        fee = (size * price * Decimal("0.00002")).quantize(quantum)
        direction = 1 if side == "BUY" else -1
        fill_fields: dict[str, Any] = {
            "size": size, "price": price, "expected_price": expected, "commission": fee, "currency": currency,
            "slippage_bps": ((price - expected) / expected * 10_000 * direction).quantize(Decimal("0.0001")),
            "liquidity_side": "TAKER", "trade_id": f"T-{next(self.ids)}", "venue_order_id": f"V-{order_id}",
            "position_id": position_id}
        if position is not None and hybrid_close:
            # An emitter that also puts the fill's own realized P&L on it (the specification's style):
            # the position_closed below covers the same order and position, so it must not count twice.
            fill_fields["realized_pnl"] = ((price - position.price) * size * -direction - fee).quantize(quantum)
        trade(fill_ts, "trade.fill", **fill_fields)
        base = {"size": size, "price": price, "position_id": position_id, "currency": currency}
        if position is None:
            self.positions[(strategy, instrument)] = _Position(position_id, side, size, price, fee, fill_ts, signal_id)
            trade(fill_ts, "trade.position_opened", **base, avg_px_open=price, realized_pnl=-fee)
        else:
            del self.positions[(strategy, instrument)]
            pnl = ((price - position.price) * size * (1 if position.side == "BUY" else -1)
                   - position.commission - fee).quantize(quantum)
            # Like the observer: the position record carries the signal that opened it, and its side.
            trade(fill_ts, "trade.position_closed", (currency, pnl), **{**base, "correlation_id": position.signal_id,
                                                                         "side": position.side},
                  avg_px_open=position.price, avg_px_close=price, realized_pnl=pnl,
                  duration_ns=fill_ts - position.opened_ts)
        if tie or position is not None:
            self.account_state(fill_ts)

    def spec_trade(self, ts: int, instrument: str, signal_id: str) -> None:
        """The specification's style: the strategy writes its order and fill; the fill has its realized P&L."""
        rng = self.rng
        _, _, currency, quantum = INSTRUMENTS[instrument]
        position = self.positions.get(("carry", instrument))
        side = rng.choice(("BUY", "SELL")) if position is None else ("SELL" if position.side == "BUY" else "BUY")
        size = position.size if position is not None else Decimal(rng.choice((100_000, 200_000)))
        order_id = f"C-{next(self.ids)}"
        common = {"source": CARRY_SOURCE, "instrument_id": instrument, "correlation_id": signal_id,
                  "order_id": order_id, "strategy_source": "carry", "side": side, "size": size}
        self.add(ts, CARRY, "emit_trade", event_type="trade.order", **common)  # same nanosecond as the signal
        fill_ts = ts + rng.randint(1_000_000, 20_000_000)
        price = self.move(instrument)
        fee = (size * price * Decimal("0.00002")).quantize(quantum)
        if position is None:
            pnl = -fee
            self.positions[("carry", instrument)] = _Position("", side, size, price, fee, fill_ts, signal_id)
        else:
            del self.positions[("carry", instrument)]
            pnl = ((price - position.price) * size * (1 if position.side == "BUY" else -1) - fee).quantize(quantum)
        self.add(fill_ts, CARRY, "emit_trade", (currency, pnl), event_type="trade.fill", **common, price=price,
                 commission=fee, currency=currency, realized_pnl=pnl)
        self.account_state(fill_ts + 1_000)


def _planted_parameters(b: _Builder) -> None:
    p = b.param
    p(START + 1 * S, "meta_controller", "risk_multiplier", 0.5, 1.0, "session start",
      event_type="param.risk_change", owner="meta_controller")
    p(START + 2 * S, "meta_controller", "regime_state", None, "VENTRAL", "session start")
    p(START + 3 * S, "kelly_sizer", "kelly_fraction", 0.2, 0.25, "session start", event_type="param.risk_change")
    p(START + 4 * S, "particle_portfolio", "strategy_weights", None,
      {"momentum": 0.4, "mean_reversion": 0.3, "carry": 0.3}, "session start", event_type="param.weight_change")
    p(START + 5 * S, "risk_gate", "trading_enabled", False, True, "session start")
    p(START + 6 * S, SIGNAL_SOURCE, "entry_threshold", 0.5, 0.6, "calibrated", owner="momentum")
    p(START + 7 * S, SIGNAL_SOURCE, "entry_threshold", 0.5, 0.55, "calibrated", owner="mean_reversion")
    p(START + 8 * S, "particle_portfolio", "k", 32, 16, "session start", event_type="param.k_change")
    p(START + 9 * S, "risk_gate", "max_drawdown_pct", 10.0, 6.0, "session start", owner="risk_gate")
    p(START + 10 * S, "meta_controller", "allowed_instruments", None, ["EURUSD.SIM", "GBPUSD.SIM", "USDJPY.SIM"],
      "session start")
    p(DAY1 + 19 * HOUR, "ops_console", "max_order_size", 100_000, 200_000, "desk request", owner="risk_gate",
      stream_id=OPS)
    # The first midnight: the last nanosecond of day 1, then the first of day 2 (two parameters).
    p(DAY2 - 1, "kelly_sizer", "kelly_fraction", 0.25, 0.3, "end-of-day rebalance", event_type="param.risk_change")
    p(DAY2, "particle_portfolio", "strategy_weights", {"momentum": 0.4, "mean_reversion": 0.3, "carry": 0.3},
      {"momentum": 0.5, "mean_reversion": 0.2, "carry": 0.3}, "daily rebalance", event_type="param.weight_change")
    p(DAY2, "particle_portfolio", "k", 16, 8, "daily rebalance", event_type="param.k_change")
    # The incident.
    p(T0 - 2 * MINUTE, "kelly_sizer", "kelly_fraction", 0.3, 0.28, "volatility spike", event_type="param.risk_change")
    p(T0, "ops_console", "risk_multiplier", 1.0, 8.0, None, event_type="param.risk_change",
      owner="meta_controller", stream_id=OPS)
    p(T_RESET, "meta_controller", "risk_multiplier", 8.0, 1.0, "override reverted (limit 2.0)",
      event_type="param.risk_change", owner="meta_controller")
    p(DAY2 + 14 * HOUR, "meta_controller", "regime_state", "VENTRAL", "DORSAL", "regime shift")
    p(DAY2 + 14 * HOUR + S, "meta_controller", "allowed_instruments", ["EURUSD.SIM", "GBPUSD.SIM", "USDJPY.SIM"],
      ["EURUSD.SIM", "GBPUSD.SIM", "USDJPY.SIM", "AUDUSD.SIM", "NZDUSD.SIM"], "regime shift")
    # One parameter, two sources, one nanosecond, two streams: "ops" sorts before "z-strategy".
    p(T_PARAM_TIE, "ops_console", "max_drawdown_pct", 6.0, 5.0, "desk limit", owner="risk_gate", stream_id=OPS)
    p(T_PARAM_TIE, "risk_gate", "max_drawdown_pct", 5.0, 4.0, "auto-tighten", owner="risk_gate")
    # The second midnight.
    p(DAY3 - 1, "risk_gate", "trading_enabled", True, False, "end-of-day halt")
    p(DAY3, "risk_gate", "trading_enabled", False, True, "start of day")
    p(DAY3, SIGNAL_SOURCE, "entry_threshold", 0.6, 0.65, "drift", owner="momentum")
    p(DAY3 + 10 * HOUR + 30 * MINUTE, "particle_portfolio", "strategy_weights",
      {"momentum": 0.5, "mean_reversion": 0.2, "carry": 0.3},
      {"momentum": 0.25, "mean_reversion": 0.25, "carry": 0.5}, "regime shift", event_type="param.weight_change")
    p(DAY3 + 15 * HOUR, "meta_controller", "regime_state", "DORSAL", "VENTRAL", "regime shift")


#: Instants the random background keeps away from (it may not blur a planted answer).
_QUIET = [(T0 - 10 * MINUTE, T_RESET + MINUTE), (T_PARAM_TIE - S, T_PARAM_TIE + S),
          (T_TIE_CLOSE - S, T_TIE_CLOSE + S), (CONVERSION_END - 2 * S, CONVERSION_END + S),
          (DAY2 + 14 * HOUR - S, DAY2 + 14 * HOUR + 2 * S), (DAY3 + 15 * HOUR - 2 * S, END + S)]


def _background_times(rng: random.Random, count: int) -> list[int]:
    """Random instants in each day's trading hours (08:01-20:00, 15:00 on the last day), at least 30 s
    apart, off the quiet spans."""
    times: list[int] = []
    for day in (DAY1, DAY2, DAY3):
        close = day + (15 if day == DAY3 else 20) * HOUR
        for ts in sorted(rng.randrange(day + 8 * HOUR + MINUTE, close) for _ in range(count)):
            if not any(low <= ts <= high for low, high in _QUIET) and not (times and ts - times[-1] < 30 * S):
                times.append(ts)
    return times


def _signals(b: _Builder) -> None:
    """Background signals of every strategy, with the planted ones among them, in time order per strategy."""
    planned: dict[str, list[tuple[int, dict[str, Any]]]] = {strategy: [] for strategy in STRATEGIES}
    for strategy, instrument in STRATEGIES.items():
        for ts in _background_times(b.rng, 30):
            acted = b.rng.random() < 0.45
            planned[strategy].append((ts, {
                "instrument": instrument, "acted": acted,
                "reason": None if acted else b.rng.choice(FILTER_REASONS),
                "rejected": acted and strategy != "carry" and b.rng.random() < 0.08}))
    # Edges of the incident window: on both edges (inside) and one nanosecond outside each.
    low, high = T0 - INCIDENT_MINUTES * MINUTE, T0 + INCIDENT_MINUTES * MINUTE
    planned["carry"] += [(low - 1, {"instrument": "USDJPY.SIM", "acted": False, "reason": "cooldown"}),
                         (low, {"instrument": "USDJPY.SIM", "acted": False, "reason": "below_threshold"}),
                         (T0 - 4 * MINUTE, {"instrument": "USDJPY.SIM", "acted": True})]
    planned["mean_reversion"] += [(T0 + 3 * MINUTE, {"instrument": "GBPUSD.SIM", "acted": False,
                                                     "reason": "regime_filter"}),
                                  (high, {"instrument": "GBPUSD.SIM", "acted": False, "reason": "risk_limit"}),
                                  (DAY3 + 15 * HOUR + 30 * MINUTE, {"instrument": "NZDUSD.SIM", "acted": True})]
    planned["momentum"] += [(T0 + 3 * MINUTE + 7, {"instrument": "EURUSD.SIM", "acted": False,
                                                   "reason": "risk_limit"}),
                            (high + 1, {"instrument": "EURUSD.SIM", "acted": False, "reason": "low_confidence"}),
                            (T_TIE, {"instrument": "AUDUSD.SIM", "acted": True, "signal_id": SIG_TIE, "tie": True}),
                            (T_TIE_CLOSE, {"instrument": "AUDUSD.SIM", "acted": True, "signal_id": SIG_TIE_CLOSE,
                                           "hybrid_close": True})]
    for strategy, signals in planned.items():
        for ts, spec in sorted(signals, key=lambda item: item[0]):
            instrument = spec.pop("instrument")
            b.signal(ts, strategy, instrument, **spec)
    for ts in _background_times(b.rng, 3):  # kelly_sizer's own tuning, now and then without a reason
        old = b.rng.choice((0.2, 0.22, 0.25))
        b.param(ts, "kelly_sizer", "kelly_fraction", old, round(old + 0.01, 2),
                None if b.rng.random() < 0.3 else "scheduled rebalance", event_type="param.risk_change")


def write_scenario(base: Path, seed: int = 14) -> Scenario:
    """Write the scenario's trail under ``base`` (hot JSONL, then the ``CONVERTED`` files to cold Parquet)."""
    from audit_core.cold.converter import ParquetConverter

    builder = _Builder(seed)
    builder.account_state(START)
    _planted_parameters(builder)
    _signals(builder)
    builder.account_state(END)
    _fix_kelly_chain(builder.steps)
    clock = FakeClock(START)
    emitters = {stream_id: AuditEventEmitter(AuditConfig(base_path=base, trader_id=TRADER, stream_id=stream_id,
                                                         sync_writes=False, flush_interval_s=3600), clock=clock)
                for stream_id in STREAM_IDS}
    balances = dict(START_BALANCES)
    written: list[tuple[int, dict[str, Decimal]]] = []
    emitted: list[Record] = []
    try:
        for step in sorted(builder.steps, key=lambda step: (step.ts, step.order)):
            clock.now = step.ts
            kwargs = step.kwargs
            if kwargs.get("event_type") == "sys.account_state":
                written.append((step.ts, dict(balances)))
                kwargs = {**kwargs, "payload": {"account_id": "SIM-001", "account_type": "MARGIN", "balances": {
                    currency: {"total": str(total), "locked": "0", "free": str(total)}
                    for currency, total in balances.items()}}}
            event = getattr(emitters[step.stream_id], step.method)(**kwargs, ts_event=step.ts)
            emitted.append(Record(stream_key(step.stream_id), event))
            if step.pnl is not None:  # the broker books realized P&L; the next account state shows it
                balances[step.pnl[0]] += step.pnl[1]
    finally:
        for emitter in emitters.values():
            emitter.close()
    converter = ParquetConverter(base / "hot", base / "cold")
    for path in sorted((base / "hot").glob("*.jsonl")):
        name = parse_hot_file_name(path)
        assert name is not None
        day = (name.day - dt.date(1970, 1, 1)).days * DAY
        if (name.stream_id, day) in CONVERTED:
            result = converter.convert_file(path)
            assert result.converted, (path.name, result.skipped, result.failures)
    return Scenario(base, emitted, written)


def _fix_kelly_chain(steps: list[_Step]) -> None:
    """Make every ``kelly_fraction`` change's old value the value it replaced (the background draws them)."""
    current: Any = None
    for step in sorted(steps, key=lambda step: (step.ts, step.order)):
        if step.kwargs.get("param_name") == "kelly_fraction":
            if current is not None:
                step.kwargs["old_value"] = current
            current = step.kwargs["new_value"]


def write_no_balance_trail(base: Path) -> list[Record]:
    """A trail of specification-style fills with realized P&L and no account state at all."""
    clock = FakeClock(DAY1 + 9 * HOUR)
    records = []
    with AuditEventEmitter(AuditConfig(base_path=base, trader_id=TRADER, stream_id=CARRY, sync_writes=False),
                           clock=clock) as emitter:
        for i, (side, price, pnl) in enumerate((("BUY", "148.100", "-296"), ("SELL", "148.350", "24704"),
                                                ("SELL", "148.200", "-296"), ("BUY", "148.900", "-70296"))):
            clock.now = DAY1 + 9 * HOUR + i * MINUTE + 17
            records.append(Record(stream_key(CARRY), emitter.emit_trade(
                "trade.fill", CARRY_SOURCE, "USDJPY.SIM", correlation_id=f"NB-{i // 2}", order_id=f"NB-O-{i}",
                side=side, size="100000", price=price, commission="296", currency="JPY", realized_pnl=pnl,
                strategy_source="carry", ts_event=clock.now)))
    return records


# --- reading back --------------------------------------------------------------------------------


def read_hot_records(hot_path: Path) -> list[Record]:
    """Every record of every hot file (converted or not), parsed with ``parse_record``, in file order."""
    records = []
    for path in sorted(hot_path.glob("*.jsonl")):
        name = parse_hot_file_name(path)
        assert name is not None, path
        for line in path.read_bytes().splitlines():
            records.append(Record(name.stream_key, parse_record(line)))
    return records


# --- the truth: plain Python over the records ------------------------------------------------------

#: Causal rank within one correlation id at one nanosecond (issue 14's contract).
STEP_RANK = {"trade.signal": 0, "trade.order": 1, "trade.order.accepted": 2, "trade.rejected": 2, "trade.fill": 3,
             "trade.canceled": 3, "trade.position_opened": 4, "trade.position_changed": 5,
             "trade.position_closed": 6}


def causal_order(records: Iterable[Record]) -> list[Record]:
    """Records in true order: by ``ts_event``; within one nanosecond, in (stream, sequence) order except
    that the records sharing a correlation id form one block, placed where its first record is in
    (stream, sequence) order and ordered signal -> order -> accepted/rejected -> fill/canceled ->
    position opened -> changed -> closed (then by stream, sequence)."""
    by_ts: dict[int, list[Record]] = {}
    for record in records:
        by_ts.setdefault(record.ts, []).append(record)
    ordered: list[Record] = []
    for ts in sorted(by_ts):
        slots: list[list[Record]] = []
        blocks: dict[str, list[Record]] = {}
        for record in sorted(by_ts[ts], key=lambda r: r.key):
            correlation = record.get("correlation_id")
            if correlation is None:
                slots.append([record])
            elif correlation in blocks:
                blocks[correlation].append(record)
            else:
                blocks[correlation] = [record]
                slots.append(blocks[correlation])
        for slot in slots:  # a lone record needs no rank (a scenario test checks every linked one has one)
            ordered += slot if len(slot) == 1 else sorted(slot, key=lambda r: (STEP_RANK[r.event_type], r.key))
    return ordered


def owner_of(record: Record) -> str:
    """The component that owns a changed parameter: the record's ``owner``, else its ``source``."""
    return record.get("owner") or record.event.source


def param_changes(records: Iterable[Record]) -> list[Record]:
    return [r for r in causal_order(records) if r.event_type.startswith("param.") and r.get("param_name")]


def state_at(records: Iterable[Record], ts: int) -> dict[tuple[str, str], Record]:
    """(owner, param_name) -> the change in force at ``ts``: the last at or before ``ts`` in causal order."""
    state: dict[tuple[str, str], Record] = {}
    for change in param_changes(records):
        if change.ts <= ts:
            state[(owner_of(change), change.event.param_name)] = change
    return state


def state_by_source(records: Iterable[Record], ts: int) -> dict[tuple[str, str, str], tuple[Record, bool]]:
    """(owner, source, param_name) -> (that source's last change at or before ``ts``, whether it is in force)."""
    in_force = {id(change.event) for change in state_at(records, ts).values()}
    latest: dict[tuple[str, str, str], Record] = {}
    for change in param_changes(records):
        if change.ts <= ts:
            latest[(owner_of(change), change.event.source, change.event.param_name)] = change
    return {key: (change, id(change.event) in in_force) for key, change in latest.items()}


def incident(records: Iterable[Record], at: int, minutes: int = INCIDENT_MINUTES) -> list[Record]:
    """Every record with ``at - minutes <= ts_event <= at + minutes``, in causal order."""
    half = minutes * MINUTE
    return [r for r in causal_order(records) if at - half <= r.ts <= at + half]


def lifecycle(records: Iterable[Record], correlation_id: str) -> list[Record]:
    """The records carrying ``correlation_id``, in causal order (in this scenario that is the whole
    trade: the observer puts the opening signal's id on the position records of its round trip)."""
    return [r for r in causal_order(records) if r.get("correlation_id") == correlation_id]


def realized_pnl_records(records: Iterable[Record]) -> list[Record]:
    """The one P&L rule: every ``trade.position_closed`` with ``realized_pnl``, plus every fill with
    ``realized_pnl`` that no position_closed covers (same position id or same order id); in causal order.
    Positions opened or changed are never counted (their realized P&L is a running figure)."""
    ordered = causal_order(records)
    closed = [r for r in ordered if r.event_type == "trade.position_closed" and r.get("realized_pnl") is not None]
    positions = {r.get("position_id") for r in closed} - {None}
    orders = {r.get("order_id") for r in closed} - {None}
    fills = [r for r in ordered if r.event_type == "trade.fill" and r.get("realized_pnl") is not None
             and r.get("position_id") not in positions and r.get("order_id") not in orders]
    chosen = {id(r.event) for r in closed + fills}
    return [r for r in ordered if id(r.event) in chosen]


def covered_fills(records: Iterable[Record]) -> list[Record]:
    """Fills with ``realized_pnl`` that a position_closed covers (left out of the P&L)."""
    counted = {id(r.event) for r in realized_pnl_records(records)}
    return [r for r in records if r.event_type == "trade.fill" and r.get("realized_pnl") is not None
            and id(r.event) not in counted]


def pnl_by_currency(records: Iterable[Record]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for r in realized_pnl_records(records):
        totals[r.event.currency] = totals.get(r.event.currency, Decimal(0)) + r.event.realized_pnl
    return totals


def pnl_by_strategy(records: Iterable[Record]) -> dict[tuple[str, str, str], Decimal]:
    totals: dict[tuple[str, str, str], Decimal] = {}
    for r in realized_pnl_records(records):
        key = (r.event.strategy_source, r.event.instrument_id, r.event.currency)
        totals[key] = totals.get(key, Decimal(0)) + r.event.realized_pnl
    return totals


def pnl_series(records: Iterable[Record]) -> list[tuple[int, str, str, Decimal, Decimal]]:
    """(ts_event, strategy, currency, realized_pnl, running total of that strategy and currency), in order."""
    running: dict[tuple[str, str], Decimal] = {}
    series = []
    for r in realized_pnl_records(records):
        group = (r.event.strategy_source, r.event.currency)
        running[group] = running.get(group, Decimal(0)) + r.event.realized_pnl
        series.append((r.ts, *group, r.event.realized_pnl, running[group]))
    return series


def account_balances(records: Iterable[Record]) -> list[tuple[int, dict[str, Decimal]]]:
    """(ts_event, {currency: total}) of every ``sys.account_state``, in causal order."""
    return [(r.ts, {currency: Decimal(balance["total"]) for currency, balance in r.event.payload["balances"].items()})
            for r in causal_order(records) if r.event_type == "sys.account_state"]


@dataclasses.dataclass
class Conversion:
    counts: dict[str, dict[str, int]]  # strategy -> signals, acted_on, filtered, orders, rejected, filled_orders, fills
    not_traded: dict[tuple[str, str], int]  # (strategy, filter_reason) -> signals


def conversion(records: Iterable[Record], start: int, end: int) -> Conversion:
    """Per strategy, over ``start <= ts_event < end``: signals (acted on, filtered), and the orders,
    rejections and fills counted for the strategy of the signal whose id they carry."""
    window = [r for r in records if start <= r.ts < end]
    group = {r.event.correlation_id: r.event.strategy_source for r in window if r.event_type == "trade.signal"}
    counts: dict[str, dict[str, int]] = {}
    filled: dict[str, set[str]] = {}
    not_traded: Counter[tuple[str, str]] = Counter()
    for r in window:
        if r.event_type not in ("trade.signal", "trade.order", "trade.rejected", "trade.fill"):
            continue
        strategy = r.event.strategy_source if r.event_type == "trade.signal" else group.get(
            r.event.correlation_id, r.event.strategy_source)
        row = counts.setdefault(strategy, dict.fromkeys(
            ("signals", "acted_on", "filtered", "orders", "rejected", "filled_orders", "fills"), 0))
        if r.event_type == "trade.signal":
            row["signals"] += 1
            row["acted_on" if r.event.acted_on else "filtered"] += 1
            if not r.event.acted_on:
                not_traded[(strategy, r.event.filter_reason)] += 1
        elif r.event_type == "trade.order":
            row["orders"] += 1
        elif r.event_type == "trade.rejected":
            row["rejected"] += 1
        else:
            row["fills"] += 1
            filled.setdefault(strategy, set()).add(r.event.order_id)
    for strategy, orders in filled.items():
        counts[strategy]["filled_orders"] = len(orders)
    return Conversion(counts, dict(not_traded))


def count_by_type(records: Iterable[Record]) -> dict[str, int]:
    return dict(Counter(r.event_type for r in records))

