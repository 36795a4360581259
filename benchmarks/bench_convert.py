"""Cold-storage conversion: our verify and verify+convert of a 1M-event hot file against two baselines.

The hot file is written once by the real emitter (a realistic mix of every event type, see
``generate_trail``) into ``benchmarks/results/tmp/convert-cache/`` (gitignored) and reused. Every
case runs in its own fresh subprocess, one after the other in the same run, which reports its wall
time (``time.perf_counter``) and its peak RSS (``ru_maxrss``):

- ``verify``: our fast verification alone (``_bulk_verify.scan_file`` + seal checks).
- ``verify_hot``: ``hot.verifier.verify`` of the hot file, what ``ledgerline verify`` runs on it.
- ``verify_cold``: ``verify_cold`` of the cold store ``verify_convert`` wrote (root, manifest, seal
  copy, Parquet SHA-256, every record's checksum and chain, every typed column derived again).
- ``verify_convert``: ``ParquetConverter.convert_file``: verify + JSON parse + day partitions.
- ``pyarrow``: ``pyarrow.json.read_json`` + ``pq.write_table`` (zstd) alone, no verification. It
  cannot read a field whose JSON type varies from row to row, so ``old_value``/``new_value`` are left
  out (schema inferred on the first 20,000 records without them, the rest ignored).
- ``pyarrow_sha256``: the ``pyarrow`` case plus SHA-256 of every line in Python (``hashlib``, one
  call a line, as a checksum check needs): the floor of converting what you also check.
- ``duckdb``: ``COPY (SELECT * FROM read_json(...)) TO ... (FORMAT PARQUET, COMPRESSION ZSTD)`` alone.

Targets (issue 18), each a ratio within this run: verify+convert reaches >= 0.75x the throughput of
``pyarrow`` (read_json + write_table alone) and >= 1.0x that of ``pyarrow_sha256``; its peak RSS is
at most 1 GB (``VmHWM`` of the case's own process, read from ``/proc/self/status``: ``ru_maxrss``
would carry over the parent's high-water mark through fork and exec); its Parquet is >= 6.5x
smaller than the JSONL. Target (issue 12): cold verification takes at most 1.2x hot ``verify`` of
the same records.

Usage (from the repo root)::

    python -m benchmarks.bench_convert                   # 1M events, writes results/convert.*
    python -m benchmarks.bench_convert --events 20000 --out /tmp/bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._scratch import scratch_dir
from benchmarks._targets import make_target, target_line

ROOT = Path(__file__).resolve().parents[1]
#: Issue 18: verify+convert throughput over pyarrow's (read_json + write_table), and over pyarrow's plus SHA-256.
PYARROW_TARGET = 0.75
PYARROW_SHA256_TARGET = 1.0
#: Issue 18: peak RSS of verify+convert (MB), and JSONL bytes over Parquet bytes.
RSS_TARGET_MB = 1024.0
RATIO_TARGET = 6.5
CASES = ("verify", "verify_hot", "verify_convert", "verify_cold", "pyarrow", "pyarrow_sha256", "duckdb")
COLD_TARGET = 1.2
RESULTS_DIR = Path(__file__).resolve().parent / "results"
CACHE_DIR = RESULTS_DIR / "tmp" / "convert-cache"  # gitignored; the generated hot file is reused
START_NS = 1_767_571_200 * 10**9  # 2026-01-05 00:00:00 UTC
STEP_NS = 100_000_000  # 10 events/s: 1M events span about 28 hours, so two day partitions


class _Clock:
    """Deterministic ts_event: 100 ms apart, with jitter, never decreasing."""

    def __init__(self, seed: int) -> None:
        self.now = START_NS
        self._random = random.Random(seed)

    def __call__(self) -> int:
        self.now += STEP_NS + self._random.randrange(-STEP_NS // 2, STEP_NS // 2)
        return self.now


def generate_trail(base: Path, events: int, seed: int = 7) -> Path:
    """A sealed hot file of ``events`` records written by the real emitter; a realistic mix of types.

    Per 20 events: 6 signals (2 filtered), 4 parameter changes (numeric and weight dicts), 3 orders,
    3 fills, 1 position event, 2 system events with payloads, 1 user-defined event type.
    Returns the hot file.
    """
    from audit_core import AuditConfig, AuditEvent, AuditEventEmitter

    class RiskLimitEvent(AuditEvent):
        event_type_root = "bench_risk"
        limit_name: str
        utilisation: float

    rng = random.Random(seed)
    clock = _Clock(seed)
    config = AuditConfig(base_path=base, rotate_daily=False, sync_writes=False, trader_id="TRADER-007",
                         stream_id="bench")
    instruments = ["EUR/USD.SIM", "GBP/USD.SIM", "USD/JPY.SIM", "AUD/USD.SIM", "BTCUSDT.BINANCE"]
    regimes = ["VENTRAL", "DORSAL", "SYMPATHETIC"]
    with AuditEventEmitter(config, clock=clock) as emitter:
        i = 0
        while i < events:
            for k in range(20):
                if i >= events:
                    break
                instrument = rng.choice(instruments)
                signal_id = f"SIG-{i // 20}"
                order_id = f"O-{i // 20}-{k}"
                if k < 6:
                    acted = k % 3 != 2
                    emitter.emit_signal(
                        "strategy.momentum", rng.choice(["momentum", "mean_reversion", "breakout"]),
                        round(rng.uniform(-3, 3), 6), round(rng.random(), 4), regime=rng.choice(regimes),
                        instrument_id=instrument, acted_on=acted,
                        filter_reason=None if acted else rng.choice(["below_threshold", "cooldown"]),
                        correlation_id=signal_id)
                elif k < 10:
                    if k % 2:
                        old = round(rng.uniform(0.5, 1.5), 4)
                        emitter.emit_param_change("controller.meta", "risk_multiplier", old,
                                                  round(old * rng.uniform(0.9, 1.1), 4), "drawdown",
                                                  event_type="param.risk_change")
                    else:
                        weight = round(rng.random(), 3)
                        emitter.emit_param_change("controller.pp", "strategy_weights",
                                                  {"momentum": 0.5, "mean_reversion": 0.5},
                                                  {"momentum": weight, "mean_reversion": round(1 - weight, 3)},
                                                  "rebalance", event_type="param.weight_change")
                elif k < 13:
                    emitter.emit_trade("trade.order", "sizer", instrument, order_id=order_id,
                                       side=rng.choice(["BUY", "SELL"]), size=str(rng.randrange(1, 100) * 1000),
                                       order_type="MARKET", strategy_source="momentum", correlation_id=signal_id)
                elif k < 16:
                    price = f"{rng.uniform(0.6, 1.9):.5f}"
                    emitter.emit_trade("trade.fill", "observer", instrument, order_id=order_id,
                                       side=rng.choice(["BUY", "SELL"]), size=str(rng.randrange(1, 100) * 1000),
                                       price=price, expected_price=price, slippage_bps="0.0",
                                       commission=f"{rng.uniform(0.1, 5):.2f}", currency="USD",
                                       trade_id=f"T-{i}", venue_order_id=f"V-{i}", liquidity_side="TAKER",
                                       ts_init=clock.now, correlation_id=signal_id)
                elif k < 17:
                    emitter.emit_trade("trade.position_changed", "observer", instrument, position_id=f"P-{instrument}",
                                       side="BUY", size=str(rng.randrange(1, 100) * 1000),
                                       realized_pnl=f"{rng.uniform(-500, 500):.2f}", currency="USD",
                                       avg_px_open=f"{rng.uniform(0.6, 1.9):.5f}", correlation_id=signal_id)
                elif k < 19:
                    emitter.emit_system("sys.regime_change", "controller.regime",
                                        {"from": rng.choice(regimes), "to": rng.choice(regimes),
                                         "score": round(rng.random(), 4)})
                else:
                    emitter.emit(RiskLimitEvent(event_type="bench_risk.utilisation", source="risk",
                                                limit_name="gross", utilisation=round(rng.random(), 4),
                                                ts_event=clock()))
                i += 1
    (path,) = sorted((base / "hot").glob("*.jsonl"))
    return path


def cached_trail(events: int) -> Path:
    """The hot file of ``events`` records, generated once into ``CACHE_DIR``."""
    base = CACHE_DIR / f"events-{events}"
    found = sorted((base / "hot").glob("*.jsonl")) if base.exists() else []
    if len(found) == 1 and Path(str(found[0]) + ".seal").exists():
        return found[0]
    import shutil

    shutil.rmtree(base, ignore_errors=True)
    started = time.perf_counter()
    path = generate_trail(base, events)
    print(f"generated {events:,} events in {time.perf_counter() - started:.1f} s: {path}", file=sys.stderr)
    return path


#: Each case, run as ``python -c`` in a fresh process; prints {"seconds": ..., "rows": ...} as JSON.
#: The pyarrow reference: read the JSON Lines file and write Parquet (the cases below add to it).
_PYARROW = """
import io, itertools, json as json_module
import pyarrow.json as pj, pyarrow.parquet as pq
# pyarrow cannot read a field whose JSON type varies (old_value/new_value: numbers, objects, ...):
# infer the schema of the other fields on a sample and ignore those two, as a baseline must.
with SOURCE.open("rb") as handle:
    sample = [json_module.loads(line) for line in itertools.islice(handle, 20_000)]
