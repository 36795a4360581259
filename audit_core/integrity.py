"""Hash chain of a trail and its verification.

Each record's ``checksum`` is SHA-256 (HMAC-SHA256 when keyed) over the record's canonical bytes
without the checksum; ``prev_hash`` is the previous record's checksum in the same stream, and
``sequence`` counts from 0 without gaps. Editing, deleting, inserting or reordering a line breaks
one of these at a sequence number that ``verify`` reports. Verification works on the bytes as
stored and never re-serializes, so records written by older versions stay verifiable.

Seals (``seal_file``) close a file with its count, hashes and RFC 6962 Merkle root (``merkle.py``);
with a signing key they carry an Ed25519 signature (``signing.py``) and get a C2SP checkpoint
(``checkpoint.py``), which ``verify`` checks when it is given the public key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from audit_core import _jsonfile, checkpoint, documents, signing
from audit_core._layout import HOT_SUFFIX, RETENTION_STREAM, checkpoint_path, parse_hot_file_name, seal_path
from audit_core.errors import AuditFormatError, AuditIntegrityError
from audit_core.merkle import RFC6962_LEAF_PREFIX as RFC6962_LEAF_PREFIX
from audit_core.merkle import RFC6962_NODE_PREFIX as RFC6962_NODE_PREFIX
from audit_core.merkle import MerkleTree as MerkleTree
from audit_core.merkle import merkle_leaf_hash as merkle_leaf_hash
from audit_core.merkle import merkle_node_hash as merkle_node_hash
from audit_core.merkle import merkle_root as merkle_root

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

#: ``prev_hash`` of the first record of a stream.
GENESIS_HASH = "0" * 64

#: Every record ends with ``,"checksum":"<64 hex>"}\n``; a verifier slices it off without parsing.
CHECKSUM_SUFFIX_PREFIX = b',"checksum":"'
_SUFFIX_LEN = len(CHECKSUM_SUFFIX_PREFIX) + 64 + 2  # prefix, hex digest, '"}'
_SEQUENCE_KEY = b'"sequence":'
_PREV_HASH_KEY = b'"prev_hash":'


def compute_checksum(body: bytes, hmac_key: bytes | None = None) -> str:
    """SHA-256 hex of ``body``, or HMAC-SHA256 hex when ``hmac_key`` is given."""
    return documents.keyed_digest(body, hmac_key)


class RecordFields(NamedTuple):
    """The chain fields of one record line, sliced from its bytes."""

    body: bytes
    checksum: str
    sequence: int
    prev_hash: str | None


def split_record(line: bytes) -> RecordFields:
    """Slice checksum, sequence and prev_hash out of a record line (with or without ``\\n``).

    Raises:
        ValueError: the line does not have the record layout.
    """
    if line.endswith(b"\n"):
        line = line[:-1]
    if len(line) < _SUFFIX_LEN + 2 or not line.endswith(b'"}'):
        raise ValueError("line does not end with the checksum field")
    cut = len(line) - _SUFFIX_LEN
    if line[cut : cut + len(CHECKSUM_SUFFIX_PREFIX)] != CHECKSUM_SUFFIX_PREFIX:
        raise ValueError("checksum is not the last field")
    checksum = line[cut + len(CHECKSUM_SUFFIX_PREFIX) : -2].decode("ascii", "replace")
    body = line[:cut] + b"}"
    # The first occurrence is the top-level key: fields before it cannot hold a bare quote.
    at = body.find(_SEQUENCE_KEY)
    if at < 0:
        raise ValueError("no sequence field")
    end = body.find(b",", at)
    sequence = int(body[at + len(_SEQUENCE_KEY) : end])
    at = body.find(_PREV_HASH_KEY)
    if at < 0:
        raise ValueError("no prev_hash field")
    start = at + len(_PREV_HASH_KEY)
    if body[start : start + 4] == b"null":
        prev_hash = None
    elif body[start : start + 1] == b'"' and body[start + 65 : start + 66] == b'"':
        prev_hash = body[start + 1 : start + 65].decode("ascii", "replace")
    else:
        raise ValueError("prev_hash is neither null nor a 64-character string")
    return RecordFields(body, checksum, sequence, prev_hash)


# --- seals --------------------------------------------------------------------------------------

SEAL_FORMAT = "ledgerline-seal/1"
_SEAL_MODE = 0o440  # sealed files and their seals lose their write bits
#: A seal is an authenticated document (``documents.py``) with this checksum field.
SEAL_CHECKSUM = "seal_checksum"


@dataclass
class FileDigest:
    """What a seal says about a file, computed in one pass over its bytes."""

    lines: int = 0
    size: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    first_hash: str | None = None
    last_hash: str | None = None
    file_sha256: str = ""
    merkle_root: str = ""
    _sha: Any = field(default_factory=hashlib.sha256, repr=False)
    _tree: MerkleTree = field(default_factory=MerkleTree, repr=False)

    def add_line(self, line: bytes, record: RecordFields | None) -> None:
        self._sha.update(line)
        self._tree.add(line[:-1] if line.endswith(b"\n") else line)
        self.lines += 1
        self.size += len(line)
        if record is not None:
            if self.first_sequence is None:
                self.first_sequence, self.first_hash = record.sequence, record.checksum
            self.last_sequence, self.last_hash = record.sequence, record.checksum

    def finish(self) -> FileDigest:
        self.file_sha256 = self._sha.hexdigest()
        self.merkle_root = self._tree.root()
        return self

    def seal_fields(self) -> dict[str, Any]:
        return {
            "records": self.lines,
            "file_size": self.size,
            "first_sequence": self.first_sequence,
            "last_sequence": self.last_sequence,
            "first_hash": self.first_hash,
            "last_hash": self.last_hash,
            "file_sha256": self.file_sha256,
            "merkle_root": self.merkle_root,
        }


def digest_file(path: Path) -> FileDigest:
    """Count, sequence range, hashes, SHA-256 and Merkle root of a hot file."""
    digest = FileDigest()
    for line in _read_lines(path):
        try:
            record = split_record(line) if line.endswith(b"\n") else None
        except ValueError:
            record = None
        digest.add_line(line, record)
    return digest.finish()


def seal_file(
    path: Path,
    *,
    next_file: str | None = None,
    hmac_key: bytes | None = None,
    sealed_at_ns: int = 0,
    signing_key: Ed25519PrivateKey | None = None,
) -> dict[str, Any]:
    """Write ``path``'s seal sidecar and drop the write bits of both. Returns the seal.

    The seal is written to a temporary name, synced and renamed, so it is whole or absent.
    ``next_file`` names the stream's following file, so deleting that file is detectable.
    ``seal_checksum`` covers the seal itself (HMAC-SHA256 with a key: unforgeable without it).
    With ``signing_key`` the seal gets a ``signature`` (Ed25519 over its canonical bytes without
    ``signature`` and ``seal_checksum``) and a C2SP checkpoint ``<file>.checkpoint`` is written first.
    """
    name = parse_hot_file_name(path)
    seal: dict[str, Any] = {
        "format": SEAL_FORMAT,
        "file": path.name,
        "stream": name.stream_key if name else None,
        **digest_file(path).seal_fields(),
        "next_file": next_file,
        "sealed_at_ns": sealed_at_ns,
    }
    if signing_key is not None:
        _write_read_only(checkpoint_path(path), checkpoint.sign_checkpoint(seal, signing_key).encode())
    seal = documents.authenticate(seal, SEAL_CHECKSUM, hmac_key, signing_key)
    _write_read_only(seal_path(path), json.dumps(seal, indent=1).encode() + b"\n")
    os.chmod(path, _SEAL_MODE)
    fsync_directory(path.parent)
    return seal


def _write_read_only(target: Path, data: bytes) -> None:
    """Write ``data`` to a temporary name, sync it, drop its write bits and rename it to ``target``."""
    temporary = target.with_name(target.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)  # a read-only leftover of a crash between chmod and rename
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(temporary, _SEAL_MODE)
    os.replace(temporary, target)


#: The fields ``seal_file`` writes and the JSON types each may hold; ``signature`` is there when signed.
SEAL_FIELDS: dict[str, tuple[type, ...]] = {
    "format": (str,), "file": (str,), "stream": (str, type(None)), "records": (int,), "file_size": (int,),
    "first_sequence": (int, type(None)), "last_sequence": (int, type(None)), "first_hash": (str, type(None)),
    "last_hash": (str, type(None)), "file_sha256": (str,), "merkle_root": (str,), "next_file": (str, type(None)),
    "sealed_at_ns": (int,), "seal_checksum": (str,),
}
_OPTIONAL_SEAL_FIELDS: dict[str, tuple[type, ...]] = {"signature": (dict,)}
_PLAIN = (str, int, float, bool, type(None))


def read_seal(path: Path) -> dict[str, Any] | None:
    """The seal of hot file ``path``, or None if it has none.

    Raises:
        AuditFormatError: the seal is not JSON, not a ``ledgerline-seal/1`` object, or a field
            has the wrong type (``check_seal_format``); names the seal file.
        OSError: the seal exists but cannot be read.
    """
    target = seal_path(path)
    if not target.exists():
        return None
    seal = _jsonfile.read_object(target, "seal")
    check_seal_format(seal, target)
    return seal


def check_seal_format(seal: Any, where: Path | str, name: str = "seal") -> None:
    """Check that ``seal`` is a flat ``ledgerline-seal/1`` object with a value of the right type in every field.

    Only the form is checked here; whether the values are true of the file is ``verify``'s job.
    Fields other than ``SEAL_FIELDS`` may be present but must hold plain values, not arrays or objects;
    ``signature`` is an object of plain values (``signing.verify_seal_signature`` checks what they say).

    Raises:
        AuditFormatError: names ``where`` and the field, with the type expected and the one found.
    """
    if not isinstance(seal, dict):
        raise AuditFormatError(where, f"{name}: expected a JSON object, got {_jsonfile.type_name(seal)}")
    if seal.get("format") != SEAL_FORMAT:
        raise AuditFormatError(where, f"{name}: format {seal.get('format')!r}, expected {SEAL_FORMAT!r}")
    for key, value in seal.items():
        kinds = SEAL_FIELDS.get(key) or _OPTIONAL_SEAL_FIELDS.get(key) or _PLAIN
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            expected = " or ".join(_jsonfile.type_name(kind()) if kind is not type(None) else "null" for kind in kinds)
            raise AuditFormatError(
                where, f"{name} field {key!r}: expected {expected}, got {_jsonfile.type_name(value)} {value!r:.40}"
            )
        if isinstance(value, dict) and not all(isinstance(item, _PLAIN) for item in value.values()):
            raise AuditFormatError(
                where, f"{name} field {key!r}: expected an object of plain values, got {value!r:.40}"
            )
    missing = [key for key in SEAL_FIELDS if key not in seal]
    if missing:
        raise AuditFormatError(where, f"{name} lacks field(s) {', '.join(missing)}")


def seal_signed_bytes(seal: dict[str, Any]) -> bytes:
    """The bytes a seal's Ed25519 ``signature`` covers: the canonical seal without signature and checksum."""
    return documents.signed_bytes(seal, SEAL_CHECKSUM)


