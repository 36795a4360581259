"""AuditObserver on a real NautilusTrader BacktestEngine: what the engine did is what the trail says.

Every test builds, runs and disposes its own engine (nautilus_scenario.build_engine) with the audit
trail under tmp_path; nothing NautilusTrader does is mocked. Expected values are taken from the
engine itself (its cache, the orders' own events, the events it publishes on its message bus) and
compared with the raw JSON lines of the trail.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nautilus_scenario import (
    ORDER_EVENT_TYPES,
    POSITION_EVENT_TYPES,
    SESSION_RECORDS,
    START_NS,
    STARTING_BALANCE,
    build_engine,
)
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import ActorConfig, StrategyConfig
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.enums import OrderSide, OrderType, TimeInForce
from nautilus_trader.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    PositionClosed,
    PositionEvent,
    PositionOpened,
)
from nautilus_trader.model.identifiers import InstrumentId, Venue
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.trading.strategy import Strategy

from audit_core import verify
from audit_core._layout import parse_hot_file_name, seal_path, utc_day
from audit_core.hot.verifier import hot_files
from audit_core.integrations.observer import (
    EXPECTED_PRICE_TAG,
    SIGNAL_TAG,
    audit_tags,
    cold_precision,
    slippage_bps,
)

ROOT = Path(__file__).resolve().parents[2]
INSTRUMENT = InstrumentId.from_str("EUR/USD.SIM")
MINUTE_NS = 60_000_000_000

def _no_floats(text: str) -> Any:
    raise AssertionError(f"binary float {text} in the trail")


@dataclass
class Run:
    """One finished, disposed backtest: the engine's own record of it, and the trail."""

    strategy: Any
    strategy_id: str
    orders: list[Any]  # engine.cache.orders(), each with its .events
    position_events: list[PositionEvent]  # in publication order, from the engine's message bus
    account_events: list[Any]  # AccountStates in publication order (the venue may publish one twice)
    balance_change: Decimal  # engine account balance now minus the starting balance
    observer_recorded: int
    observer_failures: int
    files: list[Path]
    rows: list[dict[str, Any]]  # every record, raw JSON (floats refused), in file and sequence order

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [row for row in self.rows if row["event_type"] == event_type]

    def order_events(self, *kinds: type) -> list[tuple[Any, Any]]:
        return [(order, event) for order in self.orders for event in order.events if isinstance(event, kinds)]

    def expected_trade_counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for order in self.orders:
            for event in order.events:
                if type(event) in ORDER_EVENT_TYPES:
                    counts[ORDER_EVENT_TYPES[type(event)]] += 1
        for event in self.position_events:
            counts[POSITION_EVENT_TYPES[type(event)]] += 1
        return counts

    def expected_records(self) -> int:
        # Each fill also gets its sys.fill_accounting record; every run its session start and end.
        counts = self.expected_trade_counts()
        return sum(counts.values()) + counts["trade.fill"] + len(self.account_events) + SESSION_RECORDS


def run_backtest(base: Path, *, setup: Callable[..., None] | None = None, **scenario: Any) -> Run:
    """Build the scenario, let ``setup(engine, strategy, observer)`` add to it, run it, dispose it,
    read the trail."""
    engine, strategy, observer = build_engine(str(base), **scenario)
    if setup is not None:
        setup(engine, strategy, observer)
    published: list[PositionEvent] = []
    accounts: list[Any] = []
    # Subscribed before the run, so the patterns catch every topic the engine creates.
    engine.kernel.msgbus.subscribe(topic="events.position.*", handler=published.append)
    engine.kernel.msgbus.subscribe(topic="events.account.*", handler=accounts.append)
    try:
        engine.run()
        account = engine.cache.account_for_venue(Venue("SIM"))
        run = Run(
            strategy=strategy,
            strategy_id=str(strategy.id),
            orders=list(engine.cache.orders()),
            position_events=published,
            account_events=accounts,
            balance_change=account.balance_total(USD).as_decimal() - STARTING_BALANCE,
            observer_recorded=0,
            observer_failures=0,
            files=[],
            rows=[],
        )
    finally:
        engine.dispose()
    # After dispose: the observer closes its session there (sys.session_end).
    run.observer_recorded, run.observer_failures = observer.recorded, observer.failures
    run.files = hot_files(base / "hot")
    run.rows = [
        json.loads(line, parse_float=_no_floats) for path in run.files for line in path.read_bytes().splitlines()
    ]
    return run


