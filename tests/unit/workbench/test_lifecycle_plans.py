"""trade_lifecycle's two plans of one rule pick the same rows, for every anchor a trail offers.

``trades._lifecycle_rows`` selects a trade's rows with windows when the rows are few (the ids' days,
read first) and with ``isin`` subqueries over the whole trail otherwise. Both are run here over the
same rows for every order id and every correlation id, so a change to one plan that the other does not
follow fails here, whichever path a trail takes in production.
"""

from __future__ import annotations

from collections import Counter

import pytest

from audit_core import AuditConfig, AuditEventEmitter
from workbench import open_trail
from workbench.trades import _lifecycle_rows

T0 = 1_767_571_200_000_000_000  # 2026-01-05 00:00 UTC
MIN = 60 * 10**9


def picked(table, key: str, value: str, *, few: bool) -> Counter:
    rows = _lifecycle_rows(table, key, value, few=few).select("stream", "sequence", "description").to_pyarrow()
    return Counter(zip(*(rows.column(name).to_pylist() for name in rows.column_names), strict=True))


def anchors(table) -> list[tuple[str, str]]:
    frame = table.select("order_id", "correlation_id").to_pyarrow()
    return sorted({("order_id", v) for v in frame.column("order_id").to_pylist() if v is not None}
                  | {("correlation_id", v) for v in frame.column("correlation_id").to_pylist() if v is not None})


def assert_plans_agree(table) -> int:
    picked_some = 0
    for key, value in anchors(table):
        windows, subqueries = picked(table, key, value, few=True), picked(table, key, value, few=False)
        assert windows == subqueries, (key, value, windows - subqueries, subqueries - windows)
        picked_some += bool(windows)
    return picked_some


def test_on_a_netting_venue_with_rejections_and_unlinked_records(tmp_path):
    # One position id for every round trip; orders without a fill, a rejected order, a signal nobody acted on,
    # a position record whose order belongs to another trade, records without a correlation id.
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
            if n == 2:
                trade(n * 10 + 1, "trade.rejected", order, signal, reason="margin")
                continue
            trade(n * 10, "trade.fill", order, signal, side="BUY", size="1", price="1.1")
            if n:
                trade(n * 10, "trade.position_closed", order, f"SIG-{n}", realized_pnl="1.5", currency="USD")
            trade(n * 10, "trade.position_opened", order, signal, side="BUY", size="1", price="1.1")
        now[0] = T0 + 50 * MIN
        audit.emit_signal("s", "momentum", 0.1, 0.2, correlation_id="SIG-IDLE", acted_on=False,
                          filter_reason="confidence")
        trade(51, "trade.order", "O-LONE", None, side="SELL", size="2")
        trade(52, "trade.position_changed", "O-LONE", "SIG-4", side="SELL", size="1", price="1.2")
        audit.emit_param_change("s", "threshold", 1, 2, trigger_reason="vol")
    trail = open_trail(tmp_path)
    assert assert_plans_agree(trail.events) >= 8


@pytest.mark.parametrize("include_hot", [True, False])
def test_on_a_generated_trail(generated_trail, include_hot):
    trail = open_trail(generated_trail.base_path, include_hot=include_hot)
    assert assert_plans_agree(trail.filter(start=generated_trail.first_ts, end=generated_trail.first_ts + 240 * MIN,
                                           check=False)) >= 20
