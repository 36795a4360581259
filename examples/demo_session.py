"""A scripted trading session through the public API, across a simulated UTC midnight.

Run with ``make demo``. It writes a small hash-chained trail to ``demo_trail/`` (replaced on each
run), verifies it, and prints what it wrote. Later, a real NautilusTrader backtest replaces this
script; the API it shows stays the same.
"""

from __future__ import annotations

import random
import shutil
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

from audit_core import AuditConfig, AuditEventEmitter, AuditEventType, describe_event, tail, verify

START_NS = 1_767_657_360 * 1_000_000_000  # 2026-01-05 23:56:00 UTC
STEP_NS = 2_500_000_000  # one event every 2.5 s of simulated time
EVENTS = 400


class SimulatedClock:
    """A clock the demo advances by hand, so the session crosses midnight in a second."""

    def __init__(self, start_ns: int) -> None:
        self.now_ns = start_ns

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, ns: int) -> None:
        self.now_ns += ns


def run_session(emitter: AuditEventEmitter, clock: SimulatedClock, rng: random.Random) -> int:
    """Emit a plausible mix of parameter, signal, trade and system events; return the count."""
    risk_multiplier = 1.0
    weights = {"momentum": 0.5, "mean_reversion": 0.5}
    regime = "VENTRAL"
    order_no = 0
    emitted = 0
    while emitted < EVENTS:
        clock.advance(STEP_NS)
        roll = rng.random()
        if roll < 0.15:
            drawdown = rng.uniform(0.0, 0.2)
            new = round(max(0.25, 1.0 - drawdown * 3), 4)
            if new != risk_multiplier:
                emitter.emit_param_change(
                    "meta_controller", "risk_multiplier", risk_multiplier, new,
                    f"drawdown {drawdown:.1%}", event_type=AuditEventType.PARAM_RISK_CHANGE,
                )
                risk_multiplier = new
                emitted += 1
        elif roll < 0.25:
            tilt = round(rng.uniform(-0.1, 0.1), 4)
            new_weights = {"momentum": round(0.5 + tilt, 4), "mean_reversion": round(0.5 - tilt, 4)}
            emitter.emit_param_change(
                "particle_portfolio", "strategy_weights", weights, new_weights, "particle filter update",
                event_type=AuditEventType.PARAM_WEIGHT_CHANGE,
            )
            weights = new_weights
            emitted += 1
        elif roll < 0.30:
            new_regime = rng.choice([r for r in ("VENTRAL", "SYMPATHETIC", "DORSAL") if r != regime])
            emitter.emit_system(
                AuditEventType.SYS_REGIME_CHANGE, "meta_controller",
                {"from": regime, "to": new_regime, "health_score": round(rng.uniform(0, 1), 3)},
            )
            regime = new_regime
            emitted += 1
        else:
            strategy = rng.choice(sorted(weights))
            value = round(rng.gauss(0, 1), 4)
            signal_id = f"SIG-{emitted:05d}"
            if abs(value) < 0.5:
                emitter.emit_signal(
                    "particle_portfolio", strategy, value, round(rng.uniform(0.2, 0.6), 3),
                    acted_on=False, filter_reason="below_threshold", regime=regime,
                    instrument_id="EUR/USD.SIM", correlation_id=signal_id,
                )
                emitted += 1
                continue
            emitter.emit_signal(
                "particle_portfolio", strategy, value, round(rng.uniform(0.6, 1.0), 3),
                regime=regime, instrument_id="EUR/USD.SIM", correlation_id=signal_id,
            )
            order_no += 1
            side = "BUY" if value > 0 else "SELL"
            size = Decimal(100_000) * Decimal(str(risk_multiplier)).quantize(Decimal("0.01"))
            expected = Decimal("1.10000") + Decimal(rng.randint(-50, 50)) / Decimal(100_000)
            filled = expected + Decimal(rng.randint(0, 3)) / Decimal(100_000) * (1 if side == "BUY" else -1)
            slippage = ((filled - expected) / expected * Decimal(10_000) * (1 if side == "BUY" else -1))
            emitter.emit_trade(
                AuditEventType.TRADE_ORDER, "demo_strategy", "EUR/USD.SIM", order_id=f"O-{order_no}",
                side=side, size=size, price=expected, strategy_source=strategy, correlation_id=signal_id,
            )
            clock.advance(1_000_000)  # the fill arrives 1 ms later
            emitter.emit_trade(
                AuditEventType.TRADE_FILL, "demo_strategy", "EUR/USD.SIM", order_id=f"O-{order_no}",
                side=side, size=size, price=filled, slippage_bps=slippage.quantize(Decimal("0.001")),
                commission=Decimal("2.00"), currency="USD", strategy_source=strategy, correlation_id=signal_id,
            )
            emitted += 3
    return emitted


def main(out: Path = Path("demo_trail")) -> int:
    if out.exists():
        print(f"replacing the previous demo trail in {out}/")
        # The demo's own output only; a real trail is never deleted like this.
        for path in out.rglob("*"):
            if path.is_file():
                path.chmod(0o644)
        shutil.rmtree(out)
    clock = SimulatedClock(START_NS)
    config = AuditConfig(base_path=out, trader_id="DEMO-001")
    with AuditEventEmitter(config, clock=clock) as emitter:
        count = run_session(emitter, clock, random.Random(7))
    report = verify(config.hot_path)
    by_type = Counter(event.event_type for event in tail(config.hot_path, n=count + 10))
    print(f"wrote {count} events to {config.hot_path}/ across simulated UTC midnight:")
    for path in report.files:
        print(f"  {path}")
    for event_type, n in sorted(by_type.items()):
        print(f"  {event_type:<24} {n:>5}")
    print(report.to_text())
    print("newest events:")
    for event in tail(config.hot_path, n=5):
        print(f"  {describe_event(event)}")
    print(f"\nnext: `ledgerline verify {config.hot_path}` and `ledgerline tail {config.hot_path}`")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
