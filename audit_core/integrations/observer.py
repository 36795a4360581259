"""NautilusTrader Actor that records every order, fill and position event of a node in the audit trail.

Importable only with the ``nautilus`` extra installed; ``import audit_core`` never imports this.

Attach it to a node or a backtest and every strategy's executions reach the trail without a line
of strategy code. To link a fill back to the signal that caused it, and to measure slippage of a
market order against the price the strategy expected, strategies pass ``audit_tags(...)`` as the
order's ``tags`` when they submit.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from decimal import Context, Decimal
from typing import Any

from nautilus_trader.common.actor import Actor
from nautilus_trader.common.component import TestClock
from nautilus_trader.config import ActorConfig
from nautilus_trader.model.enums import LiquiditySide, OrderSide, OrderType
from nautilus_trader.model.events import (
    AccountState,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderDenied,
    OrderEmulated,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderModifyRejected,
    OrderPendingCancel,
    OrderPendingUpdate,
    OrderRejected,
    OrderReleased,
    OrderSubmitted,
    OrderTriggered,
    OrderUpdated,
    PositionChanged,
    PositionClosed,
    PositionEvent,
    PositionOpened,
)
from nautilus_trader.model.identifiers import ClientOrderId

from audit_core.config import AuditConfig
from audit_core.events import COLD_DECIMAL_FRACTION_DIGITS, AuditEvent, AuditEventType, SystemEvent, TradeEvent
from audit_core.hot.emitter import AuditEventEmitter
from audit_core.integrations._fill_accounting import (
    ACCOUNT_TYPES,
    FILL_ACCOUNTING,
    fill_accounting_payload,
)
from audit_core.integrations._fill_accounting import Memo as FillAccountingMemo
from audit_core.integrations._nautilus_compat import NAUTILUS_VERSION, wildcards_reach_existing_topics
from audit_core.integrations._recording import DeferredRecords, RecordingMode, RecordingThread, recording_mode
from audit_core.integrations._run_identity import UNIDENTIFIED, run_identity, session_start_payload
from audit_core.integrations._run_identity import data_fingerprint as data_fingerprint  # public here, as before

SIGNAL_TAG = "ledgerline:signal="
EXPECTED_PRICE_TAG = "ledgerline:expected_px="
_BPS = Decimal(10_000)


def audit_tags(signal_id: str | None = None, expected_price: Decimal | str | None = None) -> list[str]:
    """Order tags that carry the signal id and the expected price to the audit trail.

    ``strategy.order_factory.market(..., tags=audit_tags("SIG-17", expected_price=quote.ask_price))``
    makes the fills of that order carry ``correlation_id="SIG-17"`` and a slippage measured against
    ``expected_price`` (without it: the trigger price of a stop or stop-limit order as it stood when the
    order filled, else the limit price, else the best quote when the order was submitted).
    """
    tags = []
    if signal_id is not None:
        tags.append(SIGNAL_TAG + signal_id)
    if expected_price is not None:
        tags.append(EXPECTED_PRICE_TAG + str(Decimal(str(expected_price))))
    return tags


def slippage_bps(side: str, expected: Decimal, filled: Decimal) -> Decimal:
    """Slippage in basis points, adverse positive for both sides: paying more on a BUY or
    receiving less on a SELL than expected is a positive number."""
    if side not in ("BUY", "SELL"):
        raise ValueError(f"side must be 'BUY' or 'SELL', got {side!r}")
    if filled == expected and expected:
        return Decimal(0)  # what the division gives, without it (most market fills at the quote)
    bps = (filled - expected) / expected * _BPS * (1 if side == "BUY" else -1)
    return cold_precision(bps)


#: The finest step the cold store's DECIMAL(38,18) columns hold.
_COLD_STEP = Decimal(1).scaleb(-COLD_DECIMAL_FRACTION_DIGITS)
_WIDE = Context(prec=80)


def cold_precision(value: Decimal) -> Decimal:
    """A computed or float-derived decimal rounded (half even) to the 18 decimal places the trail
    stores: a ratio like a slippage has 28 significant digits, ``Decimal(str(1.2e-05))`` 21 decimal
    places, and the event model refuses digits the cold store would drop. Never ``-0``."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -COLD_DECIMAL_FRACTION_DIGITS:
        value = value.quantize(_COLD_STEP, context=_WIDE)
    return value if value else Decimal(0)


