"""Where a durable trade emit's CPU work goes: each stage warm and right after a blocking fdatasync.

A durable emit on one thread runs its whole pipeline (validate, serialize, hash, write) after the
previous record's ``fdatasync`` has put the thread to sleep, so it pays for cold caches; the raw
write + fdatasync loop it is compared with has almost nothing to run. This probe times each stage of
a ``trade.fill`` record alone, back to back (warm, the reference) and as the first work after a
blocking ``fdatasync`` of another file, interleaved in the same run, and prints the median of each
and their ratio, with the load average.

Usage (from the repo root)::

    python -m benchmarks.probe_after_sync [--samples 500]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from audit_core import TradeEvent
from benchmarks._machine import load_average

_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_FIELDS = {"ts_event": 1, "event_type": "trade.fill", "source": "AuditObserver", "correlation_id": None,
           "instrument_id": "EURUSD.SIM", "order_id": "O-0", "side": "BUY", "size": "100000",
           "price": "1.10012", "strategy_source": "momentum", "commission": "2.20", "currency": "USD"}


def stages(directory: Path) -> tuple[dict[str, Callable[[], object]], list[int]]:
    """The stages of one record (the emitter's own calls) and the fds to close afterwards."""
    validate = TradeEvent.__pydantic_validator__.validate_python
    to_json = TradeEvent.__pydantic_serializer__.to_json
    event = validate(_FIELDS)
    body = to_json(event)
    line = body + b"\n"
    target = directory / "probe.jsonl"
    fd = os.open(target, _FLAGS, 0o640)
    path = str(target)
    return {
        "validate": lambda: validate(_FIELDS),
        "serialize": lambda: to_json(event),
        "sha256": lambda: hashlib.sha256(body).hexdigest(),
        "os.write": lambda: os.write(fd, line),
        "lstat (live-file check)": lambda: os.lstat(path),
        "nothing (timer only)": lambda: None,
    }, [fd]


def probe(samples: int) -> dict[str, tuple[float, float]]:
    """Median microseconds per stage: (warm, right after a sync)."""
    clock = time.perf_counter_ns
    with tempfile.TemporaryDirectory() as tmp:
        calls, fds = stages(Path(tmp))
        other = os.open(Path(tmp) / "other", _FLAGS, 0o640)
        times: dict[str, tuple[list[int], list[int]]] = {name: ([], []) for name in calls}
        try:
            for _ in range(samples):
                for name, call in calls.items():
                    warm, after = times[name]
                    call()  # warms it for the back-to-back sample
                    start = clock()
                    call()
                    warm.append(clock() - start)
                    os.write(other, b"\n")
                    os.fdatasync(other)
                    start = clock()
                    call()
                    after.append(clock() - start)
        finally:
            for fd in (*fds, other):
                os.close(fd)
    return {name: (_median(warm) / 1000, _median(after) / 1000) for name, (warm, after) in times.items()}


def _median(values: list[int]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=500, help="samples per stage and condition")
    args = parser.parse_args()
    start_load = load_average()
    results = probe(args.samples)
    print(f"load average {start_load} at start, {load_average()} at end; medians of {args.samples}")
    print(f"{'stage':26s} {'warm us':>9s} {'after sync us':>14s} {'ratio':>7s}")
    for name, (warm, after) in results.items():
        print(f"{name:26s} {warm:9.1f} {after:14.1f} {after / max(warm, 0.001):6.1f}x")


if __name__ == "__main__":
    main()
