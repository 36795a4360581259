"""Complete order lifecycles on real BacktestEngines: brackets (stop-market and stop-limit stop-losses,
modified take-profits, OCO cancels) and a trailing stop that the venue moves thousands of times.

Every engine order event (``test_observer.ORDER_EVENT_TYPES``: submitted, accepted, updated,
triggered, pending update/cancel, filled, canceled, ...) must be in the trail exactly once, each
update with the trigger price the engine set, and a stop's slippage measured against its trigger.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.enums import OrderSide, OrderType, TrailingOffsetType, TriggerType
from nautilus_trader.model.events import (
    OrderFilled,
    OrderPendingCancel,
    OrderPendingUpdate,
    OrderTriggered,
    OrderUpdated,
)
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Price, Quantity
from nautilus_trader.trading.strategy import Strategy
from test_observer import assert_trail_matches_engine, run_backtest

from audit_core import verify
from audit_core.integrations.observer import slippage_bps
from workbench import open_trail, trade_lifecycle

INSTRUMENT = "EUR/USD.SIM"
#: Distances in the scenario's random walk (0 to 3 tenths of a pip a minute).
PIP = Decimal("0.00004")


class BracketConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    every: int = 10


class BracketStrategy(Strategy):
    """When flat with nothing working: a bracket (market entry, or a stop-limit entry every other time;
    a stop-market stop-loss; a limit take-profit that is moved once, 5 quotes later). A stop entry
    still waiting 30 quotes later is canceled."""

    def __init__(self, config: BracketConfig) -> None:
        super().__init__(config)
        self.count = 0
        self.brackets = 0
        self.take_profit = None
        self.entry = None
        self.move_at = self.give_up_at = -1

    def on_start(self) -> None:
        self.subscribe_quote_ticks(self.config.instrument_id)

    def on_quote_tick(self, tick: QuoteTick) -> None:
        self.count += 1
        iid = self.config.instrument_id
        if self.count == self.give_up_at and self.entry.is_open:
            self.cancel_order(self.entry)  # a stop entry the market never reached (children go with it)
        if self.count == self.move_at and self.take_profit is not None and self.take_profit.is_open:
            moved = self.take_profit.price.as_decimal() + (PIP if self.take_profit.side == OrderSide.SELL else -PIP)
            self.modify_order(self.take_profit, price=Price(moved, 5))
        if self.count % self.config.every or self.cache.orders_open(instrument_id=iid) \
                or not self.portfolio.is_flat(iid):
            return
        self.brackets += 1
        side = OrderSide.BUY if self.brackets % 2 else OrderSide.SELL
        sign = 1 if side == OrderSide.BUY else -1
        mid = (tick.bid_price.as_decimal() + tick.ask_price.as_decimal()) / 2
        stop = Price(mid - sign * 3 * PIP, 5)
        # Every other bracket enters with a stop-limit a pip beyond the market (a trigger, then a limit fill).
        entry = {"entry_order_type": OrderType.STOP_LIMIT, "entry_trigger_price": Price(mid + sign * PIP, 5),
                 "entry_price": Price(mid + sign * 2 * PIP, 5)} if self.brackets % 4 in (1, 2) else {}
        bracket = self.order_factory.bracket(
            iid, side, Quantity.from_int(100_000), sl_trigger_price=stop, tp_price=Price(mid + sign * 5 * PIP, 5),
            **entry,
        )
        self.take_profit = next(o for o in bracket.orders if o.order_type == OrderType.LIMIT)
        self.entry = bracket.first
        self.move_at, self.give_up_at = self.count + 5, self.count + 30
        self.submit_order_list(bracket)

    def on_stop(self) -> None:
        self.cancel_all_orders(self.config.instrument_id)
        self.close_all_positions(self.config.instrument_id)


class TrailingConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId


class TrailingStopStrategy(Strategy):
    """When flat: buy, and protect the position with a trailing stop 2 pips behind the bid."""

    def __init__(self, config: TrailingConfig) -> None:
        super().__init__(config)
        self.entries = 0

    def on_start(self) -> None:
        self.subscribe_quote_ticks(self.config.instrument_id)

    def on_quote_tick(self, tick: QuoteTick) -> None:
        iid = self.config.instrument_id
        if self.cache.orders_open(instrument_id=iid) or self.cache.orders_inflight(instrument_id=iid) \
                or not self.portfolio.is_flat(iid):
            return
        self.entries += 1
        self.submit_order(self.order_factory.market(iid, OrderSide.BUY, Quantity.from_int(100_000)))
        self.submit_order(self.order_factory.trailing_stop_market(
            iid, OrderSide.SELL, Quantity.from_int(100_000), trailing_offset=2 * PIP,
            trailing_offset_type=TrailingOffsetType.PRICE, trigger_type=TriggerType.BID_ASK, reduce_only=True,
        ))

    def on_stop(self) -> None:
        self.cancel_all_orders(self.config.instrument_id)
        self.close_all_positions(self.config.instrument_id)


def updates_match(run) -> int:
    """Each order's trade.order.updated records are its OrderUpdated events, in order, with their prices."""
    total = 0
    for order in run.orders:
        events = [e for e in order.events if isinstance(e, OrderUpdated)]
        rows = [r for r in run.of_type("trade.order.updated") if r["order_id"] == str(order.client_order_id)]
        assert [r["ts_event"] for r in rows] == [e.ts_event for e in events]
        assert [r.get("trigger_price") for r in rows] == [
            None if e.trigger_price is None else str(e.trigger_price.as_decimal()) for e in events]
        assert [r.get("price") for r in rows] == [None if e.price is None else str(e.price.as_decimal())
                                                  for e in events]
        assert [Decimal(r["size"]) for r in rows] == [e.quantity.as_decimal() for e in events]
        total += len(rows)
    return total