def one(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [row for row in rows if all(row.get(key) == value for key, value in match.items())]
    assert len(found) == 1, f"{len(found)} records match {match}"
    return found[0]


def signal_of(order: Any) -> str | None:
    tags = [tag[len(SIGNAL_TAG):] for tag in order.tags or () if tag.startswith(SIGNAL_TAG)]
    return tags[0] if tags else None


def expected_price_tag(order: Any) -> Decimal | None:
    tags = [Decimal(tag[len(EXPECTED_PRICE_TAG):]) for tag in order.tags or () if tag.startswith(EXPECTED_PRICE_TAG)]
    return tags[0] if tags else None


def side_of(order_side: OrderSide) -> str:
    return {OrderSide.BUY: "BUY", OrderSide.SELL: "SELL"}[order_side]


def assert_trail_matches_engine(run: Run) -> None:
    """Every order and position event the engine produced is in the trail exactly once, with its values."""
    trade_rows = [row for row in run.rows if row["event_type"].startswith("trade.")]
    assert Counter(row["event_type"] for row in trade_rows) == run.expected_trade_counts()
    assert len(run.of_type("sys.account_state")) == len(run.account_events)
    assert len(run.rows) == run.expected_records() == run.observer_recorded
    assert run.observer_failures == 0

    for order, event in run.order_events(OrderSubmitted):
        row = one(run.of_type("trade.order"), order_id=str(order.client_order_id))
        assert row["ts_event"] == event.ts_event
        assert row["side"] == side_of(order.side)
        assert Decimal(row["size"]) == order.quantity.as_decimal()
        assert row["order_type"] == order.order_type.name
        assert row["instrument_id"] == str(order.instrument_id)

    for order, event in run.order_events(OrderAccepted):
        row = one(run.of_type("trade.order.accepted"), order_id=str(order.client_order_id))
        assert row["ts_event"] == event.ts_event
        assert row["venue_order_id"] == str(event.venue_order_id)

    for order, fill in run.order_events(OrderFilled):
        row = one(run.of_type("trade.fill"), order_id=str(fill.client_order_id), trade_id=str(fill.trade_id))
        assert row["ts_event"] == fill.ts_event
        assert Decimal(row["price"]) == fill.last_px.as_decimal()
        assert Decimal(row["size"]) == fill.last_qty.as_decimal()
        assert Decimal(row["commission"]) == fill.commission.as_decimal()
        assert row["currency"] == str(fill.commission.currency)
        assert row["side"] == side_of(fill.order_side)
        assert row["venue_order_id"] == str(fill.venue_order_id)
        assert row["position_id"] == str(fill.position_id)
        assert row["liquidity_side"] == fill.liquidity_side.name
        assert row["order_type"] == order.order_type.name

    refused = run.order_events(OrderDenied, OrderRejected)
    for order, event in refused:
        row = one(run.of_type("trade.rejected"), order_id=str(order.client_order_id))
        assert row["ts_event"] == event.ts_event
        assert row["reason"] == str(event.reason)
        assert row["reason"].strip()

    for order, event in run.order_events(OrderCanceled, OrderExpired):
        row = one(run.of_type("trade.canceled"), order_id=str(order.client_order_id))
        assert row["ts_event"] == event.ts_event
        assert row["reason"] == ("expired" if isinstance(event, OrderExpired) else "canceled")
        assert row.get("price") == (str(order.price.as_decimal()) if order.has_price else None)
        assert row.get("trigger_price") == (str(order.trigger_price.as_decimal()) if order.has_trigger_price
                                            and order.trigger_price is not None else None)

    # Position events: same kinds, ids, sizes, prices and P&L, in the order the engine published them.
    fills_by_trade_id = {str(event.trade_id): event for _, event in run.order_events(OrderFilled)}
    position_rows = [row for row in trade_rows if row["event_type"] in POSITION_EVENT_TYPES.values()]
    assert len(position_rows) == len(run.position_events)
    for row, event in zip(position_rows, run.position_events, strict=True):
        assert row["event_type"] == POSITION_EVENT_TYPES[type(event)]
        assert row["position_id"] == str(event.position_id)
        assert row["ts_event"] == event.ts_event
        # The order whose fill caused this position event: its trade id names that fill.
        fill = fills_by_trade_id[row["trade_id"]]
        assert row["order_id"] == str(fill.client_order_id)
        assert fill.ts_event == event.ts_event
        if isinstance(event, PositionOpened):
            assert row["order_id"] == str(event.opening_order_id)
        if isinstance(event, PositionClosed):
            assert row["order_id"] == str(event.closing_order_id)
        assert Decimal(row["size"]) == event.quantity.as_decimal()
        assert Decimal(row["price"]) == event.last_px.as_decimal()
        assert Decimal(row["realized_pnl"]) == event.realized_pnl.as_decimal()
        assert row["strategy_source"] == str(event.strategy_id)


# --- 1. completeness ---------------------------------------------------------------------------


def test_every_order_and_position_event_is_recorded_exactly_once(tmp_path):
    run = run_backtest(tmp_path)

    kinds = Counter(type(event).__name__ for order in run.orders for event in order.events)
    # The scenario exercises every path: fills, a risk-engine denial, a resting limit order canceled.
    assert kinds["OrderFilled"] > 0 and kinds["OrderDenied"] > 0 and kinds["OrderCanceled"] > 0
    positions = Counter(type(event).__name__ for event in run.position_events)
    assert positions["PositionOpened"] == positions["PositionClosed"] > 1  # NETTING: one id, many cycles
    assert len({event.position_id for event in run.position_events}) == 1

    assert_trail_matches_engine(run)

    # Every fill exactly once, as a set of (order, trade) ids.
    fill_ids = [(row["order_id"], row["trade_id"]) for row in run.of_type("trade.fill")]
    assert len(fill_ids) == len(set(fill_ids))
    assert set(fill_ids) == {(str(f.client_order_id), str(f.trade_id)) for _, f in run.order_events(OrderFilled)}
    # Each denied order once, each canceled limit order once.
    denied = {str(order.client_order_id) for order, _ in run.order_events(OrderDenied, OrderRejected)}
    assert sorted(row["order_id"] for row in run.of_type("trade.rejected")) == sorted(denied)
    canceled = {str(order.client_order_id) for order, _ in run.order_events(OrderCanceled)}
    assert canceled == {str(o.client_order_id) for o in run.orders if o.order_type == OrderType.LIMIT}
    assert sorted(row["order_id"] for row in run.of_type("trade.canceled")) == sorted(canceled)

    report = verify(tmp_path)
    assert report.ok, report.failures
    assert report.records == len(run.rows)
    assert report.sealed_files == len(run.files) >= 1
    assert all(seal_path(path).is_file() for path in run.files)


# --- 2. timestamps -----------------------------------------------------------------------------


def test_ts_event_is_the_engines_simulated_time_and_ts_init_is_kept(tmp_path):
    ticks = 600
    run = run_backtest(tmp_path, ticks=ticks)
    end_ns = START_NS + ticks * MINUTE_NS

    for row in run.rows:
        assert START_NS <= row["ts_event"] <= end_ns, row  # simulated time, not the wall clock
        assert utc_day(row["ts_event"]).strftime("%Y-%m") == "2026-01"
        ts_init = row["ts_init"] if row["event_type"].startswith("trade.") else row["payload"]["ts_init"]
        assert START_NS <= ts_init <= end_ns

    # ts_init of each record is the engine event's own ts_init.
    for order in run.orders:
        for event in order.events:
            if type(event) not in ORDER_EVENT_TYPES:
                continue
            match = {"order_id": str(order.client_order_id), "ts_event": event.ts_event}
            if isinstance(event, OrderFilled):
                match["trade_id"] = str(event.trade_id)
            assert one(run.of_type(ORDER_EVENT_TYPES[type(event)]), **match)["ts_init"] == event.ts_init
    position_rows = [row for row in run.rows if row["event_type"] in POSITION_EVENT_TYPES.values()]
    assert [row["ts_init"] for row in position_rows] == [event.ts_init for event in run.position_events]
    account_rows = run.of_type("sys.account_state")
    assert [row["ts_event"] for row in account_rows] == [event.ts_event for event in run.account_events]
    assert [row["payload"]["ts_init"] for row in account_rows] == [event.ts_init for event in run.account_events]

    # The trail is in time order, and each file holds the simulated day it is named after.
    assert [row["ts_event"] for row in run.rows] == sorted(row["ts_event"] for row in run.rows)
    for path in run.files:
        day = parse_hot_file_name(path).day
        assert all(utc_day(json.loads(line)["ts_event"]) == day for line in path.read_bytes().splitlines())


# --- 3. attribution and correlation ------------------------------------------------------------


def test_records_carry_the_strategy_and_the_signal_of_their_order(tmp_path):
    run = run_backtest(tmp_path)
    orders = {str(order.client_order_id): order for order in run.orders}

    trade_rows = [row for row in run.rows if row["event_type"].startswith("trade.")]
    assert {row["strategy_source"] for row in trade_rows} == {run.strategy_id}
    assert {row["source"] for row in run.rows} == {"AuditObserver"}

    # Each fill carries its order's signal (None only for on_stop's untagged close-out order).
    fills = run.of_type("trade.fill")
    for row in fills:
        assert row["correlation_id"] == signal_of(orders[row["order_id"]]), row
    tagged = [row for row in fills if row["correlation_id"] is not None]
    assert len(tagged) >= len(fills) - 1 > 0
    assert all(row["correlation_id"].startswith("SIG-") for row in tagged)

    # trade.order, accepted and canceled records of a tagged order carry its signal too.
    for event_type in ("trade.order", "trade.order.accepted", "trade.canceled"):
        for row in run.of_type(event_type):
            assert row["correlation_id"] == signal_of(orders[row["order_id"]]), row

    # Position events carry the signal of the order that opened the position.
    position_rows = [row for row in run.rows if row["event_type"] in POSITION_EVENT_TYPES.values()]
    for row, event in zip(position_rows, run.position_events, strict=True):
        assert row["correlation_id"] == signal_of(orders[str(event.opening_order_id)]), row
    assert all(row["correlation_id"] for row in position_rows)


def test_a_denied_order_keeps_its_signal_id(tmp_path):
    """A signal whose order the RiskEngine denied must still be traceable in the trail.

    Fails with audit_core as of this writing: OrderDenied comes without an OrderSubmitted, and the
    observer reads the order's tags only on OrderSubmitted, so trade.rejected has correlation_id None.
    """
    run = run_backtest(tmp_path, ticks=400)
    denied = run.order_events(OrderDenied)
    assert denied
    for order, _ in denied:
        assert signal_of(order) is not None
        row = one(run.of_type("trade.rejected"), order_id=str(order.client_order_id))
        assert row["correlation_id"] == signal_of(order), row


class EdgeCaseConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId


class EdgeCaseStrategy(Strategy):
    """The paths the scenario does not take: a venue rejection (a post-only limit order that would
    take liquidity) and a GTD limit order that expires at the venue."""

    def __init__(self, config: EdgeCaseConfig) -> None:
        super().__init__(config)
        self.count = 0

    def on_start(self) -> None:
        self.subscribe_quote_ticks(self.config.instrument_id)

    def on_quote_tick(self, tick: QuoteTick) -> None:
        self.count += 1
        qty = Quantity.from_int(100_000)
        if self.count == 5:
            self.submit_order(self.order_factory.limit(
                self.config.instrument_id, OrderSide.BUY, qty, Price(float(tick.ask_price) + 0.0005, 5),
                post_only=True, tags=audit_tags("EDGE-post-only"),
            ))
        elif self.count == 10:
            expire = dt.datetime.fromtimestamp(0, dt.UTC) + dt.timedelta(microseconds=tick.ts_event // 1000 + 600e6)
            self.submit_order(self.order_factory.limit(
                self.config.instrument_id, OrderSide.BUY, qty, Price(float(tick.bid_price) - 0.01, 5),
                time_in_force=TimeInForce.GTD, expire_time=expire, tags=audit_tags("EDGE-gtd"),
            ))


def test_venue_rejections_and_expiries_are_recorded(tmp_path):
    edge = EdgeCaseStrategy(EdgeCaseConfig(instrument_id=INSTRUMENT, order_id_tag="003"))
    run = run_backtest(tmp_path, ticks=100, trade_every=10_000, setup=lambda engine, *_: engine.add_strategy(edge))

    (rejected_order, rejected), = run.order_events(OrderRejected)
    row = one(run.of_type("trade.rejected"), order_id=str(rejected_order.client_order_id))
    assert "POST_ONLY" in row["reason"] and row["reason"] == str(rejected.reason)
    assert row["correlation_id"] == "EDGE-post-only"
    (expired_order, expired), = run.order_events(OrderExpired)
    row = one(run.of_type("trade.canceled"), order_id=str(expired_order.client_order_id))
    assert row["reason"] == "expired"
    assert row["ts_event"] == expired.ts_event == START_NS + 19 * MINUTE_NS
    assert row["correlation_id"] == "EDGE-gtd"
    assert_trail_matches_engine(run)
    assert verify(tmp_path).ok


# --- 4. slippage -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "expected", "filled", "bps"),
    [
        ("BUY", "1.10000", "1.10011", "1"),  # paid 0.00011 more on 1.1: adverse, +1 bp
        ("BUY", "1.10000", "1.09989", "-1"),  # paid less: favorable
        ("SELL", "1.10000", "1.09989", "1"),  # received less: adverse, positive like a BUY paying more
        ("SELL", "1.10000", "1.10011", "-1"),  # received more: favorable
        ("BUY", "100", "100.5", "50"),
        ("SELL", "2000", "1999", "5"),
        ("SELL", "250", "250.75", "-30"),
        ("BUY", "1.25", "1.25", "0"),
        ("SELL", "1.25", "1.25", "0"),
    ],
)
def test_slippage_bps_hand_computed(side, expected, filled, bps):
    assert slippage_bps(side, Decimal(expected), Decimal(filled)) == Decimal(bps)


def test_slippage_and_float_fields_fit_the_cold_store():
    # 0.00003 / 1.10012 * 10_000 has 28 significant digits; the event model refuses more than 18 places.
    bps = slippage_bps("BUY", Decimal("1.10012"), Decimal("1.10015"))
    assert bps == Decimal("0.272697523906482929") and bps.as_tuple().exponent == -18
    assert cold_precision(Decimal(str(1.2345678901234567e-05))) == Decimal("0.000012345678901235")
    assert str(cold_precision(Decimal("-1e-30"))) == "0"  # no "-0" in the trail


@given(
    expected=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(100_000), places=5),
    delta=st.decimals(min_value=Decimal(-1), max_value=Decimal(1), places=5),
)
def test_slippage_is_adverse_positive_for_both_sides(expected, delta):
    filled = expected + delta
    buy, sell = slippage_bps("BUY", expected, filled), slippage_bps("SELL", expected, filled)
    assert buy == -sell
    assert (buy > 0) == (filled > expected)  # paying more on a BUY is adverse
    assert (sell > 0) == (filled < expected)  # receiving less on a SELL is adverse


