"""Rebuilding a cold store's projection: typed columns derived again, records carried over byte for byte.

When the projection changes (``projection.PROJECTIONS``: a new column, another encoding), a store
written with an older version is not rewritten as evidence. ``rebuild_projection`` verifies the
whole store (``verify_cold``), derives every old entry's columns again from its stored records
with the current version into a copy of the store beside it, verifies the copy (the same records,
checksums, chains and seal copies), and only then swaps the two directories. Each rebuilt
manifest entry keeps its history (``rebuilt``: the version and the SHA-256 of every file it
replaced), authenticated like the rest of the entry and committed to by the new root: the rebuild
is itself recorded in the store it changed.

An entry at the current version written by an older converter is rebuilt too, at the same
version: one whose files have v2 data pages (BYTE_STREAM_SPLIT doubles, which Spark 4.0's
vectorized reader refuses: ``_parquet.COPY_OPTIONS``) or whose outputs lack the parameter index
(``parameters``, which ``state_at`` reads by) or the id filter (``ids``, which ``trade_lifecycle``
reads by).

Crash-safe: the copy is built in ``<cold>.rebuild``; the swap renames the store to
``<cold>.replaced`` and the copy into its place, then deletes the old one. A run interrupted
before the swap starts over; one interrupted inside it finishes the swap once the copy verifies.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit_core.cold._parquet import STAGING_DIR, bounded_connection, uses_byte_stream_split, write_partitions
from audit_core.cold.cold_verify import verify_cold
from audit_core.cold.manifest import (
    MANIFEST_CHECKSUM,
    MANIFEST_DIR,
    engine,
    read_manifest,
    update_cold_root,
    write_entry,
)
from audit_core.cold.projection import PROJECTION_VERSION, chained_rows, structure, working_rows
from audit_core.errors import AuditConfigError, AuditIntegrityError
from audit_core.trust.documents import SIGNATURE_FIELD
from audit_core.trust.record import LINE_SQL
from audit_core.trust.seals import fsync_directory

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from audit_core.trust.report import VerificationReport
    from audit_core.trust.signing import SigningKey

#: Suffixes of the store's siblings during a rebuild: the copy being built, the store being replaced.
BUILDING_SUFFIX, REPLACED_SUFFIX = ".rebuild", ".replaced"


@dataclass
class RebuildResult:
    """What ``rebuild_projection`` did. ``entries`` is empty when every entry was already current."""

    cold: Path
    to_version: int
    entries: list[str] = field(default_factory=list)
    from_versions: dict[int, int] = field(default_factory=dict)  # old version -> entries rebuilt from it
    files: int = 0
    rows: int = 0
    records: int = 0  # verified records in the store, the same before and after

    @property
    def rebuilt(self) -> bool:
        return bool(self.entries)

    def summary(self) -> str:
        if not self.entries:
            return (f"nothing to rebuild: every manifest entry of {self.cold} is at projection {self.to_version} "
                    f"({self.records:,} records verified)")
        versions = ", ".join(f"{count} from projection {version}"
                             for version, count in sorted(self.from_versions.items()))
        return (f"rebuilt {len(self.entries)} manifest entries ({versions}) to projection {self.to_version}: "
                f"{self.files} Parquet file(s), {self.rows:,} rows; {self.records:,} records verified before and after")


def rebuild_projection(
    cold_path: Path | str,
    *,
    hmac_key: bytes | None = None,
    public_key: Ed25519PublicKey | None = None,
    signing_key: SigningKey | None = None,
    cold_public_key: Ed25519PublicKey | None = None,
    row_group_size: int = 8_192,
    progress: Callable[[int, int, str], None] | None = None,
) -> RebuildResult:
    """Derive every entry's columns again with the current projection; verified before and after.

    Args:
        cold_path: The cold store.
        hmac_key: The trail's HMAC key, if it is keyed (records, seal copies, entries and root).
        public_key: The writer's Ed25519 key: every seal copy must carry its signature.
        signing_key: The converter's Ed25519 private key: signs the rebuilt entries and the root.
            Needed when the store's entries are signed.
        cold_public_key: The key the store's entries and root are signed with, when it is not
            ``signing_key``'s (default: ``signing_key``'s public key, else ``public_key``).
        row_group_size: Rows per Parquet row group of the rebuilt files.
        progress: Called with (done, total, hot file name) after each entry.

    Returns:
        What was rebuilt; ``result.rebuilt`` is False when nothing needed it.

    Raises:
        AuditIntegrityError: the store (or the rebuilt copy) does not verify; the store is untouched.
        AuditConfigError: the store's entries are signed and no ``signing_key`` was given.
    """
    cold = Path(cold_path)
    building, replaced = _sibling(cold, BUILDING_SUFFIX), _sibling(cold, REPLACED_SUFFIX)
    if cold_public_key is None:
        cold_public_key = signing_key.public_key() if signing_key is not None else public_key

    def verified(store: Path, what: str) -> VerificationReport:
        report = verify_cold(store, hmac_key, public_key, cold_public_key=cold_public_key)
        if not report.ok:
            raise AuditIntegrityError(
                f"{what} {store} does not verify ({len(report.failures)} failure(s); first: {report.failures[0]}): "
                "a rebuild reads only a verified store and swaps in only a verified copy; nothing was changed",
                report)
        return report

    if not cold.exists() and building.is_dir() and replaced.is_dir():
        verified(building, "the rebuilt copy")  # interrupted inside the swap: finish it
        os.rename(building, cold)
        fsync_directory(cold.parent)
    before = verified(cold, "the cold store")
    for leftover in (building, replaced):  # an unfinished copy, or the old store after a finished swap
        if leftover.is_dir():
            shutil.rmtree(leftover)
    entries = [(path, read_manifest(path)) for path in sorted((cold / MANIFEST_DIR).glob("*.json"))]
    result = RebuildResult(cold, PROJECTION_VERSION, records=before.records)
    stale = [(path, entry) for path, entry in entries if entry.get("projection_version") != PROJECTION_VERSION
             or _outdated(cold, entry)]
    if not stale:
        return result
    if signing_key is None and any(SIGNATURE_FIELD in entry for _, entry in entries):
        raise AuditConfigError(f"{cold}: its manifest entries are signed; pass the converter's signing key to rebuild "
                               "them (unsigned entries would fail verification with its public key)")
    shutil.copytree(cold, building, copy_function=_link_or_copy, ignore=shutil.ignore_patterns(STAGING_DIR))
    try:
        now = time.time_ns()
        for done, (_, entry) in enumerate(stale, start=1):
            _rebuild_entry(building, entry, hmac_key, signing_key, row_group_size, now, result)
            if progress is not None:
                progress(done, len(stale), str(entry["source"]))
        update_cold_root(building, hmac_key, signing_key)
        after = verified(building, "the rebuilt copy")
        if after.records != before.records:
            raise AuditIntegrityError(
                f"the rebuilt copy holds {after.records} verified records, the store {before.records}; nothing was "
                "changed", after)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    os.rename(cold, replaced)
    os.rename(building, cold)
    fsync_directory(cold.parent)
    shutil.rmtree(replaced)
    return result


def _rebuild_entry(
    store: Path,
    entry: dict[str, Any],
    hmac_key: bytes | None,
    signing_key: SigningKey | None,
    row_group_size: int,
    now_ns: int,
    result: RebuildResult,
) -> None:
    """Derive one entry's rows again from their stored records into ``store``; rewrite its manifest entry."""
    old_outputs = [output for output in entry["outputs"] if isinstance(output, dict)]
    staging = store / STAGING_DIR / str(entry["source"])
    staging.mkdir(parents=True, exist_ok=True)
    try:
        outputs = []
        if old_outputs:
            with contextlib.closing(bounded_connection(staging)) as con:
                # The projection reads the whole line and its parsed JSON, as the converter does; a
                # torn line's row keeps its bytes, its display text (``record``) and the time it was filed under.
                files = chained_rows("read_parquet($files, filename = true, union_by_name = true)",
                                     int(entry["projection_version"]))
                lines = f"""(SELECT *, json_transform(line, $structure) AS j
                             FROM (SELECT CASE WHEN torn_bytes IS NULL THEN {LINE_SQL} END AS line,
                                          CASE WHEN torn_bytes IS NOT NULL THEN record END AS record, torn_bytes,
                                          CASE WHEN torn_bytes IS NOT NULL THEN ts_event END AS torn_ts, source_line
                                   FROM {files}))"""
                con.execute(
                    f"CREATE TEMP TABLE rows AS {working_rows(lines)} ORDER BY ts_event, source_line",
                    {"files": [str(store / str(output["path"])) for output in old_outputs],
                     "stream": entry.get("stream"), "structure": structure()},
                )
                outputs = write_partitions(con, "rows", str(entry["source"]), staging, store,
                                           row_group_size=row_group_size, version=PROJECTION_VERSION)
    finally:
        shutil.rmtree(store / STAGING_DIR, ignore_errors=True)
    old_paths, new_paths = sorted(str(o["path"]) for o in old_outputs), sorted(str(o["path"]) for o in outputs)
    if old_paths != new_paths:  # the same rows, so the same days: anything else is a bug, not a rebuild
        raise AuditIntegrityError(f"{entry['source']}: rebuilt into {new_paths}, the entry had {old_paths}")
    version = int(entry["projection_version"])  # a known version: verify_cold passed
    rebuilt = {key: value for key, value in entry.items() if key not in (MANIFEST_CHECKSUM, SIGNATURE_FIELD)}
    rebuilt["projection_version"] = PROJECTION_VERSION
    rebuilt["engine"] = engine()
    rebuilt["outputs"] = outputs
    history: list[Any] = entry["rebuilt"] if isinstance(entry.get("rebuilt"), list) else []
    rebuilt["rebuilt"] = [*history, {
        "from_projection_version": version, "at_ns": now_ns,
        "replaced": [{"path": o["path"], "rows": o["rows"], "sha256": o.get("sha256")} for o in old_outputs],
    }]
    write_entry(store, rebuilt, hmac_key, signing_key)
    result.entries.append(str(entry["source"]))
    result.from_versions[version] = result.from_versions.get(version, 0) + 1
    result.files += len(outputs)
    result.rows += sum(int(output["rows"]) for output in outputs)


def _outdated(cold: Path, entry: dict[str, Any]) -> bool:
    """Whether an output of ``entry`` (verified) was written by an older converter of the same projection:
    without the parameter index (``parameters``) or the id filter (``ids``), or with v2 pages
    (``_parquet.COPY_OPTIONS``)."""
    outputs = [output for output in entry["outputs"] if isinstance(output, dict)]
    return any("parameters" not in output or "ids" not in output
               or uses_byte_stream_split(cold / str(output["path"])) for output in outputs)


def _sibling(cold: Path, suffix: str) -> Path:
    return cold.with_name(cold.name + suffix)


def _link_or_copy(source: str, target: str) -> None:
    """Hard-link a file into the copy (the store's files are replaced by rename, never edited), else copy it."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
