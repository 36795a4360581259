"""Sealed hot JSONL files to cold Parquet: verified first, partitioned by UTC day, atomic, idempotent.

Layout: ``cold/year=YYYY/month=MM/day=DD/<source file stem>.parquet`` (a source file that spans
midnight lands in two partitions), zstd, Parquet v1 pages, rows sorted by (``ts_event``,
``source_line``), and ``cold/_manifest/<source file>.json`` recording the seal each source file had
and the Parquet files it produced.

A DuckDB thread parses the file (a typed ``read_json`` beside the raw lines, ``_typed_read``;
``json_transform`` of each line where the typed read refuses one) into a table, then writes its
day files into ``cold/_staging/<source>/``, all on one core, while Python verifies the file on the
other from the start (``_bulk_verify.scan_file``: checksums, sequence, chain, Merkle leaves; SHA-256
per line in Python, everything else column-wise in pyarrow). A file with torn lines is instead
handed to DuckDB chunk by chunk as the scan reads it. Only when the whole file and its seal verify
are the staged files renamed into their partitions and the manifest entry written; a file that
fails is reported, DuckDB is interrupted, and nothing of it is kept.

Every row keeps its record in ``record`` in the cold layout of the projection (``projection.py``;
from version 4: the line without its checksum, which is the ``checksum`` column, without the values
of ``ts_event``, ``sequence`` and ``ts_recorded``, which are their columns, and without its
prev_hash value where the row one source line before it in the same file gives it back);
``lines.source_lines`` restores the original lines byte for byte, so the cold side can recompute
checksums, the chain and the Merkle root, and no field of any event type (a user's own included)
is ever lost. A torn line that a crash left behind (closed off by recovery and described
by a ``sys.recovery`` record) is carried over as a row of event type ``sys.torn_line`` with NULL
sequence, its exact bytes in ``torn_bytes`` and its position in ``source_line``, so the Merkle root
the seal took over all lines can be rebuilt. Needs the ``workbench`` extra (duckdb, pyarrow).
"""

from __future__ import annotations

import contextlib
import json
import queue
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit_core import _jsonfile
from audit_core._layout import hot_files, parse_hot_file_name
from audit_core.cold._bulk_verify import batch_schema, scan_file, verify_scanned
from audit_core.cold._parquet import (
    STAGING_DIR,
    Staged,
    bounded_connection,
    publish_partitions,
    quiet_connection,
    stage_partitions,
)
from audit_core.cold.manifest import (
    ROOT_FILE,
    converted_entry,
    new_entry,
    update_cold_root,
    write_entry,
)
from audit_core.cold.projection import (
    COLUMNS,
    PROJECTION_VERSION,
    PROJECTIONS,
    select,
    structure,
    working_rows,
)
from audit_core.errors import AuditConfigError, AuditFormatError
from audit_core.trust.record import GENESIS_HASH
from audit_core.trust.seals import read_seal

