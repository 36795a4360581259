"""One realized-P&L rule (workbench.pnl.realized_pnl_events) on trails written through the real emitter.

Every expected value is worked out by hand here, in Decimal, from the records the test emits;
none comes from the workbench. The rule: ``trade.position_closed`` rows carrying ``realized_pnl``,
plus ``trade.fill`` rows carrying ``realized_pnl`` whose (trader_id, position_id) no such closing
row covers; nothing else (opened/changed positions repeat the P&L their closing record holds).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from audit_core import AuditConfig, AuditEventEmitter
from audit_core.cold.converter import ParquetConverter
from benchmarks.trail_gen import FakeClock
from workbench import (
    TrailNotVerifiedWarning,
    WorkbenchInputError,
    open_trail,
    pnl_reconciliation,
    realized_pnl_series,
)
from workbench.charts import pnl_over_time
from workbench.pnl import realized_pnl_events

S = 1_000_000_000
T0 = 1_767_657_480 * S  # 2026-01-05 23:58:00 UTC: the trails below cross midnight
#: 18 fractional digits, the most DECIMAL(38,18) keeps: any float on the way would lose them.
TINY_LOSS = Decimal("-12.345678901234567891")
EUR_GAIN = Decimal("7.000000000000000001")


class Desk:
    """One trader's emitter on a fake clock; ``at(seconds)`` sets the clock for the next emit."""

    def __init__(self, base: Path, trader: str = "TRADER-001", stream: str = "exec") -> None:
        self.clock = FakeClock(T0)
        self.audit = AuditEventEmitter(AuditConfig(base_path=base, trader_id=trader, stream_id=stream,
                                                   sync_writes=False), clock=self.clock)

    def trade(self, seconds: float, event_type: str, instrument: str = "EURUSD.SIM", **fields: Any) -> None:
        ts = T0 + int(seconds * S)
        self.clock.now = ts
        self.audit.emit_trade(event_type, "emitter", instrument, ts_event=ts, **fields)

    def balances(self, seconds: float, **totals: Decimal | str) -> None:
        ts = T0 + int(seconds * S)
        self.clock.now = ts
        balances = {currency: {"total": str(total), "free": str(total)} for currency, total in totals.items()}
        payload = {"account_id": "SIM-001", "balances": balances}
        self.audit.emit_system("sys.account_state", "AuditObserver", payload, ts_event=ts)

    def close(self) -> None:
        self.audit.close()


def convert(base: Path) -> None:
    converter = ParquetConverter(base / "hot", base / "cold")
    for path in sorted((base / "hot").glob("*.jsonl")):
        assert converter.convert_file(path).converted, path


def counted(table) -> list[tuple[str, str | None, Decimal]]:
    rows = table.select("event_type", "position_id", "realized_pnl").to_pyarrow().to_pylist()
    return sorted([(row["event_type"], row["position_id"], row["realized_pnl"]) for row in rows],
                  key=lambda row: (row[0], str(row[1]), row[2]))


def last_cumulative(chart, by: str = "strategy_source") -> dict[str, Decimal]:
    spec = chart.to_dict()
    return {row[by]: Decimal(row["cumulative_exact"]) for row in spec["datasets"][spec["data"]["name"]]}


@pytest.fixture(params=["hot", "cold"])
def storage(request) -> str:
    return request.param


# --- a spec-style trail: fills carry realized_pnl, no position records ----------------------------

def write_fill_pnl_trail(base: Path) -> dict[str, Decimal]:
    """Fills only (as the original specification's TradeEvent), two currencies; returns the P&L per strategy."""
    desk = Desk(base)
    desk.balances(0, USD="1000000.00", EUR="500000.00")
    usd = {"currency": "USD", "strategy_source": "momentum"}
    desk.trade(10, "trade.fill", order_id="O-1", side="BUY", size="100000", price="1.10012", commission="2.20",
               position_id="P-1", **usd)  # opening fill: no realized P&L yet
    desk.trade(70, "trade.fill", order_id="O-2", side="SELL", size="100000", price="1.10112", commission="2.20",
               position_id="P-1", realized_pnl="95.60", **usd)
    desk.trade(130, "trade.fill", order_id="O-3", side="SELL", size="1000", price="1.1", commission="0",
               realized_pnl=str(TINY_LOSS), currency="USD", strategy_source="mean_reversion")  # no position_id
    desk.trade(190, "trade.fill", "EURGBP.SIM", order_id="O-4", side="SELL", size="5000", price="0.85",
               commission="0.10", position_id="P-2", realized_pnl=str(EUR_GAIN), currency="EUR",
               strategy_source="momentum")
    desk.balances(190, USD=Decimal("1000000.00") + Decimal("95.60") + TINY_LOSS,
                  EUR=Decimal("500000.00") + EUR_GAIN)
    desk.close()
    return {"momentum/USD": Decimal("95.60"), "mean_reversion/USD": TINY_LOSS, "momentum/EUR": EUR_GAIN}


