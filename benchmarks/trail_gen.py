"""Synthetic but realistic audit trails, written through the real emitter, for tests and benchmarks.

A trail is what an adaptive strategy's node would leave behind: a ``control`` stream (parameter
changes, some without a reason, a few out of bounds or by an unexpected source, and system
events), a ``signals`` stream (signals, acted on or filtered with a reason) and an ``exec`` stream
(orders, acceptances, rejections, partial fills with exact decimal prices, positions opened and
closed with realized P&L, and account states whose balances reconcile with that P&L exactly).
Events are spread over ``days`` UTC days and written by three ``AuditEventEmitter`` instances
sharing one fake clock, so files are chained, rotated at midnight and sealed like real ones; then
``ParquetConverter`` turns the sealed files into cold partitions.

Usage::

    python -m benchmarks.trail_gen /tmp/trail --events 100000 --days 30 --seed 1
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import heapq
import itertools
import random
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from audit_core import AuditConfig, AuditEvent, AuditEventEmitter

NS = 1_000_000_000
DEFAULT_START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TRADER = "TRADER-001"
STREAMS = ("control", "signals", "exec")
STRATEGIES = ("momentum", "mean_reversion", "breakout")
#: instrument -> (start price, tick, P&L currency)
INSTRUMENTS = {
    "EURUSD.SIM": (Decimal("1.10000"), Decimal("0.00001"), "USD"),
    "GBPUSD.SIM": (Decimal("1.27000"), Decimal("0.00001"), "USD"),
    "USDJPY.SIM": (Decimal("148.000"), Decimal("0.001"), "JPY"),
}
#: parameter -> (source, bounds, kind); bounds are what a caller would pass to detect_unexplained_changes.
PARAMETERS = {
    "risk_multiplier": ("meta_controller", (0.0, 2.0), "float"),
    "kelly_fraction": ("kelly_sizer", (0.0, 1.0), "float"),
    "k": ("particle_portfolio", (1, 64), "int"),
    "regime_state": ("meta_controller", None, "str"),
    "strategy_weights": ("particle_portfolio", None, "dict"),
}
PARAM_EVENT_TYPES = {"risk_multiplier": "param.risk_change", "kelly_fraction": "param.risk_change",
                     "k": "param.k_change", "regime_state": "param.state_change",
                     "strategy_weights": "param.weight_change"}
ALLOWED_SOURCES = ("meta_controller", "kelly_sizer", "particle_portfolio")
FILTER_REASONS = ("below_threshold", "regime_filter", "risk_limit", "cooldown", "low_confidence")
TRIGGER_REASONS = ("drawdown > 10%", "volatility spike", "regime shift", "scheduled rebalance", "pnl target hit")
SIGNAL_SOURCE = "signal_engine"
EXEC_SOURCE = "AuditObserver"
START_BALANCES = {"USD": Decimal("1000000.00"), "JPY": Decimal("150000000")}
#: One record to write: (ts_event, stream, emitter method, its keyword arguments).
Step = tuple[int, str, str, dict[str, Any]]
#: Average records one step of the generator writes (used to spread steps over the time span).
_RECORDS_PER_STEP = 3.2


@dataclasses.dataclass
class GeneratedTrail:
    """Where a generated trail is and what it holds.

    ``emitted`` holds ``(stream, event)`` in write order when the generator was asked to keep
    events (small trails, for tests); ``stream`` is the ``<trader>.<stream>`` key of the cold schema.
    """

    base_path: Path
    events: int
    first_ts: int
    last_ts: int
    emitted: list[tuple[str, AuditEvent]] = dataclasses.field(default_factory=list)

    @property
    def hot_path(self) -> Path:
        return self.base_path / "hot"

    @property
    def cold_path(self) -> Path:
        return self.base_path / "cold"


class FakeClock:
    """The emitters' clock: the generator sets ``now`` before every emit."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@dataclasses.dataclass
class _Position:
    position_id: str
    side: str
    size: Decimal
    avg_px: Decimal
    opened_ns: int
    commission: Decimal
    signal_id: str


