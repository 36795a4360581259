"""What verification found: failure kinds, failures, per-stream summaries, and the report."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from audit_core.errors import AuditIntegrityError


class FailureKind(enum.StrEnum):
    CHECKSUM_MISMATCH = "checksum_mismatch"
    CHAIN_BREAK = "chain_break"
    SEQUENCE_GAP = "sequence_gap"
    SEQUENCE_REPEAT = "sequence_repeat"
    #: A record's ``ts_recorded`` is earlier than the one before it in its stream (format 3 on).
    TS_RECORDED_BACKWARDS = "ts_recorded_backwards"
    UNPARSEABLE_LINE = "unparseable_line"
    TORN_LINE = "torn_line"
    SEAL_MISMATCH = "seal_mismatch"
    SEAL_MISSING = "seal_missing"
    SEAL_INVALID = "seal_invalid"
    FILE_MISSING = "file_missing"
    UNEXPECTED_FILE = "unexpected_file"
    SIGNATURE_MISSING = "signature_missing"
    SIGNATURE_INVALID = "signature_invalid"
    #: A signature by a key the trusted-keys file does not list for the document's role (format.md section 6).
    KEY_UNTRUSTED = "key_untrusted"
    #: A signature by a trusted key outside its validity window, or with an unknown signing time under a bounded key.
    KEY_OUTSIDE_WINDOW = "key_outside_window"
    #: A key-rotation record whose endorsement does not verify under the key it names as the old key.
    KEY_ROTATION_INVALID = "key_rotation_invalid"
    #: Nothing was there to verify: the path is missing, or holds no trail file and no cold store.
    NOTHING_VERIFIED = "nothing_verified"
    #: A file that is not in its format (garbage, truncated, wrong types): a manifest, Parquet file or checkpoint.
    UNREADABLE_FILE = "unreadable_file"
    #: A stream a witnessed checkpoint covers has no file left, and no verified retention record removed it.
    STREAM_MISSING = "stream_missing"
    #: Lines a witnessed checkpoint covers are gone or changed (truncation, rollback), or the tree sidecar
    #: disagrees with the files.
    ANCHOR_MISMATCH = "anchor_mismatch"
    #: Cold store: a typed column differs from the value derived from the row's stored record.
    COLUMN_MISMATCH = "column_mismatch"
    #: Cold store: a Parquet file's SHA-256, row count, schema or projection version is not what its manifest says.
    PARQUET_MISMATCH = "parquet_mismatch"
    #: Cold store: a manifest entry is unreadable, unauthenticated, or claims what the store does not hold.
    MANIFEST_INVALID = "manifest_invalid"
    #: Cold store: Parquet files (or a root) but no ``_manifest/`` directory.
    MANIFEST_MISSING = "manifest_missing"
    #: Cold store: ``_root.json`` is missing, unauthenticated, or does not match what the store holds.
    ROOT_INVALID = "root_invalid"


@dataclass(frozen=True)
class VerificationFailure:
    """One thing wrong with a trail. ``line`` is 1-based; ``sequence`` is where the chain broke."""

    file: str
    line: int
    sequence: int | None
    kind: FailureKind
    detail: str

    def __str__(self) -> str:
        seq = "?" if self.sequence is None else str(self.sequence)
        return f"{self.file}:{self.line}: sequence {seq}: {self.kind.value}: {self.detail}"


@dataclass
class StreamSummary:
    """What verification saw of one stream (one writing process)."""

    stream: str
    files: list[str] = field(default_factory=list)
    records: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    last_hash: str | None = None


@dataclass
class VerificationReport:
    """Result of ``verify``: files and records checked and every failure found."""

    files: list[str] = field(default_factory=list)
    records: int = 0
    failures: list[VerificationFailure] = field(default_factory=list)
    streams: dict[str, StreamSummary] = field(default_factory=dict)
    keyed: bool = False
    #: Torn writes that a later ``sys.recovery`` record in the chain accounts for: honest, not failures.
    recovered: list[VerificationFailure] = field(default_factory=list)
    #: Streams that start after files a ``sys.retention`` record in the trail says were removed.
    retired: list[str] = field(default_factory=list)
    sealed_files: int = 0
    #: Sealed files whose Merkle root and file SHA-256 were not recomputed: an authenticated seal vouches
    #: for them (``seals.CheckedSeal.vouches``). The other sealed files' were recomputed and compared.
    vouched: list[str] = field(default_factory=list)
    #: key id of the public key seal signatures were checked against; None: signatures not checked.
    signing_key_id: str | None = None
    #: Key rotations and revocations found in the trail (``trust.key_history``), one line each.
    key_history: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def raise_for_failures(self) -> None:
        """Raises AuditIntegrityError naming the first failure if there is any."""
        if self.failures:
            raise AuditIntegrityError(
                f"trail failed verification with {len(self.failures)} failure(s); first: {self.failures[0]}",
                self,
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "files": self.files,
            "records": self.records,
            "keyed": self.keyed,
            "sealed_files": self.sealed_files,
            "signing_key_id": self.signing_key_id,
            "streams": {key: vars(summary) for key, summary in self.streams.items()},
            "failures": [{**vars(f), "kind": f.kind.value} for f in self.failures],
            "recovered": [{**vars(f), "kind": f.kind.value} for f in self.recovered],
            "retired": self.retired,
            **({"key_history": self.key_history} if self.key_history else {}),
            **({"vouched": self.vouched} if self.vouched else {}),
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> VerificationReport:
        """The report whose ``to_dict()`` is ``document``. Raises KeyError, TypeError or ValueError otherwise."""

        def failures(items: list[dict[str, Any]]) -> list[VerificationFailure]:
            return [VerificationFailure(str(item["file"]), int(item["line"]),
                                        None if item["sequence"] is None else int(item["sequence"]),
                                        FailureKind(item["kind"]), str(item["detail"])) for item in items]

        report = cls(
            files=[str(name) for name in document["files"]], records=int(document["records"]),
            failures=failures(document["failures"]),
            streams={str(name): StreamSummary(**values) for name, values in document["streams"].items()},
            keyed=bool(document["keyed"]), recovered=failures(document["recovered"]),
            retired=[str(note) for note in document["retired"]], sealed_files=int(document["sealed_files"]),
            signing_key_id=document["signing_key_id"],
            key_history=[str(line) for line in document.get("key_history", [])],
            vouched=[str(name) for name in document.get("vouched", [])],
        )
        if report.to_dict() != {key: value for key, value in document.items() if key != "parts"}:
            raise ValueError("the document does not rebuild to the same report")
        return report

    def to_text(self, max_failures: int = 50) -> str:
        lines = [
            f"{'OK' if self.ok else 'FAILED'}: {len(self.files)} file(s), {self.records} record(s), "
            + (f"{len(self.streams)} stream(s), " if self.streams else "")  # a cold report lists none
            + f"{self.sealed_files} sealed, "
            f"checksums {'HMAC-SHA256' if self.keyed else 'SHA-256'}"
        ]
        if self.sealed_files:
            lines.append(
                f"  seal signatures checked against key {self.signing_key_id}"
                if self.signing_key_id
                else "  seal signatures not checked (no public key)"
            )
        if self.vouched:
            lines.append(
                f"  Merkle roots and file hashes of {len(self.vouched)} sealed file(s) not recomputed: vouched for by "
                "their authenticated seals, the chain checked up to each seal's last hash (--deep recomputes them)"
            )
        for summary in self.streams.values():
            lines.append(
                f"  stream {summary.stream}: {summary.records} record(s) in {len(summary.files)} file(s), "
                f"sequence {summary.first_sequence}..{summary.last_sequence}"
            )
        for torn in self.recovered:
            lines.append(f"  recovered (not a failure): {torn}")
        for note in self.retired:
            lines.append(f"  retention (not a failure): {note}")
        for note in self.key_history:
            lines.append(f"  key history: {note}")
        for failure in self.failures[:max_failures]:
            lines.append(f"  {failure}")
        if len(self.failures) > max_failures:
            lines.append(f"  ... and {len(self.failures) - max_failures} more")
        mismatches = sum(f.kind is FailureKind.CHECKSUM_MISMATCH for f in self.failures)
        if not self.keyed and self.records and mismatches == self.records:
            lines.append("  every checksum differs: was this trail written with an HMAC key? pass it to verify")
        return "\n".join(lines)
