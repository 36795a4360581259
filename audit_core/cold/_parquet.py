"""Writing cold Parquet: the day partitions of a table in the cold schema, with bounded memory.

The converter writes a hot file's rows with it, and a rebuild of the projection writes the rows it
derived again with it, so both produce files the same way (settings, names, atomic renames).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from audit_core._layout import NS_PER_DAY, utc_day
from audit_core.cold._id_filter import id_filter
from audit_core.cold.manifest import file_sha256, fsync_file
from audit_core.cold.projection import (
    DERIVED_PREV_HASH_SINCE,
    INTS_LEFT,
    PROJECTION_METADATA_KEY,
    without_int_values,
)
from audit_core.trust.record import BODY_SQL
from audit_core.trust.seals import fsync_directory

#: Where a conversion or rebuild writes before renaming into place (inside the store; removed after).
STAGING_DIR = "_staging"
#: Parquet writer settings: zstd level (3, DuckDB's default: 9 saved about 4% more on the benchmark file
#: and doubled the COPY time) and v1 data pages. DuckDB's v2 pages encode DOUBLE columns as
#: BYTE_STREAM_SPLIT, which Spark 4.0's vectorized Parquet reader refuses (the row reader it then
#: needs is 5-40x slower); v1 pages use PLAIN/dictionary encodings every reader reads at full speed.
#: Size and DuckDB read speed of both: ``python -m benchmarks.bench_pages`` (``results/pages.md``).
ZSTD_LEVEL = 3
#: The COPY options of every cold file (the converter's and the rebuild's), ROW_GROUP_SIZE and metadata aside.
COPY_OPTIONS = f"FORMAT PARQUET, COMPRESSION ZSTD, COMPRESSION_LEVEL {ZSTD_LEVEL}, PARQUET_VERSION V1"
#: DuckDB's memory cap while converting; beyond it, it spills to the staging directory. The process
#: peaks at about the cap plus 500 MB (the verifying scan beside it, DuckDB's memory outside its
#: buffer pool): on the 1M-event benchmark file 400 MB gave 888 MB RSS (issue 18: <= 1 GB), 500 MB
#: 1,071 MB and 600 MB 1,183 MB, at about 25% less time than 400 MB (one loaded run each). With the
#: load on one thread and the scan beside it from the start: 400 MB 724-780 MB, 600 MB 920-949 MB,
#: at about the same CPU time (22.7-23.1 s against 21.8-22.5 s; two runs each at load average 3-4).
MEMORY_LIMIT = "400MB"


def uses_byte_stream_split(file: Path) -> bool:
    """Whether a DOUBLE or FLOAT column chunk of Parquet ``file`` is encoded BYTE_STREAM_SPLIT (its footer only).

    Files written before ``COPY_OPTIONS`` moved to v1 pages have it; Spark 4.0's vectorized reader
    refuses it, and ``ledgerline convert --rebuild`` writes such files again. A footer that cannot be
    read counts as no: reading the file fails, and is reported, where it is read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_metadata(file)
    except (pa.ArrowException, OSError):
        return False
    schema = metadata.schema
    floating = [i for i in range(metadata.num_columns) if schema.column(i).physical_type in ("DOUBLE", "FLOAT")]
    return any("BYTE_STREAM_SPLIT" in metadata.row_group(group).column(i).encodings
               for group in range(metadata.num_row_groups) for i in floating)


def parameter_index_sql(rows: str) -> str:
    """SQL for an output's ``parameters`` (``manifest.py``): each parameter changed in ``rows``, once.

    ``[owner, param_name, ts_event of its last change]``, ordered; a change is a ``param.*`` row
    with a ``param_name`` (as ``workbench.parameters`` counts them). The workbench's ``state_at``
    reads, for each parameter, only the day of its last change before the instant asked about;
    ``verify_cold`` runs this on each file and compares.
    """
    return f"""SELECT owner, param_name, max(ts_event) FROM {rows}
               WHERE starts_with(event_type, 'param.') AND param_name IS NOT NULL
               GROUP BY owner, param_name ORDER BY owner, param_name"""


def quiet_connection(**config: Any) -> Any:
    """A DuckDB connection that draws no progress bar: DuckDB draws it on stdout, where
    ``ledgerline verify --json`` writes its report and a benchmark case its result line."""
    import duckdb

    con = duckdb.connect(config=config)
    # Refused as a connect() option in DuckDB 1.5; and in a Jupyter kernel, where the bar is off
    # already, any SET of it raises unless ipywidgets is installed: set it only when it is on.
    if con.execute("SELECT current_setting('enable_progress_bar')").fetchone() == (True,):
        con.execute("SET enable_progress_bar = false")
    return con


def bounded_connection(staging: Path) -> Any:
    """A DuckDB connection whose memory is capped (``MEMORY_LIMIT``), spilling to ``staging``."""
    con = quiet_connection()
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    con.execute(f"SET temp_directory = '{sql_string(staging / 'duckdb.tmp')}'")
    return con


def sql_string(path: Path) -> str:
    """``path`` quoted for a DuckDB string literal."""
    return str(path).replace("'", "''")


def write_partitions(
    con: Any, table: str, source: str, staging: Path, cold: Path, *, row_group_size: int, version: int
) -> list[dict[str, Any]]:
    """Write each UTC day's rows of ``table`` (cold schema, in ``ts_event``, ``source_line`` order) to its
    partition, named after hot file ``source``; returns the manifest entry's ``outputs`` (``manifest.py``).

    Each file is written to ``staging``, synced and renamed into place, so it is whole or absent.
    """
    return publish_partitions(stage_partitions(con, table, source, staging, cold, row_group_size=row_group_size,
                                               version=version))


