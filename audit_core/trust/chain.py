"""THE chain rules: checksum, gapless sequence, prev_hash and ts_recorded order of each record, per stream.

``check_record`` is the rule for one record; ``verify_stream`` applies it to a stream's files in
order (with each file's seal, through ``seals.check_seal``) and accounts for what honest crashes
and retention leave: a torn line that a later ``sys.recovery`` record describes, and a stream that
continues after files a verified ``sys.retention`` record removed. This is the scalar reference;
the converter's fast path (``cold/_bulk_verify.py``) is held to it by a differential test.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from audit_core.trust.record import GENESIS_HASH, RecordFields, compute_checksum, parse_object, split_record
from audit_core.trust.report import FailureKind, StreamSummary, VerificationFailure, VerificationReport
from audit_core.trust.seals import FileDigest, check_seal, read_lines

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class Retired(NamedTuple):
    file: str  # the removed file
    note: str  # what the report says when a stream continues after it


@dataclass
class PendingTorn:
    """An unreadable line that a following ``sys.recovery`` record may account for."""

    failure: VerificationFailure
    file_name: str
    offset: int
    data: bytes
    expected_sequence: int | None
    prev_checksum: str | None


def verify_stream(
    stream_key: str,
    files: list[Path],
    hmac_key: bytes | None,
    report: VerificationReport,
    require_stream_start: bool,
    public_key: Ed25519PublicKey | None = None,
    retention_starts: dict[tuple[int, str], Retired] | None = None,
    collect: list[tuple[Path, RecordFields]] | None = None,
) -> None:
    """Verify one stream's files as one chain into ``report``; ``collect`` gets every record whose checksum verifies."""
    summary = StreamSummary(stream=stream_key)
    report.streams[str(files[0].parent / stream_key)] = summary
    # None means unknown (a partial stream, or after an unreadable line): skip that one check.
    expected_sequence: int | None = 0 if require_stream_start else None
    prev_checksum: str | None = GENESIS_HASH if require_stream_start else None
    pending: PendingTorn | None = None
    last_recorded: int | None = None  # the stream's latest ts_recorded so far (format 3 records)
    provisional: list[PendingTorn] = []  # rewritten whole; waiting for the sys.recovery that names them
    # A seal's next_file may be gone when a sys.retention record names it.
    names = {path.name for path in files} | {retired.file for retired in (retention_starts or {}).values()}
    for index, path in enumerate(files):
        report.files.append(str(path))
        summary.files.append(str(path))
        digest = FileDigest()
        offset = 0
        for line_no, line in enumerate(read_lines(path), start=1):
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
                pending = PendingTorn(
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
            check_record(record, actual, where, line_no, expected_sequence, prev_checksum, report, last_recorded)
            if record.ts_recorded is not None:
                last_recorded = record.ts_recorded
            if collect is not None and valid:
                collect.append((path, record))
            report.records += 1
            summary.records += 1
            if summary.first_sequence is None:
                summary.first_sequence = record.sequence
            summary.last_sequence, summary.last_hash = record.sequence, record.checksum
            expected_sequence, prev_checksum = record.sequence + 1, record.checksum
        is_newest = index == len(files) - 1
        check_seal(path, digest.finish(), is_newest, names, hmac_key, report, public_key)


def _recovers(record: RecordFields, pending: PendingTorn) -> bool:
    """Whether ``record`` is a ``sys.recovery`` record describing exactly the pending torn line.

    Only a record of the torn line's own stream is ever asked; it must parse as a JSON object whose
    ``event_type`` is exactly ``sys.recovery`` (text inside some other record's payload is not one).
    """
    if b'"sys.recovery"' not in record.body:  # a cheap filter; the parse below decides
        return False
    fields = parse_object(record.body)
    payload = fields.get("payload") if fields is not None and fields.get("event_type") == "sys.recovery" else None
    if not isinstance(payload, dict):
        return False
    return bool(
        payload.get("torn_file") == pending.file_name
        and payload.get("torn_offset") == pending.offset
        and payload.get("torn_length") == len(pending.data)
        and payload.get("torn_sha256") == hashlib.sha256(pending.data).hexdigest()
    )


def check_record(
    record: RecordFields,
    actual: str,
    where: str,
    line_no: int,
    expected_sequence: int | None,
    prev_checksum: str | None,
    report: VerificationReport,
    last_recorded: int | None = None,
) -> None:
    """Checksum (``actual`` is what the record hashes to), sequence, chain and ``ts_recorded`` of one record.

    ``ts_recorded`` never goes backwards within a stream: ``last_recorded`` is the latest one before
    this record (records of formats 1 and 2 have none and are not compared).
    """
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
        _check_recorded(record, where, line_no, last_recorded, report)
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
    _check_recorded(record, where, line_no, last_recorded, report)


def _check_recorded(
    record: RecordFields, where: str, line_no: int, last_recorded: int | None, report: VerificationReport
) -> None:
    if last_recorded is not None and record.ts_recorded is not None and record.ts_recorded < last_recorded:
        report.failures.append(VerificationFailure(
            where, line_no, record.sequence, FailureKind.TS_RECORDED_BACKWARDS,
            f"ts_recorded {record.ts_recorded} is earlier than the previous record's {last_recorded} "
            f"(by {last_recorded - record.ts_recorded} ns): recorded out of order, or backdated",
        ))


def _next(sequence: int | None) -> int | None:
    return None if sequence is None else sequence + 1
