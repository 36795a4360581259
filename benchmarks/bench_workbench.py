"""Workbench query latency on generated trails, each case beside hand-written DuckDB SQL on the same files.

Usage (from the repo root)::

    python -m benchmarks.bench_workbench                    # 1M and 10M events over 30 days
    python -m benchmarks.bench_workbench --events 1000000   # one size
    python -m benchmarks.bench_workbench --quick --out /tmp/bench   # 10k events over 3 days (smoke test)
    python -m benchmarks.bench_workbench --cases state_at lifecycle --out /tmp/bench   # chosen cases only
    python -m benchmarks.bench_workbench --events 1000000 --cold-start-only   # open_trail + first query only

Trails are generated once (``benchmarks/trail_gen.py``, through the real emitter and converter) and
cached under ``benchmarks/.cache``. Every case builds the workbench expression and runs it
(``to_pyarrow()``) alternately with raw SQL (``duckdb`` directly, its own connection) that returns
the same values in the same order: the same projection, predicates, causal order and description
text (``same_values`` compares both results column by column): 2 warm-up runs each, then the median
of ``--runs``; each case's ratio is against its raw SQL of the same run (goals: ``MAX_RATIO``,
``MAX_COLD_RATIO``).
Both connections cache Parquet footers (``parquet_metadata_cache``), as ``open_trail`` sets it.
Cold start (``open_trail`` and the first query on a new connection) is measured separately
(``COLD_START_FAIRNESS`` says what the workbench does there that the raw connection does not).
Writes ``workbench.json`` and ``workbench.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks._machine import load_average, machine
from benchmarks.trail_gen import CACHE_DIR, cached_trail

RESULTS_DIR = Path(__file__).resolve().parent / "results"
NS_PER_HOUR = 3_600 * 10**9
#: Targets from issue 5, per trail size: (1-hour query, every other analysis), in ms.
TARGETS = {1_000_000: (10.0, 25.0), 10_000_000: (30.0, 150.0)}
#: Goals of issue 19: each case at most this many times its raw SQL (warm), and cold start at most
#: ``MAX_COLD_RATIO`` times a raw connection's view and first query.
MAX_RATIO = 1.2
MAX_COLD_RATIO = 2.0
#: What ``open_trail`` does at cold start that the raw connection does not (the benchmark's text says it).
COLD_START_FAIRNESS = (
    "`open_trail` is opened with `verify=False` (verification, seconds per million events, is cached and "
    "not measured). It still does what the raw connection does not: it decides from each hot file's "
    "manifest entry (authentic, with the hot file's own seal; an entry the cold root, checked once per open, "
    "commits to is hashed, not authenticated again; checked once per process for the same bytes "
    "of both) whether the file's rows are in cold, reads every Parquet footer (the files' column sets, and "
    "the `ts_event` extent the unit check of an integer instant uses; parsed once per process for the same "
    "footer bytes), sets the session time zone to UTC, creates the trail's view (its SQL written directly "
    "when there are no hot rows, else compiled by Ibis once per process for the same files and hot rows) "
    "and compiles the first query's SQL with Ibis (once per "
    "process and query shape: the view is named by its definition). The first figures are for a process "
    "that opened the trail before (a notebook calling `refresh()` or opening it again); the new-process "
    "ones for a process's first open. "
    "The raw side connects, creates a view over the same glob and runs the hand-written query."
)
#: The columns of the narrow 1-hour case: what an incident timeline needs.
NARROW = ("time", "ts_event", "event_type", "source", "description", "stream", "sequence", "correlation_id")
HIVE = "hive_partitioning=true, hive_types={'year': INTEGER, 'month': INTEGER, 'day': INTEGER}"


@dataclass
class Case:
    name: str
    label: str
    expression: Callable[[], Any]  # builds the workbench expression (part of what is timed)
    raw: str
    hour_query: bool = False

    def run(self) -> Any:
        return self.expression().to_pyarrow()


def build_cases(trail: Any, day: dt.date, order_id: str) -> list[Case]:
    """The measured cases: a workbench call and the SQL a person would write for the same answer."""
    from workbench import (
        count_by_type,
        reconstruct_incident,
        signal_conversion,
        state_at,
        trade_lifecycle,
    )
    from workbench._columns import CHRONOLOGICAL
    from workbench.describe import with_description

    start = int(dt.datetime(day.year, day.month, day.day, 14, tzinfo=dt.UTC).timestamp()) * 10**9
    end, at = start + NS_PER_HOUR, start + 32 * 60 * 10**9
    day_start, day_end = start - 14 * NS_PER_HOUR, start + 10 * NS_PER_HOUR
    same_day = f"year = {day.year} AND month = {day.month} AND day = {day.day}"
    up_to_day = (f"(year < {day.year} OR (year = {day.year} AND (month < {day.month} OR "
                 f"(month = {day.month} AND day <= {day.day}))))")
    hour = f"ts_event >= {start} AND ts_event < {end} AND {same_day}"
    chrono = "ORDER BY ts_event, stream, sequence"
    every = "*"  # the columns of trail.events, which has no description
    narrow = ", ".join(_description_sql() + " AS description" if name == "description" else name for name in NARROW)
    return [
        Case("hour", "1-hour query, all columns", lambda: trail.filter(start=start, end=end)
             .order_by(*CHRONOLOGICAL),
             f"SELECT {every} FROM ev WHERE {hour} {chrono}", hour_query=True),
        Case("hour_narrow", "1-hour query, 8 columns", lambda: with_description(trail.filter(start=start, end=end))
             .select(*NARROW).order_by(*CHRONOLOGICAL),
             f"SELECT {narrow} FROM ev WHERE {hour} {chrono}", hour_query=True),
        Case("hour_filtered", "1-hour query, type `trade.*` and one source", lambda: trail.filter(
            start=start, end=end, event_type="trade.*", source="AuditObserver").order_by(*CHRONOLOGICAL),
             f"SELECT {every} FROM ev WHERE {hour} AND starts_with(event_type, 'trade.') "
             "AND source IN ('AuditObserver') "
             f"{chrono}", hour_query=True),
        Case("count_by_type", "count_by_type over a day", lambda: count_by_type(trail, day_start, day_end),
             f"SELECT event_type, count(*) AS count FROM ev WHERE ts_event >= {day_start} AND ts_event < {day_end} "
             f"AND {same_day} GROUP BY event_type ORDER BY count DESC, event_type"),
        Case("incident", "reconstruct_incident ±5 min", lambda: reconstruct_incident(trail, at, 5),
             _incident_sql(at, same_day)),
        Case("state_at", "state_at", lambda: state_at(trail, at),
             f"""SELECT owner, param_name, new_value AS value, new_value_num AS value_num,
                        new_value_text AS value_text, new_value_bool AS value_bool, new_value_json AS value_json,
                        source, trigger_reason, ts_event, time, event_type, stream, sequence
                 FROM (SELECT *, row_number() OVER (PARTITION BY owner, param_name
                                                    ORDER BY ts_event DESC, stream DESC, sequence DESC) AS rank
                       FROM ev WHERE starts_with(event_type, 'param.') AND param_name IS NOT NULL
                                 AND ts_event <= {at} AND {up_to_day})
                 WHERE rank = 1 ORDER BY owner, param_name"""),
        Case("signal_conversion", "signal_conversion over a day",
             lambda: signal_conversion(trail, start=day_start, end=day_end).summary,
             f"""WITH t AS (SELECT event_type, acted_on, order_id, strategy_source, correlation_id FROM ev
                            WHERE ts_event >= {day_start} AND ts_event < {day_end} AND {same_day}
                              AND (starts_with(event_type, 'trade.signal')
                                   OR event_type IN ('trade.order', 'trade.fill', 'trade.rejected'))),
                      groups AS (SELECT correlation_id, min(strategy_source) AS signal_group FROM t
                                 WHERE starts_with(event_type, 'trade.signal') AND correlation_id IS NOT NULL
                                 GROUP BY correlation_id),
                      grouped AS (SELECT event_type, acted_on, order_id,
                                         CASE WHEN starts_with(event_type, 'trade.signal') THEN strategy_source
                                              ELSE coalesce(signal_group, strategy_source) END AS strategy_source
                                  FROM t LEFT JOIN groups USING (correlation_id))
                 SELECT strategy_source, signals, acted_on, filtered, orders, rejected, filled_orders, fills,
                        acted_on / nullif(signals, 0) AS conversion_rate,
                        filled_orders / nullif(orders, 0) AS fill_rate
                 FROM (SELECT strategy_source,
                              count(*) FILTER (WHERE starts_with(event_type, 'trade.signal')) AS signals,
                              count(*) FILTER (WHERE starts_with(event_type, 'trade.signal') AND acted_on) AS acted_on,
                              count(*) FILTER (WHERE starts_with(event_type, 'trade.signal') AND NOT acted_on)
                                  AS filtered,
                              count(*) FILTER (WHERE event_type = 'trade.order') AS orders,
                              count(*) FILTER (WHERE event_type = 'trade.rejected') AS rejected,
                              count(DISTINCT order_id) FILTER (WHERE event_type = 'trade.fill') AS filled_orders,
                              count(*) FILTER (WHERE event_type = 'trade.fill') AS fills
                       FROM grouped GROUP BY strategy_source)
                 ORDER BY strategy_source"""),
        Case("lifecycle", "trade_lifecycle of one closed trade", lambda: trade_lifecycle(trail, order_id),
             _lifecycle_sql(order_id)),
    ]


#: Trade steps of one instant in causal order (``workbench._columns.CAUSAL_STEPS``), as SQL.
_STEP_SQL = ("CASE event_type WHEN 'trade.signal' THEN 0 WHEN 'trade.order' THEN 1 WHEN 'trade.order.accepted' THEN 2 "
             "WHEN 'trade.rejected' THEN 2 WHEN 'trade.fill' THEN 3 WHEN 'trade.canceled' THEN 3 "
             "WHEN 'trade.position_opened' THEN 4 WHEN 'trade.position_changed' THEN 5 "
             "WHEN 'trade.position_closed' THEN 6 ELSE 0 END")
_TRADE_TYPES = ("('trade.signal', 'trade.order', 'trade.order.accepted', 'trade.rejected', 'trade.fill', "
                "'trade.canceled', 'trade.position_opened', 'trade.position_changed', 'trade.position_closed')")


def _causal_sql(rows: str, columns: str) -> str:
    """``columns`` of the CTE ``rows`` in causal order, as ``workbench.chronological`` orders them: records of one
    trade at one instant (same ``correlation_id``) sit where the first of them sits, signal -> order -> fill ->
    position; ``columns`` may name ``k_stream``, ``k_sequence``, ``k_step`` (the sort keys)."""
    return f"""blocks AS (SELECT ts_event AS b_ts, correlation_id AS b_id,
                            min({{'stream': stream, 'sequence': sequence}}) AS b_first
                     FROM {rows} WHERE event_type IN {_TRADE_TYPES} AND correlation_id IS NOT NULL
                     GROUP BY ts_event, correlation_id HAVING count(*) > 1),
    keyed AS (SELECT *, b_first IS NOT NULL AND event_type IN {_TRADE_TYPES} AS in_block
              FROM {rows} LEFT JOIN blocks ON ts_event = b_ts AND correlation_id = b_id),
    ordered AS (SELECT *, CASE WHEN in_block THEN b_first.stream ELSE stream END AS k_stream,
                          CASE WHEN in_block THEN b_first.sequence ELSE sequence END AS k_sequence,
                          CASE WHEN in_block THEN {_STEP_SQL} ELSE 0 END AS k_step FROM keyed)
    SELECT {columns} FROM ordered ORDER BY ts_event, k_stream, k_sequence, k_step, stream, sequence"""


def _incident_sql(at: int, same_day: str) -> str:
    low, high = at - 5 * 60 * 10**9, at + 5 * 60 * 10**9
    columns = f"""time, ts_event, ts_event - {at} AS offset_ns, event_type, source, description,
      stream, sequence, trader_id, correlation_id, param_name, old_value, new_value, new_value_num, trigger_reason,
      strategy_source, signal_value, confidence, regime, acted_on, filter_reason, instrument_id, order_id, side,
      size, price, slippage_bps, realized_pnl, currency, position_id, reason, payload"""
    return f"""WITH rows AS (SELECT *, {_description_sql()} AS description FROM ev
                      WHERE ts_event >= {low} AND ts_event <= {high} AND {same_day}),
    {_causal_sql("rows", columns)}"""


def _description_sql() -> str:
    """The hand-written equivalent of ``workbench.describe``: one readable line per record."""
    text = "coalesce(CAST({} AS VARCHAR), '?')"
    dec = "coalesce(regexp_replace(CAST({} AS VARCHAR), '\\.?0+$', ''), '?')"
    s, d = text.format, dec.format
    return f"""CASE
        WHEN starts_with(event_type, 'param.') THEN {s('source')} || ' changed ' || {s('param_name')} || ': '
             || coalesce(old_value, 'null') || ' -> ' || coalesce(new_value, 'null') || ' ('
             || coalesce(trigger_reason, 'no reason given') || ')'
        WHEN starts_with(event_type, 'trade.signal') THEN {s('strategy_source')} || ' signal ' || {s('signal_value')}
             || ' on ' || {s('instrument_id')} || ' (confidence ' || {s('confidence')} || '): '
             || CASE WHEN coalesce(acted_on, true) THEN 'acted on' ELSE 'filtered, ' || {s('filter_reason')} END
        WHEN event_type = 'trade.order' THEN {s('strategy_source')} || ' submitted order ' || {s('order_id')} || ': '
             || {s('side')} || ' ' || {d('size')} || ' ' || {s('instrument_id')}
        WHEN event_type = 'trade.order.accepted' THEN 'order ' || {s('order_id')} || ' accepted (venue id '
             || {s('venue_order_id')} || ')'
        WHEN event_type = 'trade.fill' THEN 'order ' || {s('order_id')} || ' filled: ' || {s('side')} || ' '
             || {d('size')} || ' ' || {s('instrument_id')} || ' @ ' || {d('price')}
             || CASE WHEN slippage_bps IS NULL THEN '' ELSE ' (slippage ' || {d('slippage_bps')} || ' bps)' END
        WHEN event_type = 'trade.rejected' THEN 'order ' || {s('order_id')} || ' rejected: '
             || coalesce(reason, 'no reason given')
        WHEN event_type = 'trade.canceled' THEN 'order ' || {s('order_id')} || ' ' || coalesce(reason, 'canceled')
        WHEN event_type = 'trade.position_opened' THEN {s('strategy_source')} || ' opened position '
             || {s('position_id')} || ': ' || {s('side')} || ' ' || {d('size')} || ' ' || {s('instrument_id')}
             || ' @ ' || {d('price')}
        WHEN event_type = 'trade.position_changed' THEN 'position ' || {s('position_id')} || ' changed: '
             || {s('side')} || ' ' || {d('size')} || ' ' || {s('instrument_id')} || ', realized P&L '
             || coalesce(regexp_replace(CAST(realized_pnl AS VARCHAR), '\\.?0+$', ''), '0') || ' '
             || coalesce(currency, '')
        WHEN event_type = 'trade.position_closed' THEN {s('strategy_source')} || ' closed position '
             || {s('position_id')} || ' on ' || {s('instrument_id')} || ': realized P&L ' || {d('realized_pnl')}
             || ' ' || coalesce(currency, '')
        ELSE event_type || ' from ' || {s('source')} || ': ' || substr(coalesce(payload, '{{}}'), 1, 160)
      END"""


def _lifecycle_sql(order_id: str) -> str:
    columns = """time, ts_event, CASE event_type WHEN 'trade.signal' THEN 'signal'
             WHEN 'trade.order' THEN 'order'
             WHEN 'trade.order.accepted' THEN 'accepted' WHEN 'trade.fill' THEN 'fill'
             WHEN 'trade.rejected' THEN 'rejected' WHEN 'trade.canceled' THEN 'canceled'
             WHEN 'trade.position_opened' THEN 'position_opened' WHEN 'trade.position_changed' THEN 'position_changed'
             WHEN 'trade.position_closed' THEN 'position_closed' ELSE event_type END AS step,
           event_type, description,
           ts_event - lag(ts_event) OVER (ORDER BY ts_event, k_stream, k_sequence, k_step, stream, sequence)
               AS since_previous_ns,
           ts_event - min(ts_event) OVER () AS since_start_ns,
           strategy_source, instrument_id, order_id, correlation_id, position_id, side, size, price, expected_price,
           slippage_bps, commission, realized_pnl, currency, signal_value, confidence, acted_on, filter_reason,
           reason, source, stream, sequence"""
    # The same rows as trade_lifecycle: the order's records, its signal, and the position records its orders
    # made plus the round trips those touched (a netting position id is reused across round trips).
    return f"""WITH anchored AS (SELECT * FROM ev WHERE order_id = '{order_id}'),
    own_orders AS (SELECT order_id FROM anchored WHERE event_type IN ('trade.order', 'trade.fill')),
    position_rows AS (SELECT * FROM ev WHERE starts_with(event_type, 'trade.position_')
                        AND order_id IS DISTINCT FROM '{order_id}'
                        AND position_id IN (SELECT position_id FROM anchored)),
    touched AS (SELECT correlation_id FROM ev WHERE starts_with(event_type, 'trade.position_')
                  AND order_id IN (SELECT order_id FROM own_orders)),
    steps AS (
      SELECT * FROM anchored
      UNION ALL
      SELECT * FROM ev WHERE starts_with(event_type, 'trade.signal') AND order_id IS DISTINCT FROM '{order_id}'
                         AND correlation_id IN (SELECT correlation_id FROM anchored)
      UNION ALL
      (SELECT * FROM position_rows WHERE order_id IN (SELECT order_id FROM own_orders)
       UNION
       SELECT * FROM position_rows WHERE correlation_id IN (SELECT correlation_id FROM touched))),
    described AS (SELECT *, {_description_sql()} AS description FROM steps),
    {_causal_sql("described", columns)}"""


def raw_connection(cold: Path, columns: list[str]) -> Any:
    """A plain DuckDB connection with view ``ev``: the cold files with the same columns as ``trail.events``
    (no ``description``: the queries that return one compute it, ``_description_sql``, as the analyses do)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET parquet_metadata_cache = true")
    others = ", ".join(c for c in columns if c not in ("ts_event", "time", "description"))
    source = str(cold / "year=*/month=*/day=*/*.parquet").replace("'", "''")
    con.execute(f"""CREATE VIEW ev AS SELECT ts_event, CAST(make_timestamp_ns(ts_event) AS TIMESTAMPTZ) AS time,
                    {others} FROM read_parquet('{source}', {HIVE})""")
    return con