class _Scenario:
    """Builds the steps of the trail; each returns (ts, stream, method, kwargs) records to write."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.prices = {name: price for name, (price, _, _) in INSTRUMENTS.items()}
        self.params: dict[str, Any] = {"risk_multiplier": 1.0, "kelly_fraction": 0.25, "k": 16,
                                       "regime_state": "VENTRAL", "strategy_weights": {s: 0.33 for s in STRATEGIES}}
        self.positions: dict[tuple[str, str], _Position] = {}
        self.busy_until: dict[tuple[str, str], int] = {}  # an order in flight: no new one until it is done
        self.balances = dict(START_BALANCES)
        self.ids = itertools.count(1)

    def account_state(self, ts: int) -> list[Step]:
        """Every balance, as NautilusTrader's AccountState reports them (the observer records it)."""
        return [(ts, "exec", "emit_system", {
            "event_type": "sys.account_state", "source": EXEC_SOURCE,
            "payload": {"account_id": "SIM-001", "account_type": "MARGIN",
                        "balances": {currency: {"total": str(total), "locked": "0", "free": str(total)}
                                     for currency, total in self.balances.items()}}})]

    def step(self, ts: int) -> list[Step]:
        roll = self.rng.random()
        if roll < 0.10:
            return self.parameter_change(ts)
        if roll < 0.14:
            return self.system_event(ts)
        return self.signal(ts)

    def parameter_change(self, ts: int) -> list[Step]:
        rng = self.rng
        name = rng.choice(tuple(PARAMETERS))
        source, bounds, kind = PARAMETERS[name]
        old = self.params[name]
        if kind == "float":
            new: Any = round(max(0.0, old + rng.uniform(-0.2, 0.2)), 4)
            assert bounds is not None
            if rng.random() < 0.03:
                new = round(float(bounds[1]) * 1.75, 4)  # out of bounds: someone fat-fingered the knob
            elif new > bounds[1]:
                new = float(bounds[1])
        elif kind == "int":
            new = max(1, min(64, old + rng.choice((-4, -2, 2, 4))))
        elif kind == "str":
            new = "DORSAL" if old == "VENTRAL" else "VENTRAL"
        else:
            weights = [rng.random() + 0.05 for _ in STRATEGIES]
            new = {s: round(w / sum(weights), 4) for s, w in zip(STRATEGIES, weights, strict=True)}
        self.params[name] = new
        if rng.random() < 0.02:
            source = "manual_override"  # not on the allow-list
        reason = None if rng.random() < 0.08 else rng.choice(TRIGGER_REASONS)
        return [(ts, "control", "emit_param_change", {
            "source": source, "param_name": name, "old_value": old, "new_value": new,
            "trigger_reason": reason, "event_type": PARAM_EVENT_TYPES[name]})]

    def system_event(self, ts: int) -> list[Step]:
        event_type = self.rng.choice(("sys.regime_change", "sys.resampling", "sys.evolution_trigger"))
        payload = {"regime": self.params["regime_state"], "particles": self.rng.randint(100, 1000)}
        return [(ts, "control", "emit_system", {"event_type": event_type, "source": "meta_controller",
                                                 "payload": payload})]

    def signal(self, ts: int) -> list[Step]:
        rng = self.rng
        strategy, instrument = rng.choice(STRATEGIES), rng.choice(tuple(INSTRUMENTS))
        self._move(instrument)
        acted = rng.random() < 0.45
        reason = None if acted else rng.choice(FILTER_REASONS)
        if acted and self.busy_until.get((strategy, instrument), -1) >= ts:
            acted, reason = False, "position_limit"
        signal_id = f"SIG-{next(self.ids)}"
        records = [(ts, "signals", "emit_signal", {
            "source": SIGNAL_SOURCE, "strategy_source": strategy,
            "signal_value": round(rng.uniform(-1, 1), 4), "confidence": round(rng.uniform(0, 1), 4),
            "acted_on": acted, "filter_reason": reason,
            "regime": self.params["regime_state"], "instrument_id": instrument,
            "correlation_id": signal_id})]
        if acted:
            records += self.order(ts + rng.randint(50_000, 500_000), strategy, instrument, signal_id)
            self.busy_until[(strategy, instrument)] = max(when for when, *_ in records)
        return records

    def order(self, ts: int, strategy: str, instrument: str, signal_id: str) -> list[Step]:
        rng = self.rng
        position = self.positions.get((strategy, instrument))
        side = rng.choice(("BUY", "SELL")) if position is None else ("SELL" if position.side == "BUY" else "BUY")
        size = position.size if position is not None else Decimal(rng.choice((10_000, 50_000, 100_000)))
        order_id = f"O-{next(self.ids)}"
        position_id = position.position_id if position is not None else f"P-{next(self.ids)}"
        expected = self.prices[instrument]
        common = {"source": EXEC_SOURCE, "instrument_id": instrument, "correlation_id": signal_id,
                  "order_id": order_id, "strategy_source": strategy, "side": side}
        records: list[Step] = [(ts, "exec", "emit_trade", {
            **common, "event_type": "trade.order", "size": size, "order_type": "MARKET", "expected_price": expected})]
        if rng.random() < 0.04:
            return [*records, (ts + 200_000, "exec", "emit_trade", {
                **common, "event_type": "trade.rejected", "size": size, "reason": "risk_limit"})]
        ts += rng.randint(300_000, 2_000_000)
        records.append((ts, "exec", "emit_trade", {**common, "event_type": "trade.order.accepted", "size": size,
                                                    "venue_order_id": f"V-{order_id}"}))
        parts = [size] if rng.random() < 0.8 else [size / 2, size - size / 2]
        total, fill_ts, commission = Decimal(0), ts, Decimal(0)
        for part in parts:
            fill_ts += rng.randint(1_000_000, 20_000_000)
            price = self._move(instrument)
            fee = (part * price * Decimal("0.00002")).quantize(Decimal("0.01"))
            commission += fee
            total += part * price
            slip = ((price - expected) / expected * 10_000 * (1 if side == "BUY" else -1)).quantize(Decimal("0.0001"))
            records.append((fill_ts, "exec", "emit_trade", {
                **common, "event_type": "trade.fill", "size": part, "price": price, "expected_price": expected,
                "slippage_bps": slip, "commission": fee, "currency": INSTRUMENTS[instrument][2],
                "liquidity_side": "TAKER", "trade_id": f"T-{next(self.ids)}", "venue_order_id": f"V-{order_id}",
                "position_id": position_id}))
        avg_px = (total / size).quantize(INSTRUMENTS[instrument][1] / 1000)
        return records + self._position(fill_ts, strategy, instrument, side, size, avg_px, commission,
                                        {**common, "position_id": position_id})

    def _position(self, ts: int, strategy: str, instrument: str, side: str, size: Decimal, avg_px: Decimal,
                  commission: Decimal, common: dict[str, Any]) -> list[Step]:
        currency = INSTRUMENTS[instrument][2]
        key = (strategy, instrument)
        position = self.positions.pop(key, None)
        base = {**common, "currency": currency, "size": size, "price": avg_px}
        if position is None:
            position = _Position(common["position_id"], side, size, avg_px, ts, commission, common["correlation_id"])
            self.positions[key] = position
            return [(ts, "exec", "emit_trade", {
                **base, "event_type": "trade.position_opened", "side": side, "avg_px_open": avg_px,
                "realized_pnl": -commission})]
        direction = 1 if position.side == "BUY" else -1
        pnl = ((avg_px - position.avg_px) * size * direction - position.commission - commission).quantize(
            Decimal("0.01"))
        self.balances[currency] += pnl
        return [
            (ts, "exec", "emit_trade", {  # like the observer: the signal of the order that opened it
                **base, "correlation_id": position.signal_id, "event_type": "trade.position_closed",
                "side": position.side, "avg_px_open": position.avg_px, "avg_px_close": avg_px,
                "realized_pnl": pnl, "realized_return": (pnl / (position.avg_px * size)).quantize(Decimal("1e-8")),
                "duration_ns": ts - position.opened_ns}),
            *self.account_state(ts),
        ]

    def _move(self, instrument: str) -> Decimal:
        tick = INSTRUMENTS[instrument][1]
        self.prices[instrument] += tick * self.rng.randint(-20, 20)
        return self.prices[instrument]