def test_slippage_of_the_scenarios_tagged_market_orders(tmp_path):
    run = run_backtest(tmp_path)
    orders = {str(order.client_order_id): order for order in run.orders}
    checked = 0
    for order, fill in run.order_events(OrderFilled):
        row = one(run.of_type("trade.fill"), order_id=str(order.client_order_id), trade_id=str(fill.trade_id))
        expected = expected_price_tag(orders[row["order_id"]])
        if expected is None:
            continue
        assert order.order_type == OrderType.MARKET
        assert Decimal(row["expected_price"]) == expected
        filled = fill.last_px.as_decimal()
        assert Decimal(row["slippage_bps"]) == slippage_bps(side_of(fill.order_side), expected, filled)
        checked += 1
    assert checked >= len(run.of_type("trade.fill")) - 1 > 0  # all but on_stop's untagged close-out


class SlippageConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId


class SlippageStrategy(Strategy):
    """Orders whose slippage is known in sign: tagged market orders with an expected price off the
    touch, marketable limit orders (filled better than their limit) and a resting limit order."""

    SIZE = 100_000

    def __init__(self, config: SlippageConfig) -> None:
        super().__init__(config)
        self.count = 0
        self.sent: dict[str, tuple[str, Decimal]] = {}  # client order id -> (case, expected price)

    def on_start(self) -> None:
        self.subscribe_quote_ticks(self.config.instrument_id)

    def on_quote_tick(self, tick: QuoteTick) -> None:
        self.count += 1
        bid, ask = tick.bid_price.as_decimal(), tick.ask_price.as_decimal()
        pip = Decimal("0.00010")
        qty = Quantity.from_int(self.SIZE)
        if self.count == 10:  # expected half a pip better than the ask: adverse for a BUY
            self._market("buy_adverse", OrderSide.BUY, qty, ask - pip / 2)
        elif self.count == 20:  # expected above the bid: receiving the bid is adverse for a SELL
            self._market("sell_adverse", OrderSide.SELL, qty, bid + pip)
        elif self.count == 30:  # expected worse than the ask: favorable
            self._market("buy_favorable", OrderSide.BUY, qty, ask + pip)
        elif self.count == 40:
            self._market("sell_favorable", OrderSide.SELL, qty, bid - pip * 3)
        elif self.count == 50:  # marketable BUY limit 5 pips through the ask, untagged: fills at the ask
            self._limit("buy_limit_marketable", OrderSide.BUY, qty, ask + 5 * pip)
        elif self.count == 60:
            self._limit("sell_limit_marketable", OrderSide.SELL, qty, bid - 5 * pip)
        elif self.count == 70:  # resting BUY limit just under the bid: fills later, at its price
            self._limit("buy_limit_resting", OrderSide.BUY, qty, bid - pip / 2)

    def _market(self, case: str, side: OrderSide, qty: Quantity, expected: Decimal) -> None:
        order = self.order_factory.market(self.config.instrument_id, side, qty,
                                          tags=audit_tags(f"SLIP-{case}", expected_price=expected))
        self.sent[str(order.client_order_id)] = (case, expected)
        self.submit_order(order)

    def _limit(self, case: str, side: OrderSide, qty: Quantity, price: Decimal) -> None:
        order = self.order_factory.limit(self.config.instrument_id, side, qty, Price(price, 5))
        self.sent[str(order.client_order_id)] = (case, Decimal(str(order.price)))
        self.submit_order(order)