def median_ms(function: Callable[[], Any], runs: int) -> tuple[float, list[float]]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), samples


def _timed(function: Callable[[], Any]) -> tuple[float, float]:
    """Wall-clock and CPU milliseconds of one call (CPU: this process, DuckDB's threads included)."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def files_read(con: Any, sql: str) -> int:
    plan = con.execute("EXPLAIN ANALYZE " + sql).fetchall()[0][1]
    return sum(int(n) for n in re.findall(r"Total Files Read: (\d+)", plan))


def measure(base: Path, events: int, runs: int, cases_wanted: list[str] | None = None,
            warm_only: bool = False, cold_start_only: bool = False) -> dict[str, Any]:
    import ibis

    from benchmarks.trail_gen import open_unverified

    cold = base / "cold"
    trail = open_unverified(base)
    if trail.hot.rows:  # a generated trail is all converted: its hot rows are read only when its manifests are not
        raise SystemExit(f"{base}: open_trail read {trail.hot.rows:,} hot rows again (its manifests are not "
                         "recognized: "
                         f"written by an older converter?); delete {base} to generate the trail again")
    raw = raw_connection(cold, list(trail.events.columns))
    day = _middle_day(raw)
    orders = raw.execute(
        f"SELECT order_id FROM ev WHERE event_type = 'trade.position_closed' AND year = {day.year} "
        f"AND month = {day.month} AND day = {day.day} ORDER BY ts_event LIMIT 1").fetchall()
    every_case = build_cases(trail, day, orders[0][0])
    unknown = set(cases_wanted or ()) - {case.name for case in every_case}
    if unknown:
        raise SystemExit(f"--cases: no case named {sorted(unknown)}; the cases: {[c.name for c in every_case]}")
    cases = [case for case in every_case if not cases_wanted or case.name in cases_wanted]
    results: dict[str, Any] = {}
    if cold_start_only:
        cold_start = _cold_start(base, every_case[0].raw, day, runs=runs)
        return {"events": int(trail.events.count().execute()), "day": day.isoformat(), "cases": results,
                "pruning": None, "cold_start": cold_start}
    for case in cases:
        run_raw = lambda case=case: raw.execute(case.raw).to_arrow_table()  # noqa: E731
        mine, theirs = case.run(), run_raw()
        same_values = _same_values(mine, theirs)
        for _ in range(2):  # warm-up: page cache, footers, Ibis's memtables
            case.run()
            run_raw()
        ibis_samples, raw_samples, ibis_cpu, raw_cpu = [], [], [], []
        for _ in range(runs):  # alternate, so both see the same machine
            for function, wall, cpu in ((case.run, ibis_samples, ibis_cpu), (run_raw, raw_samples, raw_cpu)):
                wall_ms, cpu_ms = _timed(function)
                wall.append(wall_ms)
                cpu.append(cpu_ms)
        ibis_ms, raw_ms = statistics.median(ibis_samples), statistics.median(raw_samples)
        cpu_ratio = statistics.median(ibis_cpu) / max(statistics.median(raw_cpu), 1e-6)
        hour_target, other_target = TARGETS.get(events, (None, None))
        target = hour_target if case.hour_query else other_target
        results[case.name] = {
            "label": case.label, "rows": mine.num_rows, "raw_rows": theirs.num_rows,
            "same_rows": mine.num_rows == theirs.num_rows, "same_values": same_values,
            "ibis_ms": round(ibis_ms, 2), "raw_sql_ms": round(raw_ms, 2), "ratio": round(ibis_ms / raw_ms, 2),
            "meets_ratio": ibis_ms / raw_ms <= MAX_RATIO,
            "ibis_cpu_ms": round(statistics.median(ibis_cpu), 2),
            "raw_sql_cpu_ms": round(statistics.median(raw_cpu), 2),
            "cpu_ratio": round(cpu_ratio, 2),
            "compile_ms": _compile_ms(trail, case),
            "target_ms": target, "meets_target": None if target is None else ibis_ms <= target,
            "ibis_samples_ms": [round(x, 2) for x in ibis_samples],
            "raw_samples_ms": [round(x, 2) for x in raw_samples],
        }
        print(f"  {case.name:18} ibis {ibis_ms:8.2f} ms   raw {raw_ms:8.2f} ms   x{ibis_ms / raw_ms:.2f}  "
              f"(CPU x{cpu_ratio:.2f}; {mine.num_rows} rows, compile {results[case.name]['compile_ms']} ms)",
              file=sys.stderr)
    total = trail.events.count().execute()
    if warm_only:
        return {"events": int(total), "day": day.isoformat(), "cases": results}
    hour_sql = ibis.to_sql(trail.filter(start=_hour(day), end=_hour(day) + NS_PER_HOUR))
    pruning = {
        "files_total": len(list(cold.glob("year=*/month=*/day=*/*.parquet"))),
        "files_read_workbench_hour": files_read(trail.backend.con, str(hour_sql)),
        "files_read_raw_hour": files_read(raw, every_case[0].raw),
    }
    cold_start = _cold_start(base, every_case[0].raw, day, runs=max(3, runs // 2))
    return {"events": int(total), "day": day.isoformat(), "cases": results, "pruning": pruning,
            "cold_start": cold_start}


def _compile_ms(trail: Any, case: Case) -> float:
    """Median ms for Ibis to build and compile the case's expression as written (the portable path:
    what a call costs without DuckDB's SQL per call or expression shape, ``workbench._compiled``)."""
    trail.backend.reuse_compiled_sql = False
    try:
        return round(median_ms(lambda: trail.backend.compile(case.expression()), 5)[0], 2)
    finally:
        trail.backend.reuse_compiled_sql = True