class TestFillsCarryingPnl:
    @pytest.fixture
    def trail(self, tmp_path, storage):
        write_fill_pnl_trail(tmp_path)
        if storage == "cold":
            convert(tmp_path)
        return open_trail(tmp_path)

    def test_the_rule_counts_every_fill_that_carries_pnl(self, trail):
        assert counted(realized_pnl_events(trail)) == [
            ("trade.fill", None, TINY_LOSS), ("trade.fill", "P-1", Decimal("95.60")),
            ("trade.fill", "P-2", EUR_GAIN)]

    def test_reconciles_exactly_in_both_currencies(self, trail):
        reconciliation = pnl_reconciliation(trail)
        frame = reconciliation.to_pandas().set_index("currency")
        assert frame.loc["USD", "realized_pnl"] == Decimal("95.60") + TINY_LOSS
        assert frame.loc["EUR", "realized_pnl"] == EUR_GAIN
        assert list(frame.difference) == [0, 0] and list(frame.pnl_records) == [1, 2]
        assert list(frame.positions_closed) == [0, 0]
        assert reconciliation.ok is True
        assert reconciliation.to_text().splitlines()[0] == "P&L reconciled exactly"

    def test_by_strategy_is_not_null(self, trail):
        by_strategy = pnl_reconciliation(trail).by_strategy.to_pandas()
        got = {f"{row.strategy_source}/{row.currency}": (row.realized_pnl, row.pnl_records, row.fills)
               for row in by_strategy.itertuples()}
        assert got == {"mean_reversion/USD": (TINY_LOSS, 1, 1), "momentum/EUR": (EUR_GAIN, 1, 1),
                       "momentum/USD": (Decimal("95.60"), 1, 2)}

    def test_series_has_one_row_per_fill_with_pnl(self, trail):
        series = realized_pnl_series(trail, by="currency").to_pandas()
        assert list(zip(series.group, series.realized_pnl, series.cumulative_pnl, strict=True)) == [
            ("USD", Decimal("95.60"), Decimal("95.60")),
            ("USD", TINY_LOSS, Decimal("95.60") + TINY_LOSS),
            ("EUR", EUR_GAIN, EUR_GAIN),
        ]
        assert set(series.event_type) == {"trade.fill"}

    def test_chart_of_trail_events_ends_at_the_rule_sum(self, trail):
        spec = pnl_over_time(trail.events).to_dict()  # two currencies: one line per (strategy, currency)
        last = {(row["strategy_source"], row["currency"]): Decimal(row["cumulative_exact"])
                for row in spec["datasets"][spec["data"]["name"]]}
        assert last == {("momentum", "USD"): Decimal("95.60"), ("mean_reversion", "USD"): TINY_LOSS,
                        ("momentum", "EUR"): EUR_GAIN}


# --- a NautilusTrader-style trail: positions opened, changed and closed --------------------------

def write_position_trail(base: Path) -> None:
    """The observer's shape: fills without P&L; opened/changed/closed carry the position's P&L so far."""
    desk = Desk(base)
    desk.balances(0, USD="1000000.00")
    common = {"currency": "USD", "strategy_source": "momentum", "position_id": "P-1"}
    desk.trade(10, "trade.fill", order_id="O-1", side="BUY", size="100000", price="1.10012", commission="2.20",
               **common)
    desk.trade(10, "trade.position_opened", order_id="O-1", side="BUY", size="100000", realized_pnl="-2.20", **common)
    desk.trade(70, "trade.fill", order_id="O-2", side="SELL", size="50000", price="1.10112", commission="1.10",
               **common)
    desk.trade(70, "trade.position_changed", order_id="O-2", side="BUY", size="50000", realized_pnl="46.70", **common)
    desk.trade(130, "trade.fill", order_id="O-3", side="SELL", size="50000", price="1.10212", commission="1.10",
               **common)
    # 50000 * (0.00100 + 0.00200) - 2.20 - 1.10 - 1.10 = 145.60
    desk.trade(130, "trade.position_closed", order_id="O-3", side="BUY", size="100000", realized_pnl="145.60",
               **common)
    desk.balances(130, USD="1000145.60")
    desk.close()