def test_slippage_sign_and_limit_price_fallback_on_real_fills(tmp_path):
    slip = SlippageStrategy(SlippageConfig(instrument_id=INSTRUMENT, order_id_tag="002"))
    # The scenario's own strategy stays idle (trade_every above the tick count).
    run = run_backtest(tmp_path, ticks=300, trade_every=10_000, setup=lambda engine, *_: engine.add_strategy(slip))
    fills = {(str(f.client_order_id), str(f.trade_id)): f for _, f in run.order_events(OrderFilled)}
    by_case: dict[str, Decimal] = {}
    for order_id, (case, expected) in slip.sent.items():
        rows = [row for row in run.of_type("trade.fill") if row["order_id"] == order_id]
        assert len(rows) == 1, case
        row = rows[0]
        fill = fills[(order_id, row["trade_id"])]
        filled = fill.last_px.as_decimal()
        assert Decimal(row["expected_price"]) == expected, case
        # Rounded to the 18 decimal places the trail stores (a ratio has 28 significant digits).
        hand = cold_precision((filled - expected) / expected * 10_000 * (1 if row["side"] == "BUY" else -1))
        assert Decimal(row["slippage_bps"]) == hand == slippage_bps(row["side"], expected, filled), case
        by_case[case] = Decimal(row["slippage_bps"])

    assert by_case["buy_adverse"] > 0 and by_case["sell_adverse"] > 0
    assert by_case["buy_favorable"] < 0 and by_case["sell_favorable"] < 0
    # Untagged limit orders are measured against their limit price: a marketable limit filled at the
    # touch did better than its limit; a resting limit filled at its limit has no slippage.
    assert by_case["buy_limit_marketable"] < 0 and by_case["sell_limit_marketable"] < 0
    assert by_case["buy_limit_resting"] == 0
    assert_trail_matches_engine(run)


