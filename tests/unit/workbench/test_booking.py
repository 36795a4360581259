"""The booking rules and fill checks of ``workbench._booking`` on hand-written rows (the real
backtests are in tests/integration/test_reconciliation.py)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from workbench._booking import accounting_by_trade, book, fill_problems, scoped

D = Decimal


def _accounting(*payloads: dict[str, Any]) -> Any:
    return accounting_by_trade([{"stream": "s", "payload": json.dumps(p)} for p in payloads])


def _info(trade_id: str, **extra: Any) -> dict[str, Any]:
    return {"trade_id": trade_id, "order_id": "O-1", "position_id": "P-1", "account_id": "SIM-001",
            "account_type": "MARGIN", "account_currency": None, "base_currency": "EUR", "quote_currency": "USD",
            "settlement_currency": "USD", "commission_currency": "USD", "order_filled_qty": "100",
            "precisions": {"USD": 2, "EUR": 2, "BNB": 8}, **extra}


def _fill(trade_id: str, side: str, size: str, price: str, commission: str, currency: str, ts: int = 10,
          order_id: str = "O-1") -> dict[str, Any]:
    return {"stream": "s", "ts_event": ts, "event_type": "trade.fill", "trade_id": trade_id, "order_id": order_id,
            "side": side, "size": D(size), "price": D(price), "commission": D(commission), "currency": currency,
            "position_id": "P-1"}


def _position(kind: str, pnl: str, trade_id: str, side: str = "BUY", size: str = "100", ts: int = 10,
              currency: str = "USD") -> dict[str, Any]:
    return {"stream": "s", "ts_event": ts, "event_type": f"trade.position_{kind}", "position_id": "P-1",
            "realized_pnl": D(pnl), "currency": currency, "side": side, "size": D(size), "trade_id": trade_id}


class TestBook:
    def test_margin_books_the_pnl_each_fill_caused_and_third_currency_fees_apart(self):
        accounting = _accounting(_info("T-1", commission_currency="BNB"),
                                 _info("T-2", commission_currency="BNB", order_id="O-2"))
        fills = scoped([_fill("T-1", "BUY", "100", "1.1", "0.05", "BNB"),
                        _fill("T-2", "SELL", "100", "1.2", "0.05", "BNB", ts=20, order_id="O-2")])
        positions = scoped([_position("opened", "0", "T-1"), _position("closed", "10", "T-2", size="0", ts=20)])
        booking = book(fills, positions, accounting.by_trade, (0, 30))
        assert booking.expected("USD") == D(10) and booking.expected("BNB") == D("-0.10")
        assert booking.closed == {"USD": 1}

    def test_cash_books_notional_and_quantity_and_allows_the_engines_rounding(self):
        accounting = _accounting(_info("T-1", account_type="CASH"))
        fills = scoped([_fill("T-1", "BUY", "0.333", "1.01", "0.01", "USD")])
        booking = book(fills, [], accounting.by_trade, (0, 30))
        assert booking.expected("USD") == D("-0.33633") - D("0.01") and booking.expected("EUR") == D("0.333")
        assert booking.tolerance["USD"] == D("0.01")  # 0.33633 is finer than a cent: the engine rounds it

    def test_a_converted_amount_without_a_rate_needs_one_in_both_currencies(self):
        accounting = _accounting(_info("T-1", account_currency="USD", settlement_currency="JPY",
                                       commission_currency="JPY", xrates={}))
        positions = scoped([_position("opened", "-50", "T-1", currency="JPY")])
        booking = book(scoped([_fill("T-1", "BUY", "100", "150", "50", "JPY")]), positions, accounting.by_trade,
                       (0, 30))
        assert booking.needs_rate == {"JPY": {"JPY"}, "USD": {"JPY"}}
        assert booking.expected("USD") == 0

    def test_a_converted_amount_uses_the_recorded_rate(self):
        accounting = _accounting(_info("T-1", account_currency="USD", settlement_currency="JPY",
                                       commission_currency="JPY", xrates={"JPY": "0.0066"}))
        positions = scoped([_position("opened", "-50", "T-1", currency="JPY")])
        booking = book(scoped([_fill("T-1", "BUY", "100", "150", "50", "JPY")]), positions, accounting.by_trade,
                       (0, 30))
        assert booking.converted["USD"] == D("-0.33") and booking.tolerance["USD"] == D("0.01")

    def test_outside_the_window_nothing_is_booked(self):
        accounting = _accounting(_info("T-1"))
        booking = book(scoped([_fill("T-1", "BUY", "100", "1.1", "2", "USD")]),
                       scoped([_position("opened", "-2", "T-1")]), accounting.by_trade, (10, 30))
        assert booking.expected("USD") == 0 and not booking.records


class TestWellFormed:
    @pytest.mark.parametrize("damage", [
        {"trade_id": 7}, {"order_id": ["O-1"]}, {"xrates": {"JPY": 0.0066}}, {"xrates": {"JPY": "NaN"}},
        {"xrates": ["JPY"]}, {"precisions": {"USD": "2"}}, {"precisions": {"USD": 99}},
        {"order_filled_qty": "lots"}, {"account_type": "CASH", "quote_currency": None},
    ])
    def test_a_payload_with_a_field_of_the_wrong_type_is_left_out_and_counted(self, damage):
        accounting = _accounting(_info("T-1"), {**_info("T-2"), **damage})
        assert list(accounting.by_trade) == ["s:T-1"] and accounting.malformed == 1

    def test_an_unparsable_payload_is_counted(self):
        accounting = accounting_by_trade([{"stream": "s", "payload": "{not json"}])
        assert (accounting.by_trade, accounting.records, accounting.malformed) == ({}, 1, 1)


class TestFillProblems:
    def _run(self, fills: list[dict[str, Any]], accounting: Any, positions: list[dict[str, Any]] | None = None):
        return fill_problems(scoped(fills), scoped(positions or []), accounting)

    def test_consistent_fills_pass(self):
        checks, problems = self._run([_fill("T-1", "BUY", "100", "1.1", "0", "USD")], _accounting(_info("T-1")),
                                     [_position("opened", "0", "T-1")])
        assert problems == [] and checks == 4  # records, the fill, its order, its position

    def test_a_missing_fill_record_is_reported_three_ways(self):
        _, problems = self._run([], _accounting(_info("T-1")), [_position("opened", "0", "T-1")])
        assert [p.split(":")[0] for p in problems] == ["fill s", "order s", "position s"]

    def test_an_extra_or_duplicated_fill_is_reported(self):
        fill = _fill("T-1", "BUY", "100", "1.1", "0", "USD")
        _, problems = self._run([fill, fill, _fill("T-9", "BUY", "1", "1.1", "0", "USD")], _accounting(_info("T-1")))
        assert "fill s:T-1: 2 trade.fill records" in problems
        assert any(p.startswith("fill s:T-9: no sys.fill_accounting record") for p in problems)
        assert any(p.startswith("order s:O-1: filled quantity 100, its fills sum to 201") for p in problems)

    def test_without_accounting_records_nothing_is_checked(self):
        assert self._run([_fill("T-1", "BUY", "100", "1.1", "0", "USD")], accounting_by_trade([])) == (0, [])