sample = "\\n".join(json_module.dumps({k: v for k, v in r.items() if k not in ("old_value", "new_value")})
                      for r in sample).encode()
schema = pj.read_json(io.BytesIO(sample)).schema
options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
table = pj.read_json(SOURCE, parse_options=options)
pq.write_table(table, OUT / "pyarrow.parquet", compression="zstd")
"""
_SHA256_EVERY_LINE = """
import hashlib
sha256, hashed = hashlib.sha256, 0
with SOURCE.open("rb") as handle:
    for line in handle:
        sha256(line).digest()
        hashed += 1
assert hashed == table.num_rows
"""
_ROWS = """out = {"rows": table.num_rows}
"""

_CASE_CODE = {
    "verify": """
from audit_core.cold._bulk_verify import scan_file, verify_scanned
scan = scan_file(SOURCE)
report = verify_scanned(SOURCE, scan)
assert report.ok, report.to_text()
out = {"rows": report.records, "fast_path": scan.clean}
""",
    "verify_hot": """
from audit_core.hot.verifier import verify
report = verify(SOURCE)
assert report.ok, report.to_text()
out = {"rows": report.records}
""",
    "verify_convert": """
from audit_core.cold.converter import ParquetConverter
result = ParquetConverter(SOURCE, OUT).convert_file(SOURCE)
assert result.converted, result.failures
out = {"rows": result.rows, "outputs": result.outputs}
""",
    "verify_cold": """
