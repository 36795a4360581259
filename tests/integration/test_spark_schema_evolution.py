"""Spark reads a cold store mixing Parquet written before ``owner`` and the typed value columns with newer files.

Spark, like DuckDB, takes one file's columns unless told to merge them (``read_cold`` asks for
``mergeSchema`` when the files differ). The same questions asked on DuckDB and on Spark must get
the same rows.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyspark")

import pyarrow.parquet as pq

from audit_core import AuditConfig, AuditEventEmitter
from audit_core.cold.converter import ParquetConverter
from benchmarks.trail_gen import FakeClock

pytestmark = pytest.mark.spark

S = 1_000_000_000
DAY1 = int(dt.datetime(2026, 1, 5, tzinfo=dt.UTC).timestamp()) * S
DAY2 = DAY1 + 86_400 * S
NEW_COLUMNS = ["owner", "old_value_text", "new_value_text", "old_value_bool", "new_value_bool", "old_value_json",
               "new_value_json"]


@pytest.fixture(scope="module")
def trail_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two days of parameter changes; the first day's Parquet rewritten without the new columns."""
    base = tmp_path_factory.mktemp("evolution") / "trail"
    clock = FakeClock(DAY1)
    with AuditEventEmitter(AuditConfig(base_path=base, trader_id="T-1", stream_id="control", sync_writes=False),
                           clock=clock) as audit:
        for ts, args, owner in [
            (DAY1 + 10 * S, ("meta_controller", "risk_multiplier", None, 1.0, "initial value"), None),
            (DAY1 + 20 * S, ("meta_controller", "regime", None, "VENTRAL", "initial value"), None),
            (DAY1 + 30 * S, ("ops_console", "risk_multiplier", 1.0, 8.0, None), "meta_controller"),
            (DAY2 + 10 * S, ("ops_console", "regime", "VENTRAL", 'DORSAL "hard" é', "desk"), "meta_controller"),
            (DAY2 + 20 * S, ("meta_controller", "weights", None, {"momentum": 1.0}, "initial value"), None),
            (DAY2 + 30 * S, ("meta_controller", "hedged", None, True, "initial value"), None),
        ]:
            clock.now = ts
            audit.emit_param_change(*args, owner=owner, ts_event=ts)
    assert all(result.converted for result in ParquetConverter(base / "hot", base / "cold").convert_all())
    old = sorted((base / "cold").glob("year=2026/month=01/day=05/*.parquet"))
    assert old
    for file in old:
        table = pq.read_table(file)
        pq.write_table(table.drop_columns(NEW_COLUMNS), file, compression="zstd")
    return base


@pytest.fixture(scope="module")
def trails(trail_path: Path) -> Any:
    from workbench import TrailNotVerifiedWarning, _spark, open_trail

    session = _spark.local_session()
    try:
        opened = {"duckdb": open_trail(trail_path), "spark": open_trail(trail_path, _spark.connect(session))}
        for trail in opened.values():
            # The first day's files were rewritten behind their manifests' back (an older converter's
            # files would verify against their own manifests): the trail fails verification on
            # exactly that, and says so once.
            assert {failure.kind.value for failure in trail.verification.failures} == {"parquet_mismatch"}
            with pytest.warns(TrailNotVerifiedWarning, match="parquet_mismatch"):
                trail.events  # noqa: B018 - the first read warns
        yield opened
    finally:
        session.stop()


def rows(table: Any) -> list[dict]:
    return table.to_pyarrow().to_pylist()


QUESTIONS = {
    "state_day1": lambda wb, t: wb.state_at(t, DAY1 + 60 * S),
    "state_day2": lambda wb, t: wb.state_at(t, DAY2 + 60 * S),
    "by_source": lambda wb, t: wb.state_at(t, DAY2 + 60 * S, by_source=True),
    "history": lambda wb, t: wb.parameter_history(t, "risk_multiplier"),
    "events": lambda wb, t: t.events.select("ts_event", "source", "owner", "param_name", "new_value",
                                            "new_value_num", "new_value_text", "new_value_bool",
                                            "new_value_json").order_by("ts_event"),
}


@pytest.mark.parametrize("question", sorted(QUESTIONS))
def test_spark_answers_like_duckdb_on_a_mixed_store(trails: dict[str, Any], question: str) -> None:
    import workbench as wb

    duck, spark = (rows(QUESTIONS[question](wb, trails[name])) for name in ("duckdb", "spark"))
    assert spark == duck
    assert duck  # the question has an answer


def test_old_rows_default_owner_and_new_rows_keep_typed_values(trails: dict[str, Any]) -> None:
    got = [(row["source"], row["owner"], row["new_value_text"], row["new_value_bool"])
           for row in rows(QUESTIONS["events"](None, trails["spark"]))]
    assert got == [
        ("meta_controller", "meta_controller", None, None),
        ("meta_controller", "meta_controller", None, None),  # an old file: typed columns NULL
        ("ops_console", "ops_console", None, None),  # no owner column in an old file: owner = source
        ("ops_console", "meta_controller", 'DORSAL "hard" é', None),
        ("meta_controller", "meta_controller", None, None),
        ("meta_controller", "meta_controller", None, True),
    ]