def _same_values(mine: Any, theirs: Any) -> bool:
    """Whether two Arrow results hold the same values in the same order, column by column (names and
    Arrow types aside: an Ibis count is int64 where DuckDB's ``sum`` of booleans is int128)."""
    if mine.shape != theirs.shape:
        return False
    return all(a.to_pylist() == b.to_pylist() for a, b in zip(mine.columns, theirs.columns, strict=True))


def _hour(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, 14, tzinfo=dt.UTC).timestamp()) * 10**9


def _middle_day(con: Any) -> dt.date:
    first, last = con.execute("SELECT min(ts_event), max(ts_event) FROM ev").fetchone()
    middle = (first + last) // 2 // 10**9
    return dt.datetime.fromtimestamp(middle, dt.UTC).date()


def _cold_start(base: Path, raw_hour_sql: str, day: dt.date, runs: int) -> dict[str, Any]:
    """``open_trail`` + first 1-hour query on a new connection, against a new raw connection's first query:
    in this process (which opened the trail before: what ``open_trail`` keeps per process is kept), and
    each in a new process (``_first_open``: nothing kept; the libraries imported before timing)."""
    from benchmarks.trail_gen import open_unverified
    from workbench._columns import CHRONOLOGICAL

    opens, firsts, raws, cpus, raw_cpus = [], [], [], [], []
    columns: list[str] = []
    for _ in range(runs):
        started, cpu = time.perf_counter(), time.process_time()
        trail = open_unverified(base)
        opened = time.perf_counter()
        trail.filter(start=_hour(day), end=_hour(day) + NS_PER_HOUR).order_by(*CHRONOLOGICAL).to_pyarrow()
        done = time.perf_counter()
        cpus.append((time.process_time() - cpu) * 1000)
        opens.append((opened - started) * 1000)
        firsts.append((done - opened) * 1000)
        columns = list(trail.events.columns)
        trail.backend.disconnect()
        started, cpu = time.perf_counter(), time.process_time()
        con = raw_connection(base / "cold", columns)
        con.execute(raw_hour_sql).to_arrow_table()
        raws.append((time.perf_counter() - started) * 1000)
        raw_cpus.append((time.process_time() - cpu) * 1000)
        con.close()
    together = statistics.median([a + b for a, b in zip(opens, firsts, strict=True)])
    raw = statistics.median(raws)
    _byte_compile_project()
    fresh = [_first_open(base, day, columns, raw_hour_sql) for _ in range(runs)]
    fresh_ours = statistics.median(run["open_ms"] + run["first_query_ms"] for run in fresh)
    fresh_raw = statistics.median(run["raw_ms"] for run in fresh)
    return {"open_trail_ms": round(statistics.median(opens), 2),
            "first_query_ms": round(statistics.median(firsts), 2),
            "open_plus_first_ms": round(together, 2),
            "raw_connect_view_first_query_ms": round(raw, 2), "ratio": round(together / raw, 2),
            "meets_ratio": together / raw <= MAX_COLD_RATIO,
            "cpu_ratio": round(statistics.median(cpus) / max(statistics.median(raw_cpus), 1e-6), 2), "runs": runs,
            "new_process": {
                "open_trail_ms": round(statistics.median(run["open_ms"] for run in fresh), 2),
                "first_query_ms": round(statistics.median(run["first_query_ms"] for run in fresh), 2),
                "open_plus_first_ms": round(fresh_ours, 2), "raw_connect_view_first_query_ms": round(fresh_raw, 2),
                "ratio": round(fresh_ours / fresh_raw, 2), "meets_ratio": fresh_ours / fresh_raw <= MAX_COLD_RATIO,
                "gc_ms": round(statistics.median(run["gc_ms"] for run in fresh), 2),
                "raw_gc_ms": round(statistics.median(run["raw_gc_ms"] for run in fresh), 2)}}


