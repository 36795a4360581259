"""``pnl_reconciliation`` on real backtests across venue and account types (``venue_scenarios``).

Each setup runs once (module fixture): an EMACross-family strategy that ships inside
NautilusTrader, with the ``AuditObserver`` attached. Per setup the tests check that every engine
event the observer records appears exactly once, that the trail's balances are the engine's,
that the per-currency reconciliation is exact (or within one minor unit per converted fill where
the engine converts), and that dropping one fill record from the reconciliation's input makes
the reconciliation itself fail.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import ibis
import pytest
from nautilus_scenario import ORDER_EVENT_TYPES, POSITION_EVENT_TYPES
from venue_scenarios import SETUPS, SetupRun, run_setup

from workbench import open_trail, pnl_reconciliation

CONVERTED = {"usdjpy_on_usd"}  # P&L in another currency than the account's: converted by the engine


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[SetupRun, Any]]:
    done = {}
    for name, setup in SETUPS.items():
        run = run_setup(setup, tmp_path_factory.mktemp(name))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a fresh hot trail is unconverted: open_trail says so
            trail = open_trail(run.base)
        done[name] = (run, trail)
    return done


def _rows(trail: Any) -> list[dict[str, Any]]:
    return trail.events.select("event_type", "order_id", "trade_id", "position_id", "payload").to_pyarrow().to_pylist()


def _without_fill(trail: Any, trade_id: str) -> ibis.Table:
    events = trail.events
    return events.filter(events.trade_id.isnull() | (events.event_type != "trade.fill") | (events.trade_id != trade_id))


@pytest.mark.parametrize("name", sorted(SETUPS))
class TestEverySetup:
    def test_every_engine_event_is_recorded_exactly_once(self, runs, name):
        run, trail = runs[name]
        assert run.observer_failures == 0
        rows = _rows(trail)
        recorded = Counter(row["event_type"] for row in rows)
        expected: Counter[str] = Counter()
        for order in run.orders:
            for event in order.events:
                if type(event) in ORDER_EVENT_TYPES:
                    expected[ORDER_EVENT_TYPES[type(event)]] += 1
        for event in run.position_events:
            expected[POSITION_EVENT_TYPES[type(event)]] += 1
        assert expected["trade.fill"] > 0 and expected["trade.position_closed"] > 0
        assert {kind: recorded[kind] for kind in expected} == dict(expected)
        assert recorded["sys.account_state"] == len(run.account_events)
        fill_ids = [str(e.trade_id) for order in run.orders for e in order.events if type(e).__name__ == "OrderFilled"]
        trail_fill_ids = [row["trade_id"] for row in rows if row["event_type"] == "trade.fill"]
        assert Counter(trail_fill_ids) == Counter(fill_ids) and len(set(fill_ids)) == len(fill_ids)
        assert recorded["sys.fill_accounting"] == len(fill_ids)
        payloads = [json.loads(row["payload"]) for row in rows if row["event_type"] == "sys.fill_accounting"]
        # In currency-code order, so the same fill has the same bytes in every process (a set of
        # NautilusTrader currencies iterates in an order that can change from one process to the next).
        assert all(list(payload["precisions"]) == sorted(payload["precisions"]) for payload in payloads)
        assert any(len(payload["precisions"]) > 1 for payload in payloads)

    def test_reconciles_per_currency_exactly(self, runs, name):
        run, trail = runs[name]
        reconciliation = pnl_reconciliation(trail)
        frame = reconciliation.to_pandas()
        assert reconciliation.ok is True, reconciliation.to_text()
        assert reconciliation.fill_problems == [] and reconciliation.fill_checks > 0
        # The trail's last balances are the engine's own at the end of the run.
        assert dict(zip(frame.currency, frame.balance_end, strict=True)) == run.balances
        for row in frame.itertuples():
            assert row.balance_change - row.expected_change == row.difference
            if name in CONVERTED:
                assert abs(row.difference) <= row.tolerance
            else:
                assert row.difference == 0 and row.tolerance == 0 and row.status == "reconciled"

    def test_removing_one_fill_record_fails_the_reconciliation(self, runs, name):
        _, trail = runs[name]
        fills = [row for row in _rows(trail) if row["event_type"] == "trade.fill"]
        dropped = fills[len(fills) // 2]
        reconciliation = pnl_reconciliation(trail, events=_without_fill(trail, dropped["trade_id"]))
        assert reconciliation.ok is False
        problems = reconciliation.fill_problems
        assert any(dropped["trade_id"] in problem for problem in problems), problems
        assert any(dropped["order_id"] in problem for problem in problems), problems
        assert reconciliation.to_text().startswith("P&L NOT reconciled: ")


class TestAccountTypes:
    def test_cash_account_books_notional_and_quantity(self, runs):
        _, trail = runs["cash"]
        frame = pnl_reconciliation(trail).to_pandas().set_index("currency")
        assert set(frame.account_type) == {"CASH"}
        assert frame.loc["USDT", "notional"] != 0 and frame.loc["USDT", "commission"] > 0
        assert frame.loc["BTC", "realized_pnl"] == 0  # a cash account books no realized P&L

    def test_commissions_in_a_third_currency_come_out_of_its_balance(self, runs):
        run, trail = runs["third_currency_fees"]
        frame = pnl_reconciliation(trail).to_pandas().set_index("currency")
        fills = sum(1 for order in run.orders for e in order.events if type(e).__name__ == "OrderFilled")
        assert frame.loc["BNB", "commission"] == Decimal("0.05") * fills == -frame.loc["BNB", "balance_change"]
        assert frame.loc["USD", "commission"] == 0

    def test_inverse_perpetual_reconciles_in_its_settlement_currency(self, runs):
        _, trail = runs["inverse_perpetual"]
        frame = pnl_reconciliation(trail).to_pandas()
        assert list(frame.currency) == ["BTC"] and frame.realized_pnl[0] != 0

    def test_hedging_account_reconciles_several_positions(self, runs):
        run, trail = runs["hedging_margin"]
        assert len({str(e.position_id) for e in run.position_events}) > 1
        assert pnl_reconciliation(trail).ok is True


class TestConversion:
    def test_converted_pnl_uses_the_recorded_rates(self, runs):
        _, trail = runs["usdjpy_on_usd"]
        frame = pnl_reconciliation(trail).to_pandas().set_index("currency")
        assert list(frame.index) == ["USD"]
        assert frame.loc["USD", "converted"] != 0 and frame.loc["USD", "tolerance"] > 0
        # One cent per converted amount, never more.
        assert frame.loc["USD", "tolerance"] == Decimal("0.01") * frame.loc["USD", "pnl_records"]

    def test_without_a_recorded_rate_the_currencies_need_a_rate(self, runs):
        _, trail = runs["usdjpy_on_usd"]
        events = trail.events
        stripped = events.mutate(payload=events.payload.re_replace(r'"xrates":\{[^}]*\}', '"xrates":{}'))
        reconciliation = pnl_reconciliation(trail, events=stripped)
        frame = reconciliation.to_pandas().set_index("currency")
        assert reconciliation.ok is None  # neither a mismatch nor reconciled
        assert set(frame.index) == {"JPY", "USD"}
        assert all(status == "needs a rate for JPY" for status in frame.status)
        assert all(value is None for value in frame.reconciled)
        assert "need a conversion rate" in reconciliation.to_text().splitlines()[0]

    def test_a_wrong_rate_is_a_mismatch(self, runs):
        _, trail = runs["usdjpy_on_usd"]
        events = trail.events
        skewed = events.mutate(payload=events.payload.re_replace(r'"JPY":"0\.00', '"JPY":"0.01'))
        assert pnl_reconciliation(trail, events=skewed).ok is False


def test_removing_a_fill_and_its_accounting_record_is_still_caught(runs):
    _, trail = runs["netting_margin"]
    fills = [row for row in _rows(trail) if row["event_type"] == "trade.fill"]
    dropped = fills[-1]  # the last close: its order has no other fill record or accounting left
    events = _without_fill(trail, dropped["trade_id"])
    marker = f'"trade_id":"{dropped["trade_id"]}"'
    events = events.filter((events.event_type != "sys.fill_accounting") | ~events.payload.contains(marker))
    reconciliation = pnl_reconciliation(trail, events=events)
    assert reconciliation.ok is False
    assert any(dropped["position_id"] in problem for problem in reconciliation.fill_problems)


def test_an_empty_window_checks_nothing_and_says_so(runs):
    _, trail = runs["netting_margin"]
    reconciliation = pnl_reconciliation(trail, end="2000-01-01")
    assert reconciliation.ok is None and "nothing to reconcile" in reconciliation.to_text()


def test_two_backtests_in_one_trail_reconcile_each_in_its_own_stream(tmp_path: Path):
    # Both runs have a fill SIM-1-001, an order O-...-1 and an account SIM-001: ids count per stream.
    first = run_setup(SETUPS["netting_margin"], tmp_path, stream_id="first")
    second = run_setup(SETUPS["hedging_margin"], tmp_path, stream_id="second")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trail = open_trail(tmp_path)
    reconciliation = pnl_reconciliation(trail)
    assert reconciliation.ok is True, reconciliation.to_text()
    row = reconciliation.to_pandas().set_index("currency").loc["USD"]
    start = Decimal(1_000_000)
    assert row.balance_change == (first.balances["USD"] - start) + (second.balances["USD"] - start) != 0
    assert reconciliation.fill_checks > 2 * len(first.orders)


def test_a_malformed_accounting_record_is_reported_not_believed(runs):
    _, trail = runs["netting_margin"]
    events = trail.events
    broken = events.mutate(payload=events.payload.re_replace(r'"order_filled_qty":"', '"order_filled_qty":"x'))
    reconciliation = pnl_reconciliation(trail, events=broken)
    assert reconciliation.ok is False  # not the old closed-position rule, which would reconcile
    problems = reconciliation.fill_problems
    assert problems[0].startswith(f"{len([r for r in _rows(trail) if r['event_type'] == 'trade.fill'])} "
                                  "sys.fill_accounting record(s) malformed")
    assert any("no sys.fill_accounting record" in problem for problem in problems)
