"""How durable emits and the raw write + fdatasync loop use the disk: syncs in flight and the gaps between them.

The throughput question of the group-commit benchmark, taken apart per thread count. Every
``fdatasync`` of the case's file is timed (start, end, thread), in blocks interleaved as in
``bench_group_commit``, and each case reports:

- **events per sync**, and **syncs in flight**: their summed durations over the span of the block
  (the time-average number running), with the share of the span in which at least one ran;
- **sync**: the median duration of one (it includes getting the GIL back after the syscall);
- **gap**: the median time a thread spends between the end of one of its syncs and the start of
  its next one (its work between two syncs: for the raw loop one ``os.write``, for ours the live-file
  check, the bookkeeping, the return and the next emit's whole pipeline).

Why it matters here: this VM's ext4 has no journal, so concurrent syncs are not merged into one
commit; the disk serves them side by side. A thread then completes about one event per
``sync + gap``, and ``threads * sync / (sync + gap)`` syncs are in flight. Our gap is the emit's
pipeline run right after a sleep; the raw loop's is one write: see the module docstring of
``audit_core.hot._group_commit`` for what was measured with this probe.

Usage (from the repo root)::

    python -m benchmarks.probe_sync_occupancy [--events 2000] [--threads 1 2 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks._machine import load_average
from benchmarks.bench_group_commit import BLOCK_EVENTS, Block, _durable_case, _raw_case, sample_line

if TYPE_CHECKING:
    from _typeshed import HasFileno

Span = tuple[int, int, int]  # (start ns, end ns, thread id) of one fdatasync


@dataclass
class Occupancy:
    name: str
    threads: int
    events: int
    syncs: int
    events_per_sync: float
    in_flight: float  # time-average number of syncs running
    busy: float  # share of the time at least one sync ran
    sync_us: float  # median
    gap_us: float  # median, per thread: end of one sync to the start of its next
    events_per_s: float


@contextlib.contextmanager
def timed_syncs(record: list[Span], ignore: set[int | None]) -> Iterator[None]:
    """Record every ``os.fdatasync`` while inside, but those of the threads in ``ignore`` (the emitter's
    flusher and checkpointer: the raw loop's blocks run while they live too)."""
    real = os.fdatasync
    clock = time.perf_counter_ns

    def fdatasync(fd: int | HasFileno) -> None:
        start = clock()
        try:
            real(fd)
        finally:
            thread = threading.get_ident()
            if thread not in ignore:
                record.append((start, clock(), thread))  # list.append: atomic under the GIL

    os.fdatasync = fdatasync
    try:
        yield
    finally:
        os.fdatasync = real


def occupancy(name: str, threads: int, events: int, seconds: float, blocks: list[list[Span]]) -> Occupancy:
    """The figures of one case from its blocks' sync spans (each block timed alone: no gap spans two)."""
    durations, gaps = [], []
    running = covered = span_total = 0
    for spans in blocks:
        if not spans:
            continue
        spans = sorted(spans)
        span_total += max(end for _, end, _ in spans) - spans[0][0]
        running += sum(end - start for start, end, _ in spans)
        durations += [end - start for start, end, _ in spans]
        last_end: dict[int, int] = {}
        union_start, union_end = spans[0][0], spans[0][1]
        for start, end, thread in spans:
            if thread in last_end:
                gaps.append(start - last_end[thread])
            last_end[thread] = end
            if start > union_end:
                covered += union_end - union_start
                union_start, union_end = start, end
            else:
                union_end = max(union_end, end)
        covered += union_end - union_start
    syncs = len(durations)
    return Occupancy(
        name, threads, events, syncs, round(events / max(syncs, 1), 2),
        round(running / max(span_total, 1), 2), round(covered / max(span_total, 1), 3),
        round(statistics.median(durations) / 1000, 1) if durations else 0.0,
        round(statistics.median(gaps) / 1000, 1) if gaps else 0.0,
        round(events / seconds, 1) if seconds else 0.0,
    )


def probe_threads(tmp: Path, threads: int, events: int, line: bytes) -> list[Occupancy]:
    """The raw loop and our durable emits at ``threads`` threads, in interleaved blocks of ``BLOCK_EVENTS``."""
    blocks = max(1, events // BLOCK_EVENTS)
    block_events = events // blocks // threads * threads
    with contextlib.ExitStack() as stack:
        raw_block = stack.enter_context(_raw_case(tmp, threads, line))
        durable_block, emitter = stack.enter_context(_durable_case(tmp, threads, None))
        writer = emitter.writer
        checkpointer = getattr(writer.checkpointer, "_thread", None)  # None: checkpoints turned off
        background = {writer._flusher.ident, None if checkpointer is None else checkpointer.ident}
        cases: list[tuple[str, Block]] = [(f"raw_write_fdatasync_{threads}t", raw_block),
                                          (f"emit_trade_durable_{threads}t", durable_block)]
        spans: dict[str, list[list[Span]]] = {name: [] for name, _ in cases}
        seconds = dict.fromkeys(spans, 0.0)
        for index in range(blocks):
            for name, block in cases if index % 2 == 0 else cases[::-1]:
                record: list[Span] = []
                with timed_syncs(record, background):
                    wall, _ = block(block_events)
                spans[name].append(record)
                seconds[name] += wall
        return [occupancy(name, threads, block_events * blocks, seconds[name], spans[name]) for name, _ in cases]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.probe_sync_occupancy",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="events per case and round")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    start_load = load_average()
    tmp = Path(tempfile.mkdtemp(prefix="occupancy-"))
    try:
        line = sample_line(tmp)
        print(f"{'case':28s} {'round':>5s} {'events/s':>9s} {'ev/sync':>8s} {'in flight':>9s} {'busy':>6s} "
              f"{'sync us':>8s} {'gap us':>7s}")
        for round_index in range(args.rounds):
            for threads in args.threads:
                for r in probe_threads(tmp, threads, args.events, line):
                    print(f"{r.name:28s} {round_index:5d} {r.events_per_s:9,.0f} {r.events_per_sync:8.2f} "
                          f"{r.in_flight:9.2f} {r.busy:6.1%} {r.sync_us:8.1f} {r.gap_us:7.1f}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average {start_load} at start, {load_average()} at end")


if __name__ == "__main__":
    main()