# --- 5. precision ------------------------------------------------------------------------------

DECIMAL_FIELDS = ("size", "price", "commission", "realized_pnl", "slippage_bps", "expected_price",
                  "avg_px_open", "avg_px_close", "realized_return")


def test_money_and_quantities_are_exact_decimal_strings(tmp_path):
    run = run_backtest(tmp_path, ticks=600)  # run_backtest already refuses any JSON float in the trail
    trade_rows = [row for row in run.rows if row["event_type"].startswith("trade.")]
    present = Counter()
    for row in trade_rows:
        for name in DECIMAL_FIELDS:
            if row.get(name) is not None:
                assert isinstance(row[name], str), (name, row)
                Decimal(row[name])  # parses
                present[name] += 1
    assert set(present) == set(DECIMAL_FIELDS)
    for row in run.of_type("sys.account_state"):
        for balance in row["payload"]["balances"].values():
            assert all(isinstance(value, str) for value in balance.values())

    for _, fill in run.order_events(OrderFilled):
        row = one(run.of_type("trade.fill"), order_id=str(fill.client_order_id), trade_id=str(fill.trade_id))
        assert Decimal(row["price"]) == fill.last_px.as_decimal()
        assert Decimal(row["size"]) == fill.last_qty.as_decimal()
        assert Decimal(row["commission"]) == fill.commission.as_decimal()
    for row in run.of_type("trade.position_closed"):
        assert isinstance(row["realized_pnl"], str)
    closed = [e for e in run.position_events if isinstance(e, PositionClosed)]
    assert [Decimal(r["realized_pnl"]) for r in run.of_type("trade.position_closed")] == [
        e.realized_pnl.as_decimal() for e in closed
    ]


