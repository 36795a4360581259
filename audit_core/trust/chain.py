"""THE chain rules: checksum, gapless sequence, prev_hash and ts_recorded order of each record, per stream.

``check_record`` is the rule for one record; ``verify_stream`` applies it to a stream's files in
order (with each file's seal, through ``seals.check_seal``) and accounts for what honest crashes
and retention leave: a torn line that a later ``sys.recovery`` record describes, and a stream that
continues after files a verified ``sys.retention`` record removed. This is the scalar reference.

``clean_run`` is the same rules for a run of whole lines at once; ``clean_file`` runs it on each
chunk of a hot file, and ``verify_cold`` (``cold/_clean_entry.py``) on the lines it rebuilds from
the cold store. The converter's scan (``cold/_bulk_verify.py``) still has a column-wise copy of
these rules: running ``clean_run`` there made the scan twice as slow (7 -> 13.5 s of CPU for 1M
lines), so it was put back; ``test_verifier_agreement`` holds the two equal.

``verify_file`` first tries ``clean_file``: the same rules for a whole file at once, which only
ever accepts a file the line-by-line pass would pass (anything else falls through to that pass,
which alone writes failures; ``tests/unit/audit/test_verify_fast.py`` holds the two together).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import operator
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from audit_core.trust.record import (
    GENESIS_HASH,
    KEY_RECORD_MARKER,
    RecordFields,
    compute_checksum,
    compute_checksums,
    parse_object,
    read_run,
    record_bodies,
    split_record,
)
from audit_core.trust.report import FailureKind, StreamSummary, VerificationFailure, VerificationReport
from audit_core.trust.seals import FileDigest, check_seal, open_seal, read_chunks, read_lines

if TYPE_CHECKING:
    from audit_core.trust.keyring import VerifyingKeys


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


@dataclass
class ChainState:
    """Where a stream's chain stands between two of its files: what the next record must continue.

    ``None`` means unknown (a partial stream, or after an unreadable line): that one check is skipped.
    """

    expected_sequence: int | None
    prev_checksum: str | None
    last_recorded: int | None = None  # the stream's latest ts_recorded so far (format 3 records)
    pending: PendingTorn | None = None  # an unreadable line a following sys.recovery may account for
    provisional: list[PendingTorn] = dataclasses.field(default_factory=list)  # rewritten whole, awaiting sys.recovery


def start_state(require_stream_start: bool) -> ChainState:
    """The state before a stream's first file: sequence 0 and the genesis hash, or unknown."""
    return ChainState(0, GENESIS_HASH) if require_stream_start else ChainState(None, None)


def verify_stream(
    stream_key: str,
    files: list[Path],
    hmac_key: bytes | None,
    report: VerificationReport,
    require_stream_start: bool,
    public_key: VerifyingKeys | None = None,
    retention_starts: dict[tuple[int, str], Retired] | None = None,
    collect: list[tuple[Path, RecordFields]] | None = None,
    key_record_files: list[Path] | None = None,
    deep: bool = False,
) -> None:
    """Verify one stream's files as one chain into ``report``; ``collect`` gets every record whose checksum verifies,
    ``key_record_files`` every file that holds ``KEY_RECORD_MARKER``; ``deep``: as ``verify_file``."""
    summary = stream_summary(stream_key, files, report)
    state = start_state(require_stream_start)
    names = stream_names(files, retention_starts)
    for index, path in enumerate(files):
        marked = verify_file(path, state, hmac_key, report, summary, index == len(files) - 1, names, public_key,
                             retention_starts, collect, deep=deep)
        if marked and key_record_files is not None:
            key_record_files.append(path)


def stream_summary(stream_key: str, files: list[Path], report: VerificationReport) -> StreamSummary:
    summary = StreamSummary(stream=stream_key)
    report.streams[str(files[0].parent / stream_key)] = summary
    return summary


def stream_names(files: list[Path], retention_starts: dict[tuple[int, str], Retired] | None) -> set[str]:
    """The file names a seal's ``next_file`` may give: the stream's, and those a sys.retention record removed."""
    return {path.name for path in files} | {retired.file for retired in (retention_starts or {}).values()}