def _float_decimal(value: float) -> Decimal:
    """A NautilusTrader float (average prices, returns) as the decimal the trail stores."""
    text = repr(value)
    if len(text) <= 19 and "e" not in text:  # at most 17 decimal places: nothing to round
        number = Decimal(text)
        return number if number else Decimal(0)
    return cold_precision(Decimal(text))


class AuditObserverConfig(ActorConfig, frozen=True):
    """Configuration of the ``AuditObserver``.

    Args:
        base_path: Root of the audit trail (hot files go to ``base_path/hot``).
        stream_id: This node's stream (one per process).
        hmac_key_env: Environment variable holding the trail's HMAC key, if it is keyed.
        environment: ``"backtest"``, ``"sandbox"`` or ``"live"``; None reads it from the node's clock
            (a backtest's simulated clock, else live). It sets the recording rule (``_recording``):
            live and sandbox sync every trade record and write from a recording thread, off the
            event loop; a backtest writes inline, syncs at rotation and close and checkpoints its
            stream at close (not every 2 s).
        sync_writes: Override the rule's syncing: True syncs every trade record before it counts as
            written, False syncs only at rotation and close. None follows the environment.
        max_pending: Live and sandbox: records that may wait for the recording thread before the
            event loop waits for room (bounded memory; nothing is dropped; waits are counted).
        backtest_batch: A backtest that syncs no record on its own (the default) writes its records
            in batches of up to this many, each with the bytes and file it would have had if it had
            been written at once (``_recording.DeferredRecords``); on stop and dispose everything is
            written. 1 writes each record as it happens (to watch a backtest's trail as it grows).
            Kept small: hundreds of waiting records outlive the garbage collector's young
            generations and make it walk the engine's whole heap more often (see the README).
        signing_key_path: File with the Ed25519 private key that signs seals (``ledgerline keygen``).
        signing_key_env: Environment variable holding that key instead.
        code_version: The strategy code's version, recorded in ``sys.session_start``.
        code_path: Git work tree whose commit ``sys.session_start`` records (default: the working directory).
    """

    base_path: str = "audit_trail"
    stream_id: str = "nautilus"
    hmac_key_env: str | None = None
    environment: str | None = None
    sync_writes: bool | None = None
    max_pending: int = 10_000
    backtest_batch: int = 32
    signing_key_path: str | None = None
    signing_key_env: str | None = None
    code_version: str | None = None
    code_path: str | None = None