from audit_core.cold.cold_verify import verify_cold
report = verify_cold(OUT)
assert report.ok, report.to_text()
out = {"rows": report.records}
""",
    "pyarrow": _PYARROW + _ROWS,
    # the same, and a SHA-256 of every line: the least a verifying converter must add
    "pyarrow_sha256": _PYARROW + _SHA256_EVERY_LINE + _ROWS,
    "duckdb": """
import duckdb
con = duckdb.connect()
(rows,) = con.execute(f"COPY (SELECT * FROM read_json('{SOURCE}')) TO '{OUT / 'duckdb.parquet'}' "
                      "(FORMAT PARQUET, COMPRESSION ZSTD)").fetchone()
out = {"rows": rows}
""",
}

#: ``--stages``: verify+convert with each step timed (wall span, the running thread's CPU, and the whole
#: process's CPU over the span, which includes whatever ran beside it: DuckDB's workers, the other thread).
_STAGES = """
import re, threading, time, resource
import audit_core.cold.converter as converter
import audit_core.cold._parquet as parquet
T0 = time.perf_counter()
steps = []

def process_cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

def timed(label, function):
    def run(*args, **kwargs):
        wall, cpu, own = time.perf_counter(), process_cpu(), time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            steps.append({"step": label, "thread": threading.current_thread().name, "start": wall - T0,
                          "end": time.perf_counter() - T0, "thread_cpu": time.thread_time() - own,
                          "process_cpu": process_cpu() - cpu})
    return run

class Timed:  # a DuckDB connection whose every statement is a step, named by its first words
    def __init__(self, con):
        self._con = con
    def execute(self, sql, *args, **kwargs):
        words = re.sub(r"\\s+", " ", sql).strip()
        return timed("sql: " + words[:48], self._con.execute)(sql, *args, **kwargs)
    def __getattr__(self, name):
        return getattr(self._con, name)

