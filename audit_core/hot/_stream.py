"""Opening a stream: its lock, the end of its last file, and records that continue its chain.

Helpers of ``writer``: plain functions over files, so the writer class keeps to writing.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from audit_core._layout import lock_path
from audit_core.errors import AuditWriteError
from audit_core.trust.record import GENESIS_HASH, split_record

_PID_WIDTH = 21  # 20 digits hold any 64-bit pid, plus a newline


@dataclass(frozen=True)
class StreamTail:
    """The end of a stream as found on disk when a writer opens it.

    Attributes:
        last_record: The last complete (newline-terminated) line, or None for a new stream.
        torn_bytes: Bytes after that line with no newline: a write cut short by a crash.
        torn_offset: Offset of ``torn_bytes`` in ``path``.
        path: The file the torn bytes are in, or None.
    """

    last_record: bytes | None
    torn_bytes: bytes = b""
    torn_offset: int = 0
    path: Path | None = None


def acquire_stream(directory: Path, trader_id: str, stream_id: str, *, explicit: bool) -> tuple[str, int]:
    """Lock a stream for this process; return the stream id taken and the lock's fd (keep it open).

    An ``explicit`` stream id held by another process is an error naming its pid; a defaulted one
    moves on to ``<id>-2``, ``<id>-3``...

    Raises:
        AuditWriteError: the stream is held, or the lock path is not a plain file of its own (a
            symlink, a hard link to another file, a FIFO or device): refused, nothing written.
    """
    candidates = [stream_id] if explicit else [stream_id, *(f"{stream_id}-{n}" for n in range(2, 100))]
    holder = "?"
    for stream in candidates:
        fd = _open_lock_file(lock_path(directory, trader_id, stream))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, _PID_WIDTH, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            continue
        # The pid is written over the first bytes in place, never truncating: the file was checked
        # above to be a regular file with one link, created by (or for) a writer of this stream, so
        # only lock-file content is ever overwritten; a fixed width means a shorter pid never leaves
        # digits of a longer one behind (readers strip the padding).
        os.pwrite(fd, f"{os.getpid():<{_PID_WIDTH - 1}}\n".encode(), 0)
        return stream, fd
    raise AuditWriteError(
        f"stream {stream_id!r} of trader {trader_id!r} is held by another process (pid {holder}); "
        "give each process its own stream_id"
    )


def _open_lock_file(path: Path) -> int:
    """Open (creating) a lock file without following a symlink and without truncating anything.

    ``O_NOFOLLOW`` refuses a symlink planted at the lock path (the pid was once written through one
    into whatever it pointed at); a hard link planted there is refused by its link count, and a FIFO
    or device by its type, since those would let the writer touch a file that is not its lock file.
    ``O_NONBLOCK`` keeps a planted FIFO from blocking the open; flock and pwrite ignore it.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o640)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            try:
                target = repr(os.readlink(path))
            except OSError:
                target = "?"
            raise AuditWriteError(
                exc.errno, f"lock file {path} is a symlink (to {target}); refusing to follow it: "
                "remove it (a writer creates its lock file itself)"
            ) from exc
        raise AuditWriteError(exc.errno, f"cannot open lock file {path}: {exc.strerror}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        what = "not a regular file" if not stat.S_ISREG(info.st_mode) else f"has {info.st_nlink} hard links"
        raise AuditWriteError(
            errno.EPERM,
            f"lock file {path} {what}; refusing to use it: remove it (a writer creates its lock file itself)",
        )
    return fd


def read_tail(files: list[Path], max_record_bytes: int) -> StreamTail:
    """The end of a stream whose files are ``files`` (oldest first)."""
    # Torn bytes can only be at the end of the newest non-empty file; the last complete record
    # may sit in an older file if the crash tore the first write of a new file.
    torn: StreamTail | None = None
    for path in reversed(files):
        tail = _tail_of(path, max_record_bytes)
        if tail is None:
            continue
        if torn is None:
            torn = tail
        if tail.last_record is not None:
            return StreamTail(tail.last_record, torn.torn_bytes, torn.torn_offset, torn.path)
    return torn if torn is not None else StreamTail(last_record=None)


def records_continuing(last_record: bytes | None, files: list[Path]) -> list[bytes]:
    """Record lines in ``files`` that continue the chain after ``last_record``, in order.

    Only records with the next sequence and a matching prev_hash are taken, so reading a spill
    twice, or one that repeats records already on disk, yields nothing new.
    """
    last = None if last_record is None else split_record(last_record)
    sequence, prev_hash = (-1, GENESIS_HASH) if last is None else (last.sequence, last.checksum)
    found: dict[int, tuple[bytes, str, str | None]] = {}
    for path in files:
        with path.open("rb") as handle:
            for line in handle:
                try:
                    record = split_record(line) if line.endswith(b"\n") else None
                except ValueError:
                    record = None
                if record is not None and record.sequence > sequence:
                    found.setdefault(record.sequence, (line, record.checksum, record.prev_hash))
    chained: list[bytes] = []
    while sequence + 1 in found and found[sequence + 1][2] == prev_hash:
        line, prev_hash, _ = found[sequence + 1]
        chained.append(line)
        sequence += 1
    return chained


def continues(last_record: bytes | None, candidate: bytes) -> bool:
    """Whether ``candidate`` is a complete record that follows ``last_record`` in the chain."""
    try:
        record = split_record(candidate)
    except ValueError:
        return False
    if last_record is None:
        return record.sequence == 0 and record.prev_hash == GENESIS_HASH
    last = split_record(last_record)
    return record.sequence == last.sequence + 1 and record.prev_hash == last.checksum


def _tail_of(path: Path, max_record_bytes: int) -> StreamTail | None:
    """Last complete line and any torn bytes after it; None for an empty file."""
    size = path.stat().st_size
    if size == 0:
        return None
    # A record is at most max_record_bytes, so the last one and a torn one after it fit in twice that.
    window = min(size, 2 * max_record_bytes + 2)
    with path.open("rb") as handle:
        handle.seek(size - window)
        chunk = handle.read(window)
    end = chunk.rfind(b"\n")
    torn = chunk[end + 1 :]
    torn_offset = size - len(torn)
    if end < 0:
        return StreamTail(last_record=None, torn_bytes=torn, torn_offset=torn_offset, path=path)
    start = chunk.rfind(b"\n", 0, end) + 1
    if start == 0 and window < size:
        raise AuditWriteError(f"{path}: last record is longer than max_record_bytes={max_record_bytes}")
    return StreamTail(chunk[start : end + 1], torn, torn_offset, path)


def write_synced(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (looping over short writes), then fdatasync it."""
    written = 0
    while written < len(data):
        written += os.write(fd, data[written:] if written else data)
    os.fdatasync(fd)


def append_to(path: Path | None, data: bytes) -> None:
    assert path is not None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            write_synced(fd, data)
        finally:
            os.close(fd)
    except OSError as exc:
        raise AuditWriteError(exc.errno, f"cannot append to {path}: {exc.strerror}") from exc