#: A day file written and synced in the staging directory: (staged file, its place in the store, its output).
Staged = tuple[Path, Path, dict[str, Any]]


def publish_partitions(staged: list[Staged]) -> list[dict[str, Any]]:
    """Rename each staged day file into its partition (atomic; converting again replaces, never duplicates)."""
    for file, target, _ in staged:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(file, target)
        fsync_directory(target.parent)
    return [output for _, _, output in staged]


def stage_partitions(
    con: Any, table: str, source: str, staging: Path, cold: Path, *, row_group_size: int, version: int
) -> list[Staged]:
    """``write_partitions`` up to the renames: each day's file written and synced in ``staging``, nothing
    in the store touched (the converter publishes them only once the hot file has verified)."""
    # The table is in (ts_event, source_line) order; scanning it in order keeps each day's file sorted,
    # and its zone maps let each day's range skip the rest.
    con.execute("SET preserve_insertion_order = true")
    # One thread: an ordered COPY on several buffers every thread's batches until the slowest catches
    # up, which overran MEMORY_LIMIT on a 1M-record file.
    con.execute("SET threads = 1")
    written = f"(SELECT * FROM {table} WHERE ts_event >= $start AND ts_event < $end)"
    if version >= DERIVED_PREV_HASH_SINCE:
        _keep_underivable_prev_hashes(con, table)
        written = f"(SELECT * EXCLUDE (prev_hash) FROM {table} WHERE ts_event >= $start AND ts_event < $end)"
        (ints_left,) = con.execute(f"SELECT bool_or({INTS_LEFT}) FROM {table}").fetchone() or (None,)
        # Most files: every record was cut as it was read. Then no CASE copies each record four times.
        written = without_int_values(written) if ints_left else f"(SELECT * EXCLUDE ({INTS_LEFT}) FROM {written})"
    # The days that hold rows, not every day between the first and the last: a file may hold an
    # instant at 1970 and one in 2262, and 106k empty COPYs would never end.
    days = [day for (day,) in con.execute(
        f"SELECT DISTINCT ts_event // {NS_PER_DAY} AS day FROM {table} ORDER BY day").fetchall()]
    staged_files: list[Staged] = []
    for start in (day * NS_PER_DAY for day in days):
        day = utc_day(start)
        year, month, date = f"{day.year:04d}", f"{day.month:02d}", f"{day.day:02d}"
        staged = staging / f"{year}{month}{date}.parquet"
        # COPY returns the number of rows it wrote.
        (count,) = con.execute(
            f"""COPY (SELECT * FROM {written})
                TO '{sql_string(staged)}'
                ({COPY_OPTIONS}, ROW_GROUP_SIZE {row_group_size},
                 KV_METADATA {{'{PROJECTION_METADATA_KEY}': '{version}'}})""",
            {"start": start, "end": start + NS_PER_DAY},
        ).fetchone() or (0,)
        if not count:  # a day with no rows (a quiet day inside a long file) gets no partition
            staged.unlink()
            continue
        target = cold / f"year={year}" / f"month={month}" / f"day={date}" / (source.removesuffix(".jsonl") + ".parquet")
        first_sequence, last_sequence, first_hash, last_hash = con.execute(
            f"""SELECT min(sequence), max(sequence), arg_min(checksum, sequence), arg_max(checksum, sequence)
                FROM {table} WHERE ts_event >= $start AND ts_event < $end AND sequence IS NOT NULL""",
            {"start": start, "end": start + NS_PER_DAY},
        ).fetchone() or (None, None, None, None)
        parameters = con.execute(
            parameter_index_sql(f"(SELECT * FROM {table} WHERE ts_event >= $start AND ts_event < $end)"),
            {"start": start, "end": start + NS_PER_DAY}).fetchall()
        ids = id_filter(con, f"(SELECT * FROM {table} WHERE ts_event >= $start AND ts_event < $end)",
                        {"start": start, "end": start + NS_PER_DAY})
        fsync_file(staged)
        output = {
            "path": str(target.relative_to(cold)), "rows": int(count), "bytes": staged.stat().st_size,
            "sha256": file_sha256(staged), "first_sequence": first_sequence, "last_sequence": last_sequence,
            "first_hash": first_hash, "last_hash": last_hash,
            "parameters": [[owner, name, last] for owner, name, last in parameters], "ids": ids,
        }
        staged_files.append((staged, target, output))
    return staged_files


def _keep_underivable_prev_hashes(con: Any, table: str) -> None:
    """Put each record's ``prev_hash`` back into its ``record`` where a reader cannot derive it.

    ``table``'s ``record`` leaves every prev_hash value out and its ``prev_hash`` column holds them
    (``projection.select(working=True)``). From projection 4 on a file has no ``prev_hash`` column:
    a reader takes the checksum of the row one source line before in the same file, the same UTC
    day (``projection.chained_rows``). Where that is not the record's prev_hash (a file's or a day's
    first row, the row after a torn line), the record keeps its own. A few rows a file: only they
    are rewritten, and the window reads three narrow columns.
    """
    con.execute(f"""
        UPDATE {table} SET record = {BODY_SQL}
        WHERE source_line IN (
            SELECT source_line FROM (
                SELECT source_line, prev_hash, ts_event // {NS_PER_DAY} AS day,
                       lag(source_line) OVER w AS prior_line, lag(checksum) OVER w AS prior,
                       lag(ts_event // {NS_PER_DAY}) OVER w AS prior_day
                FROM {table} WINDOW w AS (ORDER BY source_line))
            WHERE prev_hash IS NOT NULL AND (prior_line IS DISTINCT FROM source_line - 1
                                             OR prior_day IS DISTINCT FROM day OR prior IS DISTINCT FROM prev_hash))""")
