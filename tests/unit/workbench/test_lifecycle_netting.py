"""trade_lifecycle on a netting venue: one position id is reused by every round trip of an instrument."""

from __future__ import annotations

from audit_core import AuditConfig, AuditEventEmitter
from workbench import open_trail, trade_lifecycle

T0 = 1_767_571_200_000_000_000  # 2026-01-05 00:00 UTC
MIN = 60 * 10**9


def test_only_the_round_trips_the_trade_touched(tmp_path):
    now = [T0]
    with AuditEventEmitter(AuditConfig(base_path=tmp_path, sync_writes=False), clock=lambda: now[0]) as audit:
        def trade(minute, event_type, order, signal, **fields):
            now[0] = T0 + minute * MIN
            audit.emit_trade(event_type, "obs", "EUR/USD.SIM", order_id=order, correlation_id=signal,
                             position_id="EUR/USD.SIM-S-1", **fields)

        for n, signal in enumerate(("SIG-1", "SIG-2", "SIG-3", "SIG-4")):
            now[0] = T0 + n * 10 * MIN
            audit.emit_signal("s", "momentum", 0.9, 0.9, correlation_id=signal)
            order = f"O-{n + 1}"
            trade(n * 10, "trade.order", order, signal, side="BUY", size="1")
            trade(n * 10, "trade.fill", order, signal, side="BUY", size="1", price="1.1")
            if n:  # each order flips: closes the previous round trip and opens the next
                trade(n * 10, "trade.position_closed", order, f"SIG-{n}", realized_pnl="1.5", currency="USD")
            trade(n * 10, "trade.position_opened", order, signal, side="BUY", size="1", price="1.1")
    trail = open_trail(tmp_path)
    steps = trade_lifecycle(trail, correlation_id="SIG-2").to_pandas()
    positions = steps[steps.step.str.startswith("position")]
    # SIG-2's own round trip (opened by O-2, closed by O-3) and the one O-2 closed (SIG-1's); not SIG-3's or SIG-4's.
    assert sorted(zip(positions.step, positions.order_id, positions.correlation_id, strict=True)) == [
        ("position_closed", "O-2", "SIG-1"), ("position_closed", "O-3", "SIG-2"),
        ("position_opened", "O-1", "SIG-1"), ("position_opened", "O-2", "SIG-2"),
    ]
