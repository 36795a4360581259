"""Sealed hot JSONL files to cold Parquet: verified first, partitioned by UTC day, atomic, idempotent.

Layout: ``cold/year=YYYY/month=MM/day=DD/<source file stem>.parquet`` (a source file that spans
midnight lands in two partitions), zstd, Parquet v2 pages, rows sorted by (``ts_event``,
``source_line``), and ``cold/_manifest/<source file>.json`` recording the seal each source file had
and the Parquet files it produced.

The file is read once (``_bulk_verify.scan_file``): each chunk is verified (checksums, sequence,
chain, Merkle leaves; SHA-256 per line in Python, everything else column-wise in pyarrow) and
handed as an Arrow batch to a DuckDB thread that parses the JSON (``json_transform`` into one
struct) while the next chunk is hashed. Only when the whole file and its seal verify are the day
partitions written; a file that fails is reported and nothing of it is kept.

Every row keeps its record in ``record`` in the cold layout of ``_bulk_verify``: the line without
its checksum field and without its prev_hash value, which are in the ``checksum`` and ``prev_hash``
columns; ``_bulk_verify.rebuild_line`` restores the original line byte for byte, so the cold side
can recompute checksums, the chain and the Merkle root, and no field of any event type (a user's own
included) is ever lost. A torn line that a crash left behind (closed off by recovery and described
by a ``sys.recovery`` record) is carried over as a row of event type ``sys.torn_line`` with NULL
sequence, its exact bytes in ``torn_bytes`` and its position in ``source_line``, so the Merkle root
the seal took over all lines can be rebuilt. Needs the ``workbench`` extra (duckdb, pyarrow).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit_core import _jsonfile
from audit_core._bulk_verify import STRIP_SQL, batch_schema, rebuild_line, scan_file, verify_scanned
from audit_core._layout import NS_PER_DAY, parse_hot_file_name, utc_day
from audit_core.errors import AuditFormatError
from audit_core.integrity import check_seal_format, fsync_directory, hot_files, read_seal

MANIFEST_DIR = "_manifest"
STAGING_DIR = "_staging"
#: ``ConversionResult.skipped`` of a file whose seal, manifest entry or records could not be read.
UNREADABLE = "unreadable"

#: The cold schema: (column, type, how it is read). Stable: a test pins it. "field" columns come
#: straight from the record's key of that name; "json" keeps the value as JSON text; "num:<key>"
#: is the value of <key> when it is a number, "text:<key>" when it is a string (decoded: no quotes,
#: no escapes), "bool:<key>" when it is true/false, "container:<key>" (JSON text) when it is an
#: array or object, NULL otherwise; "decimal" parses the decimal string exactly; "owner" is the
#: record's ``owner`` on ``param.*`` rows, else their ``source`` (a record without one, written
#: before the field existed or by its owner, is a change by the owner), NULL on other rows.
_DECIMAL = "DECIMAL(38,18)"
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("ts_event", "BIGINT", "field"),
    ("event_type", "VARCHAR", "field"),
    ("source", "VARCHAR", "field"),
    ("trader_id", "VARCHAR", "field"),
    ("stream", "VARCHAR", "stream"),
    ("sequence", "BIGINT", "field"),
    ("correlation_id", "VARCHAR", "field"),
    ("prev_hash", "VARCHAR", "field"),
    ("checksum", "VARCHAR", "field"),
    ("owner", "VARCHAR", "owner"),
    ("param_name", "VARCHAR", "field"),
    ("old_value", "VARCHAR", "json"),
    ("new_value", "VARCHAR", "json"),
    ("old_value_num", "DOUBLE", "num:old_value"),
    ("new_value_num", "DOUBLE", "num:new_value"),
    ("old_value_text", "VARCHAR", "text:old_value"),
    ("new_value_text", "VARCHAR", "text:new_value"),
    ("old_value_bool", "BOOLEAN", "bool:old_value"),
    ("new_value_bool", "BOOLEAN", "bool:new_value"),
    ("old_value_json", "VARCHAR", "container:old_value"),
    ("new_value_json", "VARCHAR", "container:new_value"),
    ("trigger_reason", "VARCHAR", "field"),
    ("strategy_source", "VARCHAR", "field"),
    ("signal_value", "DOUBLE", "field"),
    ("confidence", "DOUBLE", "field"),
    ("regime", "VARCHAR", "field"),
    ("acted_on", "BOOLEAN", "field"),
    ("filter_reason", "VARCHAR", "field"),
    ("instrument_id", "VARCHAR", "field"),
    ("order_id", "VARCHAR", "field"),
    ("side", "VARCHAR", "field"),
    ("size", _DECIMAL, "decimal"),
    ("price", _DECIMAL, "decimal"),
    ("expected_price", _DECIMAL, "decimal"),
    ("slippage_bps", _DECIMAL, "decimal"),
    ("realized_pnl", _DECIMAL, "decimal"),
    ("commission", _DECIMAL, "decimal"),
    ("currency", "VARCHAR", "field"),
    ("position_id", "VARCHAR", "field"),
    ("reason", "VARCHAR", "field"),
    ("order_type", "VARCHAR", "field"),
    ("venue_order_id", "VARCHAR", "field"),
    ("trade_id", "VARCHAR", "field"),
    ("liquidity_side", "VARCHAR", "field"),
    ("realized_return", _DECIMAL, "decimal"),
    ("avg_px_open", _DECIMAL, "decimal"),
    ("avg_px_close", _DECIMAL, "decimal"),
    ("duration_ns", "BIGINT", "field"),
    ("ts_init", "BIGINT", "field"),
    ("payload", "VARCHAR", "json"),
    ("record", "VARCHAR", "record"),
    ("source_line", "BIGINT", "batch"),
    ("torn_bytes", "BLOB", "batch"),
)
#: Parquet writer settings: zstd level (3, DuckDB's default: 9 saved about 4% more on the benchmark file
#: and doubled the COPY time) and v2 data pages (delta encodings: smaller and faster than v1 here).
ZSTD_LEVEL = 3
TORN_EVENT_TYPE = "sys.torn_line"


def _structure() -> str:
    """The json_transform structure: each line is parsed once, into one struct."""
    keys = {}
    for name, sql_type, kind in COLUMNS:
        if kind == "field":
            keys[name] = sql_type
        elif kind in ("json",):
            keys[name] = "JSON"
        elif kind == "owner":
            keys[name] = "VARCHAR"
        elif kind == "decimal":
            keys[name] = "VARCHAR"  # the exact text; cast below
    return json.dumps(keys)


def _expression(name: str, sql_type: str, kind: str) -> str:
    if name == "ts_event":
        expression = "coalesce(j.ts_event, torn_ts)"
    elif name == "event_type":
        expression = f"CASE WHEN torn_bytes IS NULL THEN j.event_type ELSE '{TORN_EVENT_TYPE}' END"
    elif kind == "stream":
        expression = "$stream"
    elif kind == "record":
        expression = f"coalesce(record, {STRIP_SQL})"
    elif kind == "batch":
        expression = name
    elif kind == "owner":
        expression = "CASE WHEN starts_with(j.event_type, 'param.') THEN coalesce(j.owner, j.source) END"
    elif kind.startswith("num:"):
        value = f"j.{kind[4:]}"
        numeric = f"json_type({value}) IN ('BIGINT', 'UBIGINT', 'DOUBLE')"
        expression = f"CASE WHEN {numeric} THEN TRY_CAST({value} AS DOUBLE) END"  # TRY: CASE may not guard
    elif kind.startswith("text:"):
        value = f"j.{kind[5:]}"
        # json_extract_string decodes the JSON string exactly (\", \\, \u00e9, surrogate pairs).
        expression = f"CASE WHEN json_type({value}) = 'VARCHAR' THEN json_extract_string({value}, '$') END"
    elif kind.startswith("bool:"):
        value = f"j.{kind[5:]}"
        expression = f"CASE WHEN json_type({value}) = 'BOOLEAN' THEN TRY_CAST({value} AS BOOLEAN) END"
    elif kind.startswith("container:"):
        value = f"j.{kind[10:]}"
        expression = f"CASE WHEN json_type({value}) IN ('ARRAY', 'OBJECT') THEN {value} END"
    else:
        expression = f"j.{name}"
    return f"CAST({expression} AS {sql_type}) AS {name}"


_SELECT = ",\n    ".join(_expression(*column) for column in COLUMNS)


@dataclass
class ConversionResult:
    """What happened to one hot file."""

    source: str
    converted: bool
    skipped: str | None = None  # why nothing was written (already converted, not sealed, failed verify, UNREADABLE)
    failures: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    rows: int = 0


@dataclass
class PartitionStats:
    partition: str
    files: int
    rows: int
    bytes: int
    first_ts_event: int | None
    last_ts_event: int | None


Progress = Callable[[int, int, str], None]


class ParquetConverter:
    """Converts sealed, verified hot files under ``hot_path`` into partitioned Parquet under ``cold_path``.

    Args:
        hot_path: A directory of hot files (searched recursively) or one file.
        cold_path: Root of the cold store.
        hmac_key: The trail's HMAC key, if it is keyed (verification needs it).
        public_key: An Ed25519 public key every seal must be signed with, if signing is used.
        row_group_size: Rows per Parquet row group; with about 100k events a day, 8,192 makes an
            hour's query read a few row groups of a day's file.
    """

    def __init__(
        self,
        hot_path: Path | str,
        cold_path: Path | str,
        *,
        hmac_key: bytes | None = None,
        public_key: Any = None,
        row_group_size: int = 8_192,
    ) -> None:
        self.hot_path = Path(hot_path)
        self.cold_path = Path(cold_path)
        self._hmac_key = hmac_key
        self._public_key = public_key
        self._row_group_size = row_group_size

    def convert_all(self, progress: Progress | None = None) -> list[ConversionResult]:
        """Convert every sealed hot file not converted yet. Safe to run again at any time.

        A file that cannot be read (its seal or manifest entry is not in its format, its records do
        not load) does not stop the others: its result has ``skipped="unreadable"`` and the reason,
        naming the file, in ``failures``.
        """
        files = [path for path in hot_files(self.hot_path) if parse_hot_file_name(path) is not None]
        results = []
        for done, path in enumerate(files, start=1):
            try:
                results.append(self.convert_file(path))
            except (AuditFormatError, OSError) as exc:
                detail = str(exc) if isinstance(exc, AuditFormatError) else f"{path}: cannot read: {exc}"
                results.append(ConversionResult(path.name, converted=False, skipped=UNREADABLE, failures=[detail]))
            if progress is not None:
                progress(done, len(files), path.name)
        return results

    def convert_file(self, path: Path | str) -> ConversionResult:
        """Verify one hot file (chain and seal) and, if it passes, write its Parquet partitions.

        A file that is not sealed, or fails verification, is reported and left untouched.
        Converting a file again finds its manifest entry and writes nothing.

        Raises:
            AuditFormatError: the file's seal or manifest entry is not in its format, or its
                verified records cannot be loaded into the cold columns; names the file.
        """
        path = Path(path)
        result = ConversionResult(source=path.name, converted=False)
        seal = read_seal(path)
        if seal is None:
            result.skipped = "not sealed (the live file of a stream, or a crash not yet recovered)"
            return result
        manifest = self._manifest_path(path)
        converted_seal = read_manifest(manifest)["seal"] if manifest.exists() else {}
        if converted_seal.get("file_sha256") == seal.get("file_sha256"):
            result.skipped = "already converted"
            return result
        name = parse_hot_file_name(path)
        assert name is not None
        staging = self.cold_path / STAGING_DIR / path.name
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging)  # left by a crash half-way through an earlier conversion
        staging.mkdir(parents=True)
        try:
            whole = _without_torn_lines(seal)
            source = path if whole else None
            with _ColumnarPass(name.stream_key, staging, source, seal.get("first_sequence")) as columnar:
                # Without torn lines, DuckDB reads the file itself, in parallel, while Python hashes it;
                # otherwise each scanned chunk goes to DuckDB (torn bytes and all) as the next is hashed.
                scan = scan_file(path, self._hmac_key, None if whole else columnar.feed)
                load_error = None
                try:
                    columnar.finish()
                except Exception as exc:  # a tampered file may not even parse: verification says why
                    load_error = exc
                report = verify_scanned(path, scan, self._hmac_key, self._public_key)
                if not report.ok:
                    result.skipped = "failed verification"
                    result.failures = [str(failure) for failure in report.failures]
                    return result
                if load_error is not None:
                    raise AuditFormatError(
                        path, f"its records verify but cannot be loaded into the cold columns: {load_error}"
                    ) from load_error
                _check_every_row_has_a_time(columnar, path)
                outputs = self._write_partitions(columnar, path, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        result.outputs = [str(out.relative_to(self.cold_path)) for out, _ in outputs]
        result.rows = sum(rows for _, rows in outputs)
        self._write_manifest(path, seal, outputs)
        result.converted = True
        return result

    def apply_retention(
        self,
        now: Any = None,
        *,
        days: int | None = None,
        holds: Any = (),
        dry_run: bool = False,
        config: Any = None,
        emitter: Any = None,
    ) -> Any:
        """Remove what is older than ``days`` (default ``config.retention_days``, else 90), recording it first.

        See ``audit_core.retention.apply_retention``; this passes the converter's paths and keys.
        Returns the ``RetentionPlan`` carried out.
        """
        from audit_core.retention import apply_retention

        if days is None:
            days = config.retention_days if config is not None else 90
        hot = self.hot_path if self.hot_path.is_dir() else None
        return apply_retention(
            hot, self.cold_path, days=days, now=now, holds=holds, dry_run=dry_run, emitter=emitter,
            config=config, hmac_key=self._hmac_key, public_key=self._public_key,
        )

    def get_partition_stats(self, on_error: Callable[[AuditFormatError], None] | None = None) -> list[PartitionStats]:
        """Files, rows, bytes and time range of every day partition, from the Parquet footers.

        Args:
            on_error: Called with the error of each Parquet file that cannot be read, which is then
                left out of its partition's numbers. Without it, the first such file raises.

        Raises:
            AuditFormatError: a Parquet file's footer cannot be read, or its ``ts_event`` is not
                an int64 column (only without ``on_error``); names the file.
        """
        stats = []
        for day in sorted(self.cold_path.glob("year=*/month=*/day=*")):
            files, rows, first, last = [], 0, None, None
            for file in sorted(day.glob("*.parquet")):
                try:
                    file_rows, file_first, file_last = _footer_stats(file)
                except AuditFormatError as exc:
                    if on_error is None:
                        raise
                    on_error(exc)
                    continue
                files.append(file)
                rows += file_rows
                if file_first is not None:
                    first = file_first if first is None else min(first, file_first)
                if file_last is not None:
                    last = file_last if last is None else max(last, file_last)
            stats.append(PartitionStats(
                str(day.relative_to(self.cold_path)), len(files), rows, sum(f.stat().st_size for f in files),
                first, last,
            ))
        return stats

    # --- internals ----------------------------------------------------------------------------

    def _write_partitions(self, columnar: _ColumnarPass, path: Path, staging: Path) -> list[tuple[Path, int]]:
        con = columnar.con
        table = "rows"
        if columnar.source is None:  # batches arrive in file order: sort once, then cut days
            con.execute("CREATE TEMP TABLE sorted_rows AS SELECT * FROM rows ORDER BY ts_event, source_line")
            con.execute("DROP TABLE rows")
            table = "sorted_rows"
        # The table is in (ts_event, source_line) order; scanning it in order keeps each day's file sorted,
        # and its zone maps let each day's range skip the rest.
        con.execute("SET preserve_insertion_order = true")
        first, last = con.execute(f"SELECT min(ts_event), max(ts_event) FROM {table}").fetchone() or (None, None)
        outputs: list[tuple[Path, int]] = []
        if first is None:
            return outputs
        for start in range(first // NS_PER_DAY * NS_PER_DAY, last + 1, NS_PER_DAY):
            day = utc_day(start)
            year, month, date = f"{day.year:04d}", f"{day.month:02d}", f"{day.day:02d}"
            staged = staging / f"{year}{month}{date}.parquet"
            # COPY returns the number of rows it wrote.
            (count,) = con.execute(
                f"""COPY (SELECT * FROM {table} WHERE ts_event >= $start AND ts_event < $end)
                    TO '{_sql_string(staged)}'
                    (FORMAT PARQUET, COMPRESSION ZSTD, COMPRESSION_LEVEL {ZSTD_LEVEL}, PARQUET_VERSION V2,
                     ROW_GROUP_SIZE {self._row_group_size})""",
                {"start": start, "end": start + NS_PER_DAY},
            ).fetchone() or (0,)
            if not count:  # a day with no rows (a quiet day inside a long file) gets no partition
                staged.unlink()
                continue
            target_dir = self.cold_path / f"year={year}" / f"month={month}" / f"day={date}"
            target_dir.mkdir(parents=True, exist_ok=True)
            target = target_dir / (path.name.removesuffix(".jsonl") + ".parquet")
            _fsync_file(staged)
            os.replace(staged, target)  # atomic; converting again replaces, never duplicates
            fsync_directory(target_dir)
            outputs.append((target, int(count)))
        return outputs

    def _manifest_path(self, path: Path) -> Path:
        return self.cold_path / MANIFEST_DIR / (path.name + ".json")

    def _write_manifest(self, path: Path, seal: dict[str, Any], outputs: list[tuple[Path, int]]) -> None:
        entry = {
            "source": path.name,
            "seal": seal,
            "outputs": [{"path": str(out.relative_to(self.cold_path)), "rows": rows} for out, rows in outputs],
        }
        write_json_atomically(self._manifest_path(path), entry)  # written last: it marks the conversion done


def _check_every_row_has_a_time(columnar: _ColumnarPass, path: Path) -> None:
    """A row without ``ts_event`` would fall into no day partition: refuse the file instead of losing it."""
    (untimed,) = columnar.con.execute("SELECT count(*) FROM rows WHERE ts_event IS NULL").fetchone() or (0,)
    if untimed:
        raise AuditFormatError(path, f"{untimed} record(s) have no ts_event that fits a signed 64-bit integer")


def _footer_stats(file: Path) -> tuple[int, int | None, int | None]:
    """Rows and min/max ``ts_event`` of a Parquet file, from its footer. AuditFormatError if unreadable."""
    import pyarrow as pa

    metadata = read_parquet_metadata(file)
    try:
        arrow_schema = metadata.schema.to_arrow_schema()
        column = arrow_schema.get_field_index("ts_event")
        if column < 0 or str(arrow_schema.field(column).type) != "int64":
            kind = "missing" if column < 0 else f"of type {arrow_schema.field(column).type}"
            raise AuditFormatError(file, f"column 'ts_event': expected int64, it is {kind}")
        first = last = None
        for group in range(metadata.num_row_groups):
            statistics = metadata.row_group(group).column(column).statistics
            if statistics is not None and statistics.has_min_max:
                first = statistics.min if first is None else min(first, statistics.min)
                last = statistics.max if last is None else max(last, statistics.max)
        return metadata.num_rows, first, last
    except (pa.ArrowException, OSError) as exc:
        raise AuditFormatError(file, f"unreadable Parquet footer: {exc}") from None


def _without_torn_lines(seal: dict[str, Any]) -> bool:
    """Whether the seal shows one record per line (so a line's place follows from its sequence)."""
    first, last, lines = seal.get("first_sequence"), seal.get("last_sequence"), seal.get("records")
    return isinstance(first, int) and isinstance(last, int) and lines == last - first + 1


class _ColumnarPass:
    """A DuckDB thread that builds the temp table ``rows`` (cold schema) while the scan verifies.

    With ``source`` (a file without torn lines) DuckDB reads and parses the file itself, on every
    core. Otherwise ``feed`` hands it the scan's Arrow batches one by one (blocking while two are
    queued); DuckDB parses a batch's JSON without the GIL while the scan hashes the next chunk.
    DuckDB's memory is capped and it spills to ``staging``, so a large file does not need its size
    in RAM.
    """

    MEMORY_LIMIT = "1GB"

    def __init__(self, stream: str, staging: Path, source: Path | None = None, first_sequence: Any = None) -> None:
        import duckdb

        self.con = duckdb.connect()
        self.con.execute(f"SET memory_limit = '{self.MEMORY_LIMIT}'")
        self.con.execute(f"SET temp_directory = '{_sql_string(staging / 'duckdb.tmp')}'")
        self.con.execute("SET preserve_insertion_order = false")  # COPY sorts; lets the load run in parallel
        self._stream = stream
        self.source, self._first_sequence = source, first_sequence
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        target = self._load if source is None else self._load_file
        self._thread = threading.Thread(target=target, name="ledgerline-convert", daemon=True)
        self._thread.start()

    def _load_file(self) -> None:
        try:
            self.con.execute(
                f"""CREATE TEMP TABLE rows AS
                SELECT {_SELECT}
                FROM (SELECT *, j.sequence - $first + 1 AS source_line
                      FROM (SELECT line, NULL::VARCHAR AS record, NULL::BLOB AS torn_bytes, NULL::BIGINT AS torn_ts,
                                   json_transform(line, $structure) AS j
                            FROM read_csv($path, columns={{'line': 'VARCHAR'}}, delim=chr(1), quote='', escape='',
                                          header=false, auto_detect=false, strict_mode=false)))
                ORDER BY ts_event, source_line""",
                {"path": str(self.source), "stream": self._stream, "structure": _structure(),
                 "first": self._first_sequence},
            )
        except BaseException as exc:  # reported by finish()
            self._error = exc

    def _load(self) -> None:
        import pyarrow as pa

        try:
            batches = pa.RecordBatchReader.from_batches(batch_schema(), iter(self._queue.get, None))
            self.con.register("batches", batches)
            self.con.execute(
                f"""CREATE TEMP TABLE rows AS
                SELECT {_SELECT}
                FROM (SELECT *, json_transform(line, $structure) AS j FROM batches)""",
                {"stream": self._stream, "structure": _structure()},
            )
            # A torn first line has no record before it to take its time from: the file's first time.
            self.con.execute("UPDATE rows SET ts_event = (SELECT min(ts_event) FROM rows) WHERE ts_event IS NULL")
        except BaseException as exc:  # reported to the feeding thread
            self._error = exc
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()  # unblock a feeder waiting on a full queue

    def _put(self, item: Any) -> None:
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def feed(self, batch: Any) -> None:
        self._put(batch)

    def finish(self) -> None:
        """Wait until every row is in ``rows``; raises what the DuckDB thread raised."""
        if self.source is None:
            self._put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> _ColumnarPass:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._thread.is_alive() and self.source is None:
            with contextlib.suppress(BaseException):
                self._put(None)  # the scan failed half-way: let DuckDB finish, then drop everything
            self._thread.join()
        self.con.close()


def _sql_string(path: Path) -> str:
    return str(path).replace("'", "''")


def write_json_atomically(target: Path, data: dict[str, Any]) -> None:
    """Replace ``target`` with ``data`` as JSON: written to a temporary name, synced, renamed, directory synced.

    Manifests and retention journals are whole or absent after a crash, never half-written.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=1) + "\n")
    _fsync_file(temporary)
    os.replace(temporary, target)
    fsync_directory(target.parent)


def read_manifest(path: Path) -> dict[str, Any]:
    """One entry of ``cold/_manifest``, its form checked: what converter, retention, verify and workbench read.

    An entry is an object with ``source`` (the hot file's name), ``seal`` (a copy of its seal,
    ``integrity.check_seal_format``), ``outputs`` (``[{"path": <relative .parquet path>, "rows": n}]``)
    and, after retention, ``retired`` (outputs removed, same form) and ``hot_removed_by`` (a plan id).
    Only the form is checked; whether the entry is true is ``verify_cold``'s job.

    Raises:
        AuditFormatError: not JSON, not an object, or a field of the wrong form; names the file and the field.
        OSError: the file cannot be read.
    """
    entry = _jsonfile.read_object(path, "manifest entry")

    def wrong(field: str, expected: str, got: object) -> AuditFormatError:
        return AuditFormatError(path, f"manifest entry {field}: expected {expected}, got {got!r:.80}")

    if not isinstance(entry.get("source"), str):
        raise wrong("source", "a file name", entry.get("source"))
    check_seal_format(entry.get("seal"), path, "manifest entry's seal")
    for key in ("outputs", "retired"):
        outputs = entry.get(key, [])
        if not isinstance(outputs, list):
            raise wrong(key, "an array", outputs)
        for index, output in enumerate(outputs):
            if not isinstance(output, dict):
                raise wrong(f"{key}[{index}]", "an object", output)
            relative = output.get("path")
            if not isinstance(relative, str) or not _is_relative_parquet_path(relative):
                raise wrong(f"{key}[{index}].path", "a relative .parquet path inside the cold store", relative)
            rows = output.get("rows")
            if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
                raise wrong(f"{key}[{index}].rows", "a count", rows)
    if not isinstance(entry.get("hot_removed_by", ""), str):
        raise wrong("hot_removed_by", "a plan id", entry["hot_removed_by"])
    return entry


def _is_relative_parquet_path(relative: str) -> bool:
    parts = Path(relative).parts
    return (
        bool(parts) and relative.endswith(".parquet") and "\x00" not in relative
        and not Path(relative).is_absolute() and ".." not in parts
    )


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def verify_cold(cold_path: Path | str, hmac_key: bytes | None = None) -> Any:
    """Recompute, from the Parquet rows alone, what each source file's seal (in the manifest) says.

    For every manifest entry: its Parquet files exist; their rows rebuild the source's lines byte
    for byte (``record`` with its ``prev_hash`` and ``checksum`` put back; a torn line from
    ``torn_bytes``), one per source line; the records, ordered by sequence, have valid checksums and
    an unbroken chain from the seal's first to last sequence and hash; and all lines, in source
    order, rebuild the seal's line count and Merkle root. A Parquet file that no manifest entry names
    is reported too (a partition added by hand). Returns a ``VerificationReport``; ``report.ok`` is
    false when anything failed.
    """
    from audit_core.integrity import (
        FailureKind,
        VerificationFailure,
        VerificationReport,
        compute_checksum,
        merkle_root,
        split_record,
    )

    cold = Path(cold_path)
    report = VerificationReport(keyed=hmac_key is not None)
    named: set[Path] = set()
    for manifest in sorted((cold / MANIFEST_DIR).glob("*.json")):
        try:
            entry = read_manifest(manifest)
        except (AuditFormatError, OSError) as exc:
            report.failures.append(VerificationFailure(
                str(manifest), 0, None, FailureKind.UNREADABLE_FILE, _unreadable(manifest, exc)))
            continue
        seal, source = entry["seal"], entry["source"]
        # Outputs removed by retention (``retention.py`` marks them retired): the rows left are
        # checked among themselves, the seal's whole-file claims no longer can be.
        partial = bool(entry.get("retired"))
        lines: list[tuple[int, bytes, bool]] = []  # source line, its bytes, torn
        for output in entry.get("outputs", []):
            file = cold / output["path"]
            named.add(file.resolve())
            report.files.append(str(file))
            if not file.exists():
                report.failures.append(VerificationFailure(
                    str(file), 0, None, FailureKind.FILE_MISSING, f"{source}: its Parquet file is missing"))
                continue
            try:
                rows = _read_verified_columns(file)
            except (AuditFormatError, OSError) as exc:
                report.failures.append(VerificationFailure(
                    str(file), 0, None, FailureKind.UNREADABLE_FILE, _unreadable(file, exc)))
                continue
            for line_no, record, prev_hash, checksum, torn in rows:
                if torn is not None:
                    lines.append((line_no, torn, True))
                elif record is None or checksum is None:
                    report.failures.append(VerificationFailure(
                        source, line_no or 0, None, FailureKind.UNPARSEABLE_LINE, "row has no record or checksum"))
                else:
                    lines.append((line_no, rebuild_line(record.encode(), prev_hash, checksum), False))
        lines.sort(key=lambda item: item[0] if item[0] is not None else -1)
        positions = [line_no for line_no, _, _ in lines]
        if not partial and positions != list(range(1, len(lines) + 1)):
            report.failures.append(VerificationFailure(
                source, 0, None, FailureKind.SEAL_MISMATCH,
                f"rows do not cover source lines 1..{len(lines)} once each (a row deleted, duplicated or moved)"))
        parsed = []
        for line_no, line, torn in lines:
            if torn:
                continue  # only its Merkle leaf is checked: the seal counted it, the chain does not
            try:
                parsed.append(split_record(line))
            except ValueError as exc:
                report.failures.append(
                    VerificationFailure(source, line_no, None, FailureKind.UNPARSEABLE_LINE, str(exc)))
        parsed.sort(key=lambda fields: fields.sequence)
        expected_sequence = parsed[0].sequence if partial and parsed else seal.get("first_sequence")
        prev_hash = None
        for fields in parsed:
            report.records += 1
            actual = compute_checksum(fields.body, hmac_key)
            if actual != fields.checksum:
                report.failures.append(VerificationFailure(
                    source, 0, fields.sequence, FailureKind.CHECKSUM_MISMATCH,
                    f"row's record hashes to {actual[:16]}..., its checksum is {fields.checksum[:16]}..."))
            if expected_sequence is not None and fields.sequence != expected_sequence:
                kind = FailureKind.SEQUENCE_GAP if fields.sequence > expected_sequence else FailureKind.SEQUENCE_REPEAT
                detail = f"expected sequence {expected_sequence}, got {fields.sequence}"
                report.failures.append(VerificationFailure(source, 0, expected_sequence, kind, detail))
            if prev_hash is not None and fields.prev_hash != prev_hash:
                report.failures.append(VerificationFailure(
                    source, 0, fields.sequence, FailureKind.CHAIN_BREAK, "prev_hash does not match the previous row"))
            expected_sequence, prev_hash = fields.sequence + 1, fields.checksum
        if partial:
            continue
        last = parsed[-1] if parsed else None
        empty = last is None and seal.get("last_sequence") is None and not seal.get("records")
        if not empty and (
            last is None or last.sequence != seal.get("last_sequence") or last.checksum != seal.get("last_hash")
        ):
            report.failures.append(VerificationFailure(
                source, 0, None if last is None else last.sequence, FailureKind.SEAL_MISMATCH,
                f"seal ends at sequence {seal.get('last_sequence')}, the rows end at "
                f"{None if last is None else last.sequence}"))
        root = merkle_root(line for _, line, _ in lines)
        if len(lines) != seal.get("records") or root != seal.get("merkle_root"):
            report.failures.append(VerificationFailure(
                source, 0, None, FailureKind.SEAL_MISMATCH,
                f"{len(lines)} rows rebuild Merkle root {root[:16]}..., the seal says {seal.get('records')} "
                f"lines with root {str(seal.get('merkle_root'))[:16]}..."))
    for file in sorted(cold.glob("year=*/month=*/day=*/*.parquet")):
        if file.resolve() not in named:
            report.failures.append(VerificationFailure(
                str(file), 0, None, FailureKind.UNEXPECTED_FILE, "no manifest entry names this Parquet file"))
    return report


#: The columns ``verify_cold`` rebuilds source lines from, and their Arrow types.
_VERIFIED_COLUMNS = (
    ("source_line", "int64"), ("record", "string"), ("prev_hash", "string"), ("checksum", "string"),
    ("torn_bytes", "binary"),
)


def read_parquet_table(file: Path, columns: list[str] | None = None) -> Any:
    """The rows of cold Parquet ``file`` (only ``columns``, if given) as a pyarrow Table.

    Raises:
        AuditFormatError: the file cannot be read as Parquet (garbage, truncated, a damaged page or
            footer, a named column missing), or cannot be opened at all: pyarrow reports a damaged
            page and a failed open alike, as ``OSError``. Names the file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(file, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise AuditFormatError(file, f"not a readable Parquet file: {exc}") from None


def read_parquet_metadata(file: Path) -> Any:
    """The footer metadata of cold Parquet ``file``. AuditFormatError as ``read_parquet_table``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(file).metadata
    except (pa.ArrowException, OSError) as exc:
        raise AuditFormatError(file, f"not a readable Parquet file: {exc}") from None


def _read_verified_columns(file: Path) -> list[tuple[Any, ...]]:
    """(source_line, record, prev_hash, checksum, torn_bytes) of every row of ``file``, types checked."""
    table = read_parquet_table(file, [name for name, _ in _VERIFIED_COLUMNS])
    for name, kind in _VERIFIED_COLUMNS:
        got = table.schema.field(name).type
        if str(got) not in (kind, "large_" + kind):
            raise AuditFormatError(file, f"column {name!r}: expected {kind}, got {got}")
    return list(zip(*(table.column(name).to_pylist() for name, _ in _VERIFIED_COLUMNS), strict=True))


def _unreadable(file: Path, exc: Exception) -> str:
    """A failure detail for ``file``: the AuditFormatError's message, or what the OS said."""
    return str(exc) if isinstance(exc, AuditFormatError) else f"{file}: cannot read: {exc}"


#: Fields a hot line must have (of the right JSON type) to be read as a record by ``read_hot_file``:
#: those a row is placed and chained by. (Lines of other writers may lack the rest.)
_RECORD_FIELDS = ("ts_event", "event_type", "sequence", "checksum")


def read_hot_file(path: Path | str, on_error: Callable[[AuditFormatError], None] | None = None) -> Any:
    """The complete records of one hot file as a pyarrow Table in the cold schema (``COLUMNS``).

    For readers of files not converted yet (the workbench reads today's file this way), so hot and
    cold rows share one mapping from record to columns. Rows are in file order. The last line, if it
    has no newline yet (being appended, or torn by a crash), is left out; so is a torn line that a
    ``sys.recovery`` record in the same file describes (crash recovery closed it off). Any other
    line that is not a record (not a JSON object, lacking a field of ``_RECORD_FIELDS`` or with one
    of the wrong type, a decimal field that is no decimal) is left out and reported: to ``on_error``
    if given, as one ``AuditFormatError`` for the file (its first such line, and how many), else by
    raising that error. The lines reach DuckDB as Arrow, as in the converter: fed by ``read_csv``
    instead, DuckDB 1.5 evaluates the numeric cast of ``old_value_num``/``new_value_num`` on
    non-numeric values too.

    Raises:
        AuditFormatError: a line is not a record (only without ``on_error``); names the file and line.
    """
    import duckdb
    import pyarrow as pa

    path = Path(path)
    name = parse_hot_file_name(path)
    lines = path.read_bytes().split(b"\n")[:-1]  # the last piece has no newline: empty, or unfinished
    table = pa.table({
        "line": pa.array([line.decode("utf-8", "replace") for line in lines], pa.string()),
        "source_line": pa.array(range(1, len(lines) + 1), pa.int64()),
    })
    is_record = " AND ".join(
        [f"j.{key} IS NOT NULL" for key in _RECORD_FIELDS]
        + [f"(j.{column} IS NULL OR TRY_CAST(j.{column} AS {sql_type}) IS NOT NULL)"
           for column, sql_type, kind in COLUMNS if kind == "decimal"]
    )
    con = duckdb.connect()
    try:
        con.register("hot_lines", table)
        rows = con.execute(
            f"""SELECT {_SELECT}
            FROM (SELECT *, NULL::VARCHAR AS record, NULL::BLOB AS torn_bytes, NULL::BIGINT AS torn_ts,
                         json_transform(line, $structure) AS j
                  FROM hot_lines WHERE line LIKE '{{%}}' AND json_valid(line))
            WHERE {is_record}
            ORDER BY source_line""",
            {"stream": name.stream_key if name else path.stem, "structure": _structure()},
        ).to_arrow_table()
    finally:
        con.close()
    if rows.num_rows < len(lines):
        error = _not_records(path, lines, rows)
        if error is not None:
            if on_error is None:
                raise error
            on_error(error)
    return rows


def _not_records(path: Path, lines: list[bytes], rows: Any) -> AuditFormatError | None:
    """One error naming the lines of ``path`` that ``read_hot_file`` left out, but for recovered torn lines."""
    import itertools

    from audit_core.reader import described_torn_lines, is_described

    read = set(rows.column("source_line").to_pylist())
    offsets = [0, *itertools.accumulate(len(line) + 1 for line in lines)]
    payloads = []
    for event_type, payload in zip(rows.column("event_type").to_pylist(), rows.column("payload").to_pylist(),
                                   strict=True):
        if event_type == "sys.recovery" and payload:
            with contextlib.suppress(AuditFormatError):
                payloads.append(_jsonfile.loads(payload, path, "sys.recovery payload"))
    described = described_torn_lines(payloads, path.name)
    left_out = [
        number for number in range(1, len(lines) + 1)
        if number not in read and not is_described(offsets[number - 1], lines[number - 1], described)
    ]
    if not left_out:
        return None
    first = left_out[0]
    listed = ", ".join(map(str, left_out[:5])) + (", ..." if len(left_out) > 5 else "")
    return AuditFormatError(
        path, f"{len(left_out)} line(s) are not records and were left out (line {listed}); "
        f"line {first}: {_why_not_a_record(path, lines[first - 1])}", first,
    )


def _why_not_a_record(path: Path, line: bytes) -> str:
    """Why ``read_hot_file`` did not read ``line`` as a record, in a few words."""
    try:
        data = _jsonfile.loads(line, path, "the line")
    except AuditFormatError as exc:
        return exc.detail.split(":")[0]
    if not isinstance(data, dict):
        return f"a JSON {_jsonfile.type_name(data)}, not an object"
    expected = {"ts_event": int, "sequence": int}
    for key in _RECORD_FIELDS:
        value = data.get(key)
        kind = expected.get(key, str)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"field {key!r}: expected a JSON {_jsonfile.type_name(kind())}, got {value!r:.40}"
    return "a field's value does not fit its column (a decimal that is no decimal, a number out of range)"