def stop_fills_measured_against_trigger(run) -> int:
    """Fills of stop orders: expected_price is the order's trigger price, slippage follows from it."""
    checked = 0
    for order, fill in run.order_events(OrderFilled):
        if not order.has_trigger_price:
            continue
        row = next(r for r in run.of_type("trade.fill") if r["trade_id"] == str(fill.trade_id))
        trigger = order.trigger_price.as_decimal()
        assert Decimal(row["expected_price"]) == trigger
        side = "BUY" if fill.order_side == OrderSide.BUY else "SELL"
        assert Decimal(row["slippage_bps"]) == slippage_bps(side, trigger, fill.last_px.as_decimal())
        checked += 1
    return checked


def test_bracket_orders_every_step_once_with_trigger_prices(tmp_path):
    strategy = BracketStrategy(BracketConfig(instrument_id=InstrumentId.from_str(INSTRUMENT)))
    run = run_backtest(tmp_path, ticks=1_500, strategy=strategy)

    kinds = Counter(type(e).__name__ for o in run.orders for e in o.events)
    # The run exercises what this test is about.
    assert kinds["OrderTriggered"] > 0 and kinds["OrderUpdated"] > 0 and kinds["OrderPendingUpdate"] > 0
    assert kinds["OrderPendingCancel"] > 0 and kinds["OrderCanceled"] > 0
    assert {o.order_type for o in run.orders} >= {OrderType.MARKET, OrderType.LIMIT, OrderType.STOP_MARKET,
                                                  OrderType.STOP_LIMIT}
    assert_trail_matches_engine(run)
    assert updates_match(run) == kinds["OrderUpdated"]
    for kind, event_type in ((OrderTriggered, "trade.order.triggered"), (OrderPendingUpdate,
                             "trade.order.pending_update"), (OrderPendingCancel, "trade.order.pending_cancel")):
        pairs = run.order_events(kind)
        rows = run.of_type(event_type)
        assert sorted((r["order_id"], r["ts_event"]) for r in rows) == sorted(
            (str(e.client_order_id), e.ts_event) for _, e in pairs)
    for order, _ in run.order_events(OrderTriggered):
        row = next(r for r in run.of_type("trade.order.triggered") if r["order_id"] == str(order.client_order_id))
        assert Decimal(row["trigger_price"]) == order.trigger_price.as_decimal()
        assert Decimal(row["price"]) == order.price.as_decimal()  # the stop-limit's limit
    # Every submitted stop carries its trigger price, and is expected to fill there.
    for row in run.of_type("trade.order"):
        if row["order_type"] in ("STOP_MARKET", "STOP_LIMIT"):
            assert row["trigger_price"] == row["expected_price"]
    stops_filled = stop_fills_measured_against_trigger(run)
    assert stops_filled > 0
    # The bracket's stop-loss is not charged its stop distance as slippage: a stop-market filled at
    # the touch is within a pip of its trigger (3 pips from the quote at entry).
    for order, fill in run.order_events(OrderFilled):
        if order.order_type == OrderType.STOP_MARKET:
            row = next(r for r in run.of_type("trade.fill") if r["trade_id"] == str(fill.trade_id))
            assert abs(Decimal(row["price"]) - Decimal(row["expected_price"])) <= PIP
    assert verify(tmp_path).ok

    # The workbench's lifecycle of a moved take-profit shows every step, in the engine's order.
    trail = open_trail(tmp_path)
    steps = {"OrderSubmitted": "order", "OrderAccepted": "accepted", "OrderPendingUpdate": "pending_update",
             "OrderUpdated": "updated", "OrderTriggered": "triggered", "OrderPendingCancel": "pending_cancel",
             "OrderFilled": "fill", "OrderCanceled": "canceled"}
    for order in run.orders:
        kinds_of_order = [type(e).__name__ for e in order.events]
        if "OrderUpdated" not in kinds_of_order and "OrderTriggered" not in kinds_of_order:
            continue
        life = trade_lifecycle(trail, order_id=str(order.client_order_id)).to_pandas()
        own = life[(life["order_id"] == str(order.client_order_id)) & ~life["step"].str.startswith("position_")]
        assert list(own["step"]) == [steps[k] for k in kinds_of_order if k in steps]
        for row in own[own["step"] == "updated"].itertuples():
            assert row.description == f"order {order.client_order_id} updated @ {Decimal(row.price).normalize()}"


def test_a_trailing_stop_records_thousands_of_updates_exactly_once(tmp_path):
    strategy = TrailingStopStrategy(TrailingConfig(instrument_id=InstrumentId.from_str(INSTRUMENT)))
    run = run_backtest(tmp_path, ticks=6_000, strategy=strategy)

    updated = sum(isinstance(e, OrderUpdated) for o in run.orders for e in o.events)
    assert updated >= 1_000
    assert_trail_matches_engine(run)
    assert updates_match(run) == updated
    assert stop_fills_measured_against_trigger(run) > 0
    report = verify(tmp_path)
    assert report.ok, report.failures
    assert report.records == len(run.rows)