# --- 6. lifecycle from the trail alone ---------------------------------------------------------


def lifecycle(rows: list[dict[str, Any]], order_id: str) -> dict[str, Any]:
    """Signal -> order -> fills -> position opened -> position closed -> realized P&L, from records only."""
    order = one(rows, event_type="trade.order", order_id=order_id)
    fills = [row for row in rows if row["event_type"] == "trade.fill" and row["order_id"] == order_id]
    opened = one(rows, event_type="trade.position_opened", order_id=order_id)
    position_id = opened["position_id"]
    assert {fill["position_id"] for fill in fills} == {position_id}
    # The first close of that position after it opened (NETTING reuses the position id).
    closed = next(row for row in rows if row["event_type"] == "trade.position_closed"
                  and row["position_id"] == position_id and row["sequence"] > opened["sequence"])
    changes = [row for row in rows if row["event_type"] == "trade.position_changed"
               and row["position_id"] == position_id and opened["sequence"] < row["sequence"] < closed["sequence"]]
    chain = [order, *fills, opened, *changes, closed]
    # Every fill of the position from its opening fill to its close: the cash flows of the round trip.
    cycle = [row for row in rows if row["event_type"] == "trade.fill" and row["position_id"] == position_id
             and fills[0]["sequence"] <= row["sequence"] < closed["sequence"]]
    return {"signal": order["correlation_id"], "chain": chain, "opened": opened, "closed": closed, "cycle": cycle,
            "realized_pnl": Decimal(closed["realized_pnl"]), "closing_order_id": closed["order_id"]}


def test_a_full_lifecycle_can_be_reconstructed_from_the_trail_alone(tmp_path):
    run = run_backtest(tmp_path)
    rows = run.rows
    opened_events = [e for e in run.position_events if isinstance(e, PositionOpened)]
    closed_by_opener = {}
    for event in run.position_events:
        if isinstance(event, PositionClosed):
            closed_by_opener.setdefault(str(event.opening_order_id), event)
    assert len(opened_events) > 1
    orders = {str(order.client_order_id): order for order in run.orders}

    for opened_event in opened_events:
        order_id = str(opened_event.opening_order_id)
        life = lifecycle(rows, order_id)
        chain = life["chain"]
        # ts_event order, and the file (sequence) order agrees with it.
        assert [row["ts_event"] for row in chain] == sorted(row["ts_event"] for row in chain)
        assert [row["sequence"] for row in chain] == sorted(row["sequence"] for row in chain)
        assert {row["correlation_id"] for row in chain} == {life["signal"]}
        # ... and each step is what the engine did.
        assert life["signal"] == signal_of(orders[order_id])
        truth = closed_by_opener[order_id]
        assert life["closing_order_id"] == str(truth.closing_order_id)
        assert life["realized_pnl"] == truth.realized_pnl.as_decimal()
        assert life["closed"]["ts_event"] == truth.ts_event
        assert life["closed"]["duration_ns"] == truth.duration_ns
        closing = one(rows, event_type="trade.fill", order_id=life["closing_order_id"])
        assert closing["ts_event"] == life["closed"]["ts_event"]
        # The round trip's P&L follows from its fills alone: what was sold minus what was bought, less
        # commissions (flat at the end, so no averaging is involved).
        cash = sum((Decimal(f["price"]) * Decimal(f["size"]) * (1 if f["side"] == "SELL" else -1)
                    for f in life["cycle"]), Decimal(0))
        commissions = sum((Decimal(f["commission"]) for f in life["cycle"]), Decimal(0))
        assert cash - commissions == life["realized_pnl"]
        assert sum(Decimal(f["size"]) * (1 if f["side"] == "BUY" else -1) for f in life["cycle"]) == 0

    # One worked example, spelled out.
    first = lifecycle(rows, str(opened_events[0].opening_order_id))
    assert [row["event_type"] for row in first["chain"]][:3] == ["trade.order", "trade.fill", "trade.position_opened"]
    assert first["chain"][-1]["event_type"] == "trade.position_closed"
    assert first["signal"] == "SIG-00001"