class AuditObserver(Actor):
    """Records orders (with every update, trigger and pending step), fills, rejections, cancels,
    positions and balances of every strategy on the node, between a ``sys.session_start`` and a
    ``sys.session_end`` record.

    ``ts_event`` of each record is NautilusTrader's own event timestamp (and ``ts_init`` is kept);
    prices, quantities, commissions and P&L are exact decimal strings from ``Price``/``Quantity``/
    ``Money``. A failure to record never stops the node: it is logged through NautilusTrader's
    logger and counted in ``failures``.
    """

    def __init__(self, config: AuditObserverConfig | None = None, emitter: AuditEventEmitter | None = None) -> None:
        super().__init__(config or AuditObserverConfig())
        self._audit_config = config or AuditObserverConfig()
        self._emitter = emitter
        self._owns_emitter = emitter is None
        self._expected: dict[ClientOrderId, tuple[Decimal | None, str | None]] = {}
        self._signals: dict[ClientOrderId, str] = {}  # opening order -> signal, until its position closes
        self._seen: dict[ClientOrderId, int] = {}  # open order -> how many of its events were handled
        self._orders: dict[ClientOrderId, _OrderConstants] = {}  # open order -> what never changes in it
        self._caught_up: set[Any] = set()  # ids of events recorded from an order before their publication
        self._failures = 0
        self._failure_lock = threading.Lock()
        self._recorded = 0
        self.recorded_by_type: Counter[str] = Counter()
        self.mode: RecordingMode | None = None
        self._recorder: RecordingThread | None = None
        self._deferred: DeferredRecords | None = None
        self._fill_memo: FillAccountingMemo = {}
        self._emit: Callable[[AuditEvent], object] = _not_started
        self._run_identity: dict[str, Any] = {}
        self.session_id: str | None = None

    @property
    def emitter(self) -> AuditEventEmitter:
        """The observer's emitter, with every record captured so far written (a backtest writes in batches)."""
        assert self._emitter is not None, "the observer has not started"
        if self._deferred is not None:
            self._deferred.run()
        return self._emitter

    @property
    def recorded(self) -> int:
        """Records written so far (in live and sandbox: by the recording thread; in a backtest, the
        records captured but not yet written are written first)."""
        if self._deferred is not None:
            self._deferred.run()
        return self._recorded

    @property
    def failures(self) -> int:
        """Events that could not be recorded (each also logged)."""
        return self._failures

    @property
    def recorder(self) -> RecordingThread | None:
        """The recording thread (live and sandbox), with its backpressure counters in ``stats``."""
        return self._recorder

    def identify_run(self, *, engine_config: Any = None, strategy_configs: Iterable[Any] = (),
                     dataset: str | Mapping[str, Any] | None = None, seed: int | None = None) -> None:
        """What produced this run, for ``sys.session_start``: call before the node or engine starts.

        Configurations are NautilusTrader configs (or plain mappings); ``configuration_hash`` is the
        SHA-256 of their canonical JSON, so two runs with the same settings share it. ``dataset``
        names the data (a catalog path and version, or ``data_fingerprint(...)``).
        """
        self._run_identity = run_identity(engine_config, strategy_configs, dataset, seed)

    def on_start(self) -> None:
        cfg = self._audit_config
        environment = cfg.environment or ("backtest" if isinstance(self.clock, TestClock) else "live")
        self.mode = mode = recording_mode(environment, cfg.sync_writes)
        if cfg.backtest_batch < 1:
            raise ValueError(f"backtest_batch must be >= 1 (1: each record as it happens), got {cfg.backtest_batch}")
        clock = self.clock.timestamp_ns
        if self._emitter is None and not (mode.off_loop or mode.sync_trades) and cfg.backtest_batch > 1:
            # Only an emitter of our own: its clock must be the batch's, and no one else writes to it
            # between two of our records (a batch would reorder them).
            self._deferred = DeferredRecords(clock, self._failed, cfg.backtest_batch, self._write_run)
            clock = self._deferred.clock
        if self._emitter is None:
            # The node's clock: wall time live, simulated time in a backtest, so a backtest's files
            # are dated (and rotate at midnight) by the time it simulates.
            self._emitter = AuditEventEmitter(AuditConfig(
                base_path=cfg.base_path,
                trader_id=str(self.trader_id),
                stream_id=cfg.stream_id,
                hmac_key_env=cfg.hmac_key_env,
                sync_writes=mode.sync_trades,
                checkpoint_interval_s=mode.checkpoint_interval_s,
                signing_key_path=cfg.signing_key_path,
                signing_key_env=cfg.signing_key_env,
            ), clock=clock)
        self._emit = self._emitter.emit
        if mode.off_loop and self._recorder is None:
            self._recorder = RecordingThread(self._failed, max_pending=cfg.max_pending)
        self._record_session_start()
        # Orders that exist already (a live node's reconciled orders) count from here: what they did
        # before this session is not caught up as if it were new.
        for order in self.cache.orders():
            if not order.is_closed:
                self._seen[order.client_order_id] = order.event_count
        # Publishers use events.order.{strategy_id} and events.position.{strategy_id}.
        self.msgbus.subscribe(topic="events.order.*", handler=self._on_order_event)
        self.msgbus.subscribe(topic="events.position.*", handler=self._on_position_event)
        self.msgbus.subscribe(topic="events.account.*", handler=self._on_account_state)
        for account in self.cache.accounts():
            if not wildcards_reach_existing_topics():
                self.msgbus.subscribe(topic=f"events.account.{account.id}", handler=self._on_account_state)
            self._on_account_state(account.last_event)  # the starting balances, for reconciliation

    def on_stop(self) -> None:
        # Keep recording: strategies stopping after this actor still close positions, and those
        # fills belong in the trail. Make what is written durable now; on_dispose closes and seals.
        if self._deferred is not None:
            self._deferred.close()  # and write each later record as it comes
        if self._emitter is None:
            return
        if self._recorder is not None and self._recorder.is_open:
            self._recorder.submit("flush", self._emitter.flush)  # after what is queued
            return
        try:
            self._emitter.flush()
        except Exception as exc:
            self._failed("flush", exc)

    def on_dispose(self) -> None:
        self.msgbus.unsubscribe(topic="events.order.*", handler=self._on_order_event)
        self.msgbus.unsubscribe(topic="events.position.*", handler=self._on_position_event)
        self.msgbus.unsubscribe(topic="events.account.*", handler=self._on_account_state)
        for account in self.cache.accounts():
            if self.msgbus.is_subscribed(f"events.account.{account.id}", self._on_account_state):
                self.msgbus.unsubscribe(topic=f"events.account.{account.id}", handler=self._on_account_state)
        for cid in list(self._seen):  # events applied after the last one published (a final pending cancel)
            order = self.cache.order(cid)
            if order is not None:
                try:
                    self._catch_up(order)
                except Exception as exc:
                    self._failed("order events", exc)
        if self._recorder is not None:
            self._recorder.close()  # everything queued is written before the session is closed
        if self._deferred is not None:
            self._deferred.close()
        if self._emitter is not None and self.session_id is not None:
            self._record_session_end()
        if self._owns_emitter and self._emitter is not None:
            self._emitter.close()
            self._emitter = None

    # --- recording ----------------------------------------------------------------------------

    def _record(self, what: str, build: Callable[..., AuditEvent], args: tuple[Any, ...]) -> None:
        """Build the record ``build(*args)`` and write it: now, in the backtest's next batch, or on the
        recording thread (live, sandbox). ``build`` validates it as any caller's event is validated."""
        if self._recorder is not None and self._recorder.is_open:
            # A failure there is reported through _failed.
            self._recorder.submit(what, lambda: self._write(build(*args)))
            return
        if self._deferred is not None:
            self._deferred.submit(what, build, args)  # likewise; written by _write_run
            return
        try:
            self._write(build(*args))
        except Exception as exc:
            self._failed(what, exc)

    def _write(self, event: AuditEvent) -> None:
        self._emit(event)
        self._recorded += 1
        self.recorded_by_type[event.event_type] += 1

    def _write_run(self, events: list[AuditEvent], readings: list[int]) -> None:
        """A backtest batch's records of one day, each stamped from its capture time: one append."""
        assert self._emitter is not None
        try:
            self._emitter.emit_many(events, clock_readings=readings)
        except Exception as exc:
            if events[0].sequence is None:
                raise  # nothing was queued: DeferredRecords writes the run again record by record
            for event in events:  # queued, not acknowledged: as each emit of them would have failed
                self._failed(event.event_type, exc)
            return
        self._recorded += len(events)
        self.recorded_by_type.update(event.event_type for event in events)

    def _failed(self, what: str, exc: Exception) -> None:
        # Never stop the node for the audit trail, and never stay silent about it.
        with self._failure_lock:  # the event loop and the recording thread both count
            self._failures += 1
        self.log.error(f"AuditObserver could not record {what}: {exc!r}")

    def _system(self, event_type: str, what: str, payload: dict[str, Any], ts_event: int,
                correlation_id: str | None = None) -> None:
        record = _system_record(event_type, payload, ts_event, correlation_id)
        self._record(what, _SYSTEM_EVENT, (record,))

    # --- run identity -------------------------------------------------------------------------

    def _record_session_start(self) -> None:
        cfg, mode = self._audit_config, self.mode
        assert mode is not None
        ts = self.clock.timestamp_ns()
        payload = session_start_payload(
            self._run_identity or UNIDENTIFIED, trader_id=str(self.trader_id), stream_id=cfg.stream_id,
            next_sequence=self.emitter.next_sequence, last_hash=self.emitter.last_hash,
            environment=mode.environment, sync_trades=mode.sync_trades, nautilus_version=NAUTILUS_VERSION,
            code_version=cfg.code_version, code_path=cfg.code_path, ts_init=ts)
        self.session_id = payload["session_id"]
        self._system("sys.session_start", "sys.session_start", payload, ts)

    def _record_session_end(self) -> None:
        ts = self.clock.timestamp_ns()
        stats = self._recorder.stats if self._recorder is not None else None
        self._system("sys.session_end", "sys.session_end", {
            "session_id": self.session_id,
            "records": self.recorded,  # before this one
            "records_by_type": dict(sorted(self.recorded_by_type.items())),
            "failures": self.failures,
            "backpressure_waits": None if stats is None else stats.backpressure_waits,
            "backpressure_ns": None if stats is None else stats.backpressure_ns,
            "max_pending_seen": None if stats is None else stats.high_water,
            "ts_init": ts,
        }, ts)

    # --- handlers -----------------------------------------------------------------------------

    def _on_position_event(self, event: PositionEvent) -> None:
        try:
            self._record_position_event(event)
        except Exception as exc:
            self._failed(type(event).__name__, exc)

    def _on_account_state(self, event: AccountState) -> None:
        """Balances as the venue reports them, so P&L can be reconciled from the trail alone.

        Read here, when it is published, not when its record is written: read later, the balances
        of the multi-currency and inverse setups of ``test_reconciliation`` no longer reconciled, so
        an account state is not a snapshot to rely on (position events are: see below)."""
        try:
            payload = {
                "account_id": str(event.account_id),
                "account_type": ACCOUNT_TYPES[event.account_type],
                "balances": {
                    str(b.currency): {"total": str(_decimal(b.total)), "locked": str(_decimal(b.locked)),
                                      "free": str(_decimal(b.free))}
                    for b in event.balances
                },
                "ts_init": event.ts_init,
            }
        except Exception as exc:
            self._failed(type(event).__name__, exc)
            return
        self._system("sys.account_state", "AccountState", payload, event.ts_event)

    def _on_order_event(self, event: OrderEvent) -> None:
        if self._caught_up and event.id in self._caught_up:
            self._caught_up.discard(event.id)  # already recorded from the order's own events
            return
        order = None
        try:
            order = self.cache.order(event.client_order_id)
            if order is not None:
                self._catch_up(order, event)
            self._record_order_event(event, order)
        except Exception as exc:
            self._failed(type(event).__name__, exc)
        if type(event) is OrderFilled:  # a record of its own: recorded, or counted as a failure
            try:
                self._record_fill_accounting(event, order)
            except Exception as exc:
                self._failed(type(event).__name__, exc)
        if order is not None and order.is_closed:
            self._expected.pop(event.client_order_id, None)
            self._orders.pop(event.client_order_id, None)

    def _catch_up(self, order: Any, event: Any = None) -> None:
        """Record the order's events that were applied but never published before ``event``.

        A strategy's ``cancel_all_orders`` applies ``OrderPendingCancel`` to each order without
        publishing it (NautilusTrader 1.221 and 1.231): counting the order's events finds them, at
        the cost of one integer compare per event.
        """
        cid = order.client_order_id
        count = order.event_count
        seen = self._seen.get(cid, 0)
        if count - seen > 1 or (event is None and count > seen):
            for missed in order.events[seen:]:
                if event is not None and missed.id == event.id:
                    continue
                if type(missed) in _ORDER_EVENT_TYPES:
                    self._caught_up.add(missed.id)
                    self._record_order_event(missed, order)
        if order.is_closed:
            self._seen.pop(cid, None)
        else:
            self._seen[cid] = count

    def _record_order_event(self, event: OrderEvent, order: Any) -> None:
        kind = type(event)
        event_type = _ORDER_EVENT_TYPES.get(kind)
        if event_type is None:
            return  # OrderInitialized: the order is recorded when it is submitted (or denied)
        cid = event.client_order_id
        constants = self._orders.get(cid) if order is not None else None
        if constants is None:
            constants = _order_constants(event, order)
            if order is not None and not order.is_closed:
                self._orders[cid] = constants
        order_id, strategy_source, instrument_id, side, order_type = constants
        if order is not None and cid not in self._expected:
            # Usually on OrderSubmitted; an order the risk engine denies is never submitted.
            self._remember_expectation(order)
        expected, signal = self._expected.get(cid, _NO_EXPECTATION)
        # One dict per record, handed to the model as it is: a field left None here is the model's
        # default (None) too, so the record is the same as without the key.
        if kind is OrderFilled:
            side = _SIDES[event.order_side]
            filled = _decimal(event.last_px)
            if expected is _FROM_TRIGGER:
                expected = _trigger_of(order)
            commission = event.commission
            position_id = event.position_id
            record = {
                "ts_event": event.ts_event, "event_type": event_type, "source": _SOURCE, "correlation_id": signal,
                "instrument_id": instrument_id, "order_id": order_id, "side": side,
                "size": _decimal(event.last_qty), "price": filled,
                "slippage_bps": None if expected is None else slippage_bps(side, expected, filled),
                "commission": _decimal(commission), "currency": str(commission.currency),
                "position_id": None if position_id is None else str(position_id),
                "strategy_source": strategy_source, "order_type": order_type, "expected_price": expected,
                "venue_order_id": str(event.venue_order_id), "trade_id": str(event.trade_id),
                "liquidity_side": _LIQUIDITY_SIDES[event.liquidity_side], "ts_init": event.ts_init,
            }
            self._record(kind.__name__, _TRADE_EVENT, (record,))
            return
        record = {
            "ts_event": event.ts_event, "event_type": event_type, "source": _SOURCE, "correlation_id": signal,
            "instrument_id": instrument_id, "order_id": order_id, "side": side,
            # The quantity is read each time: an OrderUpdated changes it.
            "size": None if order is None else _decimal(order.quantity),
            "price": _price_of(order), "strategy_source": strategy_source, "order_type": order_type,
            "trigger_price": _trigger_of(order), "ts_init": event.ts_init,
        }
        if kind is OrderSubmitted:
            record["expected_price"] = _trigger_of(order) if expected is _FROM_TRIGGER else expected
        elif kind is OrderUpdated:
            record["size"] = _decimal(event.quantity)
            record["price"] = None if event.price is None else _decimal(event.price)
            record["trigger_price"] = None if event.trigger_price is None else _decimal(event.trigger_price)
        elif kind is OrderReleased:
            record["price"] = _decimal(event.released_price)
        elif kind in (OrderRejected, OrderDenied, OrderModifyRejected, OrderCancelRejected):
            record["reason"] = str(event.reason)
        elif kind in (OrderCanceled, OrderExpired):
            record["reason"] = "expired" if kind is OrderExpired else "canceled"
        venue_order_id = getattr(event, "venue_order_id", None)
        if venue_order_id is not None and kind is not OrderSubmitted:
            record["venue_order_id"] = str(venue_order_id)
        self._record(kind.__name__, _TRADE_EVENT, (record,))

    def _record_position_event(self, event: PositionEvent) -> None:
        signal = self._signals.get(event.opening_order_id)
        if isinstance(event, PositionClosed):
            self._signals.pop(event.opening_order_id, None)
        position = self.cache.position(event.position_id)
        last_fill = position.last_event if position is not None else None
        # The event is a snapshot that never changes, and so is the fill: what the position is now
        # was read above; the record is built when it is written (a backtest's batch, the recording thread).
        self._record(type(event).__name__, _position_record, (event, signal, last_fill))

    def _record_fill_accounting(self, event: OrderFilled, order: Any) -> None:
        """What the fill did to the account (``sys.fill_accounting``), for ``pnl_reconciliation``."""
        payload = fill_accounting_payload(self.cache, event, self._fill_memo, order)
        self._system(FILL_ACCOUNTING, "fill accounting", payload, event.ts_event,
                     correlation_id=self._expected.get(event.client_order_id, _NO_EXPECTATION)[1])

    # --- helpers ------------------------------------------------------------------------------

    def _remember_expectation(self, order: Any) -> None:
        """Expected price and signal id of an order: the ``audit_tags`` price, else the trigger price
        (``_FROM_TRIGGER``: read when the order fills, as a trailing stop moves it), else the limit
        price, else the best quote now."""
        expected: Any = None
        signal: str | None = None
        for tag in order.tags or ():
            if tag.startswith(SIGNAL_TAG):
                signal = tag[len(SIGNAL_TAG):]
            elif tag.startswith(EXPECTED_PRICE_TAG):
                expected = Decimal(tag[len(EXPECTED_PRICE_TAG):])
        if expected is None and order.order_type in _TRIGGERED_TYPES:
            expected = _FROM_TRIGGER
        if expected is None:
            expected = _price_of(order)
        if expected is None:
            quote = self.cache.quote_tick(order.instrument_id)
            if quote is not None:
                best = quote.ask_price if order.side == OrderSide.BUY else quote.bid_price
                expected = _decimal(best)
        self._expected[order.client_order_id] = (expected, signal)
        if signal is not None:
            self._signals[order.client_order_id] = signal