#: ``_first_open``'s two processes: each imports its libraries and runs one full garbage collection, then
#: times the cold start (JSON on stdout, with the milliseconds the collector ran inside the timed span).
#: Without that collection, the first full collection of what the imports allocated (ibis, pyarrow,
#: numpy: hundreds of thousands of objects) falls into whichever side allocates enough to trigger it,
#: 40-400 ms here depending on load: a cost of the imports, not of the open. ``timeit`` goes further
#: and turns the collector off; here it stays on, so collections the open itself triggers count.
_FIRST_OPEN = """
import gc, json, sys, time
from pathlib import Path
import warnings
base, start, end = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
collecting = []
def _collector(phase, info):
    if phase == "start":
        collecting.append(-time.perf_counter())
    else:
        collecting[-1] += time.perf_counter()
def _collected_ms():
    return sum(collecting) * 1000
if sys.argv[4] == "ours":
    import workbench
    from benchmarks.trail_gen import open_unverified
    from workbench._columns import CHRONOLOGICAL
else:
    import duckdb
    from benchmarks.bench_workbench import raw_connection
    columns, sql = json.loads(sys.stdin.read())
gc.collect()
gc.callbacks.append(_collector)
if sys.argv[4] == "ours":
    started = time.perf_counter()
    trail = open_unverified(base)
    opened = time.perf_counter()
    trail.filter(start=start, end=end).order_by(*CHRONOLOGICAL).to_pyarrow()
    print(json.dumps({"open_ms": (opened - started) * 1000, "first_query_ms": (time.perf_counter() - opened) * 1000,
                      "gc_ms": _collected_ms()}))
else:
    started = time.perf_counter()
    raw_connection(base / "cold", columns).execute(sql).to_arrow_table()
    print(json.dumps({"raw_ms": (time.perf_counter() - started) * 1000, "raw_gc_ms": _collected_ms()}))
"""


