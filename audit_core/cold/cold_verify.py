"""Cold verification: the Parquet store checked against its root, manifests and seals, every column bound.

``verify_cold`` checks, and reports as failures naming the file (and row and column):

1. **The root** (``cold/_root.json``, ``manifest.py``): present, authentic (HMAC with the trail's
   key; Ed25519 signature with the converter's public key), and committing to exactly the manifest
   entries, Parquet files (SHA-256), legal holds and retention journals the store holds. Parquet
   files or a root without a ``_manifest/`` directory is a failure, never a reason to skip.
2. **Each manifest entry**: authentic, of a projection version this verifier knows, and its copy
   of the hot file's seal passes the seal check of hot ``verify`` (``seals.check_seal_copy``:
   ``seal_checksum``, and the signature with the writer's public key).
3. **Each Parquet file** it names: inside the store, present, its SHA-256 and row count as the
   entry records (so no byte changes, footer statistics, page indexes and bloom filters included),
   the cold schema, the projection version in its key-value metadata.
4. **Every row's record**: each line rebuilt from ``record``/``prev_hash``/``checksum`` (from
   projection 4 on, ``prev_hash`` from the row one source line before: ``projection.chained_rows``; or
   ``torn_bytes``) hashes to its checksum (HMAC with a key); in source-line order the records form
   an unbroken chain from the seal's first to its last sequence and hash, the rows cover source
   lines 1..n once each, and all lines rebuild the seal's Merkle root. Entries with outputs retired
   by retention check what remains against what the entry recorded for each output.
5. **Every typed column**: derived again from the row's rebuilt line with the projection version
   the converter used (``projection.PROJECTIONS``: older versions stay verifiable) and compared in
   DuckDB (``IS DISTINCT FROM``), so an edited ``price`` or ``ts_event`` is a ``column_mismatch``
   naming the file, the source line and the column.
6. **No stray files**: a Parquet file no manifest entry names.

Needs the ``workbench`` extra (duckdb, pyarrow).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit_core._layout import parse_hot_file_name
from audit_core.cold._clean_entry import EntryRows, clean_entry
from audit_core.cold._id_filter import ID_COLUMNS, id_filter
from audit_core.cold._parquet import parameter_index_sql, quiet_connection
from audit_core.cold.manifest import (
    COLD_GLOB,
    JOURNAL_DIR,
    MANIFEST_DIR,
    ROOT_FILE,
    entry_problems,
    file_sha256,
    read_manifest,
    root_problems,
    safe_relative,
)
from audit_core.cold.manifest import engine as manifest_engine
from audit_core.cold.projection import (
    DERIVED_PREV_HASH_SINCE,
    PROJECTION_METADATA_KEY,
    PROJECTIONS,
    chained_rows,
    derivation,
    derived_columns,
    structure,
)
from audit_core.errors import AuditFormatError
from audit_core.trust.jobs import check_jobs, run_tasks, worth_parallel
from audit_core.trust.keyring import TrustedKeys, as_trusted, trusted_key_ids
from audit_core.trust.merkle import RFC6962_LEAF_PREFIX, MerkleTree
from audit_core.trust.record import GENESIS_HASH, INT_FIELDS, LINE_SQL, TS_RECORDED_FIELD
from audit_core.trust.report import FailureKind, VerificationFailure, VerificationReport
from audit_core.trust.seals import check_seal_copy

if TYPE_CHECKING:
    import duckdb

    from audit_core.trust.keyring import VerifyingKeys

#: Failing rows named per Parquet file (and chain breaks per entry) before the rest is counted in one line.
MAX_ROWS_NAMED = 20
#: Columns not compared with a derivation: ``checksum`` is what the body is hashed against, so
#: the checksum check binds it (and the chain binds ``prev_hash``, which is also compared).
_BOUND_BY_HASHES = frozenset({"checksum"})
_SHA256_BLOCK = 64
_EMPTY_ROW = "(record IS NULL AND torn_bytes IS NULL)"
_PARTITION_FILE = re.compile(r"^year=\d{4}/month=\d{2}/day=\d{2}/[^/]+\.parquet$")
#: Columns every cold file has had since the first version: what the record checks read (and
#: ``prev_hash`` before projection 4).
_RECORD_COLUMNS = ("source_line", "sequence", "checksum", "record", "torn_bytes")
#: Records per byte of Parquet, against JSONL: the cold store is about 5x smaller (benchmarks/results/convert.md).
_PARQUET_WEIGHT = 5
#: Arrow types of the cold schema's DuckDB types.
_ARROW_TYPES = {"BIGINT": "int64", "SMALLINT": "int16", "VARCHAR": "string", "DOUBLE": "double", "BOOLEAN": "bool",
                "DECIMAL(38,18)": "decimal128(38, 18)", "BLOB": "binary"}


def verify_cold(
    cold_path: Path | str,
    hmac_key: bytes | None = None,
    public_key: VerifyingKeys | None = None,
    *,
    cold_public_key: VerifyingKeys | None = None,
    jobs: int | None = None,
) -> VerificationReport:
    """Verify a cold store: root, manifest entries, seal copies, Parquet files, records and every column.

    Args:
        cold_path: The cold store's root directory.
        hmac_key: The trail's HMAC key, if it is keyed: records, seal copies, manifest entries and
            the root are checked with it. Without it they are checked as plain SHA-256, which
            anyone who rewrites the store can recompute.
        public_key: The writer's Ed25519 key: every seal copy must carry its valid signature.
        cold_public_key: The key manifest entries and the root must be signed with (the
            converter's own key, when it has one); default ``public_key``. Without either,
            signatures are not checked.
        jobs: Processes checking manifest entries side by side (default: all cores); below
            ``PARALLEL_MIN_BYTES`` of Parquet, one process whose DuckDB uses ``jobs`` threads. The
            report is the same whatever the number.

    Returns:
        A report; ``report.ok`` is false when anything failed. It never raises for tampering.

    Raises:
        ValueError: ``jobs`` is not a positive whole number.
    """
    workers = check_jobs(jobs)
    cold = Path(cold_path)
    report = VerificationReport(keyed=hmac_key is not None)
    if public_key is not None:
        report.signing_key_id = trusted_key_ids(public_key)
    manifest_key = cold_public_key if cold_public_key is not None else public_key
    parquet = sorted(cold.glob(COLD_GLOB))
    manifest_dir = cold / MANIFEST_DIR
    journals = sorted((cold / JOURNAL_DIR).glob("*.json"))
    manifests = sorted(manifest_dir.glob("*.json")) if manifest_dir.is_dir() else []
    if not manifest_dir.is_dir() and (parquet or (cold / ROOT_FILE).exists()):
        report.failures.append(VerificationFailure(
            str(manifest_dir), 0, None, FailureKind.MANIFEST_MISSING,
            f"the store holds {len(parquet)} Parquet file(s) but no {MANIFEST_DIR}/ directory: nothing says "
            "what they are, so none of them can be trusted (deleted manifests?)"))
    if parquet or manifests or journals or (cold / ROOT_FILE).exists():
        report.failures += [
            VerificationFailure(str(cold / ROOT_FILE), 0, None, FailureKind.ROOT_INVALID, problem)
            for problem in root_problems(cold, hmac_key, manifest_key)
        ]
    named: set[Path] = set()
    if worth_parallel(parquet, workers, weight=_PARQUET_WEIGHT) and len(manifests) > 1:
        raw = [as_trusted(key) for key in (public_key, manifest_key)]
        tasks = [_Entries(cold, path, hmac_key, raw[0], raw[1]) for path in manifests]
        weights = [_entry_bytes(cold, path) for path in manifests]
        for part, part_named in run_tasks(_check_entry, tasks, workers, weights):
            report.files += part.files  # in manifest order: the report jobs=1 gives
            report.records += part.records
            report.failures += part.failures
            report.sealed_files += part.sealed_files
            named |= part_named
    else:
        _check_entries(cold, manifests, hmac_key, public_key, manifest_key, report, named, threads=workers)
    for file in parquet:
        if file.resolve() not in named:
            report.failures.append(VerificationFailure(
                str(file), 0, None, FailureKind.UNEXPECTED_FILE, "no manifest entry names this Parquet file"))
    return report


def _check_entries(
    cold: Path,
    manifests: list[Path],
    hmac_key: bytes | None,
    public_key: VerifyingKeys | None,
    manifest_key: VerifyingKeys | None,
    report: VerificationReport,
    named: set[Path],
    *,
    threads: int,
) -> None:
    con = quiet_connection(threads=threads)
    try:
        for path in manifests:
            _EntryCheck(con, cold, path, hmac_key, public_key, manifest_key, report, named).run()
    finally:
        con.close()


@dataclass
class _Entries:
    """One manifest entry for a worker; keys as ``TrustedKeys`` (key objects do not pickle)."""

    cold: Path
    manifest: Path
    hmac_key: bytes | None
    public_key: TrustedKeys | None
    manifest_key: TrustedKeys | None


def _entry_bytes(cold: Path, manifest: Path) -> int:
    """The Parquet bytes a manifest entry names, roughly (its day partitions' files): how long it takes to check."""
    try:
        source = manifest.name.removesuffix(".json")
        return sum(path.stat().st_size for path in cold.glob(f"year=*/month=*/day=*/{Path(source).stem}*.parquet"))
    except (OSError, ValueError):
        return 0


def _check_entry(task: _Entries) -> tuple[VerificationReport, set[Path]]:
    keys = [task.public_key, task.manifest_key]
    report = VerificationReport(keyed=task.hmac_key is not None)
    named: set[Path] = set()
    # One DuckDB thread: the processes are the parallelism.
    _check_entries(task.cold, [task.manifest], task.hmac_key, keys[0], keys[1], report, named, threads=1)
    return report, named


@dataclass
class _Output:
    """One Parquet file of an entry that passed the file checks, with what the entry records of it."""

    path: Path
    recorded: dict[str, Any]
    columns: list[str]


class _EntryCheck:
    """Everything ``verify_cold`` checks for one manifest entry."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        cold: Path,
        path: Path,
        hmac_key: bytes | None,
        public_key: VerifyingKeys | None,
        manifest_key: VerifyingKeys | None,
        report: VerificationReport,
        named: set[Path],
    ) -> None:
        self.con, self.cold, self.path = con, cold, path
        self.hmac_key, self.public_key, self.manifest_key = hmac_key, public_key, manifest_key
        self.report, self.named = report, named
        self.where = str(path)

    def fail(self, where: str, kind: FailureKind, detail: str, line: int = 0, sequence: int | None = None) -> None:
        self.report.failures.append(VerificationFailure(where, line, sequence, kind, detail))

    def run(self) -> None:
        try:
            entry = read_manifest(self.path)
        except (OSError, ValueError) as exc:  # AuditFormatError names the file and the field
            self.fail(self.where, FailureKind.UNREADABLE_FILE, str(exc) if isinstance(exc, AuditFormatError)
                      else f"{self.path}: cannot read: {exc}")
            return
        for problem in entry_problems(entry, self.hmac_key, self.manifest_key):
            self.fail(self.where, FailureKind.MANIFEST_INVALID, problem)
        source = entry.get("source")
        if not isinstance(source, str) or self.path.name != f"{source}.json":
            self.fail(self.where, FailureKind.MANIFEST_INVALID, f"entry for {source!r} is filed as {self.path.name}")
        name = parse_hot_file_name(Path(str(source)))
        stream = None if name is None else name.stream_key
        if entry.get("stream") != stream:
            self.fail(self.where, FailureKind.MANIFEST_INVALID,
                      f"entry says stream {entry.get('stream')!r}, its source file name says {stream!r}")
        copy = entry.get("seal")
        seal: dict[str, Any] = copy if isinstance(copy, dict) else {}
        self.report.sealed_files += 1
        self.report.failures += check_seal_copy(
            seal, self.where, f"{self.path.name}: seal copy", self.hmac_key, self.public_key)
        if seal.get("file") != source:
            self.fail(self.where, FailureKind.SEAL_MISMATCH,
                      f"seal copy names file {seal.get('file')!r}, not {source!r}")
        version = entry.get("projection_version")
        outputs = [o for o in entry.get("outputs", []) if isinstance(o, dict)] if isinstance(
            entry.get("outputs"), list) else []
        retired = [o for o in entry.get("retired", []) if isinstance(o, dict)] if isinstance(
            entry.get("retired"), list) else []
        known = isinstance(version, int) and not isinstance(version, bool) and version in PROJECTIONS
        if not known:
            self.fail(self.where, FailureKind.MANIFEST_INVALID,
                      f"projection version {version!r} is not one this verifier knows ({sorted(PROJECTIONS)}): "
                      "its columns cannot be derived again (a newer Ledgerline wrote it?)")
        checked = [output for output in (self._check_file(o, version) for o in outputs) if output is not None]
        self._check_retired(retired)
        torn = not _one_record_per_line(seal)
        if known and isinstance(version, int) and checked and len(checked) == len(outputs) and not retired and not torn:
            _, values, differs = _column_checks(checked[0].columns, version)
            rows = EntryRows([(output.path, output.recorded, output.columns) for output in checked], seal, stream,
                             version, values, " OR ".join(differs), _EMPTY_ROW)
            clean = clean_entry(self.con, rows, self.hmac_key)
            if clean is not None:  # every check below would pass: nothing to report but the count
                self.report.records += clean
                return
        for output in checked:
            self._check_rows(output, stream, torn, version=version if known else None, engine=entry.get("engine"))
            if "parameters" in output.recorded:
                self._check_parameters(output)
            if "ids" in output.recorded:
                self._check_ids(output)
        if checked or not retired:
            self._check_chain(checked, seal, partial=bool(retired), complete=len(checked) == len(outputs), torn=torn,
                              version=version if known else None)

    # --- files ------------------------------------------------------------------------------------

    def _check_file(self, output: dict[str, Any], version: object) -> _Output | None:
        import pyarrow.parquet as pq

        relative = output.get("path")
        target = safe_relative(self.cold, relative)
        if target is None or not _PARTITION_FILE.match(str(relative)):
            self.fail(self.where, FailureKind.MANIFEST_INVALID,
                      f"output {relative!r} is not a day-partition Parquet file inside the store")
            return None
        self.named.add(target.resolve())
        where = str(target)
        self.report.files.append(where)
        if not target.is_file():
            self.fail(where, FailureKind.FILE_MISSING, f"{self.path.name}: its Parquet file is missing")
            return None
        actual = file_sha256(target)
        if actual != output.get("sha256"):
            self.fail(where, FailureKind.PARQUET_MISMATCH,
                      f"file SHA-256 {actual[:16]}..., the manifest entry records {str(output.get('sha256'))[:16]}... "
                      "(the file was rewritten: rows, columns or footer metadata)")
        try:
            metadata = pq.read_metadata(target)
            schema = metadata.schema.to_arrow_schema()
        except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
            self.fail(where, FailureKind.UNREADABLE_FILE, f"{target}: not a readable Parquet file: {exc}")
            return None
        if metadata.num_rows != output.get("rows"):
            self.fail(where, FailureKind.PARQUET_MISMATCH,
                      f"{metadata.num_rows} rows, the manifest entry records {output.get('rows')}")
        stored_version = (metadata.metadata or {}).get(PROJECTION_METADATA_KEY.encode())
        if stored_version != str(version).encode():
            self.fail(where, FailureKind.PARQUET_MISMATCH,
                      f"key-value metadata {PROJECTION_METADATA_KEY}={stored_version!r}, the manifest entry says "
                      f"{version!r}")
        columns = PROJECTIONS.get(version, ()) if isinstance(version, int) else ()
        expected = {name: _ARROW_TYPES[sql_type] for name, sql_type, _ in columns}
        wrong = [f"{field.name} {field.type}" for field in schema
                 if str(field.type) != expected.get(field.name, str(field.type) + "?")]
        needed = _RECORD_COLUMNS + (("prev_hash",) if isinstance(version, int) and version < DERIVED_PREV_HASH_SINCE
                                    else ())
        missing = [name for name in needed if name not in schema.names]
        if wrong or missing:
            self.fail(where, FailureKind.PARQUET_MISMATCH,
                      f"not the cold schema: unexpected {wrong or 'none'}, missing {missing or 'none'}")
            return None
        return _Output(target, output, schema.names)

    def _check_retired(self, retired: list[dict[str, Any]]) -> None:
        for output in retired:
            plan = output.get("plan_id")
            journal = safe_relative(self.cold, f"{JOURNAL_DIR}/{plan}.json") if isinstance(plan, str) else None
            if journal is None or not journal.is_file():
                self.fail(self.where, FailureKind.MANIFEST_INVALID,
                          f"output {output.get('path')!r} is marked retired by retention plan {plan!r}, "
                          f"which has no journal in {JOURNAL_DIR}/")

    # --- rows: checksums and columns ---------------------------------------------------------------

    def _check_rows(
        self, output: _Output, stream: str | None, torn: bool, *, version: int | None, engine: object = None
    ) -> None:
        """Each row's checksum and every typed column derived again from its record, in one DuckDB pass.

        The record's body (``record`` with its ``prev_hash`` put back: ``projection.chained_rows``) is
        hashed (SHA-256, or HMAC-SHA256 per RFC 2104 from two SHA-256 calls, so it runs in DuckDB too) and compared with
        ``checksum``; it is parsed once and every derived column of projection ``version`` the file
        has is derived with the converter's expressions and compared with ``IS DISTINCT FROM``
        (with no known version, only the checksums). Only rows that fail come back to Python.
        """
        derived, values, differs = _column_checks(output.columns, version)
        # The time a torn line is filed under: the record before it, else the file's first record.
        torn_ts = ("""coalesce(last_value(CASE WHEN torn_bytes IS NULL THEN ts_event END IGNORE NULLS)
                      OVER (ORDER BY source_line ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                      min(CASE WHEN torn_bytes IS NULL THEN ts_event END) OVER ())"""
                   if torn and derived else "NULL::BIGINT")
        items = "".join(
            f", CASE WHEN {test} THEN {{'column': '{name}', 'stored': CAST(\"{name}\" AS VARCHAR), "
            f"'derived': CAST(\"derived {name}\" AS VARCHAR)}} END"
            for (name, _, _), test in zip(derived, differs, strict=True))
        digest, parameters = _digest_sql("body", self.hmac_key)
        bad_checksum = f"(torn_bytes IS NULL AND {digest} IS DISTINCT FROM checksum)"
        failing = f"""
            FROM (SELECT *{values}
                  FROM (SELECT *, {"json_transform(body, $structure)" if derived else "NULL"} AS j
                        FROM (SELECT *, {torn_ts} AS torn_ts
                              FROM {chained_rows("read_parquet($file, filename = true)", version)})))
            WHERE {" OR ".join([bad_checksum, _EMPTY_ROW, *differs])}"""
        # No ORDER BY and no window: on a clean file nothing passes the WHERE, and the query streams.
        sql = f"""
            SELECT source_line, sequence, {bad_checksum} AS bad_checksum, {_EMPTY_ROW} AS empty,
                   list_filter([NULL{items}], item -> item IS NOT NULL) AS columns
            {failing}
            LIMIT {MAX_ROWS_NAMED}"""
        where = str(output.path)
        parameters.update(file=where, stream=stream)
        if derived and version is not None:
            parameters["structure"] = structure(version)
        try:
            rows = sorted(self.con.execute(sql, parameters).fetchall(), key=lambda row: row[0] or 0)
            total = len(rows)
            if total == MAX_ROWS_NAMED:  # only on a tampered file: count them all
                (total,) = self.con.execute(f"SELECT count(*) {failing}", parameters).fetchone() or (0,)
        except Exception as exc:  # duckdb.Error: a record that no longer parses into the columns
            self.fail(where, FailureKind.COLUMN_MISMATCH, f"the rows cannot be checked against their records: {exc}")
            return
        # The projection is DuckDB SQL: if another DuckDB derived the stored values, say so.
        other_engine = (f" (derived by {engine}; this verifier runs {manifest_engine()})"
                        if isinstance(engine, str) and engine != manifest_engine() else "")
        # From projection 4 on, the hashed body is more than ``record``: name what else went into it.
        parts = "" if version is None or version < DERIVED_PREV_HASH_SINCE else (
            f"; the body is its record with {', '.join(INT_FIELDS)} from the row's columns and prev_hash from "
            "the row one source line before, so any of them may have changed")
        for source_line, sequence, bad_checksum_row, empty, columns in rows:
            line = source_line or 0
            if empty:
                self.fail(where, FailureKind.UNPARSEABLE_LINE, "row has neither a record nor torn bytes", line)
            elif bad_checksum_row:
                self.fail(where, FailureKind.CHECKSUM_MISMATCH,
                          f"the row's record does not hash to its checksum ({_mode(self.hmac_key)}){parts}",
                          line, sequence)
            for column in columns:
                self.fail(where, FailureKind.COLUMN_MISMATCH,
                          f"column {column['column']}: stored {_short(column['stored'])}, the row's record says "
                          f"{_short(column['derived'])}{other_engine}", line, sequence)
        if total > len(rows):
            checksums = any(row[2] for row in rows)
            self.fail(where, FailureKind.CHECKSUM_MISMATCH if checksums else FailureKind.COLUMN_MISMATCH,
                      f"... and {total - len(rows)} more row(s) whose checksum or columns do not match their "
                      "records" + (" (is the HMAC key the trail's?)" if checksums else ""))

    def _check_parameters(self, output: _Output) -> None:
        """The entry's ``parameters`` of a file (``state_at`` reads by it) are what the file's rows say.

        A file without the columns it is derived from is not one the converter wrote (its SHA-256 is
        reported already); there is nothing to derive the index from.
        """
        if not {"owner", "param_name", "event_type", "ts_event"} <= set(output.columns):
            return
        where = str(output.path)
        try:
            derived = [list(row) for row in self.con.execute(
                parameter_index_sql("read_parquet($file)"), {"file": where}).fetchall()]
        except Exception as exc:  # duckdb.Error: no owner/param_name column, or rows that cannot be read
            self.fail(where, FailureKind.MANIFEST_INVALID, f"its parameter index cannot be checked: {exc}")
            return
        recorded = output.recorded["parameters"]
        if recorded != derived:
            self.fail(where, FailureKind.MANIFEST_INVALID,
                      f"the manifest entry's parameter index lists {_short(recorded)}, the file's rows say "
                      f"{_short(derived)} (state_at would read the wrong days)")

    def _check_ids(self, output: _Output) -> None:
        """The entry's id filter of a file (``trade_lifecycle`` reads by it) is the one the file's rows make."""
        if not set(ID_COLUMNS) <= set(output.columns):
            return
        where = str(output.path)
        try:
            derived = id_filter(self.con, "read_parquet($file)", {"file": where})
        except Exception as exc:  # duckdb.Error: rows that cannot be read
            self.fail(where, FailureKind.MANIFEST_INVALID, f"its id filter cannot be checked: {exc}")
            return
        recorded = output.recorded["ids"]
        if recorded != derived:
            self.fail(where, FailureKind.MANIFEST_INVALID,
                      f"the manifest entry's id filter is {_short(recorded)}, the file's order and correlation "
                      f"ids make {_short(derived)} (trade_lifecycle would skip the wrong days)")

    # --- the chain and the seal ---------------------------------------------------------------------

    def _check_chain(
        self, outputs: list[_Output], seal: dict[str, Any], *, partial: bool, complete: bool, torn: bool,
        version: int | None,
    ) -> None:
        """Sequence, chain and line coverage over all outputs in source-line order; then the seal's claims."""
        files = [str(output.path) for output in outputs]
        source = self.path.name.removesuffix(".json")
        files_sql = "read_parquet($files, filename = true, union_by_name = true)"
        rows = f"""(SELECT filename, source_line, sequence, checksum, prev_hash, torn_bytes IS NOT NULL AS torn
                    FROM {chained_rows(files_sql, version)})"""
        breaks = self.con.execute(
            f"""SELECT filename, source_line, sequence, prev_sequence, prev_hash = prev_checksum AS linked
                FROM (SELECT *, lag(sequence) OVER w AS prev_sequence, lag(checksum) OVER w AS prev_checksum
                      FROM {rows} WINDOW w AS (PARTITION BY torn ORDER BY source_line))
                WHERE NOT torn AND prev_sequence IS NOT NULL
                  AND (sequence IS DISTINCT FROM prev_sequence + 1 OR prev_hash IS DISTINCT FROM prev_checksum)
                ORDER BY source_line LIMIT {MAX_ROWS_NAMED}""", {"files": files}).fetchall() if files else []
        for file, source_line, sequence, previous, linked in breaks:
            line = source_line or 0
            if sequence is not None and sequence != previous + 1 and not (partial and sequence > previous):
                kind = FailureKind.SEQUENCE_GAP if sequence > previous + 1 else FailureKind.SEQUENCE_REPEAT
                self.fail(file, kind, f"expected sequence {previous + 1}, got {sequence}", line, previous + 1)
            if not linked and (sequence == previous + 1 or not partial):
                self.fail(file, FailureKind.CHAIN_BREAK, "prev_hash does not match the previous record's checksum",
                          line, sequence)
        if files and all(TS_RECORDED_FIELD in output.columns for output in outputs):
            self._check_recorded_order(files)
        (count, lines, first_line, last_line, record_rows, first_sequence, first_hash, first_prev, last_sequence,
         last_hash) = (
            self.con.execute(
                f"""SELECT count(*), count(DISTINCT source_line), min(source_line), max(source_line),
                           count(*) FILTER (NOT torn),
                           arg_min(sequence, source_line) FILTER (NOT torn),
                           arg_min(checksum, source_line) FILTER (NOT torn),
                           arg_min(prev_hash, source_line) FILTER (NOT torn),
                           arg_max(sequence, source_line) FILTER (NOT torn),
                           arg_max(checksum, source_line) FILTER (NOT torn)
                    FROM {rows}""", {"files": files}).fetchone()
            if files else None) or (0, 0, None, None, 0, None, None, None, None, None)
        self.report.records += record_rows
        if partial:
            self._check_outputs_recorded(outputs, rows)
            return
        if not complete:
            return  # missing or unreadable files are reported; the whole-file claims cannot be checked
        where, records = self.where, seal.get("records")
        if not (count == lines == records and (count == 0 or (first_line, last_line) == (1, count))):
            self.fail(where, FailureKind.SEAL_MISMATCH,
                      f"{source}: {count} rows cover source lines {first_line}..{last_line} ({lines} distinct), the "
                      f"seal counts {records} lines (a row deleted, duplicated or moved)")
        if (first_sequence, first_hash) != (seal.get("first_sequence"), seal.get("first_hash")):
            self.fail(where, FailureKind.SEAL_MISMATCH,
                      f"{source}: the rows start at sequence {first_sequence}, the seal at "
                      f"{seal.get('first_sequence')}")
        if (last_sequence, last_hash) != (seal.get("last_sequence"), seal.get("last_hash")):
            self.fail(where, FailureKind.SEAL_MISMATCH,
                      f"{source}: the rows end at sequence {last_sequence}, the seal at {seal.get('last_sequence')}")
        if first_sequence == 0 and first_prev != GENESIS_HASH:
            self.fail(where, FailureKind.CHAIN_BREAK, f"{source}: sequence 0 without the genesis prev_hash", 1, 0)
        if torn:
            # Torn lines are outside the chain: only the seal's Merkle root over every line covers
            # their bytes. (Without torn lines the root adds nothing: the chain from the seal's first
            # to its last hash, one record per source line, fixes every line byte for byte.)
            self._check_merkle_root(files, seal, source, version)

    def _check_recorded_order(self, files: list[str]) -> None:
        """``chain.check_record``'s rule on the ``ts_recorded`` column (bound to each row's record by
        the column check): never below the latest one before it in source-line order."""
        backwards = self.con.execute(
            f"""SELECT filename, source_line, sequence, ts_recorded, latest FROM (
                    SELECT *, lag(ts_recorded) OVER (ORDER BY source_line) AS latest
                    FROM (SELECT filename, source_line, sequence, {TS_RECORDED_FIELD} AS ts_recorded
                          FROM read_parquet($files, filename = true, union_by_name = true))
                    -- Rows without one neither break nor move the rule, so the previous non-NULL
                    -- row is the latest: lag over them alone (last_value IGNORE NULLS over a
                    -- growing frame took seconds on a million all-NULL rows).
                    WHERE ts_recorded IS NOT NULL)
                WHERE ts_recorded < latest ORDER BY source_line LIMIT {MAX_ROWS_NAMED}""",
            {"files": files}).fetchall()
        for file, source_line, sequence, recorded, latest in backwards:
            self.fail(file, FailureKind.TS_RECORDED_BACKWARDS,
                      f"ts_recorded {recorded} is earlier than the previous record's {latest}", source_line or 0,
                      sequence)

    def _check_merkle_root(self, files: list[str], seal: dict[str, Any], source: str, version: int | None) -> None:
        rows = chained_rows("read_parquet($files, filename = true, union_by_name = true)", version)
        leaves = [] if not files else self.con.execute(
            f"""SELECT unhex(sha256(unhex('{RFC6962_LEAF_PREFIX.hex()}')
                       || coalesce(torn_bytes, encode({LINE_SQL}))))
                FROM {rows} ORDER BY source_line""", {"files": files}).to_arrow_table().column(0).to_pylist()
        tree = MerkleTree()
        tree.add_leaf_hashes([leaf for leaf in leaves if leaf is not None])
        root = tree.root()
        if root != seal.get("merkle_root"):
            self.fail(self.where, FailureKind.SEAL_MISMATCH,
                      f"{source}: the rows rebuild Merkle root {root[:16]}..., the seal says "
                      f"{str(seal.get('merkle_root'))[:16]}...")

    def _check_outputs_recorded(self, outputs: list[_Output], rows: str) -> None:
        """After retention: each remaining output starts and ends where the entry recorded it did."""
        found = {
            file: (first, last) for file, *first_last in self.con.execute(
                f"""SELECT filename, arg_min(sequence, sequence), arg_min(checksum, sequence),
                           arg_max(sequence, sequence), arg_max(checksum, sequence)
                    FROM {rows} WHERE NOT torn GROUP BY filename""",
                {"files": [str(output.path) for output in outputs]}).fetchall()
            for first, last in [((first_last[0], first_last[1]), (first_last[2], first_last[3]))]
        }
        for output in outputs:
            first, last = found.get(str(output.path), ((None, None), (None, None)))
            recorded = output.recorded
            expected_first = (recorded.get("first_sequence"), recorded.get("first_hash"))
            expected_last = (recorded.get("last_sequence"), recorded.get("last_hash"))
            if first != expected_first or last != expected_last:
                self.fail(str(output.path), FailureKind.SEAL_MISMATCH,
                          f"rows span sequences {first[0]}..{last[0]}, the manifest entry recorded "
                          f"{expected_first[0]}..{expected_last[0]} for this output (rows cut or added)")


def _column_checks(columns: list[str], version: int | None) -> tuple[list[tuple[str, str, str]], str, list[str]]:
    """The typed columns of a file to derive again, the SELECT items deriving them, and each one's test."""
    derived = [] if version is None else [
        c for c in derived_columns(version) if c[0] in columns and c[0] not in _BOUND_BY_HASHES]
    values = "".join(f', {derivation(*column)} AS "derived {column[0]}"' for column in derived)
    return derived, values, [f'"derived {name}" IS DISTINCT FROM "{name}"' for name, _, _ in derived]


def _digest_sql(column: str, hmac_key: bytes | None) -> tuple[str, dict[str, Any]]:
    """SQL for the hex checksum of VARCHAR ``column``: SHA-256, or HMAC-SHA256 with ``hmac_key``.

    HMAC is built as RFC 2104 defines it, H((K ^ opad) || H((K ^ ipad) || m)) with a key longer
    than the 64-byte block hashed first, from DuckDB's ``sha256`` of BLOBs (a test holds it equal
    to Python's ``hmac``). The padded keys are query parameters, never part of the SQL text.
    """
    if hmac_key is None:
        return f"sha256({column})", {}  # of the VARCHAR's UTF-8 bytes, as encode() would give
    key = hashlib.sha256(hmac_key).digest() if len(hmac_key) > _SHA256_BLOCK else hmac_key
    key = key.ljust(_SHA256_BLOCK, b"\0")
    inner, outer = bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)
    return f"sha256($hmac_outer || unhex(sha256($hmac_inner || encode({column}))))", {
        "hmac_inner": inner, "hmac_outer": outer}


def _mode(hmac_key: bytes | None) -> str:
    return "SHA-256" if hmac_key is None else "HMAC-SHA256 with the key given"


def _one_record_per_line(seal: dict[str, Any]) -> bool:
    first, last, lines = seal.get("first_sequence"), seal.get("last_sequence"), seal.get("records")
    return isinstance(first, int) and isinstance(last, int) and lines == last - first + 1


def _short(value: object, limit: int = 60) -> str:
    text = "NULL" if value is None else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _span(values: Iterable[int | None]) -> str:
    present = [value for value in values if value is not None]
    return f"{min(present)}..{max(present)}" if present else "none"
