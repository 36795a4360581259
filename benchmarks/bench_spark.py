"""The workbench's analyses on DuckDB and on a local Spark session, same trail, same expressions, same answers.

Usage (from the repo root)::

    python -m benchmarks.bench_spark                      # the 10M-event trail over 30 days
    python -m benchmarks.bench_spark --events 1000000     # another size
    python -m benchmarks.bench_spark --quick --out /tmp/bench   # 10k events over 3 days (smoke test)
    python -m benchmarks.bench_spark --cases incident lifecycle --out /tmp/bench   # chosen cases only

The cases are ``bench_workbench.build_cases`` (1-hour queries, count_by_type, reconstruct_incident,
state_at, signal_conversion, trade_lifecycle) on one ``open_trail`` per engine. Spark runs
``local[2]`` (``workbench._spark.local_session``); its session start-up (JVM, SparkContext) is
measured once, separately, as is ``open_trail`` on each engine. Every case: both engines' answers
must be equal (``to_pyarrow().to_pylist()``, exact decimals) before anything is timed; then 1 warm-up
run each and the median of ``--runs`` warm runs, engines alternating; one more Spark run counts its
jobs (``spark_jobs``: scheduling costs each one). Goal (issue 19): each case on
Spark within ``spark_allowed_ms`` of its DuckDB time (``MAX_RATIO`` times it, or it plus
``MAX_EXTRA_MS``, whichever is larger), on 10M events.
Writes ``spark.json`` and ``spark.md`` to ``--out``; ``python -m benchmarks.readme`` renders
``readme_table`` of ``spark.json`` into the README.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks._machine import load_average, machine
from benchmarks.bench_workbench import _middle_day, build_cases, raw_connection
from benchmarks.trail_gen import CACHE_DIR, cached_trail

RESULTS_DIR = Path(__file__).resolve().parent / "results"
COMMAND = "python -m benchmarks.bench_spark"
#: Goal of issue 19: Spark ``local[2]`` at most ``MAX_RATIO`` times DuckDB, or DuckDB plus ``MAX_EXTRA_MS``
#: (Spark's fixed per-query planning and scheduling), whichever is larger.
MAX_RATIO = 5.0
MAX_EXTRA_MS = 500.0


def spark_allowed_ms(duckdb_ms: float) -> float:
    """The most a case may take on Spark, given its DuckDB time (the goal's one rule)."""
    return max(MAX_RATIO * duckdb_ms, duckdb_ms + MAX_EXTRA_MS)


def _ms(function: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function()
    return (time.perf_counter() - started) * 1000, result


def _cpu_clock(session: Any) -> Any:
    """A function giving the CPU seconds used so far by this process and, if ``session`` is given, its
    JVM (Linux ``/proc``; None where unreadable). On a loaded machine wall times swing with the other
    processes; CPU time still compares the engines."""
    jvm_stat = None
    if session is not None:
        jvm_stat = Path(f"/proc/{session._jvm.java.lang.ProcessHandle.current().pid()}/stat")
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def seconds() -> float | None:
        used = time.process_time()
        if jvm_stat is None:
            return used
        try:
            fields = jvm_stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return used + (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15 of stat)

    return seconds


def _timed(function: Any, clock: Any) -> tuple[float, float | None]:
    """Wall and CPU milliseconds of one call (CPU None where ``clock`` cannot tell)."""
    cpu_before = clock()
    wall, _ = _ms(function)
    cpu_after = clock()
    cpu = None if cpu_before is None or cpu_after is None else (cpu_after - cpu_before) * 1000
    return wall, cpu


def measure(base: Path, backend: Any, startup_ms: float, runs: int,
            cases_wanted: list[str] | None = None) -> dict[str, Any]:
    from benchmarks.trail_gen import open_unverified

    open_duckdb_ms, duck = _ms(lambda: open_unverified(base))
    open_spark_ms, spark = _ms(lambda: open_unverified(base, backend))
    raw = raw_connection(base / "cold", list(duck.events.columns))
    day = _middle_day(raw)
    order_id = raw.execute(
        f"SELECT order_id FROM ev WHERE event_type = 'trade.position_closed' AND year = {day.year} "
        f"AND month = {day.month} AND day = {day.day} ORDER BY ts_event LIMIT 1").fetchall()[0][0]
    raw.close()
    duck_clock, spark_clock = _cpu_clock(None), _cpu_clock(backend._session)
    cases = {engine: build_cases(trail, day, order_id) for engine, trail in (("duckdb", duck), ("spark", spark))}
    names = [case.name for case in cases["duckdb"]]
    unknown = set(cases_wanted or ()) - set(names)
    if unknown:
        raise SystemExit(f"--cases: no case named {sorted(unknown)}; the cases: {names}")
    cases = {engine: [case for case in built if not cases_wanted or case.name in cases_wanted]
             for engine, built in cases.items()}
    results = {}
    for on_duckdb, on_spark in zip(cases["duckdb"], cases["spark"], strict=True):
        first_spark_ms, spark_rows = _ms(on_spark.run)
        duck_rows = on_duckdb.run()
        same = spark_rows.to_pylist() == duck_rows.to_pylist()
        on_duckdb.run()  # warm-up
        on_spark.run()
        duck_samples, spark_samples, duck_cpu, spark_cpu = [], [], [], []
        for _ in range(runs):
            wall, cpu = _timed(on_duckdb.run, duck_clock)
            duck_samples.append(wall)
            duck_cpu.append(cpu)
            wall, cpu = _timed(on_spark.run, spark_clock)
            spark_samples.append(wall)
            spark_cpu.append(cpu)
        duck_ms, spark_ms = statistics.median(duck_samples), statistics.median(spark_samples)
        jobs = spark_jobs(backend._session, on_spark.run)
        results[on_duckdb.name] = {
            "label": on_duckdb.label, "rows": duck_rows.num_rows, "identical": same,
            "duckdb_ms": round(duck_ms, 1), "spark_ms": round(spark_ms, 1), "spark_first_ms": round(first_spark_ms, 1),
            "spark_over_duckdb": round(spark_ms / duck_ms, 1), "spark_jobs": jobs,
            "allowed_ms": round(spark_allowed_ms(duck_ms), 1), "meets_goal": spark_ms <= spark_allowed_ms(duck_ms),
            "duckdb_samples_ms": [round(x, 1) for x in duck_samples],
            "spark_samples_ms": [round(x, 1) for x in spark_samples],
            "duckdb_cpu_ms": _median_or_none(duck_cpu), "spark_cpu_ms": _median_or_none(spark_cpu),
        }
        measured = results[on_duckdb.name]
        print(f"  {on_duckdb.name:18} duckdb {duck_ms:9.1f} ms   spark {spark_ms:9.1f} ms   "
              f"x{spark_ms / duck_ms:.1f}  CPU {measured['duckdb_cpu_ms']} / {measured['spark_cpu_ms']} ms  "
              f"({duck_rows.num_rows} rows, identical: {same}, {jobs} Spark jobs)", file=sys.stderr)
    events = int(duck.events.count().execute())
    duck.backend.disconnect()
    vectorized = str(backend._session.conf.get("spark.sql.parquet.enableVectorizedReader", "true")).lower() == "true"
    return {"events": events, "day": day.isoformat(), "spark_startup_ms": round(startup_ms, 1),
            "vectorized_reader": vectorized,
            "open_trail_ms": {"duckdb": round(open_duckdb_ms, 1), "spark": round(open_spark_ms, 1)},
            "cases": results}


def _median_or_none(samples: list[float | None]) -> float | None:
    known = [sample for sample in samples if sample is not None]
    return round(statistics.median(known), 1) if known and len(known) == len(samples) else None


def spark_jobs(session: Any, function: Any) -> int:
    """How many Spark jobs one call of ``function`` runs (each costs scheduling on top of its work;
    a query's broadcasts, and an ORDER BY's sampling of its input, run as jobs of their own)."""
    context = session.sparkContext
    group = f"ledgerline-bench-{time.perf_counter_ns()}"
    context.setJobGroup(group, "bench_spark: jobs of one case")
    try:
        function()
    finally:
        context._jsc.clearJobGroup()
    return len(context.statusTracker().getJobIdsForGroup(group))


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# The workbench on DuckDB and on Spark",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}  ",
        "Versions: " + ", ".join(f"{name} {version}" for name, version in report["versions"].items()) + "  ",
        f"Spark: `local[2]`, {report['spark_conf']}  ",
        f"Load average (1, 5, 15 min) before and after: {report['load']}",
        "",
        "The same workbench expressions (`to_pyarrow()`) on one `open_trail` per engine. Before timing, each "
        "case's answers on both engines are compared row by row (exact decimals, same order). Median of "
        f"{report['runs']} warm runs after 1 warm-up, engines alternating. The Spark session's start-up (JVM, "
        "SparkContext) is paid once per process and is not in any case's time. CPU: median CPU time of the "
        "same runs, this process's (DuckDB's threads run in it) plus, for Spark, the JVM's (driver and local "
        "executors): comparable under load, when wall times are not.",
    ]
    for size in report["sizes"]:
        lines += [
            "", f"## {size['events']:,} events (measured day {size['day']})", "",
            f"Spark session start-up: {size['spark_startup_ms'] / 1000:.1f} s. `open_trail`: DuckDB "
            f"{size['open_trail_ms']['duckdb']:.0f} ms, Spark {size['open_trail_ms']['spark']:.0f} ms "
            "(Spark lists the partitions and reads the Parquet schema). Spark's Parquet reader: "
            + {True: "vectorized.", False: "row by row (the store has v2 pages).", None: "not recorded."}[
                size.get("vectorized_reader")], "",
            "| case | DuckDB | Spark | Spark / DuckDB | goal: Spark ≤ | met | CPU: DuckDB / Spark (driver + JVM) "
            "| Spark, first run | Spark jobs | rows | identical |",
            "|---|--:|--:|--:|--:|:-:|--:|--:|--:|--:|:-:|",
        ]
        for case in size["cases"].values():
            allowed = spark_allowed_ms(case["duckdb_ms"])
            lines.append(f"| {case['label']} | {case['duckdb_ms']:,.1f} ms | {case['spark_ms']:,.1f} ms | "
                         f"{case['spark_over_duckdb']}x | {allowed:,.1f} ms | "
                         f"{_yes(case['spark_ms'] <= allowed)} | {_cpu_cell(case)} | "
                         f"{case['spark_first_ms']:,.1f} ms | "
                         f"{case.get('spark_jobs', '-')} | {case['rows']:,} | {'yes' if case['identical'] else 'NO'} |")
    lines += ["", report["reading"], ""]
    return "\n".join(lines)


def _cpu_cell(case: dict[str, Any]) -> str:
    duck, spark = case.get("duckdb_cpu_ms"), case.get("spark_cpu_ms")
    if duck is None or spark is None:
        return "-"
    return f"{duck:,.0f} / {spark:,.0f} ms"


def _yes(value: bool) -> str:
    return "yes" if value else "**no**"


def readme_table(report: dict[str, Any]) -> str:
    """The README's Spark table, rendered from a ``spark.json`` report (``benchmarks.readme`` writes it)."""
    sizes = report["sizes"]
    head = " | ".join(f"{_millions(size['events'])}: DuckDB / Spark (ratio)" for size in sizes)
    lines = [f"| case | {head} |", "|---|" + "--:|" * len(sizes)]
    for name, case in sizes[0]["cases"].items():
        cells = []
        for size in sizes:
            mine = size["cases"].get(name)
            if mine is None:
                cells.append("-")
                continue
            mark = "" if mine["spark_ms"] <= spark_allowed_ms(mine["duckdb_ms"]) else " **over**"
            different = "" if mine["identical"] else ", **answers differ**"
            cells.append(f"{mine['duckdb_ms']:,.0f} / {mine['spark_ms']:,.0f} ms "
                         f"({mine['spark_ms'] / mine['duckdb_ms']:.1f}x{mark}{different})")
        lines.append(f"| {case['label']} | {' | '.join(cells)} |")
    lines.append("")
    for size in sizes:
        reader = {True: "vectorized", False: "row by row (v2 pages)"}.get(size.get("vectorized_reader"),
                                                                           "not recorded")
        lines.append(f"- {_millions(size['events'])}: Spark session start-up {size['spark_startup_ms'] / 1000:.1f} s "
                     f"(once per process); `open_trail` DuckDB {size['open_trail_ms']['duckdb']:,.0f} ms, Spark "
                     f"{size['open_trail_ms']['spark']:,.0f} ms; Spark's Parquet reader: {reader}.")
    loads = report["load"]
    lines += ["", f"Measured by `{report['command']}` ({report['machine']}; {report['date']}; median of "
              f"{report['runs']} warm runs; load average {loads[0][0]} before, {loads[1][0]} after). Goal: Spark "
              f"≤ {MAX_RATIO:g}x DuckDB or DuckDB + {MAX_EXTRA_MS / 1000:g} s, whichever is larger, on 10M "
              "events; **over** marks a case above it."]
    return "\n".join(lines) + "\n"


def _millions(events: int) -> str:
    return f"{events / 10**6:.2g}M"


READING = (
    "Reading: on one 2-core machine DuckDB is far ahead; each Spark query pays for planning and task "
    "scheduling. The cold files have Parquet v1 pages, which Spark's vectorized reader reads (stores "
    "converted before v1 pages hold BYTE_STREAM_SPLIT doubles that it refuses: `open_trail` then falls "
    "back to the row reader, and `ledgerline convert --rebuild` rewrites them). What carries "
    "over to a cluster is what this shows: the same analyses, unchanged, give identical answers, and "
    "day-partition pruning works on Spark too, so a 1-hour query reads one day's files however many "
    "years the trail holds. Spark's cost is per-query overhead and scan throughput per core; on a "
    "cluster the scan spreads over executors, which is what a trail too large for one machine needs."
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_spark", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, action="append", help="trail size (repeatable); default 10,000,000")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10k events over 3 days, 2 runs (smoke test)")
    parser.add_argument("--cache", type=Path, default=CACHE_DIR, help="where generated trails are kept")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--cases", nargs="+", metavar="NAME",
                        help="only these cases (hour, hour_narrow, hour_filtered, count_by_type, incident, "
                             "state_at, signal_conversion, lifecycle); default all")
    args = parser.parse_args(argv)
    sizes = [10_000] if args.quick else (args.events or [10_000_000])
    days, runs = (3, 2) if args.quick else (args.days, args.runs)
    load_before = load_average()
    started = time.perf_counter()
    from workbench import _spark

    session = _spark.local_session()
    backend = _spark.connect(session)
    startup_ms = (time.perf_counter() - started) * 1000
    session.sparkContext.setLogLevel("ERROR")
    print(f"Spark session start-up: {startup_ms / 1000:.1f} s", file=sys.stderr)
    report: dict[str, Any] = {
        "command": " ".join([COMMAND, *(sys.argv[1:] if argv is None else argv)]),
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "versions": {name: metadata.version(name) for name in ("ibis-framework", "duckdb", "pyspark", "pyarrow")},
        "spark_conf": ", ".join(f"{key}={value}" for key, value in _spark.LOCAL_CONF.items()),
        "runs": runs, "sizes": [], "reading": READING,
    }
    for events in sizes:
        base = cached_trail(events, days=days, root=args.cache,
                            progress=lambda n: print(f"  generating: {n:,}", file=sys.stderr))
        print(f"{events:,} events ({base})", file=sys.stderr)
        report["sizes"].append(measure(base, backend, startup_ms, runs, args.cases))
    session.stop()
    report["load"] = [load_before, load_average()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "spark.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "spark.md").write_text(render_markdown(report), encoding="utf-8")
    print(f"wrote {args.out / 'spark.json'} and {args.out / 'spark.md'}", file=sys.stderr)
    return 0 if all(case["identical"] for size in report["sizes"] for case in size["cases"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
