"""``verify(jobs=N)``: the files of a trail verified in worker processes, stitched into one report.

CPython's hashlib keeps the GIL for inputs under 2 KiB (every record), so threads do not help;
processes do. Each file is verified by ``chain.verify_file`` in a worker, from the state its own
first record says it continues (the first file of a stream: from the stream's start). The parent
then walks each stream in order, exactly as one pass would: a file whose assumed start is what the
previous file left (``chain.continues``) contributes its worker's report; any other file (a break
at the boundary, a torn line pending, the worker found no first record) is verified again in the
parent from the real state. So the chain rule is ``chain.py``'s alone and the report is the one
``jobs=1`` gives, failures in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from audit_core.trust.chain import (
    ChainState,
    Retired,
    assumed_state,
    continues,
    start_state,
    stream_names,
    stream_summary,
    verify_file,
)
from audit_core.trust.jobs import run_tasks
from audit_core.trust.keyring import TrustedKeys, as_trusted
from audit_core.trust.report import StreamSummary, VerificationReport

if TYPE_CHECKING:
    from audit_core.trust.keyring import VerifyingKeys

@dataclass
class _Task:
    path: Path
    stream_key: str
    start: ChainState | None  # the real start (a stream's first file), else taken from the file's first record
    hmac_key: bytes | None
    public_key: TrustedKeys | None  # not key objects: they do not pickle
    is_newest: bool
    names: set[str]
    retention_starts: dict[tuple[int, str], Retired]
    deep: bool


@dataclass
class _Done:
    assumed: ChainState | None  # None: the start was real, nothing to stitch; or the worker could not start
    first_recorded: int | None
    report: VerificationReport | None
    summary: StreamSummary | None
    end: ChainState | None
    key_records: bool = False  # the file holds record.KEY_RECORD_MARKER


def _verify_task(task: _Task) -> _Done:
    public_key = task.public_key
    first_recorded = None
    if task.start is not None:
        state, assumed = task.start, None
    else:
        found = assumed_state(task.path)
        if found is None:
            return _Done(None, None, None, None, None)
        state, first_recorded = found
        assumed = ChainState(state.expected_sequence, state.prev_checksum)
    report = VerificationReport(keyed=task.hmac_key is not None)
    summary = StreamSummary(stream=task.stream_key)
    key_records = verify_file(task.path, state, task.hmac_key, report, summary, task.is_newest, task.names,
                              public_key, task.retention_starts, deep=task.deep)
    return _Done(assumed, first_recorded, report, summary, state, key_records)


def verify_streams(
    groups: list[tuple[str, list[Path]]],
    hmac_key: bytes | None,
    report: VerificationReport,
    require_stream_start: bool,
    public_key: VerifyingKeys | None,
    starts: dict[str, dict[tuple[int, str], Retired]],
    jobs: int,
    key_record_files: list[Path] | None = None,
    deep: bool = False,
) -> None:
    """``chain.verify_stream`` for each of ``groups``, in order, with the files verified by ``jobs`` workers."""
    raw_key = as_trusted(public_key)
    tasks = []
    for stream_key, files in groups:
        retention_starts = starts.get(stream_key, {})
        names = stream_names(files, retention_starts)
        for index, path in enumerate(files):
            start = start_state(require_stream_start) if index == 0 else None
            tasks.append(_Task(path, stream_key, start, hmac_key, raw_key, index == len(files) - 1, names,
                               retention_starts, deep))
    done = iter(run_tasks(_verify_task, tasks, jobs, [_size(task.path) for task in tasks]))
    for stream_key, files in groups:
        retention_starts = starts.get(stream_key, {})
        summary = stream_summary(stream_key, files, report)
        names = stream_names(files, retention_starts)
        state = start_state(require_stream_start)
        for index, path in enumerate(files):
            result = next(done)
            exact = result.report is not None and (
                result.assumed is None or continues(state, result.assumed, result.first_recorded))
            if exact and result.report is not None and result.summary is not None and result.end is not None:
                _merge(report, summary, result.report, result.summary)
                state = result.end
                key_records = result.key_records
            else:  # the boundary does not stitch: verify this file again, from the real state
                key_records = verify_file(path, state, hmac_key, report, summary, index == len(files) - 1, names,
                                          public_key, retention_starts, deep=deep)
            if key_records and key_record_files is not None:
                key_record_files.append(path)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _merge(report: VerificationReport, summary: StreamSummary, part: VerificationReport, seen: StreamSummary) -> None:
    """Add one file's report (and what it saw of its stream) to the stream's, as if verified in one pass."""
    report.files += part.files
    report.records += part.records
    report.failures += part.failures
    report.recovered += part.recovered
    report.retired += part.retired
    report.sealed_files += part.sealed_files
    report.vouched += part.vouched
    summary.files += seen.files
    summary.records += seen.records
    if summary.first_sequence is None:
        summary.first_sequence = seen.first_sequence
    if seen.last_sequence is not None:
        summary.last_sequence, summary.last_hash = seen.last_sequence, seen.last_hash
