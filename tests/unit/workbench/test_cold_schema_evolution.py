"""Parquet written before ``owner`` and the typed value columns existed still opens and answers."""

from __future__ import annotations

import re

import ibis
import pyarrow.parquet as pq
import pytest
from conftest import MIDNIGHT, T0, S

from workbench import TrailNotVerifiedWarning, open_trail, parameter_history, state_at
from workbench.trail import cold_schema

#: Columns the cold schema gained with issue 14; a file written before has none of them.
NEW_COLUMNS = ("owner", "old_value_text", "new_value_text", "old_value_bool", "new_value_bool", "old_value_json",
               "new_value_json")


def write_as_before(file) -> None:
    """Rewrite one real converted file without the new columns, as the converter wrote it before."""
    table = pq.read_table(file)
    assert set(NEW_COLUMNS) <= set(table.column_names)
    pq.write_table(table.drop_columns(list(NEW_COLUMNS)), file, compression="zstd")


def open_rewritten(base):
    """Open a trail whose Parquet files were rewritten behind their manifests' back.

    A file an older converter wrote would verify against its own manifest; these are rewritten
    after conversion, so the trail fails verification (``parquet_mismatch`` only) and says so once.
    """
    trail = open_trail(base)
    assert trail.verification.state == "failed"
    assert {failure.kind.value for failure in trail.verification.failures} == {"parquet_mismatch"}
    with pytest.warns(TrailNotVerifiedWarning, match="parquet_mismatch"):
        trail.events  # noqa: B018 - the first read warns
    return trail


def cold_files(base):
    return sorted((base / "cold").glob("year=*/month=*/day=*/*.parquet"))


def rows(table, *columns):
    return [tuple(row[c] for c in columns) for row in table.to_pyarrow().to_pylist()]


@pytest.fixture
def mixed(hand_trail):
    """Every file converted; the 2026-01-05 files (first by path) rewritten in the old schema."""
    hand_trail.convert()
    old = [file for file in cold_files(hand_trail.base) if "day=05" in str(file)]
    assert old and len(old) < len(cold_files(hand_trail.base))
    for file in old:
        write_as_before(file)
    return hand_trail


def test_a_store_mixing_old_and_new_files_opens_with_every_column(mixed):
    trail = open_rewritten(mixed.base)
    assert trail.hot.rows == 0 and int(trail.events.count().execute()) == mixed.events
    assert set(cold_schema().names) <= set(trail.events.columns)
    params = trail.filter(event_type="param.*").order_by("ts_event")
    # The old file's rows: owner falls back to the source, typed values are NULL (the raw JSON stays).
    # The new files' rows (read after an old file that DuckDB would otherwise take the columns from): typed.
    assert rows(params, "source", "owner", "new_value", "new_value_num", "new_value_text") == [
        ("meta_controller", "meta_controller", "0.5", 0.5, None),
        ("kelly_sizer", "kelly_sizer", "0.3", 0.3, None),
        ("manual_override", "manual_override", "3.5", 3.5, None),
        ("particle_portfolio", "particle_portfolio", "8", 8.0, None),
    ]
    regime = trail.filter(event_type="sys.regime_change")
    assert rows(regime, "owner", "new_value_json") == [(None, None)]


def test_new_rows_keep_their_typed_values_next_to_old_rows(mixed, tmp_path):
    # A string value in a new file: only union-by-name reading keeps its new_value_text.
    from audit_core import AuditConfig, AuditEventEmitter
    from audit_core.cold.converter import ParquetConverter

    config = AuditConfig(base_path=mixed.base, trader_id="TRADER-001", stream_id="ops", sync_writes=False)
    with AuditEventEmitter(config, clock=lambda: MIDNIGHT + 600 * S) as audit:
        audit.emit_param_change("ops_console", "regime_override", None, 'DORSAL "hard"', None,
                                owner="meta_controller")
    ParquetConverter(mixed.base / "hot", mixed.base / "cold").convert_all()
    trail = open_rewritten(mixed.base)
    assert rows(state_at(trail, MIDNIGHT + 601 * S, param_name="regime_override"),
                "owner", "source", "value_text", "value") == [
        ("meta_controller", "ops_console", 'DORSAL "hard"', '"DORSAL \\"hard\\""')]


def test_the_analyses_answer_on_a_mixed_store(mixed):
    trail = open_rewritten(mixed.base)
    assert rows(state_at(trail, MIDNIGHT), "owner", "param_name", "value", "source") == [
        ("kelly_sizer", "kelly_fraction", "0.3", "kelly_sizer"),
        ("manual_override", "risk_multiplier", "3.5", "manual_override"),
        ("meta_controller", "risk_multiplier", "0.5", "meta_controller"),
    ]
    assert rows(parameter_history(trail, "risk_multiplier"), "owner", "new_value") == [
        ("meta_controller", "0.5"), ("manual_override", "3.5")]


def test_a_store_of_old_files_only_opens(hand_trail):
    hand_trail.convert()
    for file in cold_files(hand_trail.base):
        write_as_before(file)
    trail = open_rewritten(hand_trail.base)
    assert set(NEW_COLUMNS) <= set(trail.events.columns)
    assert rows(state_at(trail, T0 + 31 * S), "owner", "param_name", "value_num", "value_text") == [
        ("kelly_sizer", "kelly_fraction", 0.3, None), ("meta_controller", "risk_multiplier", 0.5, None)]


def files_read(trail, table) -> int:
    plan = trail.backend.raw_sql("EXPLAIN ANALYZE " + str(ibis.to_sql(table))).fetchall()[0][1]
    return sum(int(n) for n in re.findall(r"Total Files Read: (\d+)", plan))


def test_a_window_still_reads_only_its_days_files(mixed):
    trail = open_rewritten(mixed.base)
    every = files_read(trail, trail.events)
    one_day = files_read(trail, trail.filter(start="2026-01-06", end="2026-01-07"))
    assert every == len(cold_files(mixed.base)) and 0 < one_day < every