def verify_file(
    path: Path,
    state: ChainState,
    hmac_key: bytes | None,
    report: VerificationReport,
    summary: StreamSummary,
    is_newest: bool,
    names: set[str],
    public_key: VerifyingKeys | None = None,
    retention_starts: dict[tuple[int, str], Retired] | None = None,
    collect: list[tuple[Path, RecordFields]] | None = None,
    *,
    deep: bool = False,
) -> bool:
    """Verify one file of a stream, continuing from ``state`` (updated to where the file ends), and its seal.

    A file whose every record is plainly right (``clean_file``) is checked in bulk; any other is
    checked line by line, below, which is what reports each failure. The bulk check leaves out the
    Merkle root and file SHA-256 when an authenticated seal vouches for them (``CheckedSeal.vouches``;
    ``report.vouched`` lists the file); ``deep`` recomputes them always. Returns whether the file
    holds ``KEY_RECORD_MARKER`` (so the key history reads only such files, and none twice).
    """
    report.files.append(str(path))
    summary.files.append(str(path))
    checked = open_seal(path, hmac_key, public_key)
    clean = clean_file(path, state, hmac_key, hashed=not checked.vouches(deep)) if collect is None else None
    if clean is not None:
        digest, first_sequence = clean
        report.records += digest.lines
        summary.records += digest.lines
        if summary.first_sequence is None:
            summary.first_sequence = first_sequence
        summary.last_sequence, summary.last_hash = digest.last_sequence, digest.last_hash
        check_seal(path, digest, is_newest, names, hmac_key, report, public_key, checked)
        return digest.key_records
    digest = FileDigest()
    offset = 0
    where = str(path)
    for line_no, line in enumerate(read_lines(path), start=1):
        line_offset, offset = offset, offset + len(line)
        if KEY_RECORD_MARKER in line:
            digest.key_records = True
        try:
            if not line.endswith(b"\n"):
                raise ValueError(f"last line has no newline ({len(line)} bytes): a torn write")
            record = split_record(line)
        except ValueError as exc:
            digest.add_line(line, None)
            kind = FailureKind.UNPARSEABLE_LINE if line.endswith(b"\n") else FailureKind.TORN_LINE
            failure = VerificationFailure(where, line_no, state.expected_sequence, kind, str(exc))
            report.failures.append(failure)
            state.pending = PendingTorn(
                failure, path.name, line_offset, line.rstrip(b"\n"), state.expected_sequence, state.prev_checksum
            )
            # Assume the bad line held one record, so one damaged line is one failure, not three.
            state.prev_checksum, state.expected_sequence = None, _next(state.expected_sequence)
            continue
        digest.add_line(line, record)
        if line_no == 1 and retention_starts and state.expected_sequence not in (None, record.sequence):
            retired = retention_starts.get((record.sequence, str(record.prev_hash)))
            if retired is not None:  # the files before this one were removed, and the trail says so
                state.expected_sequence, state.prev_checksum = record.sequence, record.prev_hash
                report.retired.append(retired.note)
        actual = compute_checksum(record.body, hmac_key)
        valid = hmac.compare_digest(actual.encode(), record.checksum.encode())
        pending = state.pending
        if pending is not None:
            if valid and _recovers(record, pending):
                # A crash tore this line and the writer said so in the chain on restart.
                report.failures.remove(pending.failure)
                report.recovered.append(dataclasses.replace(pending.failure, kind=FailureKind.TORN_LINE))
                state.expected_sequence, state.prev_checksum = pending.expected_sequence, pending.prev_checksum
            elif pending.data and line.startswith(pending.data):
                # The torn record was written again whole (imported from the spill file after a
                # crash while degraded). Honest only if a later sys.recovery record names it.
                state.provisional.append(pending)
                state.expected_sequence, state.prev_checksum = pending.expected_sequence, pending.prev_checksum
            state.pending = None
        for earlier in [p for p in state.provisional if valid and _recovers(record, p)] if state.provisional else ():
            state.provisional.remove(earlier)
            report.failures.remove(earlier.failure)
            report.recovered.append(dataclasses.replace(earlier.failure, kind=FailureKind.TORN_LINE))
        check_record(record, actual, where, line_no, state.expected_sequence, state.prev_checksum, report,
                     state.last_recorded)
        if record.ts_recorded is not None:
            state.last_recorded = record.ts_recorded
        if collect is not None and valid:
            collect.append((path, record))
        report.records += 1
        summary.records += 1
        if summary.first_sequence is None:
            summary.first_sequence = record.sequence
        summary.last_sequence, summary.last_hash = record.sequence, record.checksum
        state.expected_sequence, state.prev_checksum = record.sequence + 1, record.checksum
    check_seal(path, digest.finish(), is_newest, names, hmac_key, report, public_key, checked)
    return digest.key_records