# --- 7. P&L reconciliation ---------------------------------------------------------------------


def test_realized_pnl_reconciles_with_the_account_balance_exactly(tmp_path):
    run = run_backtest(tmp_path)
    realized = sum((Decimal(row["realized_pnl"]) for row in run.of_type("trade.position_closed")), Decimal(0))
    states = sorted(run.of_type("sys.account_state"), key=lambda row: row["sequence"])
    initial = Decimal(states[0]["payload"]["balances"]["USD"]["total"])
    final = Decimal(states[-1]["payload"]["balances"]["USD"]["total"])
    assert initial == STARTING_BALANCE
    assert realized != 0
    assert realized == final - initial == run.balance_change
    # Every position ended flat, so every P&L is realized and closed.
    assert Counter(type(e) for e in run.position_events)[PositionOpened] == len(run.of_type("trade.position_closed"))


# --- 8. multi-day backtest ---------------------------------------------------------------------


def test_a_multi_day_backtest_rotates_by_simulated_date_and_loses_nothing(tmp_path):
    step_ns = 5 * MINUTE_NS
    ticks = 900  # 75 hours from 2026-01-05 00:00 UTC: four simulated days
    run = run_backtest(tmp_path, ticks=ticks, step_ns=step_ns, trade_every=10)

    days = [parse_hot_file_name(path).day for path in run.files]
    assert days == [dt.date(2026, 1, 5), dt.date(2026, 1, 6), dt.date(2026, 1, 7), dt.date(2026, 1, 8)]
    assert [path.name for path in run.files] == [f"audit.BACKTESTER-001.nautilus.{day}.0000.jsonl" for day in days]
    for path, day in zip(run.files, days, strict=True):
        assert seal_path(path).is_file()
        lines = path.read_bytes().splitlines()
        assert lines and all(utc_day(json.loads(line)["ts_event"]) == day for line in lines)
    assert sorted((tmp_path / "hot").glob("*.seal")) == [seal_path(path) for path in run.files]

    report = verify(tmp_path)
    assert report.ok, report.failures
    assert report.sealed_files == len(report.files) == 4
    assert report.records == len(run.rows)
    assert_trail_matches_engine(run)


# --- 9. the observer's own failures ------------------------------------------------------------


class WriterCloser(Actor):
    """Closes the observer's writer at a simulated time, as a failing disk would leave it."""

    def __init__(self, observer: Any, at_ns: int) -> None:
        super().__init__(ActorConfig(component_id="WriterCloser"))
        self.observer = observer
        self.at_ns = at_ns
        self.fired_at: int | None = None

    def on_start(self) -> None:
        self.clock.set_time_alert_ns("close-audit-writer", self.at_ns, self._close)

    def _close(self, event: Any) -> None:
        self.observer.emitter.writer.close()
        self.fired_at = event.ts_event


def test_a_failing_trail_neither_stops_the_backtest_nor_goes_unnoticed(tmp_path):
    ticks, close_at = 400, START_NS + 200 * MINUTE_NS
    closers: list[WriterCloser] = []

    def add_closer(engine: Any, _strategy: Any, observer: Any) -> None:
        closers.append(WriterCloser(observer, close_at))
        engine.add_actor(closers[0])

    run = run_backtest(tmp_path, ticks=ticks, setup=add_closer)

    assert closers[0].fired_at == close_at
    assert run.strategy.count == ticks  # the backtest ran to its end
    assert run.observer_failures > 0
    # Nothing vanished: every event the observer got is either a record in the trail or a failure.
    assert run.observer_recorded == len(run.rows)
    assert run.observer_recorded + run.observer_failures == run.expected_records()
    assert all(row["ts_event"] <= close_at for row in run.rows)
    # What was written before the failure is intact and sealed.
    report = verify(tmp_path)
    assert report.ok, report.failures
    assert report.sealed_files == len(report.files) == 1