#: ``ConversionResult.skipped`` of a file whose seal, manifest entry or records could not be read.
UNREADABLE = "unreadable"


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
        hmac_key: The trail's HMAC key, if it is keyed: hot files are verified with it, and the
            manifest entries and the cold root are authenticated with it (HMAC-SHA256).
        public_key: An Ed25519 public key every seal must be signed with, if signing is used.
        signing_key: The Ed25519 private key that signs manifest entries and the cold root. It may
            be the writer's key or one of the converter's own (the converter may run on another
            host); verifiers then pin its public key (``verify_cold(cold_public_key=...)``).
        row_group_size: Rows per Parquet row group; with about 100k events a day, 8,192 makes an
            hour's query read a few row groups of a day's file.
        projection_version: The cold projection to write (``projection.PROJECTIONS``); default
            the current one. An older one only for a store that an older reader must still read.

    Raises:
        AuditConfigError: an unknown ``projection_version``.
    """

    def __init__(
        self,
        hot_path: Path | str,
        cold_path: Path | str,
        *,
        hmac_key: bytes | None = None,
        public_key: Any = None,
        signing_key: Any = None,
        row_group_size: int = 8_192,
        projection_version: int = PROJECTION_VERSION,
    ) -> None:
        if projection_version not in PROJECTIONS:
            raise AuditConfigError(f"projection_version={projection_version!r}: expected one of {sorted(PROJECTIONS)}")
        self.hot_path = Path(hot_path)
        self.cold_path = Path(cold_path)
        self._hmac_key = hmac_key
        self._public_key = public_key
        self._signing_key = signing_key
        self._row_group_size = row_group_size
        self.projection_version = projection_version

    @classmethod
    def from_config(cls, config: Any, cold_path: Path | str, **options: Any) -> ParquetConverter:
        """A converter of ``config``'s hot directory with its HMAC key and signing key (``AuditConfig``)."""
        from audit_core.trust.signer import load_signer

        signing_key = load_signer(config)  # a key file, a variable, or a signing command (KMS)
        if signing_key is not None:
            options.setdefault("public_key", signing_key.public_key())
        return cls(config.hot_path, cold_path, hmac_key=config.resolve_hmac_key(), signing_key=signing_key, **options)

    def convert_all(self, progress: Progress | None = None) -> list[ConversionResult]:
        """Convert every sealed hot file not converted yet, then rewrite the cold root. Safe to run again.

        A file that cannot be read (its seal is not in its format, its records do not load) does
        not stop the others: its result has ``skipped="unreadable"`` and the reason, naming the
        file, in ``failures``. (An unreadable or forged manifest entry just means "not converted".)
        """
        files = [path for path in hot_files(self.hot_path) if parse_hot_file_name(path) is not None]
        results = []
        for done, path in enumerate(files, start=1):
            try:
                results.append(self._convert(path))
            except (AuditFormatError, OSError) as exc:
                detail = str(exc) if isinstance(exc, AuditFormatError) else f"{path}: cannot read: {exc}"
                results.append(ConversionResult(path.name, converted=False, skipped=UNREADABLE, failures=[detail]))
            if progress is not None:
                progress(done, len(files), path.name)
        if any(result.converted for result in results) or not (self.cold_path / ROOT_FILE).exists():
            self.update_root()
        return results

    def rebuild(self, progress: Progress | None = None) -> Any:
        """Derive the columns of every entry written with an older projection again (``rebuild.rebuild_projection``).

        The store is verified first and the rebuilt copy before it replaces it; the records are
        carried over byte for byte. Returns the ``RebuildResult``.
        """
        from audit_core.cold.rebuild import rebuild_projection

        return rebuild_projection(self.cold_path, hmac_key=self._hmac_key, public_key=self._public_key,
                                  signing_key=self._signing_key, row_group_size=self._row_group_size,
                                  progress=progress)

    def update_root(self, *, accept_legal_holds: bool = False) -> dict[str, Any]:
        """Rewrite ``cold/_root.json`` with the converter's keys (``manifest.update_cold_root``)."""
        self.cold_path.mkdir(parents=True, exist_ok=True)
        return update_cold_root(self.cold_path, self._hmac_key, self._signing_key,
                                accept_legal_holds=accept_legal_holds)

    def converted_entry(self, path: Path | str, *, strict: bool = False) -> dict[str, Any] | None:
        """The authentic manifest entry showing hot file ``path`` converted, or None (``manifest.converted_entry``)."""
        public_key = None if self._signing_key is None else self._signing_key.public_key()
        return converted_entry(path, self.cold_path, self._hmac_key, public_key, strict=strict)

    def convert_file(self, path: Path | str) -> ConversionResult:
        """Verify one hot file (chain and seal) and, if it passes, write its Parquet partitions.

        A file that is not sealed, or fails verification, is reported and left untouched.
        Converting a file again finds its (authentic) manifest entry and writes nothing. The cold
        root is rewritten after a conversion.

        Raises:
            AuditFormatError: the file's seal is not in its format, or its verified records cannot
                be loaded into the cold columns; names the file.
        """
        result = self._convert(Path(path))
        if result.converted:
            self.update_root()
        return result

    def _convert(self, path: Path) -> ConversionResult:
        result = ConversionResult(source=path.name, converted=False)
        seal = read_seal(path)
        if seal is None:
            result.skipped = "not sealed (the live file of a stream, or a crash not yet recovered)"
            return result
        # An entry not in its format raises AuditFormatError: the file is reported unreadable.
        if self.converted_entry(path, strict=True) is not None:  # a forged or edited entry does not count
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

            def stage(con: Any) -> list[Staged]:  # on the DuckDB thread, while the file is still being verified
                return stage_partitions(con, "rows", path.name, staging, self.cold_path,
                                        row_group_size=self._row_group_size, version=self.projection_version)

            with _ColumnarPass(name.stream_key, staging, self.projection_version, source,
                               seal.get("first_sequence"), stage) as columnar:
                # Without torn lines, DuckDB reads the file itself on one core (``_load_file``) while Python
                # hashes it on the other; otherwise each scanned chunk goes to DuckDB (torn bytes and all) as
                # the next is hashed. Either way the day files are written into ``staging`` unpublished.
                scan = scan_file(path, self._hmac_key, None if whole else columnar.feed)
                columnar.end_of_input()  # DuckDB goes on (staging) while the verdict is worked out
                report = verify_scanned(path, scan, self._hmac_key, self._public_key)
                if not report.ok:
                    columnar.cancel()  # what it staged is removed below, never published
                    result.skipped = "failed verification"
                    result.failures = [str(failure) for failure in report.failures]
                    return result
                try:
                    columnar.finish()
                except Exception as exc:
                    if columnar.loaded:  # sorting or writing failed (a full disk, ...): as it is
                        raise
                    raise AuditFormatError(  # verified records that still do not fit the columns
                        path, f"its records verify but cannot be loaded into the cold columns: {exc}"
                    ) from exc
                if columnar.untimed:
                    raise AuditFormatError(
                        path, f"{columnar.untimed} record(s) have no ts_event that fits a signed 64-bit integer")
                # Published only now that the file and its seal verify: a crash before this leaves
                # files in ``staging`` alone, which the next conversion of the file removes first.
                outputs = publish_partitions(columnar.staged)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        result.outputs = [str(output["path"]) for output in outputs]
        result.rows = sum(int(output["rows"]) for output in outputs)
        entry = new_entry(path.name, name.stream_key, seal, outputs, self.projection_version)
        write_entry(self.cold_path, entry, self._hmac_key, self._signing_key)  # last: marks the conversion done
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

        See ``audit_core.cold.retention.apply_retention``; this passes the converter's paths and keys.
        Returns the ``RetentionPlan`` carried out.
        """
        from audit_core.cold.retention import apply_retention

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


def _footer_stats(file: Path) -> tuple[int, int | None, int | None]:
    """Rows and min/max ``ts_event`` of a Parquet file. AuditFormatError if unreadable.

    The extent is the footer's (``extent.ts_event_extent``); where the footer cannot tell (a row group
    without statistics), the column itself is read, so the range reported is never that of some
    row groups only.
    """
    import pyarrow as pa

    from audit_core.cold.extent import ts_event_extent

    metadata = read_parquet_metadata(file)
    try:
        arrow_schema = metadata.schema.to_arrow_schema()
        column = arrow_schema.get_field_index("ts_event")
        if column < 0 or str(arrow_schema.field(column).type) != "int64":
            kind = "missing" if column < 0 else f"of type {arrow_schema.field(column).type}"
            raise AuditFormatError(file, f"column 'ts_event': expected int64, it is {kind}")
        extent = ts_event_extent(metadata)
        if extent is None:
            import pyarrow.compute as pc

            values = read_parquet_table(file, columns=["ts_event"]).column("ts_event")
            bounds = pc.min_max(values).as_py()
            extent = (bounds["min"], bounds["max"])
        return metadata.num_rows, extent[0], extent[1]
    except (pa.ArrowException, OSError) as exc:
        raise AuditFormatError(file, f"unreadable Parquet footer: {exc}") from None


#: A hot file's lines, one VARCHAR each, in file order (``$path``); ``_typed_read`` reads them beside its JSON.
_LINES = ("read_csv($path, columns={'line': 'VARCHAR'}, delim=chr(1), quote='', escape='', header=false, "
          "auto_detect=false, strict_mode=false)")


def _typed_read(version: int) -> str:
    """``line`` and ``j`` (its keys of ``structure(version)``, typed) of each line of ``$path``, in file order.

    DuckDB's ``read_json`` with the structure as its columns parses at about a third of the cost of
    ``json_transform`` over ``read_csv``'s lines (benchmark file); where it reads a value it reads
    what json_transform does, and what json_transform would read as NULL (a value that does not fit
    its column, a repeated key) it refuses: the caller then takes the plain parse. A POSITIONAL JOIN
    of the two table scans runs on one thread, each scan in file order; every line of a file that
    verifies ends with the checksum its JSON holds, which the join checks row by row (a blank line
    one reader skips and the other not would shift them: DuckDB pads the shorter side with NULLs).
    """
    columns = ", ".join(f"'{key}': '{sql_type}'" for key, sql_type in json.loads(structure(version)).items())
    checksum = f"substr(line, length(line) - {len(GENESIS_HASH) + 1}, {len(GENESIS_HASH)})"  # before the '"}'
    return f"""(SELECT line, j FROM read_json($path, format='newline_delimited', columns={{{columns}}}) AS j
                     POSITIONAL JOIN {_LINES}
                WHERE CASE WHEN {checksum} IS DISTINCT FROM j.checksum
                           THEN error('typed read: a line and its JSON out of step') ELSE true END)"""


def _without_torn_lines(seal: dict[str, Any]) -> bool:
    """Whether the seal shows one record per line (so a line's place follows from its sequence)."""
    first, last, lines = seal.get("first_sequence"), seal.get("last_sequence"), seal.get("records")
    return isinstance(first, int) and isinstance(last, int) and lines == last - first + 1


class _ColumnarPass:
    """A DuckDB thread that builds the temp table ``rows`` (cold schema) and stages its day files
    (``stage``) while the scan verifies.

    With ``source`` (a file without torn lines) DuckDB reads and parses the file itself on one
    thread (``_typed_read``, else the plain parse) while the scan reads it too. Otherwise ``feed``
    hands it the scan's Arrow batches one by one (blocking while two are queued); DuckDB parses a
    batch's JSON without the GIL while the scan hashes the next chunk.
    Then, still beside the scan, it sorts ``rows`` if needed and calls ``stage`` with the connection:
    its result is ``staged`` after ``finish``. DuckDB's memory is capped and it spills to
    ``staging``, so a large file does not need its size in RAM.
    """

    def __init__(
        self, stream: str, staging: Path, version: int, source: Path | None = None, first_sequence: Any = None,
        stage: Callable[[Any], list[Staged]] | None = None,
    ) -> None:
        self.con = bounded_connection(staging)
        # ``rows`` is in file order, which is the cold order when ts_event never decreases: then no
        # sort, the costliest step, and its memory.
        self.con.execute("SET preserve_insertion_order = true")
        self._stream, self._version = stream, version
        self.source, self._first_sequence = source, first_sequence
        self._stage = stage
        self.staged: list[Staged] = []
        #: Rows without a ts_event (they would fall into no day partition): then nothing is staged.
        self.untimed = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        #: Whether every row made it into ``rows`` (an error after that came from sorting or staging).
        self.loaded = False
        self._cancelled = False
        self._input_ended = False
        self._thread = threading.Thread(target=self._run, name="ledgerline-convert", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self.source is None:
            self._load()
        else:
            self._load_file()
        if self._error is not None or self._cancelled:
            return
        self.loaded = True
        try:
            (self.untimed,) = self.con.execute("SELECT count(*) FROM rows WHERE ts_event IS NULL").fetchone() or (0,)
            if self.untimed or self._stage is None:
                return
            # The scan knows whether ts_event never decreases only once it ends: DuckDB asks itself.
            (backwards,) = self.con.execute(
                "SELECT count(*) FROM (SELECT ts_event < lag(ts_event) OVER (ORDER BY source_line) AS back "
                "FROM rows) WHERE back").fetchone() or (0,)
            if backwards:  # rows are in file order: sort once, then cut days
                self.con.execute("CREATE TEMP TABLE sorted_rows AS SELECT * FROM rows ORDER BY ts_event, source_line")
                self.con.execute("DROP TABLE rows")
                self.con.execute("ALTER TABLE sorted_rows RENAME TO rows")
            if not self._cancelled:
                self.staged = self._stage(self.con)
                # The staging often ends before the scan beside it: DuckDB's memory goes back now,
                # not when the scan ends (the process's peak RSS is the two together).
                self.con.execute("DROP TABLE rows")
        except BaseException as exc:  # reported by finish()
            self._error = exc

    def _load_file(self) -> None:
        try:
            # One thread: the verifying scan runs beside the load on the other core. On two, the load took
            # the same wall time and up to twice the CPU (1M events: 10 s CPU on one thread, 10-21 s on two).
            self.con.execute("SET threads = 1")
            try:
                self._create_rows(_typed_read(self._version), plain=False)
            except Exception:
                if self._cancelled:
                    raise
                # DuckDB's typed read refuses what json_transform reads as NULL (a value that does not
                # fit its column, a repeated key): such a file takes the plain parse, whose rows are the
                # rows every file had before the typed read (and the typed read's, where both read).
                self.con.execute("DROP TABLE IF EXISTS rows")
                self._create_rows(f"(SELECT line, json_transform(line, $structure) AS j FROM {_LINES})", plain=True)
        except BaseException as exc:  # reported by finish()
            self._error = exc

    def _create_rows(self, parsed: str, *, plain: bool) -> None:
        """``rows`` from ``parsed`` (``line`` and its parsed JSON ``j``, in file order) of ``source``."""
        source = f"""(SELECT line, j, j.sequence - $first + 1 AS source_line, NULL::VARCHAR AS record,
                             NULL::BLOB AS torn_bytes, NULL::BIGINT AS torn_ts FROM {parsed})"""
        parameters = {"path": str(self.source), "stream": self._stream, "first": self._first_sequence}
        if plain:
            parameters["structure"] = structure(self._version)
        self.con.execute(f"CREATE TEMP TABLE rows AS {working_rows(source, self._version)}", parameters)

    def _load(self) -> None:
        import pyarrow as pa

        try:
            batches = pa.RecordBatchReader.from_batches(batch_schema(), iter(self._queue.get, None))
            self.con.register("batches", batches)
            self.con.execute(
                f"""CREATE TEMP TABLE rows AS
                {working_rows("(SELECT *, json_transform(line, $structure) AS j FROM batches)", self._version)}""",
                {"stream": self._stream, "structure": structure(self._version)},
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

    def end_of_input(self) -> None:
        """No more batches: DuckDB finishes ``rows`` and goes on to stage (a no-op when it reads ``source``)."""
        if self.source is None and not self._input_ended:
            self._input_ended = True
            try:
                self._put(None)
            except BaseException as exc:
                if exc is not self._error:  # the DuckDB thread's own error: finish() reports it
                    raise

    def finish(self) -> None:
        """Wait until every row is in ``rows`` and staged; raises what the DuckDB thread raised."""
        self.end_of_input()
        self._thread.join()
        if self._error is not None:
            raise self._error

    def cancel(self) -> None:
        """Stop the DuckDB thread's work (the file failed): the query running is interrupted, no more start."""
        self._cancelled = True
        self.con.interrupt()

    def __enter__(self) -> _ColumnarPass:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._thread.is_alive():
            if exc_info[0] is not None:
                self.cancel()  # the scan failed half-way: nothing of this conversion is kept
            with contextlib.suppress(BaseException):
                self.end_of_input()  # let the reader end so the thread can
            self._thread.join()
        self.con.close()


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
    con = quiet_connection()
    try:
        con.register("hot_lines", table)
        rows = con.execute(
            f"""SELECT {select()}
            FROM (SELECT *, NULL::VARCHAR AS record, NULL::BLOB AS torn_bytes, NULL::BIGINT AS torn_ts,
                         json_transform(line, $structure) AS j
                  FROM hot_lines WHERE line LIKE '{{%}}' AND json_valid(line))
            WHERE {is_record}
            ORDER BY source_line""",
            {"stream": name.stream_key if name else path.stem, "structure": structure()},
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

    from audit_core.hot.reader import described_torn_lines, is_described

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