def clean_file(
    path: Path, state: ChainState, hmac_key: bytes | None, *, hashed: bool = True
) -> tuple[FileDigest, int] | None:
    """``verify_file``'s fast path: the file's digest (finished) and first sequence if every record passes.

    ``hashed``: False leaves the digest's file SHA-256 and Merkle root out (``FileDigest.hashed``).

    The file is read in chunks of whole lines; every line must be a current-format
    record holding what ``check_record`` expects from ``state`` (``record.read_run``): its own
    checksum as computed, sequences counting on from ``state.expected_sequence``, each ``prev_hash``
    the previous checksum; and ``ts_recorded`` never goes backwards. Then the line-by-line pass
    would report nothing but the seal's checks, so ``state`` is moved to where the file ends, as
    that pass would move it. Anything else (a failure, an unknown start, a torn line pending, an
    older record format, an empty or unreadable file) returns None with ``state`` untouched, and the
    line-by-line pass reports it.
    """
    expected, previous = state.expected_sequence, state.prev_checksum
    if expected is None or previous is None or state.pending is not None or state.provisional:
        return None
    if len(previous) != len(GENESIS_HASH) or not previous.isascii():
        return None  # not a hash any record could carry: the line-by-line pass reports what follows
    last_recorded = state.last_recorded
    digest = FileDigest(hashed=hashed)
    try:
        for lines, data in read_chunks(path):
            if not data.endswith(b"\n"):
                return None  # a torn last line
            run = clean_run(lines, expected, previous, last_recorded, hmac_key)
            if run is None:
                return None
            checksums, recorded = run
            digest.add_lines(lines, data)
            if KEY_RECORD_MARKER in data:  # (a chunk is whole lines: the marker holds no newline)
                digest.key_records = True
            if digest.first_sequence is None:
                digest.first_sequence, digest.first_hash = expected, checksums[0]
            expected, previous, last_recorded = expected + len(lines), checksums[-1], recorded[-1]
    except OSError:
        return None  # the line-by-line pass meets it again and reports it as it always has
    if digest.first_sequence is None:
        return None
    digest.last_sequence, digest.last_hash = expected - 1, previous
    state.expected_sequence, state.prev_checksum, state.last_recorded = expected, previous, last_recorded
    return digest.finish(), digest.first_sequence


def clean_run(
    lines: list[bytes], expected: int, previous: str, last_recorded: int | None, hmac_key: bytes | None
) -> tuple[list[str], list[int]] | None:
    """``check_record``'s rules for a run of whole lines at once: their checksums and ``ts_recorded`` if all pass.

    ``lines`` (whole lines without their newlines) continue a chain at sequence ``expected`` after checksum
    ``previous``, with the latest ``ts_recorded`` so far ``last_recorded`` (None: none yet). None
    unless every line is a current-format record (``record.read_run``) holding its own checksum as
    computed, counting on, chained to the one before, and not recorded before it. ``clean_file`` runs
    it on each chunk; ``verify_cold`` on the lines it rebuilds from the cold store.
    """
    checksums = compute_checksums(record_bodies(lines), hmac_key)
    # check_record's rules, for all lines at once: each checksum is what its record hashes to
    # (read_run reads exactly these), the sequence counts on, prev_hash is the previous checksum ...
    recorded = read_run(lines, expected, [previous, *checksums[:-1]], checksums)
    if recorded is None:
        return None
    # ... and ts_recorded never goes backwards.
    if (last_recorded is not None and _backwards(recorded[0], last_recorded)) or any(
            map(_backwards, recorded[1:], recorded)):
        return None
    return checksums, recorded


def continues(state: ChainState, assumed: ChainState, first_recorded: int | None) -> bool:
    """Whether a file verified from ``assumed`` (taken from its own first record) got what ``state`` would give.

    Files are verified apart (``verify(jobs=N)``), each assuming its first record continues the
    stream; this is the stitch. It holds when the previous file left nothing pending, its next
    sequence and hash are what the first record carries, and the first record's ``ts_recorded``
    is not backwards from the stream's latest (``assumed`` knows none). Then every check of the file
    comes out as it would have in one pass; otherwise the file is verified again from ``state``.
    """
    return (
        state.pending is None
        and not state.provisional
        and assumed.pending is None
        and not assumed.provisional
        and assumed.last_recorded is None
        and (state.expected_sequence, state.prev_checksum) == (assumed.expected_sequence, assumed.prev_checksum)
        and (state.last_recorded is None
             or (first_recorded is not None and not _backwards(first_recorded, state.last_recorded)))
    )


def assumed_state(path: Path) -> tuple[ChainState, int | None] | None:
    """The state a file's first record says it continues, and its ``ts_recorded``; None if it has no such record."""
    with path.open("rb") as handle:
        line = handle.readline()
    try:
        record = split_record(line) if line.endswith(b"\n") else None
    except ValueError:
        record = None
    if record is None or record.prev_hash is None:
        return None
    return ChainState(record.sequence, record.prev_hash), record.ts_recorded


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
    if last_recorded is not None and record.ts_recorded is not None and _backwards(record.ts_recorded, last_recorded):
        report.failures.append(VerificationFailure(
            where, line_no, record.sequence, FailureKind.TS_RECORDED_BACKWARDS,
            f"ts_recorded {record.ts_recorded} is earlier than the previous record's {last_recorded} "
            f"(by {last_recorded - record.ts_recorded} ns): recorded out of order, or backdated",
        ))


#: THE ``ts_recorded`` order rule, ``_backwards(ts_recorded, last_recorded)``: a record may not be
#: recorded before the stream's latest. A C function, so ``clean_file`` maps it over a whole file.
_backwards: Callable[[int, int], bool] = operator.lt


def _next(sequence: int | None) -> int | None:
    return None if sequence is None else sequence + 1
