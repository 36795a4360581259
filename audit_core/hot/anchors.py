"""Stream trees rebuilt from hot files and sidecars, and checked against witnessed checkpoints.

THE rule for a stream's leaves (used by the writer's checkpointer when it resumes and by
``verify``): leaf i is the hash of line i of the stream's files in order; a file's lines are its
newline-terminated lines, plus its trailing piece when a later file follows. Leaves of files that
are gone (removed by retention) come from the sidecar, which must hold the first present line's
leaf at the position where the present files take over. Everything read is untrusted: the root of
the rebuilt tree at a checkpoint's size must equal the checkpoint's root.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from audit_core._layout import parse_hot_file_name, stream_leaves_path
from audit_core.errors import AuditError, AuditFormatError, AuditIntegrityError
from audit_core.trust.merkle import HASH_SIZE, merkle_leaf_hash
from audit_core.trust.report import FailureKind, VerificationFailure
from audit_core.trust.stream_tree import MemoryLeaves, StreamCheckpoint, StreamTree, line_leaves, verify_consistency

if TYPE_CHECKING:
    from audit_core.hot.verifier import RetentionRecord

#: Largest sidecar read back (32 bytes per record: 2**31 records).
MAX_SIDECAR_BYTES = 64 * 1024**3


def file_leaves(path: Path, *, last: bool) -> tuple[list[bytes], int]:
    """Leaf hashes of one hot file's lines (its trailing piece too unless it is the stream's last
    file), and how many of its bytes they cover."""
    data = path.read_bytes()
    leaves = line_leaves(data)
    covered = data.rfind(b"\n") + 1
    if covered < len(data) and not last:
        leaves.append(merkle_leaf_hash(data[covered:]))
        covered = len(data)
    return leaves, covered


def file_lines(path: Path, *, last: bool) -> list[bytes]:
    """The lines of one hot file (without newlines) that are leaves of its stream, by ``file_leaves``'s rule."""
    lines = path.read_bytes().split(b"\n")
    trailing = lines.pop()
    if trailing and not last:
        lines.append(trailing)
    return lines


@dataclass
class RebuiltStream:
    """The leaves of a stream: ``removed`` from the sidecar, then those of the present files."""

    leaves: list[bytes]
    removed: int
    #: Where the sidecar disagrees with the files, if it does (None: it agrees, or there is none).
    sidecar_problem: str | None
    #: Bytes of the last file the leaves cover (its trailing piece, if any, is not a leaf yet).
    last_file_covered: int = 0


def read_sidecar(path: Path) -> list[bytes]:
    """Leaf hashes in a sidecar (a trailing partial hash, from a crash mid-append, is ignored)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > MAX_SIDECAR_BYTES:
            raise AuditFormatError(path, f"tree sidecar of {size} bytes is larger than {MAX_SIDECAR_BYTES}")
        data = handle.read()
    return [data[i : i + HASH_SIZE] for i in range(0, len(data) - len(data) % HASH_SIZE, HASH_SIZE)]


def rebuild_stream(files: list[Path], sidecar: list[bytes]) -> RebuiltStream:
    """The stream's leaves from its present ``files`` (in order) and its ``sidecar`` leaves."""
    present: list[bytes] = []
    covered = 0
    for index, path in enumerate(files):
        leaves, covered = file_leaves(path, last=index == len(files) - 1)
        present += leaves
    if not present:
        return RebuiltStream(list(sidecar), len(sidecar), None, covered)
    removed = 0
    first = present[0]
    for index, leaf in enumerate(sidecar):
        if leaf == first:
            removed = index
            break
    else:
        problem = "the sidecar does not hold the first line of the present files" if sidecar else None
        return RebuiltStream(present, 0, problem, covered)
    overlap = sidecar[removed : removed + len(present)]
    problem = None
    for offset, (held, found) in enumerate(zip(overlap, present, strict=False)):
        if held != found:
            problem = f"the sidecar's leaf {removed + offset} differs from the line in the files"
            break
    if problem is None and len(overlap) < len(sidecar) - removed:
        problem = (f"the sidecar holds {len(sidecar)} leaves, the files only {removed + len(present)} "
                   "(lines were removed from the files)")
    return RebuiltStream(sidecar[:removed] + present, removed, problem, covered)


def check_checkpoints(
    hot_dir: Path,
    checkpoints: Iterable[tuple[str, StreamCheckpoint | Exception]],
    stream_files: dict[str, list[Path]],
    retention: list[RetentionRecord],
) -> tuple[list[VerificationFailure], int]:
    """Failures of the trail under ``hot_dir`` against each witnessed checkpoint; and how many were checked.

    A stream a checkpoint names must hold at least that many leaves and the same root at that size;
    a stream with no files at all fails unless a verified ``sys.retention`` record names it and its
    sidecar still proves the checkpoint's root.
    """
    failures: list[VerificationFailure] = []
    checked = 0
    for source, checkpoint in checkpoints:
        if isinstance(checkpoint, Exception):
            failures.append(VerificationFailure(source, 0, None, FailureKind.UNREADABLE_FILE,
                                                f"witnessed checkpoint cannot be used: {checkpoint}"))
            continue
        checked += 1
        key = f"{checkpoint.trader_id}.{checkpoint.stream_id}"
        files = stream_files.get(key, [])
        sidecar_path = stream_leaves_path(hot_dir, checkpoint.trader_id, checkpoint.stream_id)
        try:
            rebuilt = rebuild_stream(files, read_sidecar(sidecar_path))
        except (OSError, AuditError) as exc:
            failures.append(VerificationFailure(str(sidecar_path), 0, None, FailureKind.UNREADABLE_FILE,
                                                f"stream {key} cannot be read back: {exc}"))
            continue
        failure = _against(checkpoint, key, files, rebuilt, retention, source)
        if failure is not None:
            failures.append(failure)
        elif rebuilt.sidecar_problem is not None:
            failures.append(VerificationFailure(str(sidecar_path), 0, None, FailureKind.ANCHOR_MISMATCH,
                                                f"stream {key}: {rebuilt.sidecar_problem}"))
    return failures, checked