def generate_trail(
    base_path: Path | str,
    *,
    events: int,
    days: int = 30,
    seed: int = 0,
    start: dt.datetime = DEFAULT_START,
    convert: bool = True,
    keep_events: bool = False,
    progress: Callable[[int], None] | None = None,
) -> GeneratedTrail:
    """Write a trail of about ``events`` records (a step's last records may add a few) over ``days``.

    Every record goes through ``AuditEventEmitter`` (``sync_writes=False``; the files are still
    chained and sealed). With ``convert`` the sealed files become cold Parquet under
    ``base_path/cold``. About 2% of steps share the previous step's ``ts_event`` (ties across streams).
    """
    base = Path(base_path)
    rng = random.Random(seed)
    start_ns = int(start.timestamp()) * NS
    span = days * 86_400 * NS
    mean_gap = span / max(1.0, events / _RECORDS_PER_STEP)
    clock = FakeClock(start_ns)
    emitters = {stream: AuditEventEmitter(AuditConfig(
        base_path=base, trader_id=TRADER, stream_id=stream, sync_writes=False, flush_interval_s=3600,
    ), clock=clock) for stream in STREAMS}
    scenario = _Scenario(rng)
    queue: list[tuple[int, int, str, str, dict[str, Any]]] = []
    order = itertools.count()
    kept: list[tuple[str, AuditEvent]] = []
    written, ts, first_ts, last_ts = 0, start_ns, None, start_ns

    def write(item: tuple[int, int, str, str, dict[str, Any]]) -> None:
        nonlocal written, first_ts, last_ts
        when, _, stream, method, kwargs = item
        clock.now = when
        event = getattr(emitters[stream], method)(**kwargs, ts_event=when)
        written += 1
        first_ts = when if first_ts is None else first_ts
        last_ts = when
        if keep_events:
            kept.append((f"{TRADER}.{stream}", event))
        if progress is not None and written % 100_000 == 0:
            progress(written)

    try:
        for when, stream, method, kwargs in scenario.account_state(start_ns):
            heapq.heappush(queue, (when, next(order), stream, method, kwargs))
        while written + len(queue) < events:
            if rng.random() >= 0.02:
                ts += max(1, int(rng.expovariate(1.0 / mean_gap)))
            ts = min(ts, start_ns + span - 1)
            while queue and queue[0][0] <= ts:
                write(heapq.heappop(queue))
            for when, stream, method, kwargs in scenario.step(ts):
                heapq.heappush(queue, (min(when, start_ns + span - 1), next(order), stream, method, kwargs))
        while queue:
            write(heapq.heappop(queue))
    finally:
        for emitter in emitters.values():
            emitter.close()
    if convert:
        from audit_core.cold.converter import ParquetConverter

        ParquetConverter(base / "hot", base / "cold").convert_all()
    return GeneratedTrail(base, written, first_ts or start_ns, last_ts, kept)