def _byte_compile_project() -> None:
    """Byte-compile the project's packages into ``__pycache__``, as installing a package does.

    Where ``PYTHONDONTWRITEBYTECODE`` is set (this machine sets it) and nothing compiled them, every
    module ``open_trail`` imports lazily is compiled from source in each new process (about 40 ms of a
    first open): a cost of the environment, not of the open. Python reads the files even so.
    """
    import compileall

    root = Path(__file__).resolve().parent.parent
    for package in ("audit_core", "workbench", "benchmarks"):
        compileall.compile_dir(root / package, quiet=1)


def _first_open(base: Path, day: dt.date, columns: list[str], raw_hour_sql: str) -> dict[str, float]:
    """One cold start in a new process (``open_trail`` + first 1-hour query), and one of the raw
    connection in another: what a notebook's first cell pays once its imports are done."""
    import subprocess

    result: dict[str, float] = {}
    for side, given in (("ours", ""), ("raw", json.dumps([columns, raw_hour_sql]))):
        done = subprocess.run([sys.executable, "-c", _FIRST_OPEN, str(base), str(_hour(day)),
                               str(_hour(day) + NS_PER_HOUR), side], input=given, capture_output=True, text=True,
                              check=True)
        result.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return result


def render_markdown(report: dict[str, Any]) -> str:
    lines = ["# Workbench query latency", "",
             f"Command: `{report['command']}`  ", f"Machine: {report['machine']}  ",
             f"Versions: {', '.join(f'{k} {v}' for k, v in report['versions'].items())}  ",
             f"Load average (1, 5, 15 min) before and after: {report['load_average_before_after']}", "",
             report["method"], ""]
    for size in report["sizes"]:
        lines += [f"## {size['events']:,} events over {report['days']} days (measured day {size['day']})", "",
                  f"| case | workbench (Ibis) | raw DuckDB SQL | ratio | ≤ {MAX_RATIO}x | CPU ratio | rows | "
                  "same values |",
                  "|---|--:|--:|--:|:-:|--:|--:|:-:|"]
        for case in size["cases"].values():
            cpu = f"{case['cpu_ratio']:.2f}x" if "cpu_ratio" in case else "-"
            lines.append(f"| {case['label']} | {case['ibis_ms']:.2f} ms | {case['raw_sql_ms']:.2f} ms | "
                         f"{case['ratio']:.2f}x | {_yes(case['meets_ratio'])} | {cpu} | {case['rows']:,} | "
                         f"{_yes(case['same_values'])} |")
        if "cold_start" not in size:
            lines += ["", "Partition pruning and cold start: not measured (`--warm-only`).", ""]
            continue
        pruning, cold = size["pruning"], size["cold_start"]
        lines += ["", *([f"Partition pruning, 1-hour query: the workbench reads "
                         f"{pruning['files_read_workbench_hour']} of {pruning['files_total']} Parquet files (raw "
                         f"SQL: {pruning['files_read_raw_hour']}).  "] if pruning else []),
                  f"Cold start: `open_trail` {cold['open_trail_ms']:.1f} ms, then the first 1-hour query "
                  f"{cold['first_query_ms']:.1f} ms (together {cold['open_plus_first_ms']:.1f} ms); a new raw "
                  f"connection, its view and the same first query: {cold['raw_connect_view_first_query_ms']:.1f} ms "
                  f"(ratio {cold['ratio']:.2f}x; goal ≤ {MAX_COLD_RATIO}x: {_yes(cold['meets_ratio'])})"
                  + (f"; CPU ratio {cold['cpu_ratio']:.2f}x" if "cpu_ratio" in cold else "") + ". "
                  + _new_process_sentence(cold) + COLD_START_FAIRNESS, ""]
    growth = growth_line(report)
    return "\n".join([*lines, *([growth, ""] if growth else [])]) + "\n"