def fsync_directory(directory: Path) -> None:
    """Make a new or renamed file's name durable: its directory entry is synced."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FailureKind(enum.StrEnum):
    CHECKSUM_MISMATCH = "checksum_mismatch"
    CHAIN_BREAK = "chain_break"
    SEQUENCE_GAP = "sequence_gap"
    SEQUENCE_REPEAT = "sequence_repeat"
    UNPARSEABLE_LINE = "unparseable_line"
    TORN_LINE = "torn_line"
    SEAL_MISMATCH = "seal_mismatch"
    SEAL_MISSING = "seal_missing"
    SEAL_INVALID = "seal_invalid"
    FILE_MISSING = "file_missing"
    UNEXPECTED_FILE = "unexpected_file"
    SIGNATURE_MISSING = "signature_missing"
    SIGNATURE_INVALID = "signature_invalid"
    #: A file that is not in its format (garbage, truncated, wrong types): a manifest, Parquet file or checkpoint.
    UNREADABLE_FILE = "unreadable_file"
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
    #: key id of the public key seal signatures were checked against; None: signatures not checked.
    signing_key_id: str | None = None

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
        }

    def to_text(self, max_failures: int = 50) -> str:
        lines = [
            f"{'OK' if self.ok else 'FAILED'}: {len(self.files)} file(s), {self.records} record(s), "
            f"{len(self.streams)} stream(s), {self.sealed_files} sealed, "
            f"checksums {'HMAC-SHA256' if self.keyed else 'SHA-256'}"
        ]
        if self.sealed_files:
            lines.append(
                f"  seal signatures checked against key {self.signing_key_id}"
                if self.signing_key_id
                else "  seal signatures not checked (no public key)"
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
        for failure in self.failures[:max_failures]:
            lines.append(f"  {failure}")
        if len(self.failures) > max_failures:
            lines.append(f"  ... and {len(self.failures) - max_failures} more")
        mismatches = sum(f.kind is FailureKind.CHECKSUM_MISMATCH for f in self.failures)
        if not self.keyed and self.records and mismatches == self.records:
            lines.append("  every checksum differs: was this trail written with an HMAC key? pass it to verify")
        return "\n".join(lines)


def hot_files(path: Path | str) -> list[Path]:
    """The JSONL files under ``path`` (or ``path`` itself), ordered by stream then day."""
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.exists():
        raise FileNotFoundError(f"no trail at {root}")
    found = [p for p in root.rglob(f"*{HOT_SUFFIX}") if p.is_file()]
    return sorted(found, key=_stream_order)


def _stream_order(path: Path) -> tuple[str, str, str, int]:
    name = parse_hot_file_name(path)
    if name is None:
        return (str(path), "", "", 0)
    return (str(path.parent), name.stream_key, name.day.isoformat(), name.segment)


def verify(
    path: Path | str | Iterable[Path | str],
    hmac_key: bytes | None = None,
    *,
    require_stream_start: bool = True,
    public_key: Ed25519PublicKey | None = None,
) -> VerificationReport:
    """Verify checksums, sequences and chain of every record under ``path``.

    Files of one stream (same trader and stream id in the name) are checked as one chain in date
    order, so a deleted or reordered day breaks it too. A ``*.jsonl`` file in a searched directory
    that is not named like a trail file is an ``unexpected_file`` failure and is not read; a file
    passed by name is checked alone, whatever its name.

    Special records are parsed, never searched for: a ``sys.retention`` record excuses the files it
    names only if it is in a ``retention`` stream whose chain and seals verify (``retention_records``);
    a ``sys.recovery`` record excuses only a torn line before it in its own stream.

    Args:
        path: A hot file, a directory to search, or several of those.
        hmac_key: The key the trail was written with, if any.
        require_stream_start: Each stream must begin at sequence 0 with the genesis hash, so a
            deleted first record or first file is reported. Pass False to check a later file alone.
        public_key: The trusted Ed25519 key the seals were signed with. With it, every seal must
            carry a valid signature of this key (and its checkpoint, if present, must verify);
            without it, signatures are not checked at all.

    Returns:
        A report; ``report.ok`` is false when anything failed. It never raises for tampering.
    """
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    report = VerificationReport(keyed=hmac_key is not None)
    if public_key is not None:
        report.signing_key_id = signing.key_id(public_key)
    files = _trail_files(paths, report)
    groups = list(_group_streams(files))
    # The retention streams first: their verified records say which files retention removed.
    starts: dict[str, dict[tuple[int, str], _Retired]] = {}
    for stream_key, stream_files in groups:
        if _is_retention_file(stream_files[0]):
            records = _verified_retention_records(
                stream_key, stream_files, hmac_key, report, require_stream_start, public_key
            )
            if require_stream_start:
                _add_retention_starts(starts, records)
    for stream_key, stream_files in groups:
        if not _is_retention_file(stream_files[0]):
            _verify_stream(
                stream_key, stream_files, hmac_key, report, require_stream_start, public_key,
                starts.get(stream_key, {}),
            )
    return report


def _trail_files(paths: list[Path | str], report: VerificationReport) -> list[Path]:
    """The hot files to verify. Files found in a directory must be named like trail files: any
    other ``*.jsonl`` there (``notes.jsonl``) is reported as unexpected and never read. A file
    given by name is checked alone, whatever its name."""
    files = []
    for given in paths:
        searched = Path(given).is_dir()
        for path in hot_files(given):
            if searched and parse_hot_file_name(path) is None:
                report.failures.append(VerificationFailure(
                    str(path), 0, None, FailureKind.UNEXPECTED_FILE,
                    "not a trail file (trail files are named audit.<trader>.<stream>.<YYYY-MM-DD>.<segment>"
                    ".jsonl): not verified, and nothing in it is trusted",
                ))
            else:
                files.append(path)
    return files


class RetentionRecord(NamedTuple):
    """A ``sys.retention`` record of a retention stream whose chain and seal verify."""

    file: Path
    sequence: int
    payload: dict[str, Any]


def retention_records(
    path: Path | str, hmac_key: bytes | None = None, *, public_key: Ed25519PublicKey | None = None
) -> list[RetentionRecord]:
    """The ``sys.retention`` records that count under ``path``: see ``_verified_retention_records``."""
    files = [f for f in hot_files(path) if _is_retention_file(f)]
    report = VerificationReport(keyed=hmac_key is not None)
    records = []
    for stream_key, stream_files in _group_streams(files):
        records += _verified_retention_records(stream_key, stream_files, hmac_key, report, True, public_key)
    return records


def _is_retention_file(path: Path) -> bool:
    name = parse_hot_file_name(path)
    return name is not None and name.stream_id == RETENTION_STREAM


def _verified_retention_records(
    stream_key: str,
    files: list[Path],
    hmac_key: bytes | None,
    report: VerificationReport,
    require_stream_start: bool,
    public_key: Ed25519PublicKey | None,
) -> list[RetentionRecord]:
    """Verify a retention stream into ``report``; return its ``sys.retention`` records that count.

    A record counts when it parses as a JSON object whose ``event_type`` is exactly
    ``sys.retention``, its checksum verifies, and its file and every earlier file of the stream
    verify without a failure (chain, seal; with ``public_key``, the file must also be sealed and
    signed by that key, so a line appended to a live file by someone without the key never counts).
    """
    collected: list[tuple[Path, RecordFields]] = []
    _verify_stream(stream_key, files, hmac_key, report, require_stream_start, public_key, collect=collected)
    failed = {failure.file for failure in report.failures}
    trusted: set[Path] = set()
    for path in files:
        if str(path) in failed or (public_key is not None and not seal_path(path).exists()):
            break
        trusted.add(path)
    records = []
    for path, record in collected:
        fields = _parse_object(record.body) if path in trusted else None
        payload = fields.get("payload") if fields is not None and fields.get("event_type") == "sys.retention" else None
        if isinstance(payload, dict):
            records.append(RetentionRecord(path, record.sequence, payload))
    return records


class _Retired(NamedTuple):
    file: str  # the removed file
    note: str  # what the report says when a stream continues after it


def _add_retention_starts(starts: dict[str, dict[tuple[int, str], _Retired]], records: list[RetentionRecord]) -> None:
    """Where a stream may continue after files retention removed: (sequence, prev_hash) per stream.

    Each ``sys.retention`` record names the removed files with their last sequence and hash, so
    the next remaining record must continue exactly there. Deleting any file retention did not
    announce still shows as a gap.
    """
    for record in records:
        payload = record.payload
        removed_files = payload.get("hot_files")
        for removed in removed_files if isinstance(removed_files, list) else []:
            if isinstance(removed, dict) and isinstance(removed.get("last_sequence"), int):
                note = (
                    f"stream {removed.get('stream')} continues after {removed.get('file')}, removed by "
                    f"retention plan {payload.get('plan_id')} (sys.retention, sequence {record.sequence} "
                    f"in {record.file.name})"
                )
                key = (removed["last_sequence"] + 1, str(removed.get("last_hash")))
                starts.setdefault(str(removed.get("stream")), {})[key] = _Retired(str(removed.get("file")), note)


def _parse_object(body: bytes) -> dict[str, Any] | None:
    """A record's JSON object, or None if it is not one (or repeats a key, which JSON parsers resolve differently)."""
    try:
        parsed = json.loads(body, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("repeated key")
    return result


def _group_streams(files: list[Path]) -> Iterator[tuple[str, list[Path]]]:
    groups: dict[str, list[Path]] = {}
    for path in files:
        name = parse_hot_file_name(path)
        key = f"{path.parent}/{name.stream_key}" if name else str(path)
        groups.setdefault(key, []).append(path)
    for key, group in groups.items():
        name = parse_hot_file_name(group[0])
        yield (name.stream_key if name else key), group


@dataclass
class _PendingTorn:
    """An unreadable line that a following ``sys.recovery`` record may account for."""

    failure: VerificationFailure
    file_name: str
    offset: int
    data: bytes
    expected_sequence: int | None
    prev_checksum: str | None


def _verify_stream(
    stream_key: str,
    files: list[Path],
    hmac_key: bytes | None,
    report: VerificationReport,
    require_stream_start: bool,
    public_key: Ed25519PublicKey | None = None,
    retention_starts: dict[tuple[int, str], _Retired] | None = None,
    collect: list[tuple[Path, RecordFields]] | None = None,
) -> None:
    """Verify one stream's files as one chain into ``report``; ``collect`` gets every record whose checksum verifies."""
    summary = StreamSummary(stream=stream_key)
    report.streams[str(files[0].parent / stream_key)] = summary
    # None means unknown (a partial stream, or after an unreadable line): skip that one check.
    expected_sequence: int | None = 0 if require_stream_start else None
    prev_checksum: str | None = GENESIS_HASH if require_stream_start else None
    pending: _PendingTorn | None = None
    provisional: list[_PendingTorn] = []  # rewritten whole; waiting for the sys.recovery that names them
    # A seal's next_file may be gone when a sys.retention record names it.
    names = {path.name for path in files} | {retired.file for retired in (retention_starts or {}).values()}
    for index, path in enumerate(files):
        report.files.append(str(path))
        summary.files.append(str(path))
        digest = FileDigest()
        offset = 0
        for line_no, line in enumerate(_read_lines(path), start=1):
            line_offset, offset = offset, offset + len(line)
            where = str(path)
            try:
                if not line.endswith(b"\n"):
                    raise ValueError(f"last line has no newline ({len(line)} bytes): a torn write")
                record = split_record(line)
            except ValueError as exc:
                digest.add_line(line, None)
                kind = FailureKind.UNPARSEABLE_LINE if line.endswith(b"\n") else FailureKind.TORN_LINE
                failure = VerificationFailure(where, line_no, expected_sequence, kind, str(exc))
                report.failures.append(failure)
                pending = _PendingTorn(
                    failure, path.name, line_offset, line.rstrip(b"\n"), expected_sequence, prev_checksum
                )
                # Assume the bad line held one record, so one damaged line is one failure, not three.
                prev_checksum, expected_sequence = None, _next(expected_sequence)
                continue
            digest.add_line(line, record)
            if line_no == 1 and retention_starts and expected_sequence not in (None, record.sequence):
                retired = retention_starts.get((record.sequence, str(record.prev_hash)))
                if retired is not None:  # the files before this one were removed, and the trail says so
                    expected_sequence, prev_checksum = record.sequence, record.prev_hash
                    report.retired.append(retired.note)
            actual = compute_checksum(record.body, hmac_key)
            valid = hmac.compare_digest(actual.encode(), record.checksum.encode())
            if pending is not None:
                if valid and _recovers(record, pending):
                    # A crash tore this line and the writer said so in the chain on restart.
                    report.failures.remove(pending.failure)
                    report.recovered.append(dataclasses.replace(pending.failure, kind=FailureKind.TORN_LINE))
                    expected_sequence, prev_checksum = pending.expected_sequence, pending.prev_checksum
                elif pending.data and line.startswith(pending.data):
                    # The torn record was written again whole (imported from the spill file after a
                    # crash while degraded). Honest only if a later sys.recovery record names it.
                    provisional.append(pending)
                    expected_sequence, prev_checksum = pending.expected_sequence, pending.prev_checksum
                pending = None
            for earlier in [p for p in provisional if valid and _recovers(record, p)]:
                provisional.remove(earlier)
                report.failures.remove(earlier.failure)
                report.recovered.append(dataclasses.replace(earlier.failure, kind=FailureKind.TORN_LINE))
            _check_record(record, actual, where, line_no, expected_sequence, prev_checksum, report)
            if collect is not None and valid:
                collect.append((path, record))
            report.records += 1
            summary.records += 1
            if summary.first_sequence is None:
                summary.first_sequence = record.sequence
            summary.last_sequence, summary.last_hash = record.sequence, record.checksum
            expected_sequence, prev_checksum = record.sequence + 1, record.checksum
        is_newest = index == len(files) - 1
        _check_seal(path, digest.finish(), is_newest, names, hmac_key, report, public_key)


def _check_seal(
    path: Path,
    digest: FileDigest,
    is_newest: bool,
    stream_names: set[str],
    hmac_key: bytes | None,
    report: VerificationReport,
    public_key: Ed25519PublicKey | None = None,
) -> None:
    """Compare a file with its seal; a file that is not its stream's newest must have one."""
    where = str(path)
    try:
        seal = read_seal(path)
    except (OSError, ValueError) as exc:
        report.failures.append(VerificationFailure(where, 0, None, FailureKind.SEAL_INVALID, str(exc)))
        return
    if seal is None:
        if not is_newest and parse_hot_file_name(path) is not None:
            report.failures.append(VerificationFailure(
                where, 0, digest.last_sequence, FailureKind.SEAL_MISSING,
                "a file followed by later files of its stream must be sealed; its seal is missing",
            ))
        return
    report.sealed_files += 1
    _check_seal_document(path, seal, hmac_key, report, public_key)
    expected = digest.seal_fields()
    for key, value in expected.items():
        if seal.get(key) != value:
            report.failures.append(VerificationFailure(
                where, digest.lines, digest.last_sequence, FailureKind.SEAL_MISMATCH,
                f"seal says {key}={seal.get(key)!r}, the file has {value!r}",
            ))
    if seal.get("file") != path.name:
        report.failures.append(VerificationFailure(
            where, 0, None, FailureKind.SEAL_MISMATCH, f"seal names file {seal.get('file')!r}, not {path.name!r}",
        ))
    next_file = seal.get("next_file")
    if next_file is not None and not isinstance(next_file, str):
        report.failures.append(VerificationFailure(
            where, 0, None, FailureKind.SEAL_INVALID, f"seal's next_file {next_file!r} is not a file name",
        ))
    elif next_file is not None and next_file not in stream_names and not (path.parent / next_file).exists():
        report.failures.append(VerificationFailure(
            where, digest.lines, digest.last_sequence, FailureKind.FILE_MISSING,
            f"the seal names the stream's next file {next_file!r}, which is missing",
        ))


_SEAL_PROBLEM_KINDS = {
    documents.ProblemKind.CHECKSUM: FailureKind.SEAL_INVALID,
    documents.ProblemKind.SIGNATURE_MISSING: FailureKind.SIGNATURE_MISSING,
    documents.ProblemKind.SIGNATURE_INVALID: FailureKind.SIGNATURE_INVALID,
}


def check_seal_copy(
    seal: dict[str, Any],
    where: str,
    name: str,
    hmac_key: bytes | None = None,
    public_key: Ed25519PublicKey | None = None,
) -> list[VerificationFailure]:
    """The seal check of ``verify``: its ``seal_checksum`` and, with a trusted key, its signature.

    Serves a hot file's seal and the copies of it elsewhere (a cold manifest entry's ``seal``).

    Args:
        seal: The parsed seal.
        where: The file the failures are reported against.
        name: How the messages name the seal (``x.jsonl.seal``, ``manifest x.jsonl.json: seal copy``).
        hmac_key: The trail's HMAC key; None checks a plain SHA-256.
        public_key: The trusted Ed25519 key; with it the seal must carry a valid signature of it.
    """
    problems = documents.check_document(seal, SEAL_CHECKSUM, hmac_key, public_key, what="seal")
    return [VerificationFailure(where, 0, None, _SEAL_PROBLEM_KINDS[p.kind], f"{name}: {p}") for p in problems]


def _check_seal_document(
    path: Path,
    seal: dict[str, Any],
    hmac_key: bytes | None,
    report: VerificationReport,
    public_key: Ed25519PublicKey | None,
) -> None:
    """The seal's own checksum and (with a trusted key) signature, then its checkpoint, if any."""
    where = str(path)
    failures = check_seal_copy(seal, where, seal_path(path).name, hmac_key, public_key)
    report.failures += failures
    note = checkpoint_path(path)
    signature_problems = [f for f in failures if f.kind is not FailureKind.SEAL_INVALID]
    if public_key is None or signature_problems or not note.exists():
        return
    try:
        checkpoint.verify_checkpoint(checkpoint.read_checkpoint(note), public_key, seal, source=note)
    except AuditFormatError as exc:
        report.failures.append(VerificationFailure(exc.path, 0, None, FailureKind.UNREADABLE_FILE, str(exc)))
    except (AuditIntegrityError, OSError, ValueError) as exc:
        report.failures.append(VerificationFailure(where, 0, None, FailureKind.SIGNATURE_INVALID, str(exc)))


def _recovers(record: RecordFields, pending: _PendingTorn) -> bool:
    """Whether ``record`` is a ``sys.recovery`` record describing exactly the pending torn line.

    Only a record of the torn line's own stream is ever asked; it must parse as a JSON object whose
    ``event_type`` is exactly ``sys.recovery`` (text inside some other record's payload is not one).
    """
    if b'"sys.recovery"' not in record.body:  # a cheap filter; the parse below decides
        return False
    fields = _parse_object(record.body)
    payload = fields.get("payload") if fields is not None and fields.get("event_type") == "sys.recovery" else None
    if not isinstance(payload, dict):
        return False
    return bool(
        payload.get("torn_file") == pending.file_name
        and payload.get("torn_offset") == pending.offset
        and payload.get("torn_length") == len(pending.data)
        and payload.get("torn_sha256") == hashlib.sha256(pending.data).hexdigest()
    )


def _payload(line: bytes, where: Path | str) -> dict[str, Any]:
    """The ``payload`` object of a record line; {} when it has none. AuditFormatError if the line is no JSON object."""
    data = _jsonfile.loads(line, where, "record")
    payload = data.get("payload") if isinstance(data, dict) else None
    return payload if isinstance(payload, dict) else {}


def _check_record(
    record: RecordFields,
    actual: str,
    where: str,
    line_no: int,
    expected_sequence: int | None,
    prev_checksum: str | None,
    report: VerificationReport,
) -> None:
    """Checksum (``actual`` is what the record hashes to), sequence and chain of one record."""
    failures = report.failures
    if not hmac.compare_digest(actual.encode(), record.checksum.encode()):
        failures.append(VerificationFailure(
            where, line_no, record.sequence, FailureKind.CHECKSUM_MISMATCH,
            f"stored checksum {record.checksum[:16]}... but the record hashes to {actual[:16]}...",
        ))
    if expected_sequence is None:
        if record.sequence == 0 and record.prev_hash != GENESIS_HASH:
            failures.append(VerificationFailure(
                where, line_no, 0, FailureKind.CHAIN_BREAK,
                f"sequence 0 must have prev_hash {GENESIS_HASH[:16]}..., got {record.prev_hash}",
            ))
        return
    if record.sequence > expected_sequence:
        failures.append(VerificationFailure(
            where, line_no, expected_sequence, FailureKind.SEQUENCE_GAP,
            f"expected sequence {expected_sequence}, got {record.sequence}: "
            f"{record.sequence - expected_sequence} record(s) missing",
        ))
    elif record.sequence < expected_sequence:
        failures.append(VerificationFailure(
            where, line_no, record.sequence, FailureKind.SEQUENCE_REPEAT,
            f"expected sequence {expected_sequence}, got {record.sequence} again: duplicated or reordered",
        ))
    if prev_checksum is not None and record.prev_hash != prev_checksum:
        failures.append(VerificationFailure(
            where, line_no, record.sequence, FailureKind.CHAIN_BREAK,
            f"prev_hash {str(record.prev_hash)[:16]}... does not match the previous record's checksum "
            f"{prev_checksum[:16]}...",
        ))


def _next(sequence: int | None) -> int | None:
    return None if sequence is None else sequence + 1


def _read_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from handle
