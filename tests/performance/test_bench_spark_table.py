"""The README's Spark table is rendered from ``spark.json`` with the goal of issue 19 applied by one rule."""

from __future__ import annotations

from benchmarks.bench_spark import readme_table, spark_allowed_ms


def case(duckdb_ms: float, spark_ms: float, identical: bool = True) -> dict:
    return {"label": "a case", "rows": 1, "identical": identical, "duckdb_ms": duckdb_ms, "spark_ms": spark_ms,
            "spark_first_ms": spark_ms, "spark_over_duckdb": round(spark_ms / duckdb_ms, 1)}


def report(cases: dict) -> dict:
    size = {"events": 10_000_000, "day": "2026-01-15", "spark_startup_ms": 5900.0, "vectorized_reader": True,
            "open_trail_ms": {"duckdb": 120.0, "spark": 250.0}, "cases": cases}
    return {"command": "python -m benchmarks.bench_spark", "date": "2026-12-01", "machine": "test machine",
            "runs": 3, "load": [[0.5, 0.5, 0.5], [0.6, 0.5, 0.5]], "sizes": [size]}


def test_the_goal_is_five_times_duckdb_or_half_a_second_more_whichever_is_larger():
    assert spark_allowed_ms(50.0) == 550.0  # small queries: Spark's fixed per-query cost
    assert spark_allowed_ms(200.0) == 1000.0  # large ones: 5x


def test_cases_over_the_goal_and_differing_answers_are_marked():
    table = readme_table(report({"fast": case(50.0, 550.0), "slow": case(50.0, 551.0),
                                 "big": case(200.0, 1200.0), "wrong": case(50.0, 60.0, identical=False)}))
    rows = [line for line in table.splitlines() if line.startswith("| a case")]
    assert len(rows) == 4
    assert "**over**" not in rows[0] and "**over**" in rows[1] and "**over**" in rows[2]
    assert "answers differ" in rows[3] and "answers differ" not in rows[0]
    assert "| 10M: DuckDB / Spark (ratio) |" in table and "vectorized" in table and "load average 0.5" in table


def test_the_markdown_shows_cpu_times_and_a_dash_where_a_report_has_none():
    from benchmarks.bench_spark import render_markdown

    measured = {**case(50.0, 600.0), "duckdb_cpu_ms": 41.0, "spark_cpu_ms": 1234.0}
    full = {**report({"new": measured, "old": case(50.0, 600.0)}), "versions": {"pyspark": "4.0.5"},
            "spark_conf": "x=y", "reading": "Reading."}
    rows = [line for line in render_markdown(full).splitlines() if line.startswith("| a case")]
    assert "| 41 / 1,234 ms |" in rows[0] and "| - |" in rows[1]


def test_a_cpu_clock_that_cannot_tell_gives_no_cpu_time():
    from benchmarks.bench_spark import _cpu_clock, _median_or_none, _timed

    wall, cpu = _timed(lambda: sum(range(10_000)), _cpu_clock(None))
    assert wall >= 0 and cpu is not None and cpu >= 0
    assert _timed(lambda: None, lambda: None)[1] is None
    assert _median_or_none([1.0, None, 3.0]) is None and _median_or_none([1.0, 5.0, 3.0]) == 3.0
