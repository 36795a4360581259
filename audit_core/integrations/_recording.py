"""Where the observer's records are written from, and how durably, by environment.

No NautilusTrader here, so the rule, the recording thread and the batches are tested on their own.

The rule (``recording_mode``): in ``live`` and ``sandbox`` every ``trade.*`` record is fdatasync'ed,
and records are written and synced on a recording thread of their own, never on the node's event
loop; in ``backtest`` records are written on the event loop (the simulated clock does not wait for
anything) and synced when a file rotates and when the trail closes, which is when a backtest's files
are sealed. An explicit ``sync_writes`` overrides the sync part of the rule, never the thread part.
The stream's checkpoints (``hot._checkpointer``) follow the environment too: live and sandbox
streams are checkpointed every ``checkpoint_interval_s`` (the emitter's default), a backtest's when
its trail closes, after the last seal (and hourly while a long one runs; see
``BACKTEST_CHECKPOINT_INTERVAL_S``).

A backtest that syncs nothing per record also builds and writes its records in batches
(``DeferredRecords``): the emitter's pipeline then runs many records in a row with warm CPU caches,
instead of one record between two slices of the engine's own work, a day's run of them is one
append (one write), and each record is still stamped and filed under the clock reading of the
moment it was captured, so the trail has the same bytes either way.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from audit_core._layout import NS_PER_DAY
from audit_core.config import AuditConfig

Environment = Literal["backtest", "sandbox", "live"]
ENVIRONMENTS: tuple[Environment, ...] = ("backtest", "sandbox", "live")
#: How often a backtest's stream is checkpointed while it runs: the longest interval the emitter
#: takes, so in practice once, at close. A checkpoint made every 2 s of wall time covers seconds of a
#: simulated run whose files are sealed at each simulated midnight anyway, and making it (reading the
#: new lines back, hashing them into leaves, fsyncing the sidecar) on the checkpointer thread took the
#: GIL from the event loop: 0.25-0.46 s of a 10,000-fill backtest's 7.8 s (three paired runs,
#: 2026-12-03). The close checkpoint covers every line, as in live.
BACKTEST_CHECKPOINT_INTERVAL_S = 3600.0
_LIVE_CHECKPOINT_INTERVAL_S: float = AuditConfig.model_fields["checkpoint_interval_s"].default


@dataclass(frozen=True)
class RecordingMode:
    """How an observer records: ``sync_trades`` (fdatasync each trade record before it counts as
    written), ``off_loop`` (write from a recording thread, not the caller's) and
    ``checkpoint_interval_s`` (its own stream's, ``AuditConfig.checkpoint_interval_s``)."""

    environment: Environment
    sync_trades: bool
    off_loop: bool
    checkpoint_interval_s: float


def recording_mode(environment: str, sync_writes: bool | None = None) -> RecordingMode:
    """The recording rule for ``environment`` (see the module docstring).

    Raises:
        ValueError: ``environment`` is not ``backtest``, ``sandbox`` or ``live``.
    """
    if environment not in ENVIRONMENTS:
        raise ValueError(f"environment must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}")
    live = environment != "backtest"
    return RecordingMode(environment, live if sync_writes is None else sync_writes, live,
                         _LIVE_CHECKPOINT_INTERVAL_S if live else BACKTEST_CHECKPOINT_INTERVAL_S)


class DeferredRecords:
    """Records captured on the event loop and built and written later, in capture order, in batches.

    ``submit`` keeps a record's builder and its arguments with the clock's reading now; the batch
    runs when ``limit`` records wait, or on ``run``: each record is built (``build(*args)``), then
    the built records go to ``write(records, readings)`` in runs whose readings fall in one UTC day,
    with ``clock`` (the emitter's clock) pinned to the run's first reading while it is written. A
    hot file rotates only at the midnight ending its day, so a run lands in the file, and each record
    gets the ``ts_recorded``, it would have had if it had been written when it was captured
    (``AuditEventEmitter.emit_many`` with ``clock_readings``). A builder that raises is reported to
    ``on_error`` and the next record is built. ``write`` either writes a run or raises having written
    none of it: a run it refuses is written again record by record, so only a record it refuses alone
    is reported. After ``close`` each record is written as it is submitted.

    A waiting record takes no container of its own (no closure, no tuple per record: four parallel
    lists): objects the garbage collector tracks, kept alive by the hundreds, survive into the oldest
    generation and trigger full collections that each walk the whole engine's heap. A trade record's
    arguments are a one-tuple of a dict of strings, integers and decimals, which the collector stops
    tracking at its first pass.
    """

    def __init__(self, clock: Callable[[], int], on_error: Callable[[str, Exception], None], limit: int,
                 write: Callable[[list[Any], list[int]], object]) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self._now = clock
        self._on_error = on_error
        self._limit = limit
        self._write = write
        # Four parallel lists, not a tuple per record: see the class docstring.
        self._whats: list[str] = []
        self._builds: list[Callable[..., Any]] = []
        self._args: list[tuple[Any, ...]] = []
        self._readings: list[int] = []
        self._pinned: int | None = None
        #: Batches run so far.
        self.batches = 0

    @property
    def pending(self) -> int:
        return len(self._whats)

    def clock(self) -> int:
        """Nanoseconds: the first reading of the run being written now, else the clock's reading."""
        pinned = self._pinned
        return self._now() if pinned is None else pinned

    def submit(self, what: str, build: Callable[..., Any], args: tuple[Any, ...] = ()) -> None:
        """Keep ``build(*args)`` (``what`` names it in error reports) for the next batch; run the batch if full."""
        whats = self._whats
        whats.append(what)
        self._builds.append(build)
        self._args.append(args)
        self._readings.append(self._now())
        if len(whats) >= self._limit:
            self.run()

    def run(self) -> None:
        """Build every waiting record, in order, and write them in runs of one day (see the class)."""
        whats, builds, arguments, captured = self._whats, self._builds, self._args, self._readings
        if not whats:
            return
        self._whats, self._builds, self._args, self._readings = [], [], [], []
        self.batches += 1
        names: list[str] = []
        records: list[Any] = []
        readings: list[int] = []
        for what, build, args, captured_at in zip(whats, builds, arguments, captured, strict=True):
            try:
                records.append(build(*args))
            except Exception as exc:
                self._on_error(what, exc)
                continue
            names.append(what)
            readings.append(captured_at)
        if readings and max(readings) // NS_PER_DAY == min(readings) // NS_PER_DAY:
            self._write_run(names, records, readings)  # the usual batch: all of one day
            return
        start = 0
        for end in range(1, len(records) + 1):
            if end == len(records) or readings[end] // NS_PER_DAY != readings[start] // NS_PER_DAY:
                self._write_run(names[start:end], records[start:end], readings[start:end])
                start = end

    def close(self) -> None:
        """Run what waits; from now on each record is written as it is submitted."""
        self._limit = 1
        self.run()

    def _write_run(self, names: list[str], records: list[Any], readings: list[int]) -> None:
        try:
            self._pinned = readings[0]
            try:
                self._write(records, readings)
                return
            except Exception as exc:
                if len(records) == 1:
                    self._on_error(names[0], exc)
                    return
            for what, record, reading in zip(names, records, readings, strict=True):
                self._pinned = reading
                try:
                    self._write([record], [reading])
                except Exception as exc:
                    self._on_error(what, exc)
        finally:
            self._pinned = None


@dataclass
class RecorderStats:
    """Counters of a ``RecordingThread`` (read them any time; they only grow, but ``pending``)."""

    #: Calls queued, and those that ran to the end or raised (records, and a flush at stop).
    submitted: int = 0
    completed: int = 0
    failed: int = 0
    #: Submissions that found the queue full and waited for room, and the total time they waited.
    backpressure_waits: int = 0
    backpressure_ns: int = 0
    #: Most records ever waiting at once.
    high_water: int = 0


class RecordingThread:
    """Runs record calls, in submission order, on a thread of its own.

    ``submit`` returns at once while fewer than ``max_pending`` records wait; when the disk falls
    that far behind, it waits for room (bounded memory, nothing dropped) and counts the wait in
    ``stats``. A call that raises is counted in ``stats.failed`` and reported to ``on_error``;
    the thread carries on with the next record.
    """

    def __init__(self, on_error: Callable[[str, Exception], None], max_pending: int = 10_000,
                 name: str = "ledgerline-recorder") -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.stats = RecorderStats()
        self._on_error = on_error
        self._queue: queue.Queue[tuple[str, Callable[[], object]] | None] = queue.Queue(max_pending)
        self._open = True
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def is_open(self) -> bool:
        """Whether ``submit`` still takes records (until ``close``)."""
        return self._open

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def submit(self, what: str, call: Callable[[], object]) -> None:
        """Queue ``call`` (``what`` names it in error reports); wait only while the queue is full.

        Raises:
            RuntimeError: the thread was closed.
        """
        if not self._open:
            raise RuntimeError(f"the recording thread is closed; cannot record {what}")
        item = (what, call)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            started = time.perf_counter_ns()
            self._queue.put(item)
            self.stats.backpressure_waits += 1
            self.stats.backpressure_ns += time.perf_counter_ns() - started
        self.stats.submitted += 1
        waiting = self._queue.qsize()
        if waiting > self.stats.high_water:
            self.stats.high_water = waiting

    def close(self, timeout: float | None = None) -> bool:
        """Record everything queued, then stop the thread. False if it did not finish in ``timeout``."""
        if self._open:
            self._open = False
            self._queue.put(None)  # the stop mark, after everything queued
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            what, call = item
            try:
                call()
            except Exception as exc:
                self.stats.failed += 1
                self._on_error(what, exc)
            else:
                self.stats.completed += 1
