"""Evidence bundle size and export/verify time: a day of the demo trail and a day of a generated trail.

Cases: the demo trail (a signed NautilusTrader backtest, ``examples.adaptive_backtest``), one day,
every ``param.*`` change; and a ``benchmarks.trail_gen`` trail of ``--events`` events over 30 days
(unsigned: its checkpoints are ``ledgerline-unsigned`` notes, so its claim is ``unauthenticated``; a
signature line adds under 100 bytes per stream), one day, the changes of one parameter. Each
complete and redacted. The baseline, measured in the same run, is the day's records as JSONL (what
a bundle of raw lines with no proof would hold) and the time to read and SHA-256 every line of the
trail's hot files (the floor of any export that checks the lines it ships).

Usage::

    python -m benchmarks.bench_bundle                     # 1,000,000 events, 3 rounds
    python -m benchmarks.bench_bundle --events 20000 --rounds 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
NS = 1_000_000_000
DAY_NS = 86_400 * NS


def _timed(fn: Any, rounds: int) -> tuple[float, Any]:
    seconds, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def _day_jsonl_bytes(hot: Path, start_ns: int, end_ns: int) -> tuple[int, int]:
    """Bytes and records of the hot lines recorded in ``[start_ns, end_ns)``: the no-proof baseline."""
    from audit_core.evidence.bundle_format import read_record

    size = count = 0
    for path in sorted(hot.glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            record = read_record(line)
            if record is not None and record.ts_recorded is not None and start_ns <= record.ts_recorded < end_ns:
                size += len(line) + 1
                count += 1
    return size, count


def _hash_all(hot: Path) -> int:
    lines = 0
    for path in sorted(hot.glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            hashlib.sha256(b"\x00" + line).digest()
            lines += 1
    return lines


def measure(name: str, trail: Path, out: Path, rounds: int, *, start_ns: int, selection: dict[str, Any],
            public_key: Any = None) -> list[dict[str, Any]]:
    from audit_core.evidence import export_bundle, verify_bundle

    hot = trail / "hot"
    day_bytes, day_records = _day_jsonl_bytes(hot, start_ns, start_ns + DAY_NS)
    floor_s, lines = _timed(lambda: _hash_all(hot), rounds)
    cases = []
    for redact in (False, True):
        target = out / f"{name}-{'redacted' if redact else 'complete'}.bundle"
        export_s, _ = _timed(lambda target=target, redact=redact: export_bundle(
            trail, target, start_ns=start_ns, end_ns=start_ns + DAY_NS, redact=redact, **selection), rounds)
        verify_s, report = _timed(lambda target=target: verify_bundle(target, public_key=public_key), rounds)
        streams = report.streams
        cases.append({
            "name": f"{name}_{'redacted' if redact else 'complete'}", "trail": name, "redacted": redact,
            "selection": selection, "claim": report.claim, "bundle_bytes": target.stat().st_size,
            "day_jsonl_bytes": day_bytes, "day_records": day_records,
            "size_vs_day_jsonl": round(target.stat().st_size / day_bytes, 4),
            "positions": sum(s.end - s.first for s in streams if s.end is not None and s.first is not None),
            "matching": sum(s.matching for s in streams), "redacted_positions": sum(s.redacted for s in streams),
            "export_s": round(export_s, 4), "verify_s": round(verify_s, 4),
            "trail_lines": lines, "hash_all_lines_s": round(floor_s, 4),
            "export_vs_hash_all": round(export_s / floor_s, 3),
        })
    return cases


def run(events: int, rounds: int, work: Path) -> dict[str, Any]:
    from audit_core.trust.signing import generate_keypair, load_public_key
    from benchmarks.trail_gen import DEFAULT_START, generate_trail
    from examples.adaptive_backtest import START_NS, run_backtest

    loads = [os.getloadavg()[0]]
    demo = work / "demo"
    demo.mkdir(parents=True)
    generate_keypair(demo / "writer.key", demo / "writer.pub")
    run_backtest(demo / "trail", signing_key_path=demo / "writer.key")
    out = work / "bundles"
    out.mkdir()
    cases = measure("demo", demo / "trail", out, rounds, start_ns=START_NS + 2 * DAY_NS,
                    selection={"event_types": ["param.*"]}, public_key=load_public_key(demo / "writer.pub"))
    loads.append(os.getloadavg()[0])
    generated = work / "generated"
    generate_trail(generated, events=events, days=30, seed=1, convert=False)
    day = int(DEFAULT_START.timestamp()) * NS + 14 * DAY_NS
    cases += measure("generated", generated, out, rounds, start_ns=day, selection={"params": ["risk_multiplier"]})
    loads.append(os.getloadavg()[0])
    from benchmarks.run import _filesystem_of, _machine_info

    machine = _machine_info(_filesystem_of(work))
    return {
        "benchmark": "bundle",
        "command": {"python": "python -m benchmarks.bench_bundle", "argv": []},
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "method": (
            f"demo: the `make demo` backtest trail (signed), day 3, event types param.*; generated: a "
            f"benchmarks.trail_gen trail of {events:,} events over 30 days (unsigned), day 15, parameter "
            f"risk_multiplier. Each complete and redacted; median of {rounds} round(s) of export_bundle and "
            "verify_bundle (library calls, one process). Baselines from the same run: the day's records as "
            "JSONL, and reading + SHA-256 of every line of the trail's hot files."
        ),
        "events": events,
        "rounds": rounds,
        "load_average_during": [round(min(loads), 2), round(max(loads), 2)],
        "cases": cases,
    }


def readme_table(report: dict[str, Any]) -> str:
    """The table ``benchmarks.readme`` puts between the README's ``results:bundle`` markers."""
    argv = " ".join(report["command"]["argv"])
    command = report["command"]["python"] + (f" {argv}" if argv else "")
    lines = [
        f"`{command}`, {report['date_utc'][:10]}, generated trail of {report['events']:,} events, "
        f"{report['machine']['cpus_usable']} CPUs, load average {report['load_average_during'][0]}-"
        f"{report['load_average_during'][1]} during the run:",
        "",
        "| bundle | claim | positions | matching | redacted | bundle KB | day's JSONL KB | size / JSONL "
        "| export s | verify s | export / hash all lines |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for case in report["cases"]:
        selection = ", ".join(f"{key} {' '.join(value)}" for key, value in case["selection"].items())
        lines.append(
            f"| {case['trail']} day, {selection}, {'redacted' if case['redacted'] else 'complete'} | "
            f"{case['claim']} | {case['positions']:,} | {case['matching']:,} | {case['redacted_positions']:,} | "
            f"{case['bundle_bytes'] / 1024:,.1f} | {case['day_jsonl_bytes'] / 1024:,.1f} | "
            f"{case['size_vs_day_jsonl']:.2f}x | {case['export_s']:.2f} | {case['verify_s']:.2f} | "
            f"{case['export_vs_hash_all']:.2f}x |")
    return "\n".join(lines) + "\n"


def render_markdown(report: dict[str, Any]) -> str:
    return "\n".join(["# Evidence bundles: size and time", "", report["method"], "",
                      readme_table(report).rstrip(), ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_bundle", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the generated trail (default 1M)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per case; the median is reported (default 3)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"results directory (default {RESULTS_DIR})")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-bundle-") as work:
        report = run(args.events, args.rounds, Path(work))
    report["command"]["argv"] = sys.argv[1:] if argv is None else list(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bundle.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "bundle.md").write_text(render_markdown(report), encoding="utf-8")
    print(render_markdown(report), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