connect = converter.bounded_connection
converter.bounded_connection = lambda staging: Timed(connect(staging))
for module, name, label in [
    (converter, "scan_file", "Python: verifying scan of the hot file"),
    (converter, "verify_scanned", "seal checks (full verify if the scan was not clean)"),
    (converter, "stage_partitions", "DuckDB: stage the day files (all of it)"),
    (converter, "publish_partitions", "publish: rename into the partitions"),
    (converter, "write_entry", "manifest entry"),
    (parquet, "id_filter", "id filter (per day)"),
    (parquet, "file_sha256", "SHA-256 of the staged file"),
    (parquet, "fsync_file", "fsync of the staged file"),
]:
    setattr(module, name, timed(label, getattr(module, name)))
columnar = converter._ColumnarPass
columnar._load_file = timed("DuckDB: read, parse, cast into rows", columnar._load_file)
columnar._load = timed("DuckDB: parse fed batches into rows", columnar._load)
columnar.finish = timed("main thread waits for the staging", columnar.finish)
result = converter.ParquetConverter(SOURCE, OUT).convert_file(SOURCE)
assert result.converted, result.failures
out = {"rows": result.rows, "steps": steps}
"""
_CASE_CODE["stages"] = _STAGES  # not in CASES: only with --stages

_RUNNER = """
import json, resource, sys, time
from pathlib import Path
SOURCE, OUT = Path(sys.argv[1]), Path(sys.argv[2])
started = time.perf_counter()
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu_started = usage.ru_utime + usage.ru_stime
{code}
out["seconds"] = time.perf_counter() - started
# CPU time of the case's process, all its threads (DuckDB's, pyarrow's): steadier than wall time on a busy machine.
usage = resource.getrusage(resource.RUSAGE_SELF)
out["cpu_seconds"] = usage.ru_utime + usage.ru_stime - cpu_started
# VmHWM is this process's own high-water mark; ru_maxrss would also hold the parent's (kept through fork + exec).
with open("/proc/self/status") as status:
    hwm = [line.split()[1] for line in status if line.startswith("VmHWM:")]