_SOURCE = "AuditObserver"
#: The models' own validators, as ``AuditEventEmitter.emit_trade``/``emit_system`` call them; the
#: observer builds each record's fields in one dict and hands the built event to ``emit``.
_TRADE_EVENT: Callable[[dict[str, Any]], AuditEvent] = TradeEvent.__pydantic_validator__.validate_python
_SYSTEM_EVENT: Callable[[dict[str, Any]], AuditEvent] = SystemEvent.__pydantic_validator__.validate_python


def _position_record(event: PositionEvent, signal: str | None, last_fill: OrderFilled | None) -> AuditEvent:
    """The record of a position event (a snapshot that never changes, as is the fill), built when it is written."""
    pnl = event.realized_pnl
    closed = type(event) is PositionClosed
    return _TRADE_EVENT({
        "ts_event": event.ts_event, "event_type": _POSITION_EVENT_TYPES[type(event)], "source": _SOURCE,
        "correlation_id": signal, "instrument_id": str(event.instrument_id),
        # The order whose fill opened, changed or closed the position.
        "order_id": str(last_fill.client_order_id if last_fill is not None else event.opening_order_id),
        "side": _SIDES[event.entry],
        "size": _decimal(event.quantity),
        "price": _decimal(event.last_px),
        "realized_pnl": None if pnl is None else _decimal(pnl),
        "currency": None if pnl is None else str(pnl.currency),
        "position_id": str(event.position_id),
        "strategy_source": str(event.strategy_id),
        "trade_id": None if last_fill is None else str(last_fill.trade_id),
        "realized_return": _float_decimal(event.realized_return) if closed else None,
        "avg_px_open": _float_decimal(event.avg_px_open),
        "avg_px_close": _float_decimal(event.avg_px_close) if closed else None,
        "duration_ns": event.duration_ns if closed else None,
        "ts_init": event.ts_init,
    })


