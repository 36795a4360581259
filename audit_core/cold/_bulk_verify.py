"""Fast verification of one sealed hot file for the converter: one read, hashed and handed on as Arrow batches.

``scan_file`` reads the file once, in chunks, and for every chunk checks what ``verify``
checks for one sealed file: each record's layout, checksum, sequence, chain and ``ts_recorded``
order with THE chain rule's fast path (``chain.clean_run``, which hot ``verify`` runs on each chunk
of a file too), plus everything the seal says (count, size, sequence range, hashes, file SHA-256
and the RFC 6962 Merkle root, seal checksum and signature, through ``seals.check_seal``). Whatever
is not plainly right (a torn line, an older record format, any mismatch) makes ``verify_scanned``
fall back to the full ``verify``, so the verdict and the failure kinds are always ``verify``'s.

Each chunk is also handed to the caller as an Arrow batch (``batch_schema()``): the converter's
columnar pass consumes it while the next chunk is being hashed, so the file is read once.

The cold ``record`` layout (``strip_line``/``rebuild_line``) is ``trust/record.py``'s.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from operator import add
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit_core.hot.verifier import verify
from audit_core.trust.chain import ChainState, check_record, clean_run
from audit_core.trust.keyring import trusted_key_ids
from audit_core.trust.merkle import RFC6962_LEAF_PREFIX, MerkleTree
from audit_core.trust.record import CANONICAL_LINE, GENESIS_HASH, compute_checksum, split_record, strip_line
from audit_core.trust.report import VerificationReport
from audit_core.trust.seals import FileDigest, check_seal

if TYPE_CHECKING:
    import pyarrow as pa


#: Bytes read per chunk: bounds memory (a chunk and its Arrow batch), large enough to amortize.
CHUNK_BYTES = 8 << 20


#: What each chunk becomes for the columnar pass. ``line`` is the full line (NULL for a torn one);
#: ``record`` the cold layout when Python made it (a non-canonical line; for a torn line its bytes
#: decoded with replacement characters, for display), else NULL; ``torn_bytes`` the exact bytes of
#: a line that is not a record; ``torn_ts`` the ts_event of the record before a torn line.
BATCH_FIELDS = (
    ("source_line", "int64"),
    ("line", "string"),
    ("record", "string"),
    ("torn_bytes", "binary"),
    ("torn_ts", "int64"),
)


def batch_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, kind)()) for name, kind in BATCH_FIELDS])


@dataclass
class ScanResult:
    """What one pass over a hot file found. ``clean``: every line a canonical, chained record."""

    digest: FileDigest
    clean: bool = True
    problems: list[str] = field(default_factory=list)
    torn_lines: int = 0
    #: Whether the lines' ``ts_event`` never decreases in file order (known on a clean scan only), so
    #: file order is already the cold files' (``ts_event``, ``source_line``) order.
    in_time_order: bool = False


def _chunks(path: Path, chunk_bytes: int) -> Iterator[bytes]:
    """The file in pieces that end at a newline (the last may not: a torn end)."""
    with path.open("rb") as handle:
        rest = b""
        while True:
            block = handle.read(chunk_bytes)
            if not block:
                if rest:
                    yield rest
                return
            block = rest + block
            cut = block.rfind(b"\n") + 1
            if cut == 0:
                rest = block
                continue
            rest = block[cut:]
            yield block[:cut]


def scan_file(
    path: Path,
    hmac_key: bytes | None = None,
    on_batch: Callable[[pa.RecordBatch], None] | None = None,
    *,
    chunk_bytes: int = CHUNK_BYTES,
    merkle_block: int = 4096,
) -> ScanResult:
    """One pass over ``path``: checksums, sequences, chain and seal digest; batches for ``on_batch``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = batch_schema()
    digest = FileDigest()
    result = ScanResult(digest)
    tree = MerkleTree(merkle_block)
    file_sha = hashlib.sha256()
    sha = hashlib.sha256
    line_no = 0
    expected_sequence: int | None = None
    last_checksum: str | None = None
    last_ts: int | None = None
    last_recorded: int | None = None
    in_time_order = True

    def problem(text: str) -> None:
        result.clean = False
        if len(result.problems) < 20:
            result.problems.append(text)

    for chunk in _chunks(path, chunk_bytes):
        file_sha.update(chunk)
        digest.size += len(chunk)
        torn_end = not chunk.endswith(b"\n")
        lines = chunk.split(b"\n")
        if not torn_end:
            lines.pop()
        n = len(lines)
        tree.add_leaf_hashes([sha(RFC6962_LEAF_PREFIX + line).digest() for line in lines])
        arrow_lines = pa.array(lines, pa.binary())
        first_line = line_no + 1
        # THE chain rule's fast path (chain.clean_run, as hot verify runs it): every line a
        # current-format record with its own checksum, counting on, chained, ts_recorded in order.
        run = None if torn_end else _clean_chunk(
            list(map(add, lines, repeat(b"\n"))), arrow_lines, expected_sequence, last_checksum, last_recorded,
            hmac_key)
        if isinstance(run, str):
            problem(f"lines {first_line}..{first_line + n - 1}: {run}")
        elif run is not None:
            first_sequence, first_hash, last_hash, last_recorded = run
            if digest.first_sequence is None:
                digest.first_sequence, digest.first_hash = first_sequence, first_hash
            digest.last_sequence, digest.last_hash = first_sequence + n - 1, last_hash
            expected_sequence, last_checksum = digest.last_sequence + 1, last_hash
            # Whether ts_event never goes back (the converter then need not sort): read where every
            # canonical record has it, first; a line without it there only costs the sort.
            found = pc.extract_regex(arrow_lines, _TS_EVENT)
            try:  # a line that does not match is a null struct (its field is then ""); a number may pass int64
                timestamps = None if found.null_count else found.field("ts").cast(pa.int64())
            except pa.ArrowInvalid:
                timestamps = None
            if timestamps is None:
                in_time_order = False
            else:
                carried_ts = pa.concat_arrays([pa.array([last_ts if last_ts is not None else timestamps[0].as_py()],
                                                        pa.int64()), timestamps])
                if pc.any(pc.less(timestamps, carried_ts.slice(0, n))).as_py() is True:
                    in_time_order = False
                last_ts = timestamps[n - 1].as_py()
            try:
                text_lines = arrow_lines.cast(pa.string())  # validates UTF-8
            except pa.ArrowInvalid:
                problem(f"lines {first_line}..{first_line + n - 1}: not valid UTF-8")
                text_lines = None
            if on_batch is not None and text_lines is not None:  # record NULL: the columnar pass strips lines
                on_batch(pa.record_batch([
                    pa.array(range(first_line, first_line + n), pa.int64()),
                    text_lines,
                    pa.nulls(n, pa.string()),
                    pa.nulls(n, pa.binary()),
                    pa.nulls(n, pa.int64()),
                ], schema=schema))
        if not isinstance(run, tuple):  # a torn, non-canonical or failing line in the chunk: verify() will judge
            rows: list[list[Any]] = [[], [], [], [], []]
            for index, line in enumerate(lines):
                whole = index < n - 1 or not torn_end
                try:
                    record = split_record(line + b"\n") if whole else None
                except ValueError:
                    record = None
                rows[0].append(first_line + index)
                if record is None:
                    result.torn_lines += 1
                    problem(f"line {first_line + index}: not a record (a torn write?)")
                    rows[1].append(None)
                    rows[2].append(line.decode("utf-8", "replace"))
                    rows[3].append(line)
                    rows[4].append(last_ts)
                    expected_sequence, last_checksum = None, None
                    continue
                problem(f"line {first_line + index}: not in the canonical layout")  # verify() decides
                if digest.first_sequence is None:
                    digest.first_sequence, digest.first_hash = record.sequence, record.checksum
                digest.last_sequence, digest.last_hash = record.sequence, record.checksum
                with contextlib.suppress(ValueError):
                    ts = int(line[len(b'{"ts_event":') : line.index(b",")])
                    last_ts = ts if -(2**63) <= ts < 2**63 else last_ts
                rows[1].append(line.decode("utf-8", "replace"))
                rows[2].append(strip_line(line, record.prev_hash).decode("utf-8", "replace"))
                rows[3].append(None)
                rows[4].append(None)
            if on_batch is not None:
                on_batch(pa.record_batch(
                    [pa.array(column, kind) for column, kind in zip(rows, schema.types, strict=True)], schema=schema))
        line_no += n
        digest.lines += n
    digest.file_sha256 = file_sha.hexdigest()
    digest.merkle_root = tree.root()
    result.in_time_order = in_time_order and result.clean
    return result


