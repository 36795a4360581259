"""Durable trade throughput with 1, 2, 4 and 8 threads against one fdatasync per event, and batches.

Each threads case runs ``threads`` threads that together emit ``events`` durable ``trade.fill``
events on one emitter; every ``emit_trade`` returns only after its record is synced. The baseline,
measured in the same run on the same disk, does one ``os.write`` + ``os.fdatasync`` per event of
the same bytes on one shared ``O_APPEND`` fd, with the same thread counts. The batch cases emit
the same number of trades on one thread through ``emit_many`` in batches of 10 and 100 (one write
and one sync per batch), against the single durable emits of the same round. Every round runs every
case, baseline and ours interleaved; each figure is the median over the rounds.

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
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit_core import AuditConfig, AuditEventEmitter, TradeEvent
from benchmarks._machine import load_average
from benchmarks._targets import make_target, target_line

THREAD_COUNTS = (1, 2, 4, 8)
BATCH_SIZES = (10, 100)
FULL_EVENTS = 8_000
FULL_ROUNDS = 3
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
    rounds_events_per_s: list[float] = field(default_factory=list)


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


def _emitter(tmp: Path, name: str) -> AuditEventEmitter:
    shutil.rmtree(tmp / name, ignore_errors=True)
    return AuditEventEmitter(AuditConfig(base_path=tmp / name, stream_id="bench"))


def _result(name: str, threads: int, total: int, elapsed: float, emitter: AuditEventEmitter | None) -> ThroughputResult:
    if emitter is None:
        return ThroughputResult(name, threads, total, elapsed, total / elapsed, total, 1.0)
    stats = emitter.writer.stats
    return ThroughputResult(name, threads, total, elapsed, total / elapsed, stats.syncs,
                            total / max(stats.syncs, 1), stats.batches, stats.sync_waits)


def bench_emitter(tmp: Path, threads: int, events: int) -> ThroughputResult:
    per_thread = events // threads
    with _emitter(tmp, f"group-{threads}") as emitter:
        emit = emitter.emit_trade

        def work(index: int) -> None:
            for i in range(per_thread):
                emit("trade.fill", "AuditObserver", "EURUSD.SIM", **{**_TRADE, "order_id": f"O-{index}-{i}"})

        elapsed = _run_threads(threads, work)
        result = _result(f"emit_trade_durable_{threads}t", threads, per_thread * threads, elapsed, emitter)
    return result


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

        elapsed = _run_threads(1, work)
        result = _result(f"emit_many_durable_batch_{batch_size}", 1, batches * batch_size, elapsed, emitter)
    return result


def bench_raw_fdatasync(tmp: Path, threads: int, events: int, line: bytes) -> ThroughputResult:
    per_thread = events // threads
    path = tmp / f"raw-{threads}.jsonl"
    path.unlink(missing_ok=True)
    fd = os.open(path, _RAW_FLAGS, 0o640)
    try:

        def work(index: int) -> None:
            for _ in range(per_thread):
                os.write(fd, line)
                os.fdatasync(fd)

        elapsed = _run_threads(threads, work)
    finally:
        os.close(fd)
    return _result(f"raw_write_fdatasync_{threads}t", threads, per_thread * threads, elapsed, None)


def sample_line(tmp: Path) -> bytes:
    """One real durable trade record, as the emitter writes it."""
    with AuditEventEmitter(AuditConfig(base_path=tmp / "sample", stream_id="sample")) as emitter:
        event = emitter.emit_trade("trade.fill", "AuditObserver", "EURUSD.SIM", **_TRADE)
    return event.to_line()


def run_group_commit(tmp: Path, events: int, rounds: int = 1) -> list[ThroughputResult]:
    """Every case once per round, baseline and ours interleaved (their order alternating by round);
    each result is the round whose throughput is the median, with every round's figure kept."""
    line = sample_line(tmp)
    runs: dict[str, list[ThroughputResult]] = {}
    for round_index in range(rounds):
        for threads in THREAD_COUNTS:
            pair = [lambda t=threads: bench_raw_fdatasync(tmp, t, events, line),
                    lambda t=threads: bench_emitter(tmp, t, events)]
            for case in pair if round_index % 2 == 0 else pair[::-1]:
                os.sync()
                result = case()
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