def _system_record(event_type: str, payload: dict[str, Any], ts_event: int,
                   correlation_id: str | None = None) -> dict[str, Any]:
    """A ``SystemEvent``'s fields."""
    return {"ts_event": ts_event, "event_type": event_type, "source": _SOURCE, "correlation_id": correlation_id,
            "payload": payload}


def _not_started(*_args: Any, **_kwargs: Any) -> None:
    raise RuntimeError("the observer has not started")


#: Order types whose fills are measured against their trigger price (``has_trigger_price`` is False
#: on a trailing stop until the venue sets its first trigger).
_TRIGGERED_TYPES = frozenset({
    OrderType.STOP_MARKET, OrderType.STOP_LIMIT, OrderType.MARKET_IF_TOUCHED, OrderType.LIMIT_IF_TOUCHED,
    OrderType.TRAILING_STOP_MARKET, OrderType.TRAILING_STOP_LIMIT,
})
#: Stands for "the order's trigger price at the time": stops are measured against their trigger.
_FROM_TRIGGER: Any = Decimal("NaN")
#: ``_expected`` of an order the observer knows nothing about: no expected price, no signal.
_NO_EXPECTATION: tuple[None, None] = (None, None)

_POSITION_EVENT_TYPES: dict[type, str] = {
    PositionOpened: AuditEventType.TRADE_POSITION_OPENED.value,
    PositionChanged: AuditEventType.TRADE_POSITION_CHANGED.value,
    PositionClosed: AuditEventType.TRADE_POSITION_CLOSED.value,
}