#: ``ts_event`` where a canonical record holds it: its first field (``record.COMMON_FIELDS``).
_TS_EVENT = r'^\{"ts_event":(?P<ts>0|[1-9]\d{0,18}),'


def _clean_chunk(
    lines: list[bytes], arrow_lines: Any, expected: int | None, previous: str | None, last_recorded: int | None,
    hmac_key: bytes | None,
) -> tuple[int, str, str, int | None] | str | None:
    """THE chain rule over a chunk of whole lines: its first sequence, first and last hash, latest ``ts_recorded``.

    ``chain.clean_run`` takes a chunk of current-format records; a chunk it declines is checked line
    by line with ``chain.check_record`` (records of older formats pass there), if every line has the
    canonical layout (``record.CANONICAL_LINE``: the columnar pass strips lines by it). ``expected``
    and ``previous`` None: the file's first chunk, which starts where its first record says (as
    ``verify`` without ``require_stream_start``). A text: a rule failed (what, for the problems list;
    ``verify`` names the line). None: not a canonical chunk, ``verify`` judges it.
    """
    import pyarrow.compute as pc

    if expected is None or previous is None:
        try:
            head = split_record(lines[0])
        except ValueError:
            return None
        if head.prev_hash is None:
            return None
        if head.sequence == 0 and head.prev_hash != GENESIS_HASH:
            return "sequence 0 without the genesis prev_hash"
        expected, previous = head.sequence, head.prev_hash
    run = clean_run(lines, expected, previous, last_recorded, hmac_key)
    if run is not None:
        checksums, recorded = run
        return expected, checksums[0], checksums[-1], recorded[-1]
    if pc.extract_regex(arrow_lines, CANONICAL_LINE).null_count:
        return None
    report = VerificationReport(keyed=hmac_key is not None)
    state = ChainState(expected, previous, last_recorded)
    first_hash = ""
    for number, line in enumerate(lines, start=1):
        try:
            record = split_record(line)
        except ValueError:
            return None
        check_record(record, compute_checksum(record.body, hmac_key), "", number, state.expected_sequence,
                     state.prev_checksum, report, state.last_recorded)
        if report.failures:
            failure = report.failures[0]
            return f"line {number} of the chunk: {failure.kind.value}: {failure.detail}"
        first_hash = first_hash or record.checksum
        state.expected_sequence, state.prev_checksum = record.sequence + 1, record.checksum
        if record.ts_recorded is not None:
            state.last_recorded = record.ts_recorded
    return expected, first_hash, str(state.prev_checksum), state.last_recorded


def verify_scanned(
    path: Path, scan: ScanResult, hmac_key: bytes | None = None, public_key: Any = None
) -> VerificationReport:
    """The ``verify([path], require_stream_start=False)`` report of a scanned file.

    A clean scan needs only the seal checks; anything else is left to the full ``verify``, whose
    report (failure kinds, lines, recovered torn writes) is returned as is.
    """
    if scan.clean:
        report = VerificationReport(keyed=hmac_key is not None)
        if public_key is not None:

            report.signing_key_id = trusted_key_ids(public_key)
        report.files.append(str(path))
        report.records = scan.digest.lines
        check_seal(path, scan.digest, True, {path.name}, hmac_key, report, public_key)
        if report.ok and report.sealed_files:
            return report
    return verify([path], hmac_key, require_stream_start=False, public_key=public_key)
