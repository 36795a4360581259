"""Durable trade throughput with 1, 2, 4 and 8 threads (group commit) against one fdatasync per event.

Each case runs ``threads`` threads that together emit ``events`` durable ``trade.fill`` events on
one emitter; every ``emit_trade`` returns only after its record is synced. The baseline, measured
in the same run on the same disk, does one ``os.write`` + ``os.fdatasync`` per event of the same
bytes, single-threaded and with the same thread counts on one shared ``O_APPEND`` fd.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit_core import AuditConfig, AuditEventEmitter

THREAD_COUNTS = (1, 2, 4, 8)
_RAW_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


@dataclass
class ThroughputResult:
    name: str
    threads: int
    events: int
    seconds: float
    events_per_s: float
    syncs: int | None = None
    events_per_sync: float | None = None
    batches: int | None = None


def _run_threads(threads: int, work: Any) -> float:
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def runner(index: int) -> None:
        barrier.wait()
        try:
            work(index)
        except BaseException as exc:  # surfaced below: a benchmark must not hide failures
            errors.append(exc)

    pool = [threading.Thread(target=runner, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def bench_emitter(tmp: Path, threads: int, events: int) -> ThroughputResult:
    per_thread = events // threads
    with AuditEventEmitter(AuditConfig(base_path=tmp / f"group-{threads}", stream_id="bench")) as emitter:
        emit = emitter.emit_trade

        def work(index: int) -> None:
            for i in range(per_thread):
                emit("trade.fill", "AuditObserver", "EURUSD.SIM", order_id=f"O-{index}-{i}", side="BUY",
                     size="100000", price="1.10012", strategy_source="momentum", commission="2.20", currency="USD")

        elapsed = _run_threads(threads, work)
        stats = emitter.writer.stats
        syncs, batches = stats.syncs, stats.batches
    total = per_thread * threads
    return ThroughputResult(f"emit_trade_durable_{threads}t", threads, total, elapsed, total / elapsed,
                            syncs, total / max(syncs, 1), batches)


def bench_raw_fdatasync(tmp: Path, threads: int, events: int, line: bytes) -> ThroughputResult:
    per_thread = events // threads
    fd = os.open(tmp / f"raw-{threads}.jsonl", _RAW_FLAGS, 0o640)
    try:

        def work(index: int) -> None:
            for _ in range(per_thread):
                os.write(fd, line)
                os.fdatasync(fd)

        elapsed = _run_threads(threads, work)
    finally:
        os.close(fd)
    total = per_thread * threads
    return ThroughputResult(f"raw_write_fdatasync_{threads}t", threads, total, elapsed, total / elapsed,
                            total, 1.0)


def sample_line(tmp: Path) -> bytes:
    """One real durable trade record, as the emitter writes it."""
    with AuditEventEmitter(AuditConfig(base_path=tmp / "sample", stream_id="sample")) as emitter:
        event = emitter.emit_trade("trade.fill", "AuditObserver", "EURUSD.SIM", order_id="O-0", side="BUY",
                                   size="100000", price="1.10012", strategy_source="momentum", commission="2.20",
                                   currency="USD")
    return event.to_line()


def run_group_commit(tmp: Path, events: int) -> list[ThroughputResult]:
    line = sample_line(tmp)
    results = []
    for threads in THREAD_COUNTS:
        os.sync()
        results.append(bench_raw_fdatasync(tmp, threads, events, line))
        os.sync()
        results.append(bench_emitter(tmp, threads, events))
    return results
