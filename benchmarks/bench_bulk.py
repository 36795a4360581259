"""Big results: every row of a 30-day trail into pandas, beside DuckDB's own Arrow-to-pandas on the same files.

Usage (from the repo root)::

    python -m benchmarks.bench_bulk                          # 1M events over 30 days
    python -m benchmarks.bench_bulk --events 1000000 --stock # also Ibis 12's own to_pandas, once
    python -m benchmarks.bench_bulk --quick --out /tmp/bench # 10k events over 3 days (smoke test)

The trail is generated once (``benchmarks/trail_gen.py``, through the real emitter and converter)
and cached under ``benchmarks/.cache``. Cases:

- ``query_time_range``: ``AuditQuery(trail).query_time_range(first day, last day + 1, limit=None)``,
  every row in chronological order, its default columns (``trail.events`` without ``payload``).
- ``events``: ``trail.events.to_pandas()``, every column of ``trail.events`` (``payload`` too).
- ``filter``: ``trail.filter(start=, end=)`` over the whole trail, ``to_pandas()``.

Each beside the exact reference the issue names: DuckDB reading the same Parquet files with the
same columns, predicates and order, then ``.arrow()`` to pandas with ``types_mapper=pd.ArrowDtype``
(``fetchdf()`` is not exact: it turns DECIMAL(38,18) into float64). Every run of every side is a
fresh subprocess, so that its peak RSS (``ru_maxrss``) is its own; imports and ``open_trail`` are
not timed (their RSS is reported as the baseline). Sides alternate (ours, reference, ours, ...), one
warm-up run each, then the median of ``--runs``. The sides' results are compared (rows, columns,
order of ``ts_event``, NULL counts and decimal sums). Writes ``bulk.json`` and ``bulk.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks._machine import load_average, machine
from benchmarks.trail_gen import CACHE_DIR, cached_trail

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
NS_PER_DAY = 86_400 * 10**9
#: Issue 14's targets: within 1.5x of the reference, and at most 1.5 GB (10^9 bytes) peak RSS.
MAX_RATIO = 1.5
MAX_PEAK_BYTES = 1.5e9
CASES = {
    "query_time_range": "`AuditQuery.query_time_range(..., limit=None)`, in order, default columns",
    "events": "`trail.events.to_pandas()`, every column",
    "filter": "`trail.filter(start=, end=).to_pandas()`, whole window",
}
HIVE = "hive_partitioning=true, hive_types={'year': INTEGER, 'month': INTEGER, 'day': INTEGER}"


# ---------------------------------------------------------------- one run, in a child process


def _window(trail: Any) -> tuple[int, int]:
    """The whole trail as a window of whole UTC days: [first day, last day + 1)."""
    events = trail.events
    first, last = (int(v) for v in events.aggregate(a=events.ts_event.min(), b=events.ts_event.max())
                   .to_pyarrow().to_pylist()[0].values())
    return first // NS_PER_DAY * NS_PER_DAY, (last // NS_PER_DAY + 1) * NS_PER_DAY


def _reference_sql(cold: Path, columns: list[str], start: int, end: int, case: str) -> str:
    """The hand-written DuckDB query of a case: the same columns, predicates and order as ours."""
    select = ", ".join("CAST(make_timestamp_ns(ts_event) AS TIMESTAMPTZ) AS time" if c == "time" else c
                       for c in columns)
    source = str(cold / "year=*/month=*/day=*/*.parquet").replace("'", "''")
    sql = f"SELECT {select} FROM read_parquet('{source}', {HIVE})"
    if case in ("query_time_range", "filter"):
        sql += f" WHERE ts_event >= {start} AND ts_event < {end}"
    if case == "query_time_range":
        sql += " ORDER BY ts_event, stream, sequence"
    return sql


def run_child(case: str, side: str, base: Path) -> dict[str, Any]:
    """One timed run of ``case`` (``ours``, ``reference`` or ``stock``); prints and returns its JSON."""
    import resource

    import pandas as pd

    from benchmarks.trail_gen import open_unverified
    from workbench import AuditQuery

    trail = open_unverified(base)
    start, end = _window(trail)
    default = [c for c in trail.events.columns if c != "payload"]
    columns = default if case == "query_time_range" else list(trail.events.columns)
    reference = _reference_sql(base / "cold", columns, start, end, case)
    if side == "reference":
        import duckdb

        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        run = lambda: _arrow_to_pandas(con.sql(reference).arrow())  # noqa: E731
    elif side == "stock":  # Ibis 12's own DuckDB execute, for the record of what this replaced
        from ibis.backends.duckdb import Backend as StockDuckDB

        from workbench._columns import chronological

        expr = chronological(trail.filter(start=start, end=end)).select(*default)
        run = lambda: StockDuckDB.execute(trail.backend, expr)  # noqa: E731
    elif case == "query_time_range":
        run = lambda: AuditQuery(trail).query_time_range(start, end, limit=None)  # noqa: E731
    elif case == "events":
        run = trail.events.to_pandas
    else:
        run = lambda: trail.filter(start=start, end=end).to_pandas()  # noqa: E731
    baseline = _rss_mib()
    started = time.perf_counter()
    frame = run()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert isinstance(frame, pd.DataFrame)
    result = {"case": case, "side": side, "seconds": seconds, "peak_rss_mib": peak, "baseline_rss_mib": baseline,
              **_fingerprint(frame, ordered=case == "query_time_range")}
    print(json.dumps(result))
    return result


def _arrow_to_pandas(arrow: Any) -> Any:
    """DuckDB's ``.arrow()`` result to pandas, ArrowDtype columns (a Table in DuckDB 1.x before 1.4, a reader since)."""
    import pandas as pd

    if hasattr(arrow, "read_pandas"):
        return arrow.read_pandas(types_mapper=pd.ArrowDtype)
    return arrow.to_pandas(types_mapper=pd.ArrowDtype)


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _fingerprint(frame: Any, *, ordered: bool) -> dict[str, Any]:
    """What two sides' frames must agree on: rows, columns, NULLs, decimal sums, the ts_event order."""
    import hashlib

    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    nulls, sums = {}, {}
    for name in frame.columns:
        column = frame[name]
        nulls[name] = int(column.isna().sum())
        if isinstance(column.dtype, pd.ArrowDtype) and pa.types.is_decimal(column.dtype.pyarrow_dtype):
            sums[name] = str(pc.sum(pa.array(column)).as_py())
    ts_event = frame["ts_event"].to_numpy(dtype="int64")
    order = hashlib.sha256(ts_event.tobytes()).hexdigest() if ordered else None
    return {"rows": len(frame), "columns": list(frame.columns), "nulls": nulls, "decimal_sums": sums,
            "ts_event_sum": int(ts_event.sum()),  # modulo 2**64: numpy wraps, the same on both sides
            "ts_event_order_sha256": order,
            "object_columns": [str(n) for n, d in frame.dtypes.items() if pd.api.types.is_object_dtype(d)],
            "dtypes": {str(n): str(d) for n, d in frame.dtypes.items()}}


