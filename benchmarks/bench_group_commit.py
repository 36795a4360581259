"""Durable trade throughput with 1, 2, 4 and 8 threads against one fdatasync per event, and batches.

Each threads case runs ``threads`` threads that together emit ``events`` durable ``trade.fill``
events on one emitter; every ``emit_trade`` returns only after its record is synced. The baseline,
measured in the same run on the same disk, does one ``os.write`` + ``os.fdatasync`` per event of
the same bytes on one shared ``O_APPEND`` fd, with the same thread counts. The batch cases emit
the same number of trades on one thread through ``emit_many`` in batches of 10 and 100 (one write
and one sync per batch), against the single durable emits of the same round. Every round runs every
case; at each thread count the baseline and ours run in blocks of ``BLOCK_EVENTS`` events, their
blocks interleaved, so that a shared machine's load and disk weather fall on both alike; each figure
is the median over the rounds. ``--max-syncs N`` adds our cases with another limit of concurrent
syncs, interleaved the same way.

Usage (from the repo root)::

    python -m benchmarks.bench_group_commit            # writes benchmarks/results/group_commit.{json,md}
    python -m benchmarks.bench_group_commit --quick --out /tmp/bench   # 10x fewer events, one round
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit_core import AuditConfig, AuditEventEmitter, TradeEvent
from audit_core.hot import _group_commit
from audit_core.hot._live_file import file_identity, file_lost
from benchmarks._machine import load_average
from benchmarks._scratch import scratch_dir
from benchmarks._targets import make_target, target_line

THREAD_COUNTS = (1, 2, 4, 8)
BATCH_SIZES = (10, 100)
FULL_EVENTS = 8_000
FULL_ROUNDS = 3
#: Events per block: each thread count's cases run block by block, interleaved.
BLOCK_EVENTS = 400
RESULTS_DIR = Path(__file__).resolve().parent / "results"
_RAW_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_TRADE = {"order_id": "O-0", "side": "BUY", "size": "100000", "price": "1.10012", "strategy_source": "momentum",
          "commission": "2.20", "currency": "USD"}

#: Issue 18's goals: durable emit throughput / raw write + fdatasync per event, same threads, same run.
TARGET_RATIOS = {1: 0.95, 2: 1.0, 4: 1.0}


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
    sync_waits: int | None = None  # durable emits a sync run by another thread covered
    # Process CPU time (every thread's) per event: less moved by a loaded machine than wall time, and
    # what one GIL serializes; a sync's wait is not in it.
    cpu_us_per_event: float | None = None
    rounds_events_per_s: list[float] = field(default_factory=list)


def _run_threads(threads: int, work: Any) -> tuple[float, float]:
    """Run ``work(index)`` on ``threads`` threads at once; return (wall seconds, process CPU seconds)."""
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
    start, cpu_start = time.perf_counter(), time.process_time()
    for thread in pool:
        thread.join()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if errors:
        raise errors[0]
    return elapsed, cpu


def _emitter(tmp: Path, name: str) -> AuditEventEmitter:
    shutil.rmtree(tmp / name, ignore_errors=True)
    return AuditEventEmitter(AuditConfig(base_path=tmp / name, stream_id="bench"))


def _result(name: str, threads: int, total: int, times: tuple[float, float],
            emitter: AuditEventEmitter | None) -> ThroughputResult:
    elapsed, cpu = times
    cpu_us = cpu / total * 1e6
    if emitter is None:
        return ThroughputResult(name, threads, total, elapsed, total / elapsed, total, 1.0, cpu_us_per_event=cpu_us)
    stats = emitter.writer.stats
    return ThroughputResult(name, threads, total, elapsed, total / elapsed, stats.syncs,
                            total / max(stats.syncs, 1), stats.batches, stats.sync_waits, cpu_us)


@contextlib.contextmanager
def _max_concurrent_syncs(limit: int | None) -> Iterator[None]:
    """Run with ``_group_commit.MAX_CONCURRENT_SYNCS`` set to ``limit`` (None: the shipped value), to
    compare the group-commit policy's one knob on the same disk in the same run."""
    if limit is None:
        yield
        return
    shipped = _group_commit.MAX_CONCURRENT_SYNCS
    _group_commit.MAX_CONCURRENT_SYNCS = limit
    try:
        yield
    finally:
        _group_commit.MAX_CONCURRENT_SYNCS = shipped


Block = Callable[[int], tuple[float, float]]  # run N events; (wall seconds, process CPU seconds)