class TestPositionClosedOnly:
    @pytest.fixture
    def trail(self, tmp_path, storage):
        write_position_trail(tmp_path)
        if storage == "cold":
            convert(tmp_path)
        return open_trail(tmp_path)

    def test_only_the_closing_record_counts(self, trail):
        assert counted(realized_pnl_events(trail)) == [("trade.position_closed", "P-1", Decimal("145.60"))]

    def test_reconciles(self, trail):
        reconciliation = pnl_reconciliation(trail)
        (row,) = reconciliation.to_pandas().to_dict("records")
        assert (row["realized_pnl"], row["balance_change"], row["difference"]) == (
            Decimal("145.60"), Decimal("145.60"), 0)
        assert (row["positions_closed"], row["pnl_records"]) == (1, 1)
        assert reconciliation.ok is True

    def test_chart_of_trail_events_is_not_a_triple_count(self, trail):
        # Summing every row with realized_pnl would give -2.20 + 46.70 + 145.60 = 190.10.
        assert last_cumulative(pnl_over_time(trail.events)) == {"momentum": Decimal("145.60")}
        assert last_cumulative(pnl_over_time(trail)) == {"momentum": Decimal("145.60")}
        assert last_cumulative(pnl_over_time(trail.events.to_pandas())) == {"momentum": Decimal("145.60")}


# --- both kinds for one position: counted once ---------------------------------------------------

def write_mixed_trail(base: Path) -> None:
    """TRADER-001's P-1 has a fill with P&L *and* a closing record; P-9 a fill only; TRADER-002 reuses 'P-1'."""
    desk = Desk(base)
    other = Desk(base, trader="TRADER-002", stream="exec2")
    desk.balances(0, USD="1000000.00")
    common = {"currency": "USD", "strategy_source": "momentum", "position_id": "P-1"}
    desk.trade(10, "trade.fill", order_id="O-1", side="BUY", size="100000", price="1.10012", commission="2.20",
               **common)
    desk.trade(10, "trade.position_opened", order_id="O-1", side="BUY", size="100000", realized_pnl="-2.20", **common)
    desk.trade(100, "trade.fill", order_id="O-2", side="SELL", size="100000", price="1.10112", commission="2.20",
               realized_pnl="95.60", **common)  # the same trade's P&L as the closing record below
    desk.trade(150, "trade.position_closed", order_id="O-2", side="BUY", size="100000", realized_pnl="95.60",
               **common)  # after midnight (T0 + 120 s), in the next day's partition
    desk.trade(160, "trade.fill", order_id="O-3", side="SELL", size="10", price="1.1", commission="0",
               currency="USD", strategy_source="carry", position_id="P-9", realized_pnl="0.05")
    other.trade(170, "trade.fill", order_id="X-1", side="SELL", size="1", price="1.1", commission="0",
                currency="USD", strategy_source="carry", position_id="P-1", realized_pnl="-1.25")
    desk.balances(180, USD=Decimal("1000000.00") + Decimal("95.60") + Decimal("0.05") - Decimal("1.25"))
    desk.close()
    other.close()


class TestMixedTrail:
    @pytest.fixture
    def trail(self, tmp_path, storage):
        write_mixed_trail(tmp_path)
        if storage == "cold":
            convert(tmp_path)
        return open_trail(tmp_path)

    def test_a_fill_whose_position_closed_is_not_counted_again(self, trail):
        rows = realized_pnl_events(trail).to_pandas()
        assert sorted(zip(rows.trader_id, rows.event_type, rows.position_id, rows.realized_pnl, strict=True)) == [
            ("TRADER-001", "trade.fill", "P-9", Decimal("0.05")),
            ("TRADER-001", "trade.position_closed", "P-1", Decimal("95.60")),
            ("TRADER-002", "trade.fill", "P-1", Decimal("-1.25")),  # another trader's P-1: not covered
        ]

    def test_reconciliation_counts_each_trade_once(self, trail):
        reconciliation = pnl_reconciliation(trail)
        (row,) = reconciliation.to_pandas().to_dict("records")
        assert row["realized_pnl"] == Decimal("94.40") and row["difference"] == 0
        assert (row["positions_closed"], row["pnl_records"]) == (1, 3)
        assert reconciliation.ok is True
        by_strategy = pnl_reconciliation(trail).by_strategy.to_pandas()
        assert dict(zip(by_strategy.strategy_source, by_strategy.realized_pnl, strict=True)) == {
            "carry": Decimal("-1.20"), "momentum": Decimal("95.60")}

    def test_coverage_is_decided_over_the_whole_trail_not_the_window(self, trail):
        midnight = T0 + 120 * S  # the fill with P&L is before it, its closing record after it
        before = counted(realized_pnl_events(trail, end=midnight))
        after = counted(realized_pnl_events(trail, start=midnight))
        assert before == []
        assert after == [("trade.fill", "P-1", Decimal("-1.25")), ("trade.fill", "P-9", Decimal("0.05")),
                         ("trade.position_closed", "P-1", Decimal("95.60"))]
        series = realized_pnl_series(trail, start=midnight).to_pandas()
        assert series.realized_pnl.sum() == Decimal("94.40")

    def test_chart_of_trail_events_equals_the_rule_sum(self, trail):
        assert last_cumulative(pnl_over_time(trail.events)) == {"momentum": Decimal("95.60"),
                                                                "carry": Decimal("-1.20")}
        assert last_cumulative(pnl_over_time(trail.events.to_pandas())) == {"momentum": Decimal("95.60"),
                                                                            "carry": Decimal("-1.20")}

    def test_a_filtered_table_goes_through_the_rule_too(self, trail):
        only_momentum = trail.filter(strategy="momentum")
        assert counted(realized_pnl_events(only_momentum)) == [("trade.position_closed", "P-1", Decimal("95.60"))]