# ---------------------------------------------------------------- the parent: runs, medians, report


def child(case: str, side: str, base: Path) -> dict[str, Any]:
    """Run one case in a fresh interpreter (this repo's code first on the path)."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench_bulk", "--child", case, side, str(base)],
                          cwd=ROOT, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(base: Path, runs: int, warmup: int, stock: bool) -> dict[str, Any]:
    cases: dict[str, Any] = {}
    for case, label in CASES.items():
        samples: dict[str, list[dict[str, Any]]] = {"ours": [], "reference": []}
        for index in range(warmup + runs):
            for side in ("ours", "reference"):  # alternate, so both see the same machine
                result = child(case, side, base)
                if index >= warmup:
                    samples[side].append(result)
        ours, ref = samples["ours"][-1], samples["reference"][-1]
        same = {key: ours[key] == ref[key] for key in ("rows", "columns", "nulls", "decimal_sums", "ts_event_sum",
                                                        "ts_event_order_sha256")}
        seconds = {side: statistics.median(r["seconds"] for r in rs) for side, rs in samples.items()}
        peak = {side: max(r["peak_rss_mib"] for r in rs) for side, rs in samples.items()}
        cases[case] = {
            "label": label, "rows": ours["rows"], "columns": len(ours["columns"]),
            "ours_s": round(seconds["ours"], 3), "reference_s": round(seconds["reference"], 3),
            "ratio": round(seconds["ours"] / seconds["reference"], 2),
            "ours_peak_rss_mib": round(peak["ours"], 1), "reference_peak_rss_mib": round(peak["reference"], 1),
            "ours_baseline_rss_mib": round(max(r["baseline_rss_mib"] for r in samples["ours"]), 1),
            "meets_ratio": seconds["ours"] <= MAX_RATIO * seconds["reference"],
            "meets_peak": peak["ours"] * 2**20 <= MAX_PEAK_BYTES,
            "same": same, "same_result": all(same.values()),
            "object_columns": ours["object_columns"], "dtypes": ours["dtypes"],
            "ours_samples_s": [round(r["seconds"], 3) for r in samples["ours"]],
            "reference_samples_s": [round(r["seconds"], 3) for r in samples["reference"]],
        }
        print(f"  {case:18} ours {seconds['ours']:6.2f} s  reference {seconds['reference']:6.2f} s  "
              f"x{cases[case]['ratio']:.2f}  peak {peak['ours']:.0f} / {peak['reference']:.0f} MiB  "
              f"same result: {cases[case]['same_result']}", file=sys.stderr)
    result: dict[str, Any] = {"cases": cases}
    if stock:
        print("  stock Ibis to_pandas (once) ...", file=sys.stderr)
        run = child("query_time_range", "stock", base)
        result["stock"] = {"seconds": round(run["seconds"], 2), "peak_rss_mib": round(run["peak_rss_mib"], 1),
                           "object_columns": len(run["object_columns"]), "rows": run["rows"],
                           "ts_init_dtype": run["dtypes"].get("ts_init"), "price_dtype": run["dtypes"].get("price")}
    return result


def readme_table(report: dict[str, Any]) -> str:
    """The cases' table and what it rests on: the README's ``results:bulk`` block and the heart of ``bulk.md``."""
    lines = [f"`{report['command']}`, {report['date']}, {report['events']:,} events over {report['days']} days, "
             f"median of {report['runs']} runs per side; load average before and after "
             f"{report['load_average_before_after'][0][0]} / {report['load_average_before_after'][1][0]}:", "",
             "| case | rows x columns | ours | reference | ratio (<= 1.5x) | peak RSS ours / reference "
             "(<= 1.5 GB) | same result |",
             "|---|--:|--:|--:|--:|--:|:-:|"]
    for case in report["cases"].values():
        ratio = f"{case['ratio']:.2f}x" + ("" if case["meets_ratio"] else " **missed**")
        peak = (f"{case['ours_peak_rss_mib']:,.0f} / {case['reference_peak_rss_mib']:,.0f} MiB"
                + ("" if case["meets_peak"] else " **missed**"))
        lines.append(f"| {case['label']} | {case['rows']:,} x {case['columns']} | {case['ours_s']:.2f} s | "
                     f"{case['reference_s']:.2f} s | {ratio} | {peak} | {'yes' if case['same_result'] else 'NO'} |")
    baseline = max(case["ours_baseline_rss_mib"] for case in report["cases"].values())
    lines += ["", f"RSS before the timed call (Python, pandas, pyarrow, DuckDB, Ibis imported, trail opened): "
              f"{baseline:,.0f} MiB at most. Object-dtype columns in our frames: "
              f"{sum(len(c['object_columns']) for c in report['cases'].values())}."]
    if "stock" in report:
        stock = report["stock"]
        lines += ["", f"For the record, Ibis 12's own DuckDB `to_pandas()` of the `query_time_range` expression "
                  f"(one run): {stock['seconds']:.1f} s, {stock['peak_rss_mib']:,.0f} MiB peak, "
                  f"{stock['object_columns']} object columns, `ts_init` {stock['ts_init_dtype']}, "
                  f"`price` {stock['price_dtype']}."]
    return "\n".join(lines) + "\n"


def render_markdown(report: dict[str, Any]) -> str:
    lines = ["# Big results: every row into pandas", "",
             f"Command: `{report['command']}`  ", f"Machine: {report['machine']}  ",
             f"Versions: {', '.join(f'{k} {v}' for k, v in report['versions'].items())}  ",
             f"Load average (1, 5, 15 min) before and after: {report['load_average_before_after']}", "",
             report["method"], "",
             f"## {report['events']:,} events over {report['days']} days", ""]
    return "\n".join(lines) + "\n" + readme_table(report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_bulk", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5, help="measured runs per side and case (median reported)")
    parser.add_argument("--stock", action="store_true", help="also time Ibis 12's own to_pandas once (slow)")
    parser.add_argument("--quick", action="store_true", help="10k events over 3 days, 1 run, no warm-up (smoke test)")
    parser.add_argument("--cache", type=Path, default=CACHE_DIR, help="where generated trails are kept")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--child", nargs=3, metavar=("CASE", "SIDE", "BASE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        case, side, base = args.child
        run_child(case, side, Path(base))
        return 0
    warmup = 1
    if args.quick:
        args.events, args.days, args.runs, warmup = 10_000, 3, 1, 0
    load_before = load_average()
    started = time.perf_counter()
    base = cached_trail(args.events, days=args.days, root=args.cache,
                        progress=lambda n: print(f"  generated {n:,}", file=sys.stderr) if n % 10**6 == 0 else None)
    print(f"{args.events:,} events: trail ready in {time.perf_counter() - started:.1f} s ({base})", file=sys.stderr)
    measured = measure(base, args.runs, warmup, args.stock)
    report = {
        "command": " ".join(["python -m benchmarks.bench_bulk", *(sys.argv[1:] if argv is None else argv)]),
        "date": dt.date.today().isoformat(),
        "load_average_before_after": [load_before, load_average()],
        "machine": machine(),
        "versions": {name: metadata.version(name) for name in ("ibis-framework", "duckdb", "pyarrow", "pandas")},
        "events": args.events, "days": args.days, "runs": args.runs, "warmup": warmup,
        "method": (f"Median of {args.runs} runs per side after {warmup} warm-up run(s); every run a fresh "
                   "subprocess, sides alternating; time is the call alone (imports and `open_trail` excluded), "
                   "peak RSS the subprocess's `ru_maxrss` (largest over its runs). Reference: DuckDB on the same "
                   "Parquet files, the same columns, predicates and order, `.arrow()` then pandas with "
                   "`types_mapper=pd.ArrowDtype`."),
        **measured,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bulk.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    markdown = render_markdown(report)
    (args.out / "bulk.md").write_text(markdown, encoding="utf-8")
    print(markdown, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
