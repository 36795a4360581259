"""THE ``ts_event`` extent of a cold Parquet file, read from its footer's row-group statistics.

``get_partition_stats`` reports it and the workbench's ``open_trail`` uses it (a trail's time range,
the unit check of an integer instant), so both read it by one rule. A footer is untrusted input: the
column is found by its path, not by its position among the Arrow fields (a nested column before it
has several leaves, and a leaf of a struct may be called ``ts_event`` too), and a non-empty row group
without statistics makes the extent unknown rather than the extent of the other row groups.
"""

from __future__ import annotations

from typing import Any

#: The column the extent is of: a top-level column, so its leaf path is its name.
COLUMN = "ts_event"


def ts_event_extent(metadata: Any) -> tuple[int | None, int | None] | None:
    """The smallest and largest ``ts_event`` of a Parquet file by its footer ``metadata`` (pyarrow's).

    Returns:
        ``(min, max)`` over the row groups with rows; ``(None, None)`` when the file has no rows;
        None when the footer cannot tell: no top-level ``ts_event`` INT64 column, or a row group
        with rows whose statistics are missing or not integers.
    """
    schema = metadata.schema
    index = _leaf_index(schema)
    if index is None or schema.column(index).physical_type != "INT64":
        return None
    lows: list[int] = []
    highs: list[int] = []
    for group in range(metadata.num_row_groups):
        chunk = metadata.row_group(group)
        if chunk.num_rows == 0:
            continue
        stats = chunk.column(index).statistics
        if stats is None or not stats.has_min_max or type(stats.min) is not int or type(stats.max) is not int:
            return None
        lows.append(stats.min)
        highs.append(stats.max)
    return (min(lows), max(highs)) if lows else (None, None)


def _leaf_index(schema: Any) -> int | None:
    """The leaf index of the top-level ``ts_event`` column in a Parquet ``schema``, or None."""
    names: list[str] = schema.names  # leaf names; usually the first match is the column, so its path is read once
    if COLUMN in names:
        index = names.index(COLUMN)
        if schema.column(index).path == COLUMN:
            return index
    paths: list[str] = [schema.column(number).path for number in range(len(schema))]
    return paths.index(COLUMN) if COLUMN in paths else None