@contextlib.contextmanager
def _durable_case(tmp: Path, threads: int, max_syncs: int | None) -> Iterator[tuple[Block, AuditEventEmitter]]:
    """One emitter, ``threads`` threads emitting durable trades on it, block after block."""
    suffix = "" if max_syncs is None else f"_max{max_syncs}"
    with _emitter(tmp, f"group-{threads}t{suffix}") as emitter:
        emit = emitter.emit_trade

        def block(events: int) -> tuple[float, float]:
            def work(index: int) -> None:
                for i in range(events // threads):
                    emit("trade.fill", "AuditObserver", "EURUSD.SIM", **{**_TRADE, "order_id": f"O-{index}-{i}"})

            with _max_concurrent_syncs(max_syncs):
                return _run_threads(threads, work)

        yield block, emitter


@contextlib.contextmanager
def _raw_case(tmp: Path, threads: int, line: bytes) -> Iterator[Block]:
    """One shared O_APPEND fd, ``threads`` threads doing os.write + os.fdatasync per event on it."""
    path = tmp / f"raw-{threads}.jsonl"
    path.unlink(missing_ok=True)
    fd = os.open(path, _RAW_FLAGS, 0o640)
    try:

        def block(events: int) -> tuple[float, float]:
            def work(index: int) -> None:
                for _ in range(events // threads):
                    os.write(fd, line)
                    os.fdatasync(fd)

            return _run_threads(threads, work)

        yield block
    finally:
        os.close(fd)


def bench_threads(tmp: Path, threads: int, events: int, line: bytes,
                  max_syncs: tuple[int, ...] = ()) -> list[ThroughputResult]:
    """The raw baseline and our durable emits (with the shipped limit of concurrent syncs, then each of
    ``max_syncs``) at ``threads`` threads: ``events`` each, run in blocks of ``BLOCK_EVENTS``, the cases'
    blocks interleaved (order alternating), so that a shared machine's load and disk weather fall on
    every case alike."""
    blocks = max(1, events // BLOCK_EVENTS)
    block_events = events // blocks // threads * threads
    with contextlib.ExitStack() as stack:
        cases: list[tuple[str, Block, AuditEventEmitter | None]] = [
            (f"raw_write_fdatasync_{threads}t", stack.enter_context(_raw_case(tmp, threads, line)), None)]
        for limit in (None, *max_syncs):
            block, emitter = stack.enter_context(_durable_case(tmp, threads, limit))
            suffix = "" if limit is None else f"_max{limit}"
            cases.append((f"emit_trade_durable_{threads}t{suffix}", block, emitter))
        totals = {name: [0.0, 0.0] for name, _, _ in cases}
        for index in range(blocks):
            for name, block, _ in cases if index % 2 == 0 else cases[::-1]:
                wall, cpu = block(block_events)
                totals[name][0] += wall
                totals[name][1] += cpu
        # Read the emitters' counters before closing them (close syncs once more).
        return [_result(name, threads, block_events * blocks, (totals[name][0], totals[name][1]), emitter)
                for name, _, emitter in cases]


def bench_emit_many(tmp: Path, batch_size: int, events: int) -> ThroughputResult:
    """``events`` durable trades on one thread, ``batch_size`` per ``emit_many`` (events built in the loop,
    as ``emit_trade`` builds them)."""
    batches = events // batch_size
    with _emitter(tmp, f"batch-{batch_size}") as emitter:

        def work(index: int) -> None:
            for b in range(batches):
                emitter.emit_many([
                    TradeEvent(event_type="trade.fill", source="AuditObserver", instrument_id="EURUSD.SIM",
                               **{**_TRADE, "order_id": f"O-{b}-{i}"})
                    for i in range(batch_size)
                ])

        times = _run_threads(1, work)
        result = _result(f"emit_many_durable_batch_{batch_size}", 1, batches * batch_size, times, emitter)
    return result


@dataclass
class AfterSyncResult:
    """Per-event CPU work timed back to back and right after a blocking ``fdatasync`` (medians, us).

    The ``fdatasync`` (of another file, untimed) stands for the sync each durable event waits for:
    what the 1-thread loops pay between two syncs is the after-sync figure, not the warm one.
    """

    events: int
    emit_us_warm: float  # a non-durable emit_trade (the whole pipeline but the sync and its check)
    emit_us_after_sync: float
    raw_write_us_warm: float  # os.write of the record's bytes: the raw loop's only work besides the sync
    raw_write_us_after_sync: float
    # The live-file check a durable sync adds (one lstat: the syscall the raw loop does not make).
    live_check_us_after_sync: float


def bench_after_sync(tmp: Path, events: int, line: bytes) -> AfterSyncResult:
    shutil.rmtree(tmp / "after-sync", ignore_errors=True)
    config = AuditConfig(base_path=tmp / "after-sync", stream_id="bench", durable_event_types=())
    other = os.open(tmp / "after-sync-other", _RAW_FLAGS, 0o640)
    raw = os.open(tmp / "after-sync-raw.jsonl", _RAW_FLAGS, 0o640)
    clock = time.perf_counter_ns
    samples: dict[str, list[int]] = {"emit_warm": [], "emit_after": [], "write_warm": [], "write_after": [],
                                     "check_after": []}
    raw_path = str(tmp / "after-sync-raw.jsonl")
    identity = file_identity(raw)
    try:
        with AuditEventEmitter(config) as emitter:
            emit = emitter.emit_trade
            for i in range(events):
                for after in (False, True):
                    if after:
                        os.write(other, b"\n")
                        os.fdatasync(other)
                    start = clock()
                    emit("trade.fill", "AuditObserver", "EURUSD.SIM", **{**_TRADE, "order_id": f"O-{i}"})
                    samples["emit_after" if after else "emit_warm"].append(clock() - start)
                for after in (False, True):
                    if after:
                        os.write(other, b"\n")
                        os.fdatasync(other)
                    start = clock()
                    os.write(raw, line)
                    samples["write_after" if after else "write_warm"].append(clock() - start)
                os.write(other, b"\n")
                os.fdatasync(other)
                start = clock()
                lost = file_lost(raw, raw_path, identity)
                samples["check_after"].append(clock() - start)
                assert lost is None, lost
    finally:
        os.close(other)
        os.close(raw)

    def median_us(key: str) -> float:
        values = sorted(samples[key])
        return values[len(values) // 2] / 1000

    return AfterSyncResult(events, median_us("emit_warm"), median_us("emit_after"), median_us("write_warm"),
                           median_us("write_after"), median_us("check_after"))


def sample_line(tmp: Path) -> bytes:
    """One real durable trade record, as the emitter writes it."""
    with AuditEventEmitter(AuditConfig(base_path=tmp / "sample", stream_id="sample")) as emitter:
        event = emitter.emit_trade("trade.fill", "AuditObserver", "EURUSD.SIM", **_TRADE)
    return event.to_line()


def run_group_commit(tmp: Path, events: int, rounds: int = 1,
                     max_syncs: tuple[int, ...] = ()) -> list[ThroughputResult]:
    """Every case once per round, baseline and ours interleaved block by block (``bench_threads``);
    each result is the round whose throughput is the median, with every round's figure kept.
    ``max_syncs``: other limits of concurrent syncs to run the durable cases with as well (their cases
    are named ``..._max<N>``), interleaved with the rest."""
    line = sample_line(tmp)
    runs: dict[str, list[ThroughputResult]] = {}
    for _ in range(rounds):
        for threads in THREAD_COUNTS:
            os.sync()
            for result in bench_threads(tmp, threads, events, line, max_syncs):
                runs.setdefault(result.name, []).append(result)
        for batch_size in BATCH_SIZES:
            os.sync()
            result = bench_emit_many(tmp, batch_size, events)
            runs.setdefault(result.name, []).append(result)
    medians = []
    for results in runs.values():
        median = sorted(results, key=lambda r: r.events_per_s)[(len(results) - 1) // 2]
        median.rounds_events_per_s = [round(r.events_per_s, 1) for r in results]
        medians.append(median)
    return medians


# --- report ------------------------------------------------------------------------------------


def one_thread_gap(by_name: dict[str, ThroughputResult], after_sync: AfterSyncResult) -> dict[str, float]:
    """Where the 1-thread durable emit's time per event goes beyond the raw loop's (us per event).

    ``pipeline_after_sync`` is what the emitter's work costs right after a sync, less the raw loop's
    own write there; ``rest`` is the remainder of the gap: the durable path's own work (the sync's
    bookkeeping and the live-file ``lstat``, measured alone as ``live_check_after_sync``) and whatever the
    two runs differ by (noise included).
    """
    raw_us = 1e6 / by_name["raw_write_fdatasync_1t"].events_per_s
    ours_us = 1e6 / by_name["emit_trade_durable_1t"].events_per_s
    pipeline = after_sync.emit_us_after_sync - after_sync.raw_write_us_after_sync
    return {"raw_us_per_event": round(raw_us, 1), "durable_us_per_event": round(ours_us, 1),
            "gap_us": round(ours_us - raw_us, 1), "pipeline_after_sync_us": round(pipeline, 1),
            "rest_us": round(ours_us - raw_us - pipeline, 1),
            "live_check_after_sync_us": round(after_sync.live_check_us_after_sync, 1),
            "ratio_if_pipeline_ran_warm": round(raw_us / (ours_us - after_sync.emit_us_after_sync
                                                         + after_sync.emit_us_warm), 3)}


def build_group_report(results: list[ThroughputResult], base: dict[str, Any], events: int, rounds: int,
                       load_at_start: list[float], after_sync: AfterSyncResult | None = None) -> dict[str, Any]:
    """The JSON report; ``base`` gives ``command``, ``date_utc`` and ``machine``."""

    by_name = {r.name: r for r in results}
    rate = {name: r.events_per_s for name, r in by_name.items()}
    vs_raw = {str(t): round(rate[f"emit_trade_durable_{t}t"] / rate[f"raw_write_fdatasync_{t}t"], 3)
              for t in THREAD_COUNTS}
    rate.update({f"emit_trade_durable_{t}t_max{_group_commit.MAX_CONCURRENT_SYNCS}": rate[f"emit_trade_durable_{t}t"]
                 for t in THREAD_COUNTS})
    singles = rate["emit_trade_durable_1t"]
    vs_singles = {str(b): round(rate[f"emit_many_durable_batch_{b}"] / singles, 3) for b in BATCH_SIZES}
    machine = dict(base["machine"], load_average_at_start=load_at_start, load_average_at_end=load_average())
    extra: dict[str, Any] = {}
    sweep = sorted({int(name.rsplit("_max", 1)[1]) for name in by_name if "_max" in name})
    if sweep:
        extra["ratio_vs_raw_by_max_concurrent_syncs"] = {
            str(m): {str(t): round(rate[f"emit_trade_durable_{t}t_max{m}"] / rate[f"raw_write_fdatasync_{t}t"], 3)
                     for t in THREAD_COUNTS}
            for m in (_group_commit.MAX_CONCURRENT_SYNCS, *sweep)
        }
    if after_sync is not None:
        extra |= {"after_sync": vars(after_sync), "one_thread_gap": one_thread_gap(by_name, after_sync)}
    return {
        "benchmark": "group_commit",
        "command": base["command"],
        "date_utc": base["date_utc"],
        "machine": machine,
        "events_per_case": events,
        "rounds": rounds,
        "method": (
            "N threads share one emitter and emit durable trade.fill events (each returns after its record "
            "is synced); wall time from a barrier to the last join, summed over blocks of "
            f"{BLOCK_EVENTS} events, the baseline's and ours interleaved (order alternating). Baseline: "
            "os.write + os.fdatasync per event of the same bytes on one shared O_APPEND fd, same thread "
            "counts, same run and disk. Batches: the same number of durable trades on one thread through "
            "emit_many (events built in the timed loop), against the single durable emits. Each figure is "
            "the median round."
        ),
        "cases": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in vars(r).items()} for r in results],
        "ratio_vs_raw_same_threads": vs_raw,
        "batch_ratio_vs_single_durable_emits": vs_singles,
        "targets": [
            make_target(f"durable_{t}t_vs_raw", f"durable emit_trade / raw write+fdatasync per event, {t} thread(s)",
                    vs_raw[str(t)], ">=", limit, "x")
            for t, limit in TARGET_RATIOS.items()
        ],
        **extra,
    }


def render_group_markdown(report: dict[str, Any]) -> str:

    machine = report["machine"]
    lines = [
        "# Ledgerline group commit: durable trade throughput",
        "",
        f"`{report['command']['python']}`, {report['date_utc']}, {machine['cpu_count']} CPUs, "
        f"{machine['filesystem']}, {report['events_per_case']:,} events per case, {report['rounds']} round(s), "
        f"load average {machine['load_average_at_start']} at start, {machine['load_average_at_end']} at end.",
        "",
        report["method"],
        "",
        "| case | threads | events | seconds | events/s (median) | every round | fdatasyncs | events per sync "
        "| waits on another's sync | CPU us per event |",
        "|---|--:|--:|--:|--:|---|--:|--:|--:|--:|",
    ]
    for case in report["cases"]:
        every = ", ".join(f"{x:,.0f}" for x in case["rounds_events_per_s"])
        lines.append(
            f"| {case['name']} | {case['threads']} | {case['events']:,} | {case['seconds']:.3f} "
            f"| {case['events_per_s']:,.0f} | {every} | {case['syncs']:,} | {case['events_per_sync']:.2f} "
            f"| {'-' if case.get('sync_waits') is None else format(case['sync_waits'], ',')} "
            f"| {'-' if case.get('cpu_us_per_event') is None else format(case['cpu_us_per_event'], '.1f')} |"
        )
    lines += ["", "Durable emit throughput / raw write + fdatasync per event, same thread count:", ""]
    lines += [f"- {t} thread(s): {ratio:.2f}x" for t, ratio in report["ratio_vs_raw_same_threads"].items()]
    lines += ["", "emit_many throughput / single durable emit_trade (1 thread):", ""]
    lines += [f"- batches of {b}: {ratio:.2f}x" for b, ratio in report["batch_ratio_vs_single_durable_emits"].items()]
    if "ratio_vs_raw_by_max_concurrent_syncs" in report:
        lines += ["", "Durable emit / raw by the limit of concurrent syncs (MAX_CONCURRENT_SYNCS; "
                  f"shipped: {_group_commit.MAX_CONCURRENT_SYNCS}), threads "
                  + ", ".join(map(str, THREAD_COUNTS)) + ":", ""]
        lines += [f"- at most {m}: " + ", ".join(f"{r:.2f}x" for r in ratios.values())
                  for m, ratios in report["ratio_vs_raw_by_max_concurrent_syncs"].items()]
    if "after_sync" in report:
        after, gap = report["after_sync"], report["one_thread_gap"]
        lines += [
            "", f"Per-event work right after a blocking fdatasync and back to back (medians of {after['events']:,}):",
            "",
            f"- non-durable emit_trade: {after['emit_us_after_sync']:.1f} us after a sync, "
            f"{after['emit_us_warm']:.1f} us back to back",
            f"- the raw loop's os.write: {after['raw_write_us_after_sync']:.1f} us after a sync, "
            f"{after['raw_write_us_warm']:.1f} us back to back",
            f"- the live-file check a durable sync adds (one lstat): {after['live_check_us_after_sync']:.1f} us "
            "after a sync",
            f"- 1 thread: durable {gap['durable_us_per_event']:.1f} us per event, "
            f"raw {gap['raw_us_per_event']:.1f} us: "
            f"gap {gap['gap_us']:.1f} us, of which the emitter's work after a sync (less the raw write) "
            f"{gap['pipeline_after_sync_us']:.1f} us and the rest {gap['rest_us']:.1f} us; "
            f"with that work at its back-to-back cost the ratio would be {gap['ratio_if_pipeline_ran_warm']:.2f}x",
        ]
    lines += ["", "Targets:", ""]
    lines += ["- " + target_line(target) for target in report["targets"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from benchmarks.run import _filesystem_of, _machine_info  # late: run.py imports this module

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_group_commit",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10x fewer events and one round (smoke test)")
    parser.add_argument("--rounds", type=int, default=None, help=f"rounds (default {FULL_ROUNDS}, 1 with --quick)")
    parser.add_argument("--max-syncs", type=int, nargs="+", default=[], metavar="N",
                        help="also run the durable cases with at most N concurrent syncs (policy comparison)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"results directory (default {RESULTS_DIR})")
    args = parser.parse_args(argv)
    events = FULL_EVENTS // (10 if args.quick else 1)
    rounds = args.rounds or (1 if args.quick else FULL_ROUNDS)
    load_at_start = load_average()
    with scratch_dir("group-") as tmp:
        print(f"group commit benchmark: {events:,} durable events per case, {rounds} round(s), "
              f"load average {load_at_start}", file=sys.stderr)
        results = run_group_commit(tmp, events, rounds, tuple(args.max_syncs))
        after_sync = bench_after_sync(tmp, events, sample_line(tmp))
        filesystem = _filesystem_of(tmp)
    base = {
        "command": {"python": "python -m benchmarks.bench_group_commit" + (" --quick" if args.quick else ""),
                    "argv": sys.argv[1:] if argv is None else list(argv)},
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": _machine_info(filesystem),
    }
    report = build_group_report(results, base, events, rounds, load_at_start, after_sync)
    markdown = render_group_markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "group_commit.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "group_commit.md").write_text(markdown, encoding="utf-8")
    print(markdown, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