CACHE_DIR = Path(__file__).resolve().parent / ".cache"


def cached_trail(events: int, *, days: int = 30, seed: int = 0, root: Path = CACHE_DIR,
                 progress: Callable[[int], None] | None = None) -> Path:
    """The base path of a generated, converted trail, generated once and kept under ``root``.

    A trail is complete when its ``.complete`` marker exists; an incomplete one (an interrupted
    run) is generated again from scratch. The cold projection version is part of the name: a cold
    store of an older one is not what the benchmarks should measure.
    """
    import shutil

    from audit_core.cold.projection import PROJECTION_VERSION

    base = root / f"trail-{events}-{days}d-s{seed}-p{PROJECTION_VERSION}"
    if (base / ".complete").exists():
        return base
    shutil.rmtree(base, ignore_errors=True)
    generate_trail(base, events=events, days=days, seed=seed, progress=progress)
    (base / ".complete").write_text("generated by benchmarks.trail_gen\n")
    return base


def open_unverified(base: Path | str, backend: Any = None) -> Any:
    """``workbench.open_trail(base, backend, verify=False)``, its ``TrailNotVerifiedWarning`` taken here.

    The benchmarks measure queries, not verification: a first open would verify the whole trail
    (seconds per million events) and later ones would hit the verification cache.
    """
    import warnings

    from workbench import TrailNotVerifiedWarning, open_trail

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrailNotVerifiedWarning)
        trail = open_trail(base, backend, verify=False)
        trail.events  # noqa: B018 - the first read warns, once per trail: here
    return trail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trail_gen", description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-convert", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    trail = generate_trail(args.path, events=args.events, days=args.days, seed=args.seed,
                           convert=not args.no_convert,
                           progress=lambda n: print(f"{n:,} records", file=sys.stderr))
    print(f"{trail.events:,} records in {args.path} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