def test_observer_failures_are_logged_through_nautilus_trader(tmp_path):
    """In a child process (NautilusTrader's logger is initialized once per process), with logging on
    and an emitter whose writer is already closed: the run completes and every failure is logged."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import nautilus_scenario
        from nautilus_trader.config import LoggingConfig
        from audit_core import AuditConfig, AuditEventEmitter
        from audit_core.integrations.observer import AuditObserver, AuditObserverConfig

        # The scenario bypasses logging; this process turns it back on, errors only.
        nautilus_scenario.LoggingConfig = lambda **_: LoggingConfig(log_level="ERROR", log_colors=False)
        emitter = AuditEventEmitter(AuditConfig(base_path={str(tmp_path)!r}, trader_id="BACKTESTER-001"))
        emitter.close()
        engine, strategy, _ = nautilus_scenario.build_engine(None, ticks=200)
        observer = AuditObserver(AuditObserverConfig(base_path={str(tmp_path)!r}), emitter=emitter)
        engine.add_actor(observer)
        engine.run()
        engine.dispose()
        print("TICKS", strategy.count, "FAILURES", observer.failures, "RECORDED", observer.recorded, flush=True)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = next(line for line in result.stdout.splitlines() if line.startswith("TICKS"))
    _, ticks, _, failures, _, recorded = summary.split()
    assert (int(ticks), int(recorded)) == (200, 0)
    assert int(failures) > 0
    logged = [line for line in (result.stdout + result.stderr).splitlines()
              if "[ERROR]" in line and "AuditObserver could not record" in line]
    assert len(logged) == int(failures)
    assert any("OrderFilled" in line and "is closed" in line for line in logged)


# --- 10. import hygiene ------------------------------------------------------------------------


def test_the_core_stays_light_and_the_observer_imports_with_the_extra():
    code = (
        "import sys, audit_core\n"
        "assert 'nautilus_trader' not in sys.modules, 'import audit_core pulled in nautilus_trader'\n"
        "assert not hasattr(audit_core, 'AuditObserver')\n"
        "import audit_core.integrations.observer as observer\n"
        "from nautilus_trader.common.actor import Actor\n"
        "assert issubclass(observer.AuditObserver, Actor)\n"
        "print(observer.audit_tags('S-1', expected_price='1.10000'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "['ledgerline:signal=S-1', 'ledgerline:expected_px=1.10000']"


def test_slippage_refuses_an_unknown_side_and_writes_no_negative_zero():
    with pytest.raises(ValueError, match="side must be 'BUY' or 'SELL'"):
        slippage_bps("buy", Decimal("1.1"), Decimal("1.2"))
    flat = slippage_bps("SELL", Decimal("1.10000"), Decimal("1.10000"))
    assert flat == 0 and str(flat) == "0"


def test_nautilus_values_convert_as_their_as_decimal_does_cached_or_not(monkeypatch):
    """``observer._decimal`` (cached by raw value) gives what ``as_decimal()`` gives, digit for digit,
    for any type with the same raw value; values past 28 digits are never cached; the cache is bounded."""
    from audit_core.integrations import observer

    monkeypatch.setattr(observer, "_DECIMALS", {})
    monkeypatch.setattr(observer, "_DECIMALS_MAX", 8)
    values = [Price.from_str("1.10002"), Price.from_str("1.10000"), Quantity.from_int(100_000), Money("2.20", USD),
              Price.from_str("-0.5"), Money(0, USD), Quantity.from_str("0.000001"), Price.from_int(7),
              Price.from_str("123456789012.1234567890123456"),  # 28 digits: cached
              Money(Decimal("12345678901234.25"), USD)]  # 30 digits: converted each time
    for _ in range(2):  # converted, then from the cache
        for value in values:
            got, expected = observer._decimal(value), value.as_decimal()
            assert type(got) is Decimal and got.as_tuple() == expected.as_tuple(), value
        assert len(observer._DECIMALS) <= 8
    assert values[-1].raw not in observer._DECIMALS and values[-2].raw in observer._DECIMALS
    # The same raw value from another type: the same decimal.
    assert observer._decimal(Quantity.from_str("1.10002")).as_tuple() == Decimal("1.10002").as_tuple()


def test_partial_fills_are_each_recorded(tmp_path):
    """Top-of-book size 30k against 100k orders: every order fills in parts, each part is a trade.fill."""
    engine, _, observer = build_engine(str(tmp_path), ticks=200, quote_size=30_000)
    engine.run()
    orders = list(engine.cache.orders())
    fills = {
        str(order.client_order_id): [e for e in order.events if isinstance(e, OrderFilled)] for order in orders
    }
    engine.dispose()
    assert any(len(parts) > 1 for parts in fills.values())
    paths = sorted((tmp_path / "hot").glob("*.jsonl"))
    rows = [json.loads(line) for path in paths for line in path.read_bytes().splitlines()]
    recorded: dict[str, list[dict]] = {}
    for row in rows:
        if row["event_type"] == "trade.fill":
            recorded.setdefault(row["order_id"], []).append(row)
    for order_id, parts in fills.items():
        got = recorded.get(order_id, [])
        assert [Decimal(r["size"]) for r in got] == [p.last_qty.as_decimal() for p in parts]
        assert [r["trade_id"] for r in got] == [str(p.trade_id) for p in parts]
    assert observer.failures == 0
    assert verify(tmp_path).ok
