"""``verify``: every hot file under a path, stream by stream, as one chain with its seals.

Special records are parsed, never searched for: a ``sys.retention`` record excuses the files it
names only if it is in a ``retention`` stream whose chain and seals verify (``retention_records``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

# hot_files, trail_files and NOT_A_TRAIL_FILE are defined with the file names (``_layout``), which a
# reader that only lists files imports without the verifier; imported from here too.
from audit_core._layout import NOT_A_TRAIL_FILE as NOT_A_TRAIL_FILE
from audit_core._layout import RETENTION_STREAM, parse_hot_file_name, seal_path
from audit_core._layout import hot_files as hot_files
from audit_core._layout import trail_files as trail_files
from audit_core.hot._verify_jobs import verify_streams
from audit_core.trust.chain import Retired, verify_stream
from audit_core.trust.jobs import check_jobs, worth_parallel
from audit_core.trust.keyring import trusted_key_ids
from audit_core.trust.record import RecordFields, parse_object
from audit_core.trust.report import FailureKind, VerificationFailure, VerificationReport

if TYPE_CHECKING:
    from audit_core.trust.keyring import VerifyingKeys


def verify(
    path: Path | str | Iterable[Path | str],
    hmac_key: bytes | None = None,
    *,
    require_stream_start: bool = True,
    public_key: VerifyingKeys | None = None,
    jobs: int | None = None,
    key_record_files: list[Path] | None = None,
    deep: bool = False,
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
        jobs: Worker processes verifying files side by side (default: all cores). The report is the
            same whatever the number; a trail under ``trust.jobs.PARALLEL_MIN_BYTES`` (32 MiB; 128 MiB
            in a process with threads) or of one file is verified in this process, where starting
            workers would cost more than it saves.
        key_record_files: If given, gets each file read that holds key-lifecycle records
            (``record.KEY_RECORD_MARKER``), so ``verify_trail`` reads only those for the key history.
        deep: Recompute every sealed file's Merkle root and SHA-256. By default a file whose seal is
            authenticated (its HMAC with ``hmac_key``, or its signature with ``public_key``) and whose
            chain runs unbroken over exactly the sealed lines takes them from the seal: its last hash
            commits to every line (``seals.CheckedSeal.vouches``); ``report.vouched`` lists those files.
            Deep also catches a seal whose signed root disagrees with the records.

    Returns:
        A report; ``report.ok`` is false when anything failed. It never raises for tampering.

    Raises:
        ValueError: ``jobs`` is not a positive whole number.
    """
    workers = check_jobs(jobs)
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    report = VerificationReport(keyed=hmac_key is not None)
    if public_key is not None:
        report.signing_key_id = trusted_key_ids(public_key)
    files = _trail_files(paths, report)
    groups = list(_group_streams(files))
    # The retention streams first: their verified records say which files retention removed.
    starts: dict[str, dict[tuple[int, str], Retired]] = {}
    for stream_key, stream_files in groups:
        if _is_retention_file(stream_files[0]):
            records = _verified_retention_records(
                stream_key, stream_files, hmac_key, report, require_stream_start, public_key, key_record_files
            )
            if require_stream_start:
                _add_retention_starts(starts, records)
    chains = [(key, stream_files) for key, stream_files in groups if not _is_retention_file(stream_files[0])]
    if worth_parallel([path for _, stream_files in chains for path in stream_files], workers):
        verify_streams(chains, hmac_key, report, require_stream_start, public_key, starts, workers, key_record_files,
                       deep)
        return report
    for stream_key, stream_files in chains:
        verify_stream(stream_key, stream_files, hmac_key, report, require_stream_start, public_key,
                      starts.get(stream_key, {}), key_record_files=key_record_files, deep=deep)
    return report


def _trail_files(paths: list[Path | str], report: VerificationReport) -> list[Path]:
    """The hot files to verify; each stray is an ``unexpected_file`` failure."""
    files = []
    for given in paths:
        found, strays = trail_files(given)
        files += found
        report.failures += [
            VerificationFailure(str(stray), 0, None, FailureKind.UNEXPECTED_FILE, NOT_A_TRAIL_FILE) for stray in strays
        ]
    return files


class RetentionRecord(NamedTuple):
    """A ``sys.retention`` record of a retention stream whose chain and seal verify."""

    file: Path
    sequence: int
    payload: dict[str, Any]


def retention_records(
    path: Path | str, hmac_key: bytes | None = None, *, public_key: VerifyingKeys | None = None
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
    public_key: VerifyingKeys | None,
    key_record_files: list[Path] | None = None,
) -> list[RetentionRecord]:
    """Verify a retention stream into ``report``; return its ``sys.retention`` records that count.

    A record counts when it parses as a JSON object whose ``event_type`` is exactly
    ``sys.retention``, its checksum verifies, and its file and every earlier file of the stream
    verify without a failure (chain, seal; with ``public_key``, the file must also be sealed and
    signed by that key, so a line appended to a live file by someone without the key never counts).
    """
    collected: list[tuple[Path, RecordFields]] = []
    verify_stream(stream_key, files, hmac_key, report, require_stream_start, public_key, collect=collected,
                  key_record_files=key_record_files)
    failed = {failure.file for failure in report.failures}
    trusted: set[Path] = set()
    for path in files:
        if str(path) in failed or (public_key is not None and not seal_path(path).exists()):
            break
        trusted.add(path)
    records = []
    for path, record in collected:
        fields = parse_object(record.body) if path in trusted else None
        payload = fields.get("payload") if fields is not None and fields.get("event_type") == "sys.retention" else None
        if isinstance(payload, dict):
            records.append(RetentionRecord(path, record.sequence, payload))
    return records


def _add_retention_starts(starts: dict[str, dict[tuple[int, str], Retired]], records: list[RetentionRecord]) -> None:
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
                starts.setdefault(str(removed.get("stream")), {})[key] = Retired(str(removed.get("file")), note)


def _group_streams(files: list[Path]) -> Iterator[tuple[str, list[Path]]]:
    groups: dict[str, list[Path]] = {}
    for path in files:
        name = parse_hot_file_name(path)
        key = f"{path.parent}/{name.stream_key}" if name else str(path)
        groups.setdefault(key, []).append(path)
    for key, group in groups.items():
        name = parse_hot_file_name(group[0])
        yield (name.stream_key if name else key), group
