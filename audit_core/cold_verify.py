"""Cold verification: the Parquet store checked against its root, manifests and seals, every column bound.

``verify_cold`` checks, and reports as failures naming the file (and row and column):

1. **The root** (``cold/_root.json``, ``manifest.py``): present, authentic (HMAC with the trail's
   key; Ed25519 signature with the converter's public key), and committing to exactly the manifest
   entries, Parquet files (SHA-256), legal holds and retention journals the store holds. Parquet
   files or a root without a ``_manifest/`` directory is a failure, never a reason to skip.
2. **Each manifest entry**: authentic, of this projection version, and its copy of the hot file's
   seal passes the seal check of hot ``verify`` (``integrity.check_seal_copy``: ``seal_checksum``,
   and the signature with the writer's public key).
3. **Each Parquet file** it names: inside the store, present, its SHA-256 and row count as the
   entry records (so no byte changes, footer statistics, page indexes and bloom filters included),
   the cold schema, the projection version in its key-value metadata.
4. **Every row's record**: each line rebuilt from ``record``/``prev_hash``/``checksum`` (or
   ``torn_bytes``) hashes to its checksum (HMAC with a key); in source-line order the records form
   an unbroken chain from the seal's first to its last sequence and hash, the rows cover source
   lines 1..n once each, and all lines rebuild the seal's Merkle root. Entries with outputs retired
   by retention check what remains against what the entry recorded for each output.
5. **Every typed column**: derived again from the row's rebuilt line with the projection the
   converter used (``projection.py``) and compared in DuckDB (``IS DISTINCT FROM``), so an edited
   ``price`` or ``ts_event`` is a ``column_mismatch`` naming the file, the source line and the column.
6. **No stray files**: a Parquet file no manifest entry names.

Needs the ``workbench`` extra (duckdb, pyarrow).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit_core import signing
from audit_core._bulk_verify import REBUILD_SQL, _MerkleStream
from audit_core._layout import parse_hot_file_name
from audit_core.integrity import (
    CHECKSUM_SUFFIX_PREFIX,
    GENESIS_HASH,
    FailureKind,
    VerificationFailure,
    VerificationReport,
    check_seal_copy,
)
from audit_core.manifest import (
    COLD_GLOB,
    JOURNAL_DIR,
    MANIFEST_DIR,
    ROOT_FILE,
    entry_problems,
    file_sha256,
    read_entry,
    root_problems,
    safe_relative,
)
from audit_core.merkle import RFC6962_LEAF_PREFIX
from audit_core.projection import (
    COLUMNS,
    DERIVED_COLUMNS,
    PROJECTION_METADATA_KEY,
    PROJECTION_VERSION,
    derivation,
    structure,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

#: Rows named per Parquet file for column mismatches before the rest is counted in one line.
MAX_ROWS_NAMED = 20
_SUFFIX_LEN = len(CHECKSUM_SUFFIX_PREFIX) + 64 + 2
_PARTITION_FILE = re.compile(r"^year=\d{4}/month=\d{2}/day=\d{2}/[^/]+\.parquet$")
#: Columns every cold file has had since the first version: what the record checks read.
_RECORD_COLUMNS = ("source_line", "sequence", "checksum", "prev_hash", "record", "torn_bytes")
#: Arrow types of the cold schema's DuckDB types.
_ARROW_TYPES = {"BIGINT": "int64", "VARCHAR": "string", "DOUBLE": "double", "BOOLEAN": "bool",
                "DECIMAL(38,18)": "decimal128(38, 18)", "BLOB": "binary"}


def verify_cold(
    cold_path: Path | str,
    hmac_key: bytes | None = None,
    public_key: Ed25519PublicKey | None = None,
    *,
    cold_public_key: Ed25519PublicKey | None = None,
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

    Returns:
        A report; ``report.ok`` is false when anything failed. It never raises for tampering.
    """
    import duckdb

    cold = Path(cold_path)
    report = VerificationReport(keyed=hmac_key is not None)
    if public_key is not None:
        report.signing_key_id = signing.key_id(public_key)
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
    con = duckdb.connect()
    try:
        for path in manifests:
            _EntryCheck(con, cold, path, hmac_key, public_key, manifest_key, report, named).run()
    finally:
        con.close()
    for file in parquet:
        if file.resolve() not in named:
            report.failures.append(VerificationFailure(
                str(file), 0, None, FailureKind.UNEXPECTED_FILE, "no manifest entry names this Parquet file"))
    return report


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
        public_key: Ed25519PublicKey | None,
        manifest_key: Ed25519PublicKey | None,
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
            entry = read_entry(self.path)
        except (OSError, ValueError) as exc:
            self.fail(self.where, FailureKind.MANIFEST_INVALID, f"unreadable manifest entry: {exc}")
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
        checked = [output for output in (self._check_file(o, version) for o in outputs) if output is not None]
        self._check_retired(retired)
        if version != PROJECTION_VERSION:
            self.fail(self.where, FailureKind.MANIFEST_INVALID,
                      f"projection version {version!r}, this verifier derives columns with version "
                      f"{PROJECTION_VERSION}: rebuild the store's projection")
        elif checked:
            torn = not _one_record_per_line(seal)
            for output in checked:
                self._check_columns(output, stream, torn)
        if checked or not retired:
            self._check_records(checked, seal, partial=bool(retired), complete=len(checked) == len(outputs))

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
            self.fail(where, FailureKind.PARQUET_MISMATCH, f"not a readable Parquet file: {exc}")
            return None
        if metadata.num_rows != output.get("rows"):
            self.fail(where, FailureKind.PARQUET_MISMATCH,
                      f"{metadata.num_rows} rows, the manifest entry records {output.get('rows')}")
        stored_version = (metadata.metadata or {}).get(PROJECTION_METADATA_KEY.encode())
        if stored_version != str(version).encode():
            self.fail(where, FailureKind.PARQUET_MISMATCH,
                      f"key-value metadata {PROJECTION_METADATA_KEY}={stored_version!r}, the manifest entry says "
                      f"{version!r}")
        expected = {name: _ARROW_TYPES[sql_type] for name, sql_type, _ in COLUMNS}
        wrong = [f"{field.name} {field.type}" for field in schema
                 if str(field.type) != expected.get(field.name, str(field.type) + "?")]
        missing = [name for name in _RECORD_COLUMNS if name not in schema.names]
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

    # --- columns ----------------------------------------------------------------------------------

    def _check_columns(self, output: _Output, stream: str | None, torn: bool) -> None:
        """Derive every typed column again from the rebuilt line and compare, in one DuckDB query."""
        derived = [column for column in DERIVED_COLUMNS if column[0] in output.columns]
        if not derived:
            return
        # The time a torn line is filed under: the record before it, else the file's first record.
        torn_ts = ("""coalesce(last_value(CASE WHEN torn_bytes IS NULL THEN ts_event END IGNORE NULLS)
                      OVER (ORDER BY source_line ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                      min(CASE WHEN torn_bytes IS NULL THEN ts_event END) OVER ())"""
                   if torn else "NULL::BIGINT")
        values = ", ".join(f'{derivation(*column)} AS "derived {column[0]}"' for column in derived)
        differs = [f'"derived {name}" IS DISTINCT FROM "{name}"' for name, _, _ in derived]
        items = ", ".join(
            f"CASE WHEN {test} THEN {{'column': '{name}', 'stored': CAST(\"{name}\" AS VARCHAR), "
            f"'derived': CAST(\"derived {name}\" AS VARCHAR)}} END"
            for (name, _, _), test in zip(derived, differs, strict=True))
        sql = f"""
            SELECT source_line, sequence, list_filter([{items}], item -> item IS NOT NULL) AS columns,
                   count(*) OVER () AS total
            FROM (SELECT *, {values}
                  FROM (SELECT *, json_transform(line, $structure) AS j
                        FROM (SELECT *, {REBUILD_SQL} AS line, {torn_ts} AS torn_ts FROM read_parquet($file))))
            WHERE {" OR ".join(differs)}
            ORDER BY source_line
            LIMIT {MAX_ROWS_NAMED}"""
        where = str(output.path)
        try:
            rows = self.con.execute(sql, {"file": where, "structure": structure(), "stream": stream}).fetchall()
        except Exception as exc:  # duckdb.Error: a record that no longer parses into the columns
            self.fail(where, FailureKind.COLUMN_MISMATCH, f"the columns cannot be derived from the records: {exc}")
            return
        for source_line, sequence, columns, _ in rows:
            for column in columns:
                self.fail(where, FailureKind.COLUMN_MISMATCH,
                          f"column {column['column']}: stored {_short(column['stored'])}, the row's record says "
                          f"{_short(column['derived'])}", source_line or 0, sequence)
        if rows and rows[0][3] > len(rows):
            self.fail(where, FailureKind.COLUMN_MISMATCH,
                      f"... and {rows[0][3] - len(rows)} more row(s) whose columns differ from their records")

    # --- records ----------------------------------------------------------------------------------

    def _check_records(self, outputs: list[_Output], seal: dict[str, Any], *, partial: bool, complete: bool) -> None:
        """Checksums, chain, line coverage, seal and Merkle root, from the rows of all outputs at once."""
        import pyarrow as pa
        import pyarrow.compute as pc

        source = str(self.path.name.removesuffix(".json"))
        if outputs:
            table = self.con.execute(
                f"""SELECT source_line, sequence, checksum, prev_hash, torn_bytes, {REBUILD_SQL} AS line, filename
                    FROM read_parquet($files, filename = true, union_by_name = true)
                    ORDER BY source_line NULLS FIRST""",
                {"files": [str(output.path) for output in outputs]},
            ).to_arrow_table()
        else:
            table = pa.table({name: pa.array([], kind) for name, kind in (
                ("source_line", pa.int64()), ("sequence", pa.int64()), ("checksum", pa.string()),
                ("prev_hash", pa.string()), ("torn_bytes", pa.binary()), ("line", pa.string()),
                ("filename", pa.string()))})
        torn = pc.is_valid(table["torn_bytes"])
        lines = pc.if_else(torn, table["torn_bytes"], table["line"].cast(pa.binary())).to_pylist()
        source_lines = table["source_line"].to_pylist()
        files = table["filename"].to_pylist()
        is_torn = torn.to_pylist()
        record_rows = [i for i, line in enumerate(lines) if line is not None and not is_torn[i]]
        for i, line in enumerate(lines):
            if line is None:
                self.fail(files[i], FailureKind.UNPARSEABLE_LINE, "row has neither a record with its checksum nor "
                          "torn bytes", source_lines[i] or 0)
        # Checksums: per record, like hot verify (HMAC with the key).
        key = self.hmac_key
        bodies = [lines[i][:-_SUFFIX_LEN] + b"}" for i in record_rows]
        if key is None:
            computed = [hashlib.sha256(body).hexdigest() for body in bodies]
        else:
            computed = [hmac.new(key, body, hashlib.sha256).hexdigest() for body in bodies]
        checksums = table["checksum"].take(pa.array(record_rows, pa.int64()))
        sequences = table["sequence"].take(pa.array(record_rows, pa.int64())).to_pylist()
        stored = checksums.to_pylist()
        prevs = table["prev_hash"].take(pa.array(record_rows, pa.int64())).to_pylist()
        equal = pc.equal(pa.array(computed, pa.string()), checksums).fill_null(False)
        for index in pc.indices_nonzero(pc.invert(equal)).to_pylist():
            row = record_rows[index]
            self.fail(files[row], FailureKind.CHECKSUM_MISMATCH,
                      f"row's record hashes to {computed[index][:16]}..., its checksum is {str(stored[index])[:16]}...",
                      source_lines[row] or 0, sequences[index])
        self.report.records += len(record_rows)
        # The chain, in source-line order (the order the records were written).
        for index in range(1, len(record_rows)):
            sequence, previous = sequences[index], sequences[index - 1]
            row = record_rows[index]
            if sequence is None or previous is None:
                continue
            if sequence != previous + 1:
                if partial and sequence > previous:
                    continue  # rows of a retired output in between: checked against what the entry recorded
                kind = FailureKind.SEQUENCE_GAP if sequence > previous + 1 else FailureKind.SEQUENCE_REPEAT
                self.fail(files[row], kind, f"expected sequence {previous + 1}, got {sequence}",
                          source_lines[row] or 0, previous + 1)
            if prevs[index] != stored[index - 1]:
                self.fail(files[row], FailureKind.CHAIN_BREAK,
                          "prev_hash does not match the previous record's checksum", source_lines[row] or 0, sequence)
        if partial:
            self._check_outputs_recorded(outputs, table)
            return
        if not complete:
            return  # missing or unreadable files are reported; the whole-file claims cannot be checked
        self._check_seal_claims(seal, source, lines, source_lines, sequences, stored, prevs)

    def _check_seal_claims(
        self,
        seal: dict[str, Any],
        source: str,
        lines: list[bytes | None],
        source_lines: list[int | None],
        sequences: list[int | None],
        checksums: list[str | None],
        prevs: list[str | None],
    ) -> None:
        """What the seal says of the whole file: line count and coverage, first and last record, Merkle root."""
        where = self.where
        records = seal.get("records")
        if source_lines != list(range(1, len(lines) + 1)) or len(lines) != records:
            self.fail(where, FailureKind.SEAL_MISMATCH,
                      f"{source}: {len(lines)} rows cover source lines {_span(source_lines)}, the seal counts "
                      f"{records} lines (a row deleted, duplicated or moved)")
        first = (sequences[0], checksums[0]) if sequences else (None, None)
        last = (sequences[-1], checksums[-1]) if sequences else (None, None)
        if first != (seal.get("first_sequence"), seal.get("first_hash")):
            self.fail(where, FailureKind.SEAL_MISMATCH,
                      f"{source}: the rows start at sequence {first[0]}, the seal at {seal.get('first_sequence')}")
        if last != (seal.get("last_sequence"), seal.get("last_hash")):
            self.fail(where, FailureKind.SEAL_MISMATCH,
                      f"{source}: the rows end at sequence {last[0]}, the seal at {seal.get('last_sequence')}")
        if first[0] == 0 and prevs and prevs[0] != GENESIS_HASH:
            self.fail(where, FailureKind.CHAIN_BREAK, f"{source}: sequence 0 without the genesis prev_hash", 1, 0)
        tree = _MerkleStream()
        tree.add([hashlib.sha256(RFC6962_LEAF_PREFIX + line).digest() for line in lines if line is not None])
        root = tree.root()
        if root != seal.get("merkle_root"):
            self.fail(where, FailureKind.SEAL_MISMATCH,
                      f"{source}: the rows rebuild Merkle root {root[:16]}..., the seal says "
                      f"{str(seal.get('merkle_root'))[:16]}...")

    def _check_outputs_recorded(self, outputs: list[_Output], table: pa.Table) -> None:
        """After retention: each remaining output starts and ends where the entry recorded it did."""
        import pyarrow.compute as pc

        for output in outputs:
            rows = table.filter(pc.and_(pc.equal(table["filename"], str(output.path)), pc.is_valid(table["sequence"])))
            pairs = sorted(zip(rows["sequence"].to_pylist(), rows["checksum"].to_pylist(), strict=True))
            recorded = output.recorded
            first = pairs[0] if pairs else (None, None)
            last = pairs[-1] if pairs else (None, None)
            expected_first = (recorded.get("first_sequence"), recorded.get("first_hash"))
            expected_last = (recorded.get("last_sequence"), recorded.get("last_hash"))
            if first != expected_first or last != expected_last:
                self.fail(str(output.path), FailureKind.SEAL_MISMATCH,
                          f"rows span sequences {first[0]}..{last[0]}, the manifest entry recorded "
                          f"{expected_first[0]}..{expected_last[0]} for this output (rows cut or added)")


def _one_record_per_line(seal: dict[str, Any]) -> bool:
    first, last, lines = seal.get("first_sequence"), seal.get("last_sequence"), seal.get("records")
    return isinstance(first, int) and isinstance(last, int) and lines == last - first + 1


def _short(value: object, limit: int = 60) -> str:
    text = "NULL" if value is None else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _span(values: Iterable[int | None]) -> str:
    present = [value for value in values if value is not None]
    return f"{min(present)}..{max(present)}" if present else "none"