def _against(
    checkpoint: StreamCheckpoint,
    key: str,
    files: list[Path],
    rebuilt: RebuiltStream,
    retention: list[RetentionRecord],
    source: str,
) -> VerificationFailure | None:
    named = any(_names_stream(record, key) for record in retention)
    if not files and not named:
        return VerificationFailure(source, 0, None, FailureKind.STREAM_MISSING,
                                   f"stream {key} is witnessed at {checkpoint.size} record(s) but has no file in the "
                                   "trail and no verified sys.retention record removed it (the stream was deleted)")
    if rebuilt.removed and not named:
        return VerificationFailure(source, 0, None, FailureKind.STREAM_MISSING,
                                   f"stream {key}: its first {rebuilt.removed} line(s) are only in the sidecar, and no "
                                   "verified sys.retention record removed their files")
    where = str(files[-1]) if files else source
    if len(rebuilt.leaves) < checkpoint.size:
        return VerificationFailure(where, 0, None, FailureKind.ANCHOR_MISMATCH,
                                   f"stream {key} was witnessed at {checkpoint.size} line(s) but holds "
                                   f"{len(rebuilt.leaves)}: lines a checkpoint covers were truncated or deleted")
    root = StreamTree(MemoryLeaves(rebuilt.leaves), checkpoint.size).root()
    if root != checkpoint.root:
        return VerificationFailure(where, 0, None, FailureKind.ANCHOR_MISMATCH,
                                   f"stream {key} at {checkpoint.size} line(s): root expected {checkpoint.root.hex()} "
                                   f"(witnessed), got {root.hex()}: the lines a checkpoint covers were changed")
    return None


def _names_stream(record: RetentionRecord, key: str) -> bool:
    removed = record.payload.get("hot_files")
    return isinstance(removed, list) and any(isinstance(entry, dict) and entry.get("stream") == key
                                             for entry in removed)


def group_stream_files(files: Iterable[Path]) -> dict[str, list[Path]]:
    """Trail files by ``<trader>.<stream>``, in stream order (day, segment)."""
    groups: dict[str, list[Path]] = {}
    for path in files:
        name = parse_hot_file_name(path)
        if name is not None:
            groups.setdefault(name.stream_key, []).append(path)
    for group in groups.values():
        group.sort(key=lambda path: parse_hot_file_name(path).order)  # type: ignore[union-attr]
    return groups


CONSISTENCY_FORMAT = "ledgerline-consistency-proof/1"


def prove_consistency(
    old: StreamCheckpoint, new: StreamCheckpoint, hot_dir: Path, files: list[Path]
) -> dict[str, object]:
    """A checked RFC 9162 consistency proof that checkpoint ``new`` extends ``old``, from the stream's leaves.

    Args:
        old, new: Two checkpoints of one stream (already parsed and authenticated by the caller).
        hot_dir: Where the stream's sidecar is.
        files: The stream's hot files, in order.

    Returns:
        ``{"format", "origin", "old_size", "new_size", "old_root", "new_root", "proof": [hex...]}``, verified.

    Raises:
        AuditIntegrityError: different streams, ``new`` smaller than ``old``, or the trail does not
            rebuild to both roots (it was truncated or rewritten, or the checkpoints are a split view).
    """
    if old.origin != new.origin:
        raise AuditIntegrityError(f"the checkpoints are of two streams: {old.origin} and {new.origin}")
    if new.size < old.size:
        raise AuditIntegrityError(f"the newer checkpoint has {new.size} line(s), the older {old.size}: a rollback")
    rebuilt = rebuild_stream(files, read_sidecar(stream_leaves_path(hot_dir, new.trader_id, new.stream_id)))
    if len(rebuilt.leaves) < new.size:
        raise AuditIntegrityError(f"{new.origin}: the trail holds {len(rebuilt.leaves)} line(s), the newer "
                                  f"checkpoint {new.size}: lines it covers were truncated or deleted")
    tree = StreamTree(MemoryLeaves(rebuilt.leaves), new.size)
    for checkpoint in (old, new):
        root = tree.root(checkpoint.size)
        if root != checkpoint.root:
            raise AuditIntegrityError(f"{new.origin}: the trail's root at {checkpoint.size} line(s) is {root.hex()}, "
                                      f"the checkpoint says {checkpoint.root.hex()}")
    proof = tree.consistency_proof(old.size, new.size)
    verify_consistency(old.size, new.size, old.root, new.root, proof)
    return {"format": CONSISTENCY_FORMAT, "origin": new.origin, "old_size": old.size, "new_size": new.size,
            "old_root": old.root.hex(), "new_root": new.root.hex(), "proof": [node.hex() for node in proof]}