def build_group_report(results: list[ThroughputResult], base: dict[str, Any], events: int, rounds: int,
                       load_at_start: list[float]) -> dict[str, Any]:
    """The JSON report; ``base`` gives ``command``, ``date_utc`` and ``machine``."""

    by_name = {r.name: r for r in results}
    rate = {name: r.events_per_s for name, r in by_name.items()}
    vs_raw = {str(t): round(rate[f"emit_trade_durable_{t}t"] / rate[f"raw_write_fdatasync_{t}t"], 3)
              for t in THREAD_COUNTS}
    singles = rate["emit_trade_durable_1t"]
    vs_singles = {str(b): round(rate[f"emit_many_durable_batch_{b}"] / singles, 3) for b in BATCH_SIZES}
    machine = dict(base["machine"], load_average_at_start=load_at_start, load_average_at_end=load_average())
    return {
        "benchmark": "group_commit",
        "command": base["command"],
        "date_utc": base["date_utc"],
        "machine": machine,
        "events_per_case": events,
        "rounds": rounds,
        "method": (
            "N threads share one emitter and emit durable trade.fill events (each returns after its record "
            "is synced); wall time from a barrier to the last join. Baseline: os.write + os.fdatasync per "
            "event of the same bytes on one shared O_APPEND fd, same thread counts, same run and disk. "
            "Batches: the same number of durable trades on one thread through emit_many (events built in "
            "the timed loop), against the single durable emits. Each round runs every case, baseline and "
            "ours interleaved; each figure is the median round."
        ),
        "cases": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in vars(r).items()} for r in results],
        "ratio_vs_raw_same_threads": vs_raw,
        "batch_ratio_vs_single_durable_emits": vs_singles,
        "targets": [
            make_target(f"durable_{t}t_vs_raw", f"durable emit_trade / raw write+fdatasync per event, {t} thread(s)",
                    vs_raw[str(t)], ">=", limit, "x")
            for t, limit in TARGET_RATIOS.items()
        ],
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
        "| waits on another's sync |",
        "|---|--:|--:|--:|--:|---|--:|--:|--:|",
    ]
    for case in report["cases"]:
        every = ", ".join(f"{x:,.0f}" for x in case["rounds_events_per_s"])
        lines.append(
            f"| {case['name']} | {case['threads']} | {case['events']:,} | {case['seconds']:.3f} "
            f"| {case['events_per_s']:,.0f} | {every} | {case['syncs']:,} | {case['events_per_sync']:.2f} "
            f"| {'-' if case.get('sync_waits') is None else format(case['sync_waits'], ',')} |"
        )
    lines += ["", "Durable emit throughput / raw write + fdatasync per event, same thread count:", ""]
    lines += [f"- {t} thread(s): {ratio:.2f}x" for t, ratio in report["ratio_vs_raw_same_threads"].items()]
    lines += ["", "emit_many throughput / single durable emit_trade (1 thread):", ""]
    lines += [f"- batches of {b}: {ratio:.2f}x" for b, ratio in report["batch_ratio_vs_single_durable_emits"].items()]
    lines += ["", "Targets:", ""]
    lines += ["- " + target_line(target) for target in report["targets"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from benchmarks.run import _filesystem_of, _machine_info  # late: run.py imports this module

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_group_commit",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10x fewer events and one round (smoke test)")
    parser.add_argument("--rounds", type=int, default=None, help=f"rounds (default {FULL_ROUNDS}, 1 with --quick)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"results directory (default {RESULTS_DIR})")
    args = parser.parse_args(argv)
    events = FULL_EVENTS // (10 if args.quick else 1)
    rounds = args.rounds or (1 if args.quick else FULL_ROUNDS)
    load_at_start = load_average()
    tmp_root = RESULTS_DIR / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="group-", dir=tmp_root))
    try:
        print(f"group commit benchmark: {events:,} durable events per case, {rounds} round(s), "
              f"load average {load_at_start}", file=sys.stderr)
        results = run_group_commit(tmp, events, rounds)
        filesystem = _filesystem_of(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            tmp_root.rmdir()  # only if no other run is using it
    base = {
        "command": {"python": "python -m benchmarks.bench_group_commit" + (" --quick" if args.quick else ""),
                    "argv": sys.argv[1:] if argv is None else list(argv)},
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": _machine_info(filesystem),
    }
    report = build_group_report(results, base, events, rounds, load_at_start)
    markdown = render_group_markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "group_commit.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "group_commit.md").write_text(markdown, encoding="utf-8")
    print(markdown, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