out["peak_rss_mb"] = int(hwm[0]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def run_case(case: str, source: Path, out: Path) -> dict[str, Any]:
    """Run one case in a fresh interpreter; its wall time, rows and peak RSS."""
    out.mkdir(parents=True, exist_ok=True)
    code = _RUNNER.replace("{code}", _CASE_CODE[case])
    done = subprocess.run([sys.executable, "-c", code, str(source), str(out)], cwd=ROOT, check=True,
                          capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["parquet_bytes"] = sum(path.stat().st_size for path in out.rglob("*.parquet"))
    return result


def run_convert_benchmark(events: int, tmp: Path) -> dict[str, Any]:
    source = cached_trail(events)
    jsonl_bytes = source.stat().st_size
    cases: dict[str, dict[str, Any]] = {}
    for case in CASES:
        print(f"  {case} ...", file=sys.stderr)
        out = tmp / ("verify_convert" if case == "verify_cold" else case)  # the cold store verify_convert wrote
        result = run_case(case, source, out)
        if case == "verify_cold":
            result["parquet_bytes"] = 0  # it reads the store, writes none
        if result["rows"] != events:
            raise AssertionError(f"{case} saw {result['rows']} rows, expected {events}")
        result["events_per_s"] = round(events / result["seconds"], 1)
        result["seconds"] = round(result["seconds"], 3)
        result["cpu_us_per_event"] = round(result["cpu_seconds"] / events * 1e6, 2)
        result["cpu_seconds"] = round(result["cpu_seconds"], 3)
        result["peak_rss_mb"] = round(result["peak_rss_mb"], 1)
        if result["parquet_bytes"]:
            result["size_ratio"] = round(jsonl_bytes / result["parquet_bytes"], 2)
            result["parquet_bytes_per_event"] = round(result["parquet_bytes"] / events, 1)
        cases[case] = result
        if case != "verify_convert":
            shutil.rmtree(out, ignore_errors=True)
    ours = cases["verify_convert"]
    throughput_vs_pyarrow = round(cases["pyarrow"]["seconds"] / ours["seconds"], 2)
    throughput_vs_sha256 = round(cases["pyarrow_sha256"]["seconds"] / ours["seconds"], 2)
    return {
        "benchmark": "convert",
        "command": {"python": "python -m benchmarks.bench_convert", "argv": []},
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": _machine(tmp),
        "method": (
            f"one sealed hot file of {events:,} events from the real emitter ({jsonl_bytes / events:.0f} bytes "
            "per line on average; signals, parameter changes, orders, fills with every execution field, "
            "positions, system events, a user-defined type); each case in a fresh subprocess, run once, "
            "one after the other; wall time from the case's first import to its end; CPU time is the "
            "case process's user + system time over all its threads in that span, per event; peak RSS "
            "is the case process's own VmHWM (not ru_maxrss, which carries the parent's over)."
        ),
        "events": events,
        "jsonl_bytes": jsonl_bytes,
        "cases": cases,
        "ratios": {
            "verify_convert_vs_pyarrow": round(ours["seconds"] / cases["pyarrow"]["seconds"], 2),
            "verify_convert_vs_duckdb": round(ours["seconds"] / cases["duckdb"]["seconds"], 2),
            "throughput_vs_pyarrow": throughput_vs_pyarrow,
            "throughput_vs_pyarrow_sha256": throughput_vs_sha256,
            "verify_share_of_verify_convert": round(cases["verify"]["seconds"] / ours["seconds"], 2),
            "cpu_verify_convert_vs_pyarrow": round(ours["cpu_seconds"] / cases["pyarrow"]["cpu_seconds"], 2),
            "verify_cold_vs_verify_hot": round(cases["verify_cold"]["seconds"] / cases["verify_hot"]["seconds"], 2),
            "verify_cold_vs_verify": round(cases["verify_cold"]["seconds"] / cases["verify"]["seconds"], 2),
        },
        "targets": [
            make_target("throughput_vs_pyarrow", "verify+convert events/s / pyarrow read_json+write_table's",
                        throughput_vs_pyarrow, ">=", PYARROW_TARGET, "x"),
            make_target("throughput_vs_pyarrow_sha256",
                        "verify+convert events/s / pyarrow read_json+write_table+SHA-256 per line's",
                        throughput_vs_sha256, ">=", PYARROW_SHA256_TARGET, "x"),
            make_target("verify_convert_peak_rss_mb", "verify+convert peak RSS (the case's own process)",
                        ours["peak_rss_mb"], "<=", RSS_TARGET_MB, "MB"),
            make_target("size_ratio", "JSONL bytes / Parquet bytes", ours["size_ratio"], ">=", RATIO_TARGET, "x"),
            make_target("verify_cold_vs_verify_hot", "cold verify time / hot verify time (same records)",
                        cases["verify_cold"]["seconds"] / cases["verify_hot"]["seconds"], "<=", COLD_TARGET, "x"),
        ],
    }


def render_markdown(report: dict[str, Any]) -> str:
    argv = " ".join(report["command"]["argv"])
    command = report["command"]["python"] + (f" {argv}" if argv else "")
    machine = report["machine"]
    lines = [
        "# Ledgerline cold storage: verify + convert to Parquet",
        "",
        f"`{command}`, {report['date_utc']}, {machine['cpu_count']} CPUs, {machine['filesystem']}, "
        f"{report['events']:,} events, {report['jsonl_bytes'] / 1e6:,.0f} MB of JSONL; load average at start "
        f"{machine.get('load_average_at_start')} (other work on the CPUs slows every case).",
        "",
        report["method"],
        "",
        "| case | seconds | events/s | CPU us/event | peak RSS MB | Parquet MB | JSONL/Parquet |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for name, case in report["cases"].items():
        parquet = f"{case['parquet_bytes'] / 1e6:,.1f}" if case["parquet_bytes"] else "-"
        ratio = f"{case['size_ratio']:.2f}x" if "size_ratio" in case else "-"
        cpu = f"{case['cpu_us_per_event']:.1f}" if "cpu_us_per_event" in case else "-"
        lines.append(f"| {name} | {case['seconds']:.2f} | {case['events_per_s']:,.0f} | {cpu} "
                     f"| {case['peak_rss_mb']:,.0f} | {parquet} | {ratio} |")
    ratios = report["ratios"]
    lines += [
        "",
        f"- verify+convert takes {ratios['verify_convert_vs_pyarrow']:.2f}x the time of pyarrow read_json + "
        f"write_table and {ratios['verify_convert_vs_duckdb']:.2f}x the time of DuckDB COPY (neither verifies "
        f"anything); verification alone is {ratios['verify_share_of_verify_convert']:.0%} of our time.",
        f"- verify+convert events/s over pyarrow's: {ratios['throughput_vs_pyarrow']:.2f}x; over pyarrow's "
        f"with SHA-256 of every line: {ratios['throughput_vs_pyarrow_sha256']:.2f}x; its CPU time is "
        f"{ratios['cpu_verify_convert_vs_pyarrow']:.2f}x pyarrow's (both cores' worth, steadier under load).",
        f"- cold verification (every record, chain and typed column of the store) takes "
        f"{ratios['verify_cold_vs_verify_hot']:.2f}x the time of hot `verify` of the same records "
        f"({ratios['verify_cold_vs_verify']:.2f}x the converter's fast verification path).",
    ]
    lines += ["- " + target_line(target) for target in report["targets"]]
    return "\n".join(lines) + "\n"


def run_stages(events: int, tmp: Path) -> dict[str, Any]:
    """verify+convert of the cached file with every step timed (``_STAGES``), in a fresh process."""
    import os

    source = cached_trail(events)
    load = [round(x, 2) for x in os.getloadavg()]  # other work on the 2 CPUs skews every step
    result = run_case("stages", source, tmp / "stages")
    result["load_average_at_start"] = load
    return result


def render_stages(result: dict[str, Any], events: int) -> str:
    lines = [
        f"# verify+convert step by step, {events:,} events (wall {result['seconds']:.2f} s, "
        f"CPU {result['cpu_seconds']:.2f} s, peak RSS {result['peak_rss_mb']:.0f} MB; load average at start "
        f"{result['load_average_at_start']})",
        "",
        "Wall span from the case's start; the thread's own CPU; the process's CPU over the span (all "
        "threads: DuckDB's workers and whatever ran beside the step). Statements of one kind are summed.",
        "",
        "| step | thread | start s | end s | wall s | thread CPU s | process CPU s | calls |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for step in result["steps"]:
        key = (step["step"], step["thread"])
        if key not in merged:
            merged[key] = {**step, "wall": 0.0, "calls": 0, "thread_cpu": 0.0, "process_cpu": 0.0}
        row = merged[key]
        row["end"] = max(row["end"], step["end"])
        row["wall"] += step["end"] - step["start"]
        row["calls"] += 1
        row["thread_cpu"] += step["thread_cpu"]
        row["process_cpu"] += step["process_cpu"]
    for row in sorted(merged.values(), key=lambda row: row["start"]):
        if row["wall"] < 0.005:
            continue
        lines.append(f"| {row['step']} | {row['thread']} | {row['start']:.2f} | {row['end']:.2f} | {row['wall']:.2f} "
                     f"| {row['thread_cpu']:.2f} | {row['process_cpu']:.2f} | {row['calls']} |")
    return "\n".join(lines) + "\n"


def _machine(tmp: Path) -> dict[str, Any]:
    from benchmarks.run import _filesystem_of, _machine_info

    info = _machine_info(_filesystem_of(tmp))
    from importlib import metadata

    for dist in ("duckdb", "pyarrow"):
        info["packages"][dist] = metadata.version(dist)
    import os

    info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]  # other work on the 2 CPUs skews it
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_convert", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the hot file (default 1,000,000)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"results directory (default {RESULTS_DIR})")
    parser.add_argument("--stages", action="store_true",
                        help="only time verify+convert step by step (print a table; writes convert_stages.json)")
    args = parser.parse_args(argv)
    if args.stages:
        with scratch_dir("convert-") as tmp:
            stages = run_stages(args.events, tmp)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "convert_stages.json").write_text(json.dumps(stages, indent=2) + "\n", encoding="utf-8")
        print(render_stages(stages, args.events), end="")
        return 0
    with scratch_dir("convert-") as tmp:
        print(f"convert benchmark: {args.events:,} events", file=sys.stderr)
        report = run_convert_benchmark(args.events, tmp)
    report["command"]["argv"] = sys.argv[1:] if argv is None else list(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "convert.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "convert.md").write_text(render_markdown(report), encoding="utf-8")
    print(render_markdown(report), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
