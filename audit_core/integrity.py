"""Hash chain of a trail and its verification.

Each record's ``checksum`` is SHA-256 (HMAC-SHA256 when keyed) over the record's canonical bytes
without the checksum; ``prev_hash`` is the previous record's checksum in the same stream, and
``sequence`` counts from 0 without gaps. Editing, deleting, inserting or reordering a line breaks
one of these at a sequence number that ``verify`` reports. Verification works on the bytes as
stored and never re-serializes, so records written by older versions stay verifiable.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from audit_core._layout import HOT_SUFFIX, parse_hot_file_name
from audit_core.errors import AuditIntegrityError

#: ``prev_hash`` of the first record of a stream.
GENESIS_HASH = "0" * 64

#: Every record ends with ``,"checksum":"<64 hex>"}\n``; a verifier slices it off without parsing.
CHECKSUM_SUFFIX_PREFIX = b',"checksum":"'
_SUFFIX_LEN = len(CHECKSUM_SUFFIX_PREFIX) + 64 + 2  # prefix, hex digest, '"}'
_SEQUENCE_KEY = b'"sequence":'
_PREV_HASH_KEY = b'"prev_hash":'


def compute_checksum(body: bytes, hmac_key: bytes | None = None) -> str:
    """SHA-256 hex of ``body``, or HMAC-SHA256 hex when ``hmac_key`` is given."""
    if hmac_key is None:
        return hashlib.sha256(body).hexdigest()
    return hmac.new(hmac_key, body, hashlib.sha256).hexdigest()


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


class FailureKind(enum.StrEnum):
    CHECKSUM_MISMATCH = "checksum_mismatch"
    CHAIN_BREAK = "chain_break"
    SEQUENCE_GAP = "sequence_gap"
    SEQUENCE_REPEAT = "sequence_repeat"
    UNPARSEABLE_LINE = "unparseable_line"
    TORN_LINE = "torn_line"


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
            "streams": {key: vars(summary) for key, summary in self.streams.items()},
            "failures": [{**vars(f), "kind": f.kind.value} for f in self.failures],
            "recovered": [{**vars(f), "kind": f.kind.value} for f in self.recovered],
        }

    def to_text(self, max_failures: int = 50) -> str:
        lines = [
            f"{'OK' if self.ok else 'FAILED'}: {len(self.files)} file(s), {self.records} record(s), "
            f"{len(self.streams)} stream(s), checksums {'HMAC-SHA256' if self.keyed else 'SHA-256'}"
        ]
        for summary in self.streams.values():
            lines.append(
                f"  stream {summary.stream}: {summary.records} record(s) in {len(summary.files)} file(s), "
                f"sequence {summary.first_sequence}..{summary.last_sequence}"
            )
        for torn in self.recovered:
            lines.append(f"  recovered (not a failure): {torn}")
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


def _stream_order(path: Path) -> tuple[str, str, str]:
    name = parse_hot_file_name(path)
    if name is None:
        return (str(path), "", "")
    return (str(path.parent), name.stream_key, name.day.isoformat())


def verify(
    path: Path | str | Iterable[Path | str],
    hmac_key: bytes | None = None,
    *,
    require_stream_start: bool = True,
) -> VerificationReport:
    """Verify checksums, sequences and chain of every record under ``path``.

    Files of one stream (same trader and stream id in the name) are checked as one chain in date
    order, so a deleted or reordered day breaks it too. Files with other names are checked alone.

    Args:
        path: A hot file, a directory to search, or several of those.
        hmac_key: The key the trail was written with, if any.
        require_stream_start: Each stream must begin at sequence 0 with the genesis hash, so a
            deleted first record or first file is reported. Pass False to check a later file alone.

    Returns:
        A report; ``report.ok`` is false when anything failed. It never raises for tampering.
    """
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    files = [f for p in paths for f in hot_files(p)]
    report = VerificationReport(keyed=hmac_key is not None)
    for stream_key, stream_files in _group_streams(files):
        _verify_stream(stream_key, stream_files, hmac_key, report, require_stream_start)
    return report


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
) -> None:
    summary = StreamSummary(stream=stream_key)
    report.streams[str(files[0].parent / stream_key)] = summary
    # None means unknown (a partial stream, or after an unreadable line): skip that one check.
    expected_sequence: int | None = 0 if require_stream_start else None
    prev_checksum: str | None = GENESIS_HASH if require_stream_start else None
    pending: _PendingTorn | None = None
    for path in files:
        report.files.append(str(path))
        summary.files.append(str(path))
        offset = 0
        for line_no, line in enumerate(_read_lines(path), start=1):
            line_offset, offset = offset, offset + len(line)
            where = str(path)
            try:
                if not line.endswith(b"\n"):
                    raise ValueError(f"last line has no newline ({len(line)} bytes): a torn write")
                record = split_record(line)
            except ValueError as exc:
                kind = FailureKind.UNPARSEABLE_LINE if line.endswith(b"\n") else FailureKind.TORN_LINE
                failure = VerificationFailure(where, line_no, expected_sequence, kind, str(exc))
                report.failures.append(failure)
                pending = _PendingTorn(
                    failure, path.name, line_offset, line.rstrip(b"\n"), expected_sequence, prev_checksum
                )
                # Assume the bad line held one record, so one damaged line is one failure, not three.
                prev_checksum, expected_sequence = None, _next(expected_sequence)
                continue
            if pending is not None:
                if _recovers(record, pending):
                    # A crash tore this line and the writer said so, in the chain, on restart.
                    report.failures.remove(pending.failure)
                    report.recovered.append(dataclasses.replace(pending.failure, kind=FailureKind.TORN_LINE))
                    expected_sequence, prev_checksum = pending.expected_sequence, pending.prev_checksum
                pending = None
            _check_record(record, where, line_no, expected_sequence, prev_checksum, hmac_key, report)
            report.records += 1
            summary.records += 1
            if summary.first_sequence is None:
                summary.first_sequence = record.sequence
            summary.last_sequence, summary.last_hash = record.sequence, record.checksum
            expected_sequence, prev_checksum = record.sequence + 1, record.checksum


def _recovers(record: RecordFields, pending: _PendingTorn) -> bool:
    """Whether ``record`` is a ``sys.recovery`` record describing exactly the pending torn line."""
    if b'"event_type":"sys.recovery"' not in record.body:
        return False
    try:
        payload = json.loads(record.body).get("payload", {})
    except ValueError:
        return False
    return bool(
        payload.get("torn_file") == pending.file_name
        and payload.get("torn_offset") == pending.offset
        and payload.get("torn_length") == len(pending.data)
        and payload.get("torn_sha256") == hashlib.sha256(pending.data).hexdigest()
    )


def _check_record(
    record: RecordFields,
    where: str,
    line_no: int,
    expected_sequence: int | None,
    prev_checksum: str | None,
    hmac_key: bytes | None,
    report: VerificationReport,
) -> None:
    failures = report.failures
    actual = compute_checksum(record.body, hmac_key)
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