def _new_process_sentence(cold: dict[str, Any]) -> str:
    """What the cold start costs in a new process, when measured (``_cold_start``), as a sentence."""
    fresh = cold.get("new_process")
    if fresh is None:
        return ""
    collected = (f"; the garbage collector ran {fresh['gc_ms']:.1f} ms of ours and {fresh['raw_gc_ms']:.1f} ms "
                 f"of the raw side's" if "gc_ms" in fresh else "")
    return (f"In a new process (libraries imported, the project's modules byte-compiled as an installed "
            f"package's are, one full garbage collection after the imports on both sides, nothing kept from an "
            f"earlier open): `open_trail` "
            f"{fresh['open_trail_ms']:.1f} ms + first query {fresh['first_query_ms']:.1f} ms against "
            f"{fresh['raw_connect_view_first_query_ms']:.1f} ms raw (ratio {fresh['ratio']:.2f}x: "
            f"{_yes(fresh['meets_ratio'])}{collected}). ")


#: Analyses whose cost must not grow with the trail's length, and how much it may grow (largest / smallest trail).
HISTORY_INDEPENDENT = ("state_at", "lifecycle")
MAX_GROWTH = 1.5


def growth_line(report: dict[str, Any]) -> str:
    """The history-independent analyses' time on the largest trail over the smallest, or "" with one size."""
    sizes = sorted(report["sizes"], key=lambda size: size["events"])
    if len(sizes) < 2:
        return ""
    small, large = sizes[0], sizes[-1]
    cells = []
    for name in HISTORY_INDEPENDENT:
        if name in small["cases"] and name in large["cases"]:
            ratio = large["cases"][name]["ibis_ms"] / small["cases"][name]["ibis_ms"]
            cells.append(f"{small['cases'][name]['label']} {ratio:.2f}x{'' if ratio <= MAX_GROWTH else ' **over**'}")
    return (f"Growth with the trail, {_millions(large['events'])} / {_millions(small['events'])} events (goal ≤ "
            f"{MAX_GROWTH}x): " + ", ".join(cells) + ".")


