"""The ts_event extent of a cold Parquet file: one rule (``audit_core.cold.extent``) for the converter's
``get_partition_stats`` and the workbench's footers, tested with the crafted files that fooled one of them."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit_core.cold.converter import ParquetConverter
from audit_core.cold.extent import ts_event_extent
from workbench import _footers

DAY = "year=2026/month=01/day=05"
TIMES = [1_767_571_200_000_000_000 + n * 10**9 for n in (7, 3, 9, 5)]


def write(cold: Path, table: pa.Table, **options) -> Path:
    folder = cold / DAY
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "part.parquet"
    pq.write_table(table, file, **options)
    return file


def nested_first() -> pa.Table:
    """A struct column before ``ts_event`` (two leaves, one of them also called ts_event), values far from its own."""
    meta = pa.array([{"ts_event": 1, "x": 2}] * len(TIMES), pa.struct([("ts_event", pa.int64()), ("x", pa.int64())]))
    return pa.table({"meta": meta, "ts_event": pa.array(TIMES, pa.int64())})


def partition_extent(cold: Path) -> tuple[int | None, int | None]:
    [stats] = ParquetConverter(cold, cold).get_partition_stats()
    return stats.first_ts_event, stats.last_ts_event


class TestTheRule:
    def test_row_groups_give_min_and_max(self, tmp_path):
        file = write(tmp_path, pa.table({"ts_event": pa.array(TIMES, pa.int64())}), row_group_size=2)
        assert pq.read_metadata(file).num_row_groups == 2
        assert ts_event_extent(pq.read_metadata(file)) == (min(TIMES), max(TIMES))

    def test_a_nested_column_before_it_does_not_shift_the_column_read(self, tmp_path):
        """The Arrow field index of ts_event is 1, its Parquet leaf index 2: reading leaf 1 gave meta.x's (2, 2)."""
        file = write(tmp_path, nested_first())
        assert ts_event_extent(pq.read_metadata(file)) == (min(TIMES), max(TIMES))

    def test_a_file_without_rows_has_no_extent_and_says_so(self, tmp_path):
        file = write(tmp_path, pa.table({"ts_event": pa.array([], pa.int64())}))
        assert ts_event_extent(pq.read_metadata(file)) == (None, None)

    @pytest.mark.parametrize("table", [
        pa.table({"other": pa.array(TIMES, pa.int64())}),
        pa.table({"ts_event": pa.array([str(t) for t in TIMES])}),
        pa.table({"meta": pa.array([{"ts_event": t} for t in TIMES])}),  # only a nested leaf of that name
    ], ids=["missing", "not-int64", "only-nested"])
    def test_a_file_without_a_top_level_int64_ts_event_is_unknown(self, tmp_path, table):
        assert ts_event_extent(pq.read_metadata(write(tmp_path, table))) is None

    def test_a_row_group_without_statistics_makes_it_unknown(self, tmp_path):
        file = write(tmp_path, pa.table({"ts_event": pa.array(TIMES, pa.int64())}), write_statistics=False)
        assert ts_event_extent(pq.read_metadata(file)) is None


class TestBothReadersUseIt:
    def test_partition_stats_read_the_right_column(self, tmp_path):
        write(tmp_path, nested_first())
        assert partition_extent(tmp_path) == (min(TIMES), max(TIMES))

    def test_partition_stats_read_the_column_where_the_footer_cannot_tell(self, tmp_path):
        """Not a partial or missing range: the values themselves decide."""
        write(tmp_path, pa.table({"ts_event": pa.array(TIMES, pa.int64())}), write_statistics=False)
        assert partition_extent(tmp_path) == (min(TIMES), max(TIMES))

    def test_the_workbench_footer_is_the_same_extent(self, tmp_path):
        files = [write(tmp_path / "a", nested_first()),
                 write(tmp_path / "b", pa.table({"ts_event": pa.array(TIMES, pa.int64())}), write_statistics=False)]
        _footers.clear()
        assert [_footers.footer_of(file).extent for file in files] == [(min(TIMES), max(TIMES)), None]