#: NautilusTrader order event -> the trail's event type (OrderInitialized is not recorded).
_ORDER_EVENT_TYPES: dict[type, str] = {
    OrderSubmitted: AuditEventType.TRADE_ORDER.value,
    OrderAccepted: "trade.order.accepted",
    OrderFilled: AuditEventType.TRADE_FILL.value,
    OrderRejected: AuditEventType.TRADE_REJECTED.value,
    OrderDenied: AuditEventType.TRADE_REJECTED.value,
    OrderCanceled: AuditEventType.TRADE_CANCELED.value,
    OrderExpired: AuditEventType.TRADE_CANCELED.value,
    OrderUpdated: "trade.order.updated",
    OrderTriggered: "trade.order.triggered",
    OrderPendingUpdate: "trade.order.pending_update",
    OrderPendingCancel: "trade.order.pending_cancel",
    OrderModifyRejected: "trade.order.modify_rejected",
    OrderCancelRejected: "trade.order.cancel_rejected",
    OrderEmulated: "trade.order.emulated",
    OrderReleased: "trade.order.released",
}


#: Order id, strategy, instrument, side and order type of an order, as its records spell them: read
#: from NautilusTrader once per order (a few attribute calls and ``str`` of identifiers per record
#: otherwise), kept while it is open.
_OrderConstants = tuple[str, str, str, str | None, str | None]