def _millions(events: int) -> str:
    """``10M``, ``1M``, ``0.1M``: a trail's size as the growth line names it (a 100k trail is not ``0M``)."""
    return f"{events / 10**6:.2g}M"


def _yes(value: bool) -> str:
    return "yes" if value else "**no**"


def readme_table(report: dict[str, Any]) -> str:
    """The README's workbench table, rendered from a ``workbench.json`` report (``benchmarks.readme`` writes it)."""
    sizes = report["sizes"]
    head = " | ".join(f"{size['events'] // 10**6}M: ours / raw SQL (ratio)" for size in sizes)
    lines = [f"| case | {head} |", "|---|" + "--:|" * len(sizes)]
    for name, case in sizes[0]["cases"].items():
        cells = []
        for size in sizes:
            mine = size["cases"][name]
            mark = "" if mine["meets_ratio"] else " **over**"
            cells.append(f"{mine['ibis_ms']:.1f} / {mine['raw_sql_ms']:.1f} ms ({mine['ratio']:.2f}x{mark})")
        lines.append(f"| {case['label']} | {' | '.join(cells)} |")
    cold = []
    for size in sizes:
        start = size.get("cold_start")  # absent from a --warm-only run
        mark = "" if start is None or start["meets_ratio"] else " **over**"
        cold.append("not measured" if start is None else
                    f"{start['open_plus_first_ms']:.1f} / {start['raw_connect_view_first_query_ms']:.1f} ms "
                    f"({start['ratio']:.2f}x{mark})")
    lines.append(f"| cold start: `open_trail` + first 1-hour query | {' | '.join(cold)} |")
    loads = report["load_average_before_after"]
    growth = growth_line(report)
    lines += [*(["", growth] if growth else []),
              "", f"Measured by `{report['command']}` ({report['machine']}; load average {loads[0][0]} before, "
              f"{loads[1][0]} after). Goals: ≤ {MAX_RATIO}x warm, ≤ {MAX_COLD_RATIO}x cold; **over** marks a "
              "case above its goal."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_workbench", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=9, help="measured runs per case (median reported)")
    parser.add_argument("--quick", action="store_true", help="10k events over 3 days, 3 runs (smoke test)")
    parser.add_argument("--cache", type=Path, default=CACHE_DIR, help="where generated trails are kept")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--cases", nargs="+", metavar="NAME",
                        help="only these warm cases (hour, hour_narrow, hour_filtered, count_by_type, incident, "
                             "state_at, signal_conversion, lifecycle); default all")
    parser.add_argument("--warm-only", action="store_true",
                        help="skip the partition-pruning check and the cold start (the warm cases only)")
    parser.add_argument("--cold-start-only", action="store_true",
                        help="measure only the cold start (written to workbench_cold_start.json/.md)")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.days, args.runs = [10_000], 3, 3
    load_before = load_average()
    sizes = []
    for events in args.events:
        started = time.perf_counter()
        base = cached_trail(events, days=args.days, root=args.cache,
                            progress=lambda n: print(f"  generated {n:,}", file=sys.stderr) if n % 10**6 == 0 else None)
        print(f"{events:,} events: trail ready in {time.perf_counter() - started:.1f} s ({base})", file=sys.stderr)
        sizes.append(measure(base, events, args.runs, args.cases, args.warm_only, args.cold_start_only))
    report = {
        "command": " ".join(["python -m benchmarks.bench_workbench", *(sys.argv[1:] if argv is None else argv)]),
        "load_average_before_after": [load_before, load_average()],
        "machine": machine(),
        "versions": {name: metadata.version(name) for name in ("ibis-framework", "duckdb", "pyarrow", "sqlglot")},
        "days": args.days,
        "method": ("Median of runs after 2 warm-up runs; the workbench call (building its expression and "
                   "`to_pyarrow()`: on DuckDB the analyses' SQL is kept per call shape, so that a call builds "
                   "no Ibis expression after the first of its shape, and other expressions' SQL is compiled "
                   "once per expression shape, `workbench._compiled`; `compile_ms` is Ibis building and "
                   "compiling the expression without either) alternates with hand-written SQL on a plain "
                   "DuckDB connection over "
                   "the same Parquet files, with the same columns, predicates (including the year/month/day "
                   "partition predicates), causal order and description text; `same values` compares both "
                   "results column by column. Both cache Parquet footers. The raw description casts doubles "
                   "(signal value, confidence) with a plain `CAST` (right for this trail's values); the "
                   "workbench's also writes a double DuckDB would print with an exponent (`1e-05`) without one "
                   "(the same text on DuckDB and Spark), by a Python function (`workbench._columns.float_texts`). "
                   "The CPU ratio compares the medians of this process's CPU time (DuckDB's threads included): "
                   "other processes' load moves it less than the wall-clock ratio, which is the goal's."),
        "sizes": sizes,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "workbench_cold_start" if args.cold_start_only else "workbench"  # not the full report's files
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    markdown = render_markdown(report)
    (args.out / f"{stem}.md").write_text(markdown, encoding="utf-8")
    print(markdown, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
