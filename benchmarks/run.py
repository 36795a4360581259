"""Run the benchmarks; write ``emit_latency.{json,md}`` and ``group_commit.{json,md}``.

Usage (from the repo root)::

    make bench                      # same as: python -m benchmarks.run
    python -m benchmarks.run --quick --out /tmp/bench   # 10x fewer events, for smoke tests

Scratch files go to ``benchmarks/results/tmp/`` (same disk as the repo) and are removed afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import bench_group_commit as group_commit
from benchmarks._machine import load_average
from benchmarks._scratch import scratch_dir
from benchmarks._targets import make_target, target_line
from benchmarks.bench_emit import CaseResult, as_json, run_all, structlog_serializer

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FULL_EVENTS = 200_000
FULL_DURABLE_EVENTS = 5_000

# Targets for the emitter.
P50_TARGET_US = 5.0
P99_TARGET_US = 8.0
THROUGHPUT_TARGET = 200_000.0
DURABLE_P99_MAX_RATIO = 1.2
CHECKPOINT_ADDED_P50_US = 1.0  # stream checkpoints may add at most this to non-durable emit p50
# Issue 18: against baselines of the same run, not absolute microseconds.
P50_VS_HAND_FLOOR = 2.0  # emit_param_change p50 / the hand-written floor's p50 (same bytes, same checks)
P99_VS_RAW_WRITE = 2.0  # emit_param_change p99 / raw os.write p99


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10x fewer events (smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"results directory (default {RESULTS_DIR})")
    args = parser.parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else list(argv)

    scale = 10 if args.quick else 1
    events, durable_events = FULL_EVENTS // scale, FULL_DURABLE_EVENTS // scale

    group_events = group_commit.FULL_EVENTS // scale
    group_rounds = 1 if args.quick else group_commit.FULL_ROUNDS
    with scratch_dir("emit-") as tmp:
        print(f"emit benchmark: {events:,} non-durable + {durable_events:,} durable events in {tmp}", file=sys.stderr)
        results = run_all(tmp, events, durable_events)
        group_load = load_average()
        print(f"group commit benchmark: {group_events:,} durable events per case, {group_rounds} round(s), "
              f"load average {group_load}", file=sys.stderr)
        group = group_commit.run_group_commit(tmp, group_events, group_rounds)
        after_sync = group_commit.bench_after_sync(tmp, group_events, group_commit.sample_line(tmp))
        filesystem = _filesystem_of(tmp)

    report = build_report(results, argv_used, args.quick, events, durable_events, filesystem)
    markdown = render_markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "emit_latency.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "emit_latency.md").write_text(markdown, encoding="utf-8")
    print(markdown, end="")

    group_report = group_commit.build_group_report(group, report, group_events, group_rounds, group_load,
                                                   after_sync)
    group_markdown = group_commit.render_group_markdown(group_report)
    (args.out / "group_commit.json").write_text(json.dumps(group_report, indent=2) + "\n", encoding="utf-8")
    (args.out / "group_commit.md").write_text(group_markdown, encoding="utf-8")
    print(group_markdown, end="")
    return 0


# --- report ------------------------------------------------------------------------------------


def build_report(
    results: dict[str, CaseResult], argv: list[str], quick: bool, events: int, durable_events: int, filesystem: str
) -> dict[str, Any]:
    emit, trade = results["emit_param_change"], results["emit_trade_durable"]
    ratios = {
        f"{a}/{b}": {
            "p50": results[a].p50_us / results[b].p50_us,
            "p99": results[a].p99_us / results[b].p99_us,
            "p99.9": results[a].p999_us / results[b].p999_us,
        }
        for a, b in [
            ("emit_param_change", "raw_write"),
            ("emit_param_change", "pydantic_floor"),
            ("emit_param_change", "hand_floor"),
            ("emit_param_change_after_wait", "hand_floor_after_wait"),
            ("emit_param_change", "logging_json"),
            ("emit_param_change", "structlog_json"),
            ("emit_trade_durable", "raw_write_fdatasync"),
            ("emit_checkpoints_on", "emit_checkpoints_off"),
        ]
    }
    checkpoints_on, checkpoints_off = results["emit_checkpoints_on"], results["emit_checkpoints_off"]
    raw_sync_p99 = results["raw_write_fdatasync"].p99_us
    hand, raw = results["hand_floor"], results["raw_write"]
    targets = [
        make_target("emit_p50_vs_hand_floor", "non-durable emit p50 / hand-written floor p50 (same bytes, same checks)",
                emit.p50_us / hand.p50_us, "<=", P50_VS_HAND_FLOOR, "x"),
        make_target("emit_p99_vs_raw_write", "non-durable emit p99 / raw os.write p99",
                emit.p99_us / raw.p99_us, "<=", P99_VS_RAW_WRITE, "x"),
        make_target("emit_p50", "non-durable emit p50", emit.p50_us, "<=", P50_TARGET_US, "us"),
        make_target("emit_p99", "non-durable emit p99", emit.p99_us, "<=", P99_TARGET_US, "us"),
        make_target("emit_events_per_s_timed", "non-durable emit events/s, sum of timed calls",
                emit.events_per_s, ">=", THROUGHPUT_TARGET, "events/s"),
        make_target("emit_events_per_s_wall", "non-durable emit events/s, wall clock, no per-call timers",
                emit.wall_events_per_s or 0.0, ">=", THROUGHPUT_TARGET, "events/s"),
        make_target("checkpoint_added_p50", "stream checkpoints' added non-durable emit p50 (on - off, same run)",
                checkpoints_on.p50_us - checkpoints_off.p50_us, "<=", CHECKPOINT_ADDED_P50_US, "us"),
        make_target("durable_p99_vs_raw", f"durable emit p99 <= {DURABLE_P99_MAX_RATIO}x raw write+fdatasync p99",
                trade.p99_us, "<=", DURABLE_P99_MAX_RATIO * raw_sync_p99, "us"),
    ]
    return {
        "benchmark": "emit_latency",
        "command": {"make": "make bench", "python": "python -m benchmarks.run", "argv": argv},
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": _machine_info(filesystem),
        "quick": quick,
        "events": {"non_durable": events, "durable": durable_events},
        "method": (
            "one time.perf_counter_ns() pair per call into a preallocated list; gc enabled, gc.collect() "
            "after each case's warm-up; nearest-rank percentiles; events_per_s = count / sum of timed calls"
        ),
        "structlog_serializer": structlog_serializer()[0],
        "cases": {name: as_json(result) for name, result in results.items()},
        "ratios": {key: {k: round(v, 3) for k, v in value.items()} for key, value in ratios.items()},
        "targets": targets,
    }


def render_markdown(report: dict[str, Any]) -> str:
    machine, counts, cases = report["machine"], report["events"], report["cases"]
    quick = " --quick" if report["quick"] else ""
    lines = [
        "# Ledgerline emit latency",
        "",
        f"`make bench` (`python -m benchmarks.run{quick}`), {report['date_utc']}, "
        f"Python {machine['python_version']}, {machine['platform']}, {machine['cpu_count']} CPUs, "
        f"scratch files on {machine['filesystem']}.",
        f"{counts['non_durable']:,} non-durable and {counts['durable']:,} durable events per case; "
        f"gc enabled; structlog serializer: {report['structlog_serializer']}. "
        f"Harness overhead (timed no-op) p50 {cases['timer_overhead']['p50_us']:.3f} us, not subtracted.",
        "",
        "| case | events | p50 us | p99 us | p99.9 us | mean us | max us | events/s (timed) "
        "| events/s (wall) | bytes/event |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, case in cases.items():
        if name == "timer_overhead":
            continue
        wall = f"{case['wall_events_per_s']:,.0f}" if case["wall_events_per_s"] else "-"
        size = f"{case['bytes_per_event']:.0f}" if case["bytes_per_event"] else "-"
        lines.append(
            f"| {name} | {case['count']:,} | {case['p50_us']:.2f} | {case['p99_us']:.2f} | {case['p999_us']:.2f} "
            f"| {case['mean_us']:.2f} | {case['max_us']:.1f} | {case['events_per_s']:,.0f} | {wall} | {size} |"
        )
    lines += ["", "| ratio | p50 | p99 | p99.9 |", "|---|--:|--:|--:|"]
    for key, ratio in report["ratios"].items():
        lines.append(f"| {key} | {ratio['p50']:.2f}x | {ratio['p99']:.2f}x | {ratio['p99.9']:.2f}x |")
    lines += ["", "Targets:", ""]
    for target in report["targets"]:
        lines.append("- " + target_line(target))
    return "\n".join(lines) + "\n"


# --- machine -----------------------------------------------------------------------------------


def _machine_info(filesystem: str) -> dict[str, Any]:
    versions = {}
    for dist in ("ledgerline", "pydantic", "pydantic-core", "structlog", "python-json-logger"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "filesystem": filesystem,
        "packages": versions,
    }


def _filesystem_of(path: Path) -> str:
    """``"ext4 on /dev/vda"`` for the mount holding ``path`` (Linux), else ``"unknown"``."""
    try:
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            entries = [line.split()[:3] for line in mounts]
    except OSError:
        return "unknown"
    resolved = str(path.resolve())
    best = ("", "unknown", "")
    for device, mount_point, fs_type in entries:
        inside = resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best[0]):
            best = (mount_point, fs_type, device)
    return f"{best[1]} on {best[2]}" if best[0] else "unknown"


if __name__ == "__main__":
    sys.exit(main())