def _order_constants(event: OrderEvent, order: Any) -> _OrderConstants:
    if order is None:
        return str(event.client_order_id), str(event.strategy_id), str(event.instrument_id), None, None
    return (str(event.client_order_id), str(event.strategy_id), str(event.instrument_id), _SIDES[order.side],
            _ORDER_TYPES[order.order_type])


#: An order side as the trail spells it (a lookup: cheaper than comparing with ``OrderSide.BUY``).
_SIDES: dict[OrderSide, str] = {side: "BUY" if side == OrderSide.BUY else "SELL" for side in OrderSide}
#: Enum names as lookups: ``.name`` is a Python-level property of the enum, read for every record.
_LIQUIDITY_SIDES: dict[LiquiditySide, str] = {side: side.name for side in LiquiditySide}
_ORDER_TYPES: dict[OrderType, str] = {order_type: order_type.name for order_type in OrderType}


def _price_of(order: Any) -> Decimal | None:
    if order is None or not order.has_price:
        return None
    return _decimal(order.price)


def _trigger_of(order: Any) -> Decimal | None:
    """The order's trigger price now (a trailing stop has none until the venue sets it)."""
    trigger = getattr(order, "trigger_price", None)
    return None if trigger is None else _decimal(trigger)


#: ``as_decimal()`` of NautilusTrader's Price, Quantity and Money by raw value: a fill reads a dozen
#: of them, mostly the same few prices and sizes, and each conversion is a Decimal division.
#: ``as_decimal`` is ``Decimal(raw) / FIXED_DECIMAL_SCALE`` whatever the type or its precision, so the
#: raw value is the whole key; a raw of 28 digits or fewer divides exactly in the default context
#: (28 digits), so its result does not depend on the context either. Bounded: cleared when full.
_DECIMALS: dict[int, Decimal] = {}
_DECIMALS_MAX = 4096
_EXACT_RAW = 10**28


def _decimal(value: Any) -> Decimal:
    """``value.as_decimal()`` (a Price, Quantity or Money), from ``_DECIMALS`` when it is there."""
    raw = value.raw
    number = _DECIMALS.get(raw)
    if number is None:
        number = value.as_decimal()
        if -_EXACT_RAW < raw < _EXACT_RAW:
            if len(_DECIMALS) >= _DECIMALS_MAX:
                _DECIMALS.clear()
            _DECIMALS[raw] = number
    return number
