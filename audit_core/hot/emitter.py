"""The audit emitter: validate, stamp, chain, serialize once, write.

``emit`` is the whole pipeline. Stamping the sequence and previous hash, serializing, hashing and
queueing the line happen under one lock, so that file order, sequence order and chain order are
one order; writing and syncing happen after the lock is released (see ``writer``), so threads
batch and share syncs. The ``emit_*`` helpers validate their caller's fields before taking the
lock and then stamp the chain fields into the built event, as ``emit`` stamps an event its caller
built (and validated when it was built): each event is built and validated once, and serialized once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from audit_core.config import AuditConfig
from audit_core.errors import AuditIntegrityError, AuditWriteError
from audit_core.events import (
    AuditEvent,
    AuditEventType,
    ParameterChangeEvent,
    SignalEvent,
    SystemEvent,
    TradeEvent,
    record_too_large_error,
)
from audit_core.hot import key_lifecycle
from audit_core.hot._degradation import StateChange
from audit_core.hot._stream import StreamTail
from audit_core.hot.writer import AppendOnlyWriter
from audit_core.trust.record import GENESIS_HASH, RECORD_FORMAT, build_line, compute_checksum, split_record

if TYPE_CHECKING:
    from audit_core.trust.signing import SigningKey

logger = logging.getLogger("ledgerline.emitter")

E = TypeVar("E", bound=AuditEvent)
EventCallback = Callable[[AuditEvent], None]

# Events are frozen for their users; only the emitter stamps them: the chain fields straight into the
# model's ``__dict__`` (what ``object.__setattr__`` would do, without a call per field), the checksum
# into its slot.
_set = object.__setattr__
_stamp_checksum = AuditEvent._stamped_checksum.__set__  # type: ignore[attr-defined]

#: Fields only the emitter writes: a helper's ``**fields`` naming one is refused, not silently overwritten.
_STAMPED_FIELDS = frozenset({"trader_id", "sequence", "prev_hash", "format", "ts_recorded", "checksum"})

_EMITTERS: weakref.WeakSet[AuditEventEmitter] = weakref.WeakSet()


def _reset_locks_after_fork() -> None:
    # Only the forking thread survives: a lock another thread held would block the child's emit
    # forever instead of letting the writer refuse it with a clear error.
    for emitter in list(_EMITTERS):
        emitter._lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_locks_after_fork)


class AuditEventEmitter:
    """Writes audit events to one hash-chained stream.

    Args:
        config: Stream settings.
        clock: Nanoseconds since the epoch; default ``time.time_ns`` (an ``AuditObserver`` passes
            the node's clock: simulated time in a backtest). Stamps every record's ``ts_recorded``
            (clamped non-decreasing per stream), gives ``ts_event`` when a helper is not given one,
            and drives file rotation.
        on_event: Callbacks called with each event after it is written. A failing callback is
            logged and counted (``callback_errors``), never raised into the caller.
        writer: A writer to use instead of building one from ``config``.

    Use it as a context manager, or call ``close()``, so the last events are synced.
    """

    def __init__(
        self,
        config: AuditConfig,
        *,
        clock: Callable[[], int] = time.time_ns,
        on_event: Iterable[EventCallback] = (),
        writer: AppendOnlyWriter | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._hmac_key = config.resolve_hmac_key()
        self._writer = writer if writer is not None else AppendOnlyWriter(config, clock)
        self._writer.on_state_change = self._record_state_change
        self._lock = threading.Lock()
        _EMITTERS.add(self)
        self._durable: dict[str, bool] = {}
        self._callbacks: list[EventCallback] = list(on_event)
        self._max_bytes = config.max_record_bytes
        self._trader_id = config.trader_id
        self.callback_errors = 0
        try:
            self._next_sequence, self._prev_hash, self._last_recorded = _resume_point(self._writer.tail)
            if self._writer.tail.torn_bytes or self._writer.imported_records:
                self._record_recovery(self._writer.tail, self._writer.imported_records)
        except BaseException:
            if writer is None:
                self._writer.close()  # release the stream lock and the flusher of a writer we made
            raise

    # --- the pipeline -------------------------------------------------------------------------

    def emit(self, event: E) -> E:
        """Stamp, chain and append ``event``; return it as written.

        Durable event types (``config.durable_event_types``) are synced before this returns.

        Raises:
            ValueError: the event was already emitted.
            pydantic.ValidationError: the serialized record is over ``max_record_bytes``.
            AuditWriteError: the record could not be queued (writer closed: the sequence is not
                consumed), or a durable record could not be made durable anywhere. In the second
                case the record keeps its sequence and is written when the disk recovers: do not
                emit it again (if the live file was deleted or replaced, the record went with it;
                the chain's ``sys.degraded`` record says so), or the emitter was inherited through
                ``fork()`` (open a new one in the child).
        """
        if event.sequence is not None:
            raise ValueError(f"event already emitted as sequence {event.sequence}; build a new event")
        durable = self._durable.get(event.event_type)
        if durable is None:
            durable = self._is_durable(event.event_type)
        state = event.__dict__  # the fields of a (frozen) pydantic model: stamped in place, no copy
        now = self._clock()
        with self._lock:
            state["trader_id"] = self._trader_id
            try:
                ticket, lead = self._append(event, state, now)
            except BaseException:
                _unstamp(event)
                raise
        # Outside the lock: other threads queue records while this one writes a batch or waits for
        # its (shared) sync.
        self._writer.commit(ticket, lead, durable)
        if self._callbacks:
            self._notify(event)
        return event

    def emit_many(self, events: Iterable[E], *, clock_readings: Sequence[int] | None = None) -> list[E]:
        """Append ``events``, in order, as one batch: one write and at most one sync for all of them.

        Each record gets the bytes ``emit`` would give it (same stamping, chaining, serialization;
        the batch shares one ``ts_recorded``, or, with ``clock_readings``, each record's is stamped
        from its own reading, as ``emit`` would have stamped it at that time: a backtest's deferred
        records; all readings must fall in the current file, which the caller's clock decides). The
        batch is queued whole or not at all. If any of
        its event types is durable, this returns once every record of the batch is durable (one
        ``fdatasync``), so N trades cost one sync instead of N. Returns the events as written.

        Raises:
            ValueError: an event was already emitted, or is in the batch twice.
            pydantic.ValidationError: a serialized record is over ``max_record_bytes``.
            AuditWriteError: nothing was queued (writer closed): no sequence is consumed and the
                events are left unstamped, so they can be emitted again. Or the batch was queued but
                could not be made durable (hot disk failing, no ``fallback_path``; the live file
                deleted or replaced): then **no record of the batch is acknowledged**, whatever part
                of it reached the file, and the message names the batch's sequences. They keep their
                sequences, stay queued in order and are written when the disk recovers (if the live
                file was lost they went with it; ``sys.degraded`` says so): do not emit them again.
        """
        batch = list(events)
        seen: set[int] = set()
        for event in batch:
            if event.sequence is not None:
                raise ValueError(f"event already emitted as sequence {event.sequence}; build a new event")
            if id(event) in seen:
                raise ValueError(f"the same {event.event_type} event is in the batch twice; build a new event")
            seen.add(id(event))
        if not batch:
            return batch
        if clock_readings is not None and len(clock_readings) != len(batch):
            raise ValueError(f"{len(clock_readings)} clock readings for a batch of {len(batch)} events")
        # Per event type, not per event: a batch holds a few types many times.
        durable = any(self._is_durable(event_type) for event_type in {event.event_type for event in batch})
        with self._lock:
            first = self._next_sequence
            recorded = self._stamp_recorded(self._clock()) if clock_readings is None else self._last_recorded
            lines: list[bytes] = []
            checksums: list[str] = []
            prev_hash = self._prev_hash
            try:
                for event in batch:
                    if clock_readings is not None:  # clamped to the record before it, as emit would
                        recorded = self._stamp_recorded(clock_readings[len(lines)], recorded)
                    event.__dict__.update(trader_id=self._trader_id, sequence=first + len(lines), prev_hash=prev_hash,
                                          format=RECORD_FORMAT, ts_recorded=recorded)
                    line, prev_hash = self._line(event)
                    lines.append(line)
                    checksums.append(prev_hash)
                ticket, lead = self._writer.append(b"".join(lines), len(lines))
            except BaseException:
                for event in batch:
                    _unstamp(event)
                raise
            self._next_sequence += len(batch)
            self._prev_hash = prev_hash
            self._last_recorded = recorded
            for event, checksum in zip(batch, checksums, strict=True):
                _stamp_checksum(event, checksum)
        try:
            self._writer.commit(ticket, lead, durable)
        except AuditWriteError as exc:
            message = (f"none of the batch of {len(batch)} records (sequences {first}..{first + len(batch) - 1}) "
                       f"is acknowledged durable: {exc.strerror or exc}")
            raise (AuditWriteError(message) if exc.errno is None else AuditWriteError(exc.errno, message)) from exc
        if self._callbacks:
            for event in batch:
                self._notify(event)
        return batch

    def _emit_new(self, cls: type[E], fields: dict[str, Any], now: int) -> E:
        """Build and append an event in one step. ``now`` is the clock read by the helper (one read
        gives a defaulted ``ts_event`` and ``ts_recorded``).

        Only the caller's fields are validated, outside the lock; the chain fields the emitter
        produces itself (trader id from the validated config, sequence, previous hash, format,
        ``ts_recorded``) are then stamped into the built event under the lock, as ``emit`` stamps an
        event the caller built. Validating them again would re-check values made here, and doing
        it under the lock would make every other emitting thread wait for it.
        """
        if not _STAMPED_FIELDS.isdisjoint(fields):
            name = min(_STAMPED_FIELDS.intersection(fields))
            raise ValueError(f"{cls.__name__}.{name}={fields[name]!r}: {name} is stamped by the emitter, "
                             "not passed by the caller")
        event: E = cls.__pydantic_validator__.validate_python(fields)
        durable = self._durable.get(event.event_type)
        if durable is None:
            durable = self._is_durable(event.event_type)
        state = event.__dict__
        state["trader_id"] = self._trader_id
        with self._lock:
            ticket, lead = self._append(event, state, now)
        # As in ``emit`` (written out in both: one call fewer per record).
        self._writer.commit(ticket, lead, durable)
        if self._callbacks:
            self._notify(event)
        return event

    def _append(self, event: AuditEvent, state: dict[str, Any], now: int) -> tuple[int, bool]:
        """Stamp the chain fields into ``state`` (``event.__dict__``), serialize once, hash, queue;
        advance the chain only if the append succeeded.

        Called with the lock held, so file order, sequence order and chain order are one order.
        ``now`` is the clock's reading for ``ts_recorded``. Returns the writer's ticket and whether this
        thread leads the write.
        """
        recorded = self._stamp_recorded(now)
        # Every chain field is already a key of ``state`` (its default): pydantic-core writes a
        # model's fields in the order of its ``__dict__``, so a key added here would move in the record.
        state["sequence"] = self._next_sequence
        state["prev_hash"] = self._prev_hash
        state["format"] = RECORD_FORMAT
        state["ts_recorded"] = recorded
        line, checksum = self._line(event)
        appended = self._writer.append(line)
        self._next_sequence += 1
        self._prev_hash = checksum
        self._last_recorded = recorded
        _stamp_checksum(event, checksum)
        return appended

    def _line(self, event: AuditEvent) -> tuple[bytes, str]:
        """The record line of a stamped event and its checksum: serialized once, hashed, size-checked."""
        body = event.__pydantic_serializer__.to_json(event)
        checksum = compute_checksum(body, self._hmac_key)
        line = build_line(body, checksum)
        if len(line) > self._max_bytes:
            raise record_too_large_error(event, len(line), self._max_bytes)
        return line, checksum

    def _stamp_recorded(self, now: int, last: int | None = None) -> int:
        """``ts_recorded`` for the next record: the clock's ``now``, never before the stream's last one
        (a clock stepped back, or a backtest re-run into the same path, does not make it go back;
        nor does a thread that read the clock before another one took the lock). ``last``: the
        record before it, when that is not written yet (a batch)."""
        if last is None:
            last = self._last_recorded
        return now if now > last else last

    def _is_durable(self, event_type: str) -> bool:
        durable = self._durable.get(event_type)
        if durable is None:
            durable = self._durable[event_type] = self.config.is_durable(event_type)
        return durable

    # --- helpers for the common event kinds ---------------------------------------------------

    def emit_param_change(
        self,
        source: str,
        param_name: str,
        old_value: Any,
        new_value: Any,
        trigger_reason: str | None = None,
        *,
        event_type: str = AuditEventType.PARAM_STATE_CHANGE.value,
        correlation_id: str | None = None,
        ts_event: int | None = None,
        owner: str | None = None,
    ) -> ParameterChangeEvent:
        """Record that ``source`` changed ``param_name`` from ``old_value`` to ``new_value``.

        ``owner`` is the component whose parameter it is, when that is not ``source`` (an operator
        overriding a controller's setting); None (the default) means ``source`` owns it, and the
        record then has no ``owner`` field at all.
        """
        now = self._clock()
        return self._emit_new(ParameterChangeEvent, {
            "ts_event": now if ts_event is None else ts_event,
            "event_type": event_type,
            "source": source,
            "correlation_id": correlation_id,
            "param_name": param_name,
            "old_value": old_value,
            "new_value": new_value,
            "trigger_reason": trigger_reason,
            "owner": owner,
        }, now)

    def emit_trade(
        self,
        event_type: str,
        source: str,
        instrument_id: str,
        *,
        correlation_id: str | None = None,
        ts_event: int | None = None,
        **fields: Any,
    ) -> TradeEvent:
        """Record an order, fill, rejection, cancel or position event (durable by default).

        ``fields`` are ``TradeEvent`` fields: order_id, side, size, price, slippage_bps,
        realized_pnl, commission, currency, position_id, strategy_source, reason.
        """
        now = self._clock()
        return self._emit_new(TradeEvent, {
            "ts_event": now if ts_event is None else ts_event,
            "event_type": event_type,
            "source": source,
            "correlation_id": correlation_id,
            "instrument_id": instrument_id,
            **fields,
        }, now)

    def emit_signal(
        self,
        source: str,
        strategy_source: str,
        signal_value: float,
        confidence: float,
        *,
        acted_on: bool = True,
        filter_reason: str | None = None,
        regime: str | None = None,
        instrument_id: str | None = None,
        correlation_id: str | None = None,
        ts_event: int | None = None,
    ) -> SignalEvent:
        """Record a signal and whether it was traded; a filtered signal needs ``filter_reason``."""
        now = self._clock()
        return self._emit_new(SignalEvent, {
            "ts_event": now if ts_event is None else ts_event,
            "event_type": AuditEventType.TRADE_SIGNAL.value,
            "source": source,
            "correlation_id": correlation_id,
            "strategy_source": strategy_source,
            "signal_value": signal_value,
            "confidence": confidence,
            "regime": regime,
            "instrument_id": instrument_id,
            "acted_on": acted_on,
            "filter_reason": filter_reason,
        }, now)

    def emit_system(
        self,
        event_type: str,
        source: str,
        payload: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        ts_event: int | None = None,
    ) -> SystemEvent:
        """Record a system event (``sys.*``) with a JSON payload."""
        now = self._clock()
        return self._emit_new(SystemEvent, {
            "ts_event": now if ts_event is None else ts_event,
            "event_type": event_type,
            "source": source,
            "correlation_id": correlation_id,
            "payload": {} if payload is None else payload,  # a Mapping; checked and copied by the model
        }, now)

    # --- lifecycle ----------------------------------------------------------------------------

    def add_callback(self, callback: EventCallback) -> None:
        self._callbacks.append(callback)

    @property
    def next_sequence(self) -> int:
        """Sequence number the next event will get."""
        return self._next_sequence

    @property
    def last_hash(self) -> str:
        """Checksum of the last record written (the genesis hash for a new stream)."""
        return self._prev_hash

    @property
    def writer(self) -> AppendOnlyWriter:
        return self._writer

    def flush(self) -> None:
        """Make every event written so far durable."""
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def rotate_signing_key(self, new_key: SigningKey) -> SystemEvent:
        """Sign seals and checkpoints with ``new_key`` from now on (``hot.key_lifecycle``).

        Writes a ``sys.key_rotation`` record endorsed by the current key, makes it durable, then
        switches keys. Configure ``new_key`` for the next start (the writer refuses the old one).
        """
        return key_lifecycle.rotate_signing_key(self, new_key)

    def revoke_signing_key(self, key_id: str, not_after_ns: int, reason: str) -> SystemEvent:
        """Record that key ``key_id`` is not valid from ``not_after_ns`` on (``hot.key_lifecycle``)."""
        return key_lifecycle.revoke_signing_key(self, key_id, not_after_ns, reason)

    def __enter__(self) -> AuditEventEmitter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _notify(self, event: AuditEvent) -> None:
        for callback in self._callbacks:
            try:
                callback(event)
            except Exception:
                self.callback_errors += 1
                logger.exception("ledgerline: on_event callback %r failed for sequence %s", callback, event.sequence)

    @property
    def is_degraded(self) -> bool:
        """True while the hot disk fails and records wait in memory or the spill file."""
        return self._writer.is_degraded

    def _record_state_change(self, change: StateChange) -> None:
        """Chain the writer's degraded/recovered episodes into the trail itself."""
        kinds = {"degraded": AuditEventType.SYS_DEGRADED, "recovered": AuditEventType.SYS_RECOVERED}
        event_type = kinds.get(change.kind, f"sys.{change.kind}")  # and sys.checkpoint_failed/_recovered
        self.emit_system(event_type, "ledgerline.writer", change.details)

    def _record_recovery(self, tail: StreamTail, imported: int) -> None:
        # The writer ended the torn line where it was (never truncated); say in the chain what it was.
        payload: dict[str, Any] = {"reason": "torn_write" if tail.torn_bytes else "spill_import"}
        if tail.torn_bytes:
            assert tail.path is not None
            payload |= {
                "torn_file": tail.path.name,
                "torn_offset": tail.torn_offset,
                "torn_length": len(tail.torn_bytes),
                "torn_sha256": hashlib.sha256(tail.torn_bytes).hexdigest(),
            }
            logger.warning(
                "ledgerline: recovered a torn write of %d bytes at %s:%d",
                len(tail.torn_bytes), tail.path, tail.torn_offset,
            )
        payload |= {"imported_spilled_records": imported, "resumed_after_sequence": self._next_sequence - 1}
        self._durable[AuditEventType.SYS_RECOVERY.value] = True
        self.emit_system(AuditEventType.SYS_RECOVERY, "ledgerline.writer", payload)


def _unstamp(event: AuditEvent) -> None:
    """Undo the chain stamps of an event that was not queued, so that it can be emitted again."""
    for name in ("sequence", "prev_hash", "format", "ts_recorded"):
        _set(event, name, None)


def _resume_point(tail: StreamTail) -> tuple[int, str, int]:
    """Next sequence, previous hash and the floor of ``ts_recorded`` for a stream, from its last record."""
    if tail.last_record is None:
        return 0, GENESIS_HASH, 0
    try:
        record = split_record(tail.last_record)
    except ValueError as exc:
        raise AuditIntegrityError(
            f"cannot continue the stream in {tail.path}: its last record is unreadable ({exc}); "
            "run `ledgerline verify` on it"
        ) from exc
    return record.sequence + 1, record.checksum, record.ts_recorded or 0
