"""Sealed hot JSONL files to cold Parquet: verified first, partitioned by UTC day, atomic, idempotent.

Layout: ``cold/year=YYYY/month=MM/day=DD/<source file stem>.parquet`` (a source file that spans
midnight lands in two partitions), zstd, rows sorted by (``ts_event``, ``sequence``), and
``cold/_manifest/<source file>.json`` recording the seal each source file had and the Parquet
files it produced. The bulk path runs in DuckDB (``read_csv`` of whole lines, ``json_extract``
per column): no Python loop over records.

Every row keeps its original line in ``record``, so the cold side can recompute checksums and the
chain byte for byte, and no field of any event type (a user's own included) is ever lost; the typed
columns are for querying. Needs the ``workbench`` extra (duckdb).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit_core._layout import parse_hot_file_name
from audit_core.integrity import fsync_directory, hot_files, read_seal, verify

MANIFEST_DIR = "_manifest"
STAGING_DIR = "_staging"

#: The cold schema: (column, type, how it is read). Stable: a test pins it. "field" columns come
#: straight from the record's key of that name; "json" keeps the value as JSON text; "num:<key>"
#: is the value of <key> when it is a number; "decimal" parses the decimal string exactly.
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
    ("param_name", "VARCHAR", "field"),
    ("old_value", "VARCHAR", "json"),
    ("new_value", "VARCHAR", "json"),
    ("old_value_num", "DOUBLE", "num:old_value"),
    ("new_value_num", "DOUBLE", "num:new_value"),
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
)


def _structure() -> str:
    """The json_transform structure: each line is parsed once, into one struct."""
    keys = {}
    for name, sql_type, kind in COLUMNS:
        if kind == "field":
            keys[name] = sql_type
        elif kind in ("json",):
            keys[name] = "JSON"
        elif kind == "decimal":
            keys[name] = "VARCHAR"  # the exact text; cast below
    return json.dumps(keys)


def _expression(name: str, sql_type: str, kind: str) -> str:
    if kind == "stream":
        expression = "$stream"
    elif kind == "record":
        expression = "line"
    elif kind.startswith("num:"):
        value = f"j.{kind[4:]}"
        expression = f"CASE WHEN json_type({value}) IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN CAST({value} AS DOUBLE) END"
    else:
        expression = f"j.{name}"
    return f"CAST({expression} AS {sql_type}) AS {name}"


_SELECT = ",\n    ".join(_expression(*column) for column in COLUMNS)
#: The UTC day of a row's ts_event (ns), as the partition path wants it.
_DAY_OF_ROW = "strftime(make_timestamp(ts_event // 1000), '%Y/%m/%d')"


@dataclass
class ConversionResult:
    """What happened to one hot file."""

    source: str
    converted: bool
    skipped: str | None = None  # why nothing was written (already converted, not sealed, failed verify)
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
        """Convert every sealed hot file not converted yet. Safe to run again at any time."""
        files = [path for path in hot_files(self.hot_path) if parse_hot_file_name(path) is not None]
        results = []
        for done, path in enumerate(files, start=1):
            results.append(self.convert_file(path))
            if progress is not None:
                progress(done, len(files), path.name)
        return results

    def convert_file(self, path: Path | str) -> ConversionResult:
        """Verify one hot file (chain and seal) and, if it passes, write its Parquet partitions.

        A file that is not sealed, or fails verification, is reported and left untouched.
        Converting a file again finds its manifest entry and writes nothing.
        """
        path = Path(path)
        result = ConversionResult(source=path.name, converted=False)
        seal = read_seal(path)
        if seal is None:
            result.skipped = "not sealed (the live file of a stream, or a crash not yet recovered)"
            return result
        manifest = self._manifest_path(path)
        converted_seal = json.loads(manifest.read_bytes()).get("seal", {}) if manifest.exists() else {}
        if converted_seal.get("file_sha256") == seal.get("file_sha256"):
            result.skipped = "already converted"
            return result
        report = verify([path], self._hmac_key, require_stream_start=False, public_key=self._public_key)
        if not report.ok:
            result.skipped = "failed verification"
            result.failures = [str(failure) for failure in report.failures]
            return result
        name = parse_hot_file_name(path)
        assert name is not None
        outputs = self._write_partitions(path, name.stream_key)
        result.outputs = [str(out.relative_to(self.cold_path)) for out, _ in outputs]
        result.rows = sum(rows for _, rows in outputs)
        self._write_manifest(path, seal, outputs)
        result.converted = True
        return result

    def get_partition_stats(self) -> list[PartitionStats]:
        """Files, rows, bytes and time range of every day partition."""
        import pyarrow.parquet as pq

        stats = []
        for day in sorted(self.cold_path.glob("year=*/month=*/day=*")):
            files = sorted(day.glob("*.parquet"))
            rows, first, last = 0, None, None
            for file in files:
                metadata = pq.ParquetFile(file).metadata
                rows += metadata.num_rows
                column = metadata.schema.to_arrow_schema().get_field_index("ts_event")
                for group in range(metadata.num_row_groups):
                    statistics = metadata.row_group(group).column(column).statistics
                    if statistics is not None and statistics.has_min_max:
                        first = statistics.min if first is None else min(first, statistics.min)
                        last = statistics.max if last is None else max(last, statistics.max)
            stats.append(PartitionStats(
                str(day.relative_to(self.cold_path)), len(files), rows, sum(f.stat().st_size for f in files),
                first, last,
            ))
        return stats

    # --- internals ----------------------------------------------------------------------------

    def _write_partitions(self, path: Path, stream: str) -> list[tuple[Path, int]]:
        import duckdb

        staging = self.cold_path / STAGING_DIR / path.name
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging)  # left by a crash half-way through an earlier conversion
        staging.mkdir(parents=True)
        con = duckdb.connect()
        try:
            con.execute(
                f"""CREATE TEMP TABLE rows AS
                SELECT {_SELECT}
                FROM (SELECT line, json_transform(line, $structure) AS j
                      FROM read_csv($path, columns={{'line': 'VARCHAR'}}, delim=chr(1), quote='', escape='',
                                    header=false, auto_detect=false, strict_mode=false)
                      WHERE line LIKE '{{%}}')""",
                {"path": str(path), "stream": stream, "structure": _structure()},
            )
            days = con.execute(f"SELECT DISTINCT {_DAY_OF_ROW} FROM rows ORDER BY 1").fetchall()
            outputs = []
            for (day,) in days:
                year, month, date = day.split("/")
                staged = staging / f"{year}{month}{date}.parquet"
                # COPY returns the number of rows it wrote.
                (count,) = con.execute(
                    f"""COPY (SELECT * FROM rows
                              WHERE {_DAY_OF_ROW} = $day
                              ORDER BY ts_event, sequence)
                        TO '{_sql_string(staged)}'
                        (FORMAT PARQUET, COMPRESSION ZSTD, ROW_GROUP_SIZE {self._row_group_size})""",
                    {"day": day},
                ).fetchone() or (0,)
                target_dir = self.cold_path / f"year={year}" / f"month={month}" / f"day={date}"
                target_dir.mkdir(parents=True, exist_ok=True)
                target = target_dir / (path.name.removesuffix(".jsonl") + ".parquet")
                _fsync_file(staged)
                os.replace(staged, target)  # atomic; converting again replaces, never duplicates
                fsync_directory(target_dir)
                outputs.append((target, int(count)))
        finally:
            con.close()
            shutil.rmtree(staging, ignore_errors=True)
        return outputs

    def _manifest_path(self, path: Path) -> Path:
        return self.cold_path / MANIFEST_DIR / (path.name + ".json")

    def _write_manifest(self, path: Path, seal: dict[str, Any], outputs: list[tuple[Path, int]]) -> None:
        entry = {
            "source": path.name,
            "seal": seal,
            "outputs": [{"path": str(out.relative_to(self.cold_path)), "rows": rows} for out, rows in outputs],
        }
        target = self._manifest_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + ".tmp")
        temporary.write_text(json.dumps(entry, indent=1) + "\n")
        _fsync_file(temporary)
        os.replace(temporary, target)  # the manifest entry is written last: it marks the conversion done
        fsync_directory(target.parent)


def _sql_string(path: Path) -> str:
    return str(path).replace("'", "''")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def verify_cold(cold_path: Path | str, hmac_key: bytes | None = None) -> Any:
    """Recompute, from the Parquet rows alone, what each source file's seal (in the manifest) says.

    For every manifest entry: its Parquet files exist; their rows, ordered by sequence, have valid
    checksums over their ``record`` bytes and an unbroken chain from the seal's first to last
    sequence and hash; and their records rebuild the seal's Merkle root. A Parquet file that no
    manifest entry names is reported too (a partition added by hand). Returns a
    ``VerificationReport``; ``report.ok`` is false when anything failed.
    """
    import pyarrow.parquet as pq

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
        entry = json.loads(manifest.read_bytes())
        seal, source = entry.get("seal", {}), str(entry.get("source"))
        records: list[bytes] = []
        for output in entry.get("outputs", []):
            file = cold / output["path"]
            named.add(file.resolve())
            report.files.append(str(file))
            if not file.exists():
                report.failures.append(VerificationFailure(
                    str(file), 0, None, FailureKind.FILE_MISSING, f"{source}: its Parquet file is missing"))
                continue
            records += [r.encode() for r in pq.read_table(file, columns=["record"]).column("record").to_pylist()]
        parsed = []
        for record in records:
            try:
                parsed.append((split_record(record), record))
            except ValueError as exc:
                report.failures.append(VerificationFailure(source, 0, None, FailureKind.UNPARSEABLE_LINE, str(exc)))
        parsed.sort(key=lambda item: item[0].sequence)
        expected_sequence, prev_hash = seal.get("first_sequence"), None
        for fields, _record in parsed:
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
        last = parsed[-1][0] if parsed else None
        if last is None or last.sequence != seal.get("last_sequence") or last.checksum != seal.get("last_hash"):
            report.failures.append(VerificationFailure(
                source, 0, None if last is None else last.sequence, FailureKind.SEAL_MISMATCH,
                f"seal ends at sequence {seal.get('last_sequence')}, the rows end at "
                f"{None if last is None else last.sequence}"))
        if len(records) == seal.get("records"):  # no torn lines were left behind in the hot file
            root = merkle_root(record for _, record in sorted(parsed, key=lambda item: item[0].sequence))
            if root != seal.get("merkle_root"):
                report.failures.append(VerificationFailure(
                    source, 0, None, FailureKind.SEAL_MISMATCH,
                    f"rows rebuild Merkle root {root[:16]}..., the seal says {str(seal.get('merkle_root'))[:16]}..."))
    for file in sorted(cold.glob("year=*/month=*/day=*/*.parquet")):
        if file.resolve() not in named:
            report.failures.append(VerificationFailure(
                str(file), 0, None, FailureKind.UNEXPECTED_FILE, "no manifest entry names this Parquet file"))
    return report
