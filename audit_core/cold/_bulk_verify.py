"""Fast verification of one sealed hot file for the converter: one read, hashed and handed on as Arrow batches.

``scan_file`` reads the file once, in chunks, and for every chunk checks what ``verify``
checks for one sealed file: each record's layout, checksum, sequence, chain and ``ts_recorded``
order (``chain.check_record``'s rules, held identical by a differential test), plus everything the
seal says (count, size, sequence range, hashes, file SHA-256 and the RFC 6962 Merkle root, seal
checksum and signature, through ``seals.check_seal``). Canonical lines are sliced with one RE2
pattern over the whole chunk (pyarrow); only the SHA-256 calls run per line in Python. Whatever is
not plainly right (a torn or non-canonical line, any mismatch) makes ``verify_scanned`` fall back
to the full ``verify``, so the verdict and the failure kinds are always ``verify``'s.

Each chunk is also handed to the caller as an Arrow batch (``batch_schema()``): the converter's
columnar pass consumes it while the next chunk is being hashed, so the file is read once.

The cold ``record`` layout (``strip_line``/``rebuild_line``) is ``trust/record.py``'s.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit_core.hot.verifier import verify
from audit_core.trust.keyring import trusted_key_ids
from audit_core.trust.merkle import RFC6962_LEAF_PREFIX, MerkleTree
from audit_core.trust.record import (
    CANONICAL_LINE,
    CHECKSUM_SUFFIX_PREFIX,
    GENESIS_HASH,
    SUFFIX_LEN,
    TS_RECORDED_SINCE,
    split_record,
    strip_line,
)
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
        fields = pc.extract_regex(arrow_lines, CANONICAL_LINE)
        first_line = line_no + 1
        canonical = fields.null_count == 0 and not torn_end
        if canonical:
            suffix_ok = pc.and_(
                pc.equal(pc.binary_slice(arrow_lines, -SUFFIX_LEN, len(CHECKSUM_SUFFIX_PREFIX) - SUFFIX_LEN),
                         pa.scalar(CHECKSUM_SUFFIX_PREFIX, pa.binary())),
                pc.ends_with(arrow_lines, '"}'),
            )
            shortest = pc.min(pc.binary_length(arrow_lines)).as_py()
            canonical = pc.all(suffix_ok).as_py() is True and shortest > SUFFIX_LEN
        if canonical:
            try:
                sequences = fields.field("seq").cast(pa.int64())
                timestamps = fields.field("ts").cast(pa.int64())
                recorded = _optional_int(fields.field("rec"))
                formats = _optional_int(fields.field("format"))
            except pa.ArrowInvalid:  # a number beyond int64: not canonical, verify() judges the line
                canonical = False
        if canonical:
            # split_record's rule: a record carries ts_recorded exactly when its format has it.
            needs_recorded = pc.greater_equal(pc.fill_null(formats, 1), TS_RECORDED_SINCE)
            canonical = _all_equal(needs_recorded, pc.is_valid(recorded))
        if canonical:
            # The fast path: every line canonical, checked column-wise.
            if hmac_key is None:
                digests = [sha(line[:-SUFFIX_LEN] + b"}").digest() for line in lines]
            else:
                digests = [hmac.digest(hmac_key, line[:-SUFFIX_LEN] + b"}", "sha256") for line in lines]
            computed = pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(64), n, [None, pa.py_buffer(b"".join(digests).hex().encode())]
            ).cast(pa.binary())
            stored = pc.binary_slice(arrow_lines, -64 - 2, -2)
            if not _all_equal(computed, stored):
                problem(f"checksum mismatch in lines {first_line}..{first_line + n - 1}")
            first_sequence = sequences[0].as_py()
            start = first_sequence if expected_sequence is None else expected_sequence
            if not _all_equal(sequences, pa.array(range(start, start + n), pa.int64())):
                problem(f"sequence gap or repeat in lines {first_line}..{first_line + n - 1}")
            prev = fields.field("prev")
            if last_checksum is None and first_sequence == 0 and prev[0].as_py() != GENESIS_HASH.encode():
                problem(f"line {first_line}: sequence 0 without the genesis prev_hash")
            carried = pa.array([None if last_checksum is None else last_checksum.encode()], pa.binary())
            expected_prev = pa.concat_arrays([carried, stored.slice(0, n - 1)])
            if last_checksum is None:
                expected_prev, prev_checked = expected_prev.slice(1), prev.slice(1)
            else:
                prev_checked = prev
            if prev_checked.null_count or not _all_equal(prev_checked, expected_prev):
                problem(f"chain break in lines {first_line}..{first_line + n - 1}")
            # chain.check_record's rule: ts_recorded never below the latest one before it (older
            # formats have none: the latest known value is carried over them).
            carried_recorded = pa.concat_arrays([pa.array([last_recorded], pa.int64()), recorded])
            latest_before = pc.fill_null_forward(carried_recorded)
            if pc.any(pc.less(recorded, latest_before.slice(0, n))).as_py() is True:
                problem(f"ts_recorded goes backwards in lines {first_line}..{first_line + n - 1}")
            last_recorded = latest_before[n].as_py()
            # Decoded one by one, with replacement: a flipped byte can make a stored checksum invalid
            # UTF-8 (already a mismatch above), and a cast of the whole column would raise on it.
            def text(value: Any) -> str:
                return bytes(value.as_py()).decode("utf-8", "replace")

            if digest.first_sequence is None:
                digest.first_sequence, digest.first_hash = first_sequence, text(stored[0])
            digest.last_sequence, digest.last_hash = sequences[n - 1].as_py(), text(stored[n - 1])
            expected_sequence, last_checksum = digest.last_sequence + 1, digest.last_hash
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
        else:  # a torn or non-canonical line somewhere in the chunk: line by line, verify() will judge
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
    return result


def _optional_int(group: Any) -> Any:
    """An optional regex group as int64, NULL where it did not take part (RE2 gives an empty string)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    absent = pc.equal(pc.binary_length(group), 0)
    return pc.if_else(absent, pa.scalar(None, group.type), group).cast(pa.int64())


def _all_equal(left: Any, right: Any) -> bool:
    """Whether two Arrow arrays of one length are equal element by element (true when empty)."""
    import pyarrow.compute as pc

    return len(left) == 0 or pc.all(pc.equal(left, right)).as_py() is True


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