# --- nothing to reconcile -----------------------------------------------------------------------

class TestNothingToReconcile:
    def test_a_trail_without_pnl_or_balances(self, tmp_path):
        desk = Desk(tmp_path)
        desk.trade(10, "trade.fill", order_id="O-1", side="BUY", size="1", price="1.1", commission="0.01",
                   currency="USD", strategy_source="momentum", position_id="P-1")
        desk.close()
        reconciliation = pnl_reconciliation(open_trail(tmp_path))
        assert reconciliation.ok is None
        assert "nothing to reconcile" in reconciliation.to_text()
        assert "nothing to reconcile" in repr(reconciliation) and "nothing to reconcile" in str(reconciliation)

    def test_an_empty_trail(self, tmp_path):
        (tmp_path / "hot").mkdir()
        trail = open_trail(tmp_path)
        with pytest.warns(TrailNotVerifiedWarning, match="no records to check"):
            reconciliation = pnl_reconciliation(trail)
        assert reconciliation.ok is None and reconciliation.to_pandas().empty
        assert reconciliation.to_text().endswith("trail not verified: the trail holds no records to check "
                                                 f"(checked {trail.verification.checked_at:%Y-%m-%d %H:%M:%S} UTC)")
        assert realized_pnl_series(trail).to_pandas().empty

    def test_pnl_without_balances(self, tmp_path):
        desk = Desk(tmp_path)
        desk.trade(10, "trade.fill", order_id="O-1", side="SELL", size="1", price="1.1", commission="0",
                   currency="USD", strategy_source="momentum", position_id="P-1", realized_pnl="3.50")
        desk.close()
        reconciliation = pnl_reconciliation(open_trail(tmp_path))
        (row,) = reconciliation.to_pandas().to_dict("records")
        assert row["realized_pnl"] == Decimal("3.50") and row["reconciled"] is None
        assert reconciliation.ok is None
        assert "no currency has both a starting and a final balance" in reconciliation.to_text()

    def test_balances_without_pnl(self, tmp_path):
        desk = Desk(tmp_path)
        desk.balances(0, USD="100.00")
        desk.trade(10, "trade.position_opened", order_id="O-1", side="BUY", size="1", price="1.1",
                   realized_pnl="-0.01", currency="USD", position_id="P-1")  # not realized P&L by the rule
        desk.balances(20, USD="99.99")
        desk.close()
        reconciliation = pnl_reconciliation(open_trail(tmp_path))
        assert reconciliation.ok is None
        assert "no realized P&L records in the trail between the first and the last recorded balance" in \
            reconciliation.to_text()
        assert "balance 100 -> 99.99 (change -0.01)" in reconciliation.to_text()

    def test_a_currency_with_pnl_but_no_balance_is_not_reconciled(self, tmp_path):
        desk = Desk(tmp_path)
        desk.balances(0, USD="100.00")
        desk.trade(10, "trade.fill", order_id="O-1", side="SELL", size="1", price="1.1", commission="0",
                   currency="USD", position_id="P-1", realized_pnl="1.00")
        desk.trade(10, "trade.fill", "EURGBP.SIM", order_id="O-2", side="SELL", size="1", price="0.8",
                   commission="0", currency="GBP", position_id="P-2", realized_pnl="2.00")
        desk.balances(20, USD="101.00")
        desk.close()
        reconciliation = pnl_reconciliation(open_trail(tmp_path))
        assert dict(zip(reconciliation.to_pandas().currency, reconciliation.to_pandas().reconciled,
                        strict=True)) == {"GBP": None, "USD": True}
        assert reconciliation.ok is False
        assert reconciliation.to_text().splitlines()[0] == "P&L NOT reconciled"


def test_anything_but_a_trail_or_a_table_is_refused():
    with pytest.raises(WorkbenchInputError, match=r"trail=\[\] \(list\): expected a Trail or an Ibis table"):
        realized_pnl_events([])  # type: ignore[arg-type]
