"""Cold Parquet with v1 data pages (what the converter writes) against v2 pages: file size and DuckDB read speed.

Usage (from the repo root)::

    python -m benchmarks.bench_pages                      # the 1M-event trail over 30 days
    python -m benchmarks.bench_pages --events 10000000
    python -m benchmarks.bench_pages --quick --out /tmp/bench   # 10k events over 3 days (smoke test)

The trail's cold files are written again twice, each with the converter's settings
(``audit_core.cold._parquet.COPY_OPTIONS``, ROW_GROUP_SIZE 8192) but one with ``PARQUET_VERSION V1``
and one with ``V2``, which encodes DOUBLE columns as BYTE_STREAM_SPLIT (Spark 4.0's vectorized reader
refuses it). Then the hand-written SQL of every ``bench_workbench`` case, plus a full scan of the
DOUBLE columns, runs on both copies: answers compared equal first, then the median of ``--runs``
warm runs, the two copies alternating. Writes ``pages.json`` and ``pages.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._machine import load_average, machine
from benchmarks.bench_workbench import _middle_day, build_cases, raw_connection
from benchmarks.trail_gen import cached_trail

RESULTS_DIR = Path(__file__).resolve().parent / "results"
COMMAND = "python -m benchmarks.bench_pages"
ROW_GROUP_SIZE = 8_192
#: Every DOUBLE value decoded, folded order-independently: a parallel floating-point ``sum`` depends on the
#: order threads add in, so two identical copies could compare unequal.
FULL_SCAN = ("SELECT count(*), " + ", ".join(
    f"bit_xor(hash({column})), min({column}), max({column})"
    for column in ("signal_value", "confidence", "new_value_num", "old_value_num")) + " FROM ev")


def page_options(version: str) -> str:
    """The converter's COPY options with ``PARQUET_VERSION`` ``version`` (V1 or V2)."""
    from audit_core.cold._parquet import COPY_OPTIONS

    options = [option for option in COPY_OPTIONS.split(", ") if not option.startswith("PARQUET_VERSION")]
    return ", ".join([*options, f"PARQUET_VERSION {version}", f"ROW_GROUP_SIZE {ROW_GROUP_SIZE}"])


def _ms(function: Any) -> float:
    started = time.perf_counter()
    function()
    return (time.perf_counter() - started) * 1000


def rewrite(cold: Path, target: Path, version: str) -> dict[str, Any]:
    """Every Parquet file under ``cold`` written again under ``target`` (same layout) with ``version`` pages."""
    import duckdb

    con = duckdb.connect()
    started = time.perf_counter()
    total = 0
    for file in sorted(cold.glob("year=*/month=*/day=*/*.parquet")):
        out = target / file.relative_to(cold)
        out.parent.mkdir(parents=True, exist_ok=True)
        source, dest = (str(path).replace("'", "''") for path in (file, out))
        con.execute(f"COPY (SELECT * FROM read_parquet('{source}')) TO '{dest}' ({page_options(version)})")
        total += out.stat().st_size
    con.close()
    return {"bytes": total, "write_ms": round((time.perf_counter() - started) * 1000, 1)}


def measure(base: Path, runs: int) -> dict[str, Any]:
    from benchmarks.trail_gen import open_unverified

    columns = list(open_unverified(base).events.columns)
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as scratch:
        copies = {version: Path(scratch) / version for version in ("V1", "V2")}
        written = {version: rewrite(base / "cold", path, version) for version, path in copies.items()}
        cons = {version: raw_connection(path, columns) for version, path in copies.items()}
        day = _middle_day(cons["V1"])
        (order_id,), = cons["V1"].execute(
            f"SELECT order_id FROM ev WHERE event_type = 'trade.position_closed' AND year = {day.year} "
            f"AND month = {day.month} AND day = {day.day} ORDER BY ts_event LIMIT 1").fetchall()
        queries = {case.label: case.raw for case in build_cases(None, day, order_id)}
        queries["full scan of the DOUBLE columns"] = FULL_SCAN
        results = {}
        for label, sql in queries.items():
            answers = {version: con.execute(sql).fetchall() for version, con in cons.items()}
            samples: dict[str, list[float]] = {"V1": [], "V2": []}
            for _ in range(runs):
                for version, con in cons.items():
                    samples[version].append(_ms(lambda con=con, sql=sql: con.execute(sql).fetchall()))
            v1, v2 = (statistics.median(samples[version]) for version in ("V1", "V2"))
            results[label] = {"v1_ms": round(v1, 1), "v2_ms": round(v2, 1), "v1_over_v2": round(v1 / v2, 2),
                              "identical": answers["V1"] == answers["V2"]}
            print(f"  {label:45} v1 {v1:8.1f} ms   v2 {v2:8.1f} ms   x{v1 / v2:.2f}", file=sys.stderr)
        for con in cons.values():
            con.close()
    return {"written": written, "day": day.isoformat(), "queries": results}


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Cold Parquet: v1 data pages (written) against v2 pages",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}  ",
        f"Load average (1, 5, 15 min) before and after: {report['load']}",
        "",
        "The trail's cold files written again with the converter's settings, once with v1 pages and once with "
        "v2 pages (BYTE_STREAM_SPLIT doubles, delta-encoded integers); hand-written DuckDB SQL on each copy, "
        f"answers compared equal, median of {report['runs']} warm runs, copies alternating.",
    ]
    for size in report["sizes"]:
        v1, v2 = size["written"]["V1"], size["written"]["V2"]
        lines += [
            "", f"## {size['events']:,} events (measured day {size['day']})", "",
            f"Size: v1 {v1['bytes'] / 2**20:,.1f} MiB, v2 {v2['bytes'] / 2**20:,.1f} MiB "
            f"(v1 / v2 = {v1['bytes'] / v2['bytes']:.2f}). Write time: v1 {v1['write_ms']:,.0f} ms, "
            f"v2 {v2['write_ms']:,.0f} ms.", "",
            "| query | v1 | v2 | v1 / v2 | same answers |", "|---|--:|--:|--:|:-:|",
        ]
        for label, row in size["queries"].items():
            lines.append(f"| {label} | {row['v1_ms']:,.1f} ms | {row['v2_ms']:,.1f} ms | {row['v1_over_v2']}x | "
                         f"{'yes' if row['identical'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, action="append", help="trail size (repeatable); default 1,000,000")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10k events over 3 days, 3 runs (smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    sizes = [10_000] if args.quick else (args.events or [1_000_000])
    days, runs = (3, 3) if args.quick else (args.days, args.runs)
    load_before = load_average()
    report: dict[str, Any] = {
        "command": COMMAND + (" --quick" if args.quick else "".join(f" --events {n}" for n in args.events or [])),
        "date": dt.date.today().isoformat(), "machine": machine(), "runs": runs, "sizes": [],
    }
    for events in sizes:
        base = cached_trail(events, days=days, progress=lambda n: print(f"  generating: {n:,}", file=sys.stderr))
        print(f"{events:,} events ({base})", file=sys.stderr)
        report["sizes"].append({"events": events, **measure(base, runs)})
    report["load"] = [load_before, load_average()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pages.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "pages.md").write_text(render_markdown(report), encoding="utf-8")
    print(f"wrote {args.out / 'pages.json'} and {args.out / 'pages.md'}", file=sys.stderr)
    return 0 if all(row["identical"] for size in report["sizes"] for row in size["queries"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
