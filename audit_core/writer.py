"""Append-only writer of hot JSONL files: the only code that opens them for writing.

Each record goes out in one ``os.write`` to a file opened with ``O_APPEND``, so records never
interleave and bytes already written are never touched. Durable records are fdatasync'ed before
``write`` returns; the rest are synced by a background flusher every ``flush_interval_s``.
Files rotate at UTC midnight; the writer compares one integer per write instead of formatting a
date, and checks disk space nowhere (a full disk shows up as the write's own error).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from audit_core._layout import hot_file_name, next_midnight_ns, parse_hot_file_name, utc_day
from audit_core.config import AuditConfig
from audit_core.errors import AuditWriteError

logger = logging.getLogger("ledgerline.writer")

_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_FILE_MODE = 0o640
_NEVER = 2**63


@dataclass(frozen=True)
class StreamTail:
    """The end of a stream as found on disk when a writer opens it.

    Attributes:
        last_record: The last complete (newline-terminated) line, or None for a new stream.
        torn_bytes: Bytes after that line with no newline: a write cut short by a crash.
        torn_offset: Offset of ``torn_bytes`` in ``path``.
        path: The file the tail was read from, or None for a new stream.
    """

    last_record: bytes | None
    torn_bytes: bytes = b""
    torn_offset: int = 0
    path: Path | None = None


@dataclass
class WriterStats:
    records: int = 0
    bytes: int = 0
    syncs: int = 0
    rotations: int = 0
    flush_errors: int = 0


class AppendOnlyWriter:
    """Appends record lines to the current UTC day's file of one stream.

    Args:
        config: Where to write, which stream, whether to rotate, how often to flush.
        clock: Nanoseconds since the epoch (UTC); injectable so tests can cross midnight.
    """

    def __init__(self, config: AuditConfig, clock: Callable[[], int] = time.time_ns) -> None:
        self._config = config
        self._clock = clock
        self._dir = config.hot_path
        self._lock = threading.Lock()  # guards the fd, the file position and rotation
        self._fd = -1
        self._path: Path | None = None
        self._rotate_at_ns = _NEVER
        self._closed = False
        # Group commit: bytes appended (the "ticket" of each append) and bytes known durable.
        self._written = 0
        self._synced = 0
        self._sync_cond = threading.Condition(threading.Lock())
        self._syncing = False
        self._fd_in_use = threading.Lock()  # held while an fdatasync runs outside the write lock
        self.stats = WriterStats()
        self._dir.mkdir(parents=True, exist_ok=True)
        self.tail = self._read_tail()
        self._open_day(self._clock())
        self._stop_flusher = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="ledgerline-flusher", daemon=True)
        self._flusher.start()

    @property
    def path(self) -> Path:
        """The file currently appended to."""
        assert self._path is not None
        return self._path

    def write(self, data: bytes, durable: bool = False) -> None:
        """Append ``data`` (one or more whole lines); with ``durable``, fdatasync before returning.

        Raises:
            AuditWriteError: the bytes could not be written or synced; the message names the file.
        """
        ticket = self.append(data)
        if durable:
            self.sync_through(ticket)

    def append(self, data: bytes) -> int:
        """Append ``data`` with one ``os.write`` (rotating first at UTC midnight); return its ticket.

        The bytes are in the page cache, not yet durable: pass the ticket to ``sync_through``.
        """
        with self._lock:
            if self._closed:
                raise AuditWriteError(f"writer for {self._path} is closed")
            now = self._clock()
            if now >= self._rotate_at_ns:
                self._rotate(now)
            self._write_all(data)
            self.stats.records += 1
            self._written += len(data)
            return self._written

    def sync_through(self, ticket: int) -> None:
        """Return once every byte up to ``ticket`` is durable.

        Concurrent callers share one ``fdatasync``: one thread syncs, the others wait for it, and
        a sync covers everything appended before it started, so N waiting writers cost one sync.
        """
        with self._sync_cond:
            while self._synced < ticket:
                if not self._syncing:
                    self._syncing = True
                    break
                self._sync_cond.wait()
            else:
                return
        try:
            target = self._sync_now()
        finally:
            with self._sync_cond:
                self._syncing = False
                self._sync_cond.notify_all()
        with self._sync_cond:
            self._synced = max(self._synced, target)

    def flush(self) -> None:
        """Make everything written so far durable."""
        self.sync_through(self._written)

    def close(self) -> None:
        """Flush, stop the flusher and close the file. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._fd >= 0:
                self._retire_fd()
        self._stop_flusher.set()
        if self._flusher is not threading.current_thread():
            self._flusher.join()

    def stream_files(self) -> list[Path]:
        """This stream's hot files, oldest first."""
        prefix = f"audit.{self._config.trader_id}.{self._config.stream_id}."
        found = [p for p in self._dir.glob(prefix + "*.jsonl") if parse_hot_file_name(p) is not None]
        return sorted(found, key=lambda p: p.name)

    # --- internals ----------------------------------------------------------------------------

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except OSError as exc:
                raise AuditWriteError(
                    exc.errno, f"cannot append {len(view)} bytes to {self._path}: {exc.strerror}"
                ) from exc
            if written == len(view):
                return
            view = view[written:]  # a short write (disk nearly full): append the rest

    def _sync_now(self) -> int:
        """fdatasync the current file without holding the write lock; return the bytes covered."""
        with self._lock:
            target = self._written
            if self._fd < 0 or target <= self._synced:
                return target  # closed (close synced everything) or nothing new
            fd, path = self._fd, self._path
            # Taken before the write lock is released: rotation and close wait for this sync
            # instead of closing the fd under it (lock order: _lock, then _fd_in_use).
            self._fd_in_use.acquire()
        try:
            os.fdatasync(fd)
        except OSError as exc:
            raise AuditWriteError(exc.errno, f"fdatasync of {path} failed: {exc.strerror}") from exc
        finally:
            self._fd_in_use.release()
        self.stats.syncs += 1
        return target

    def _retire_fd(self) -> None:
        """Sync and close the current file (rotation, close). Called with the write lock held."""
        self._fd_in_use.acquire()  # wait for a sync running outside the write lock
        try:
            if self._written > self._synced:
                os.fdatasync(self._fd)
                self.stats.syncs += 1
        except OSError as exc:
            raise AuditWriteError(exc.errno, f"fdatasync of {self._path} failed: {exc.strerror}") from exc
        finally:
            os.close(self._fd)
            self._fd = -1
            self._fd_in_use.release()
        with self._sync_cond:
            self._synced = max(self._synced, self._written)

    def _open_day(self, now_ns: int) -> None:
        day = utc_day(now_ns)
        path = self._dir / hot_file_name(self._config.trader_id, self._config.stream_id, day)
        created = not path.exists()
        try:
            self._fd = os.open(path, _OPEN_FLAGS, _FILE_MODE)
            if created:
                _fsync_directory(self._dir)
        except OSError as exc:
            raise AuditWriteError(exc.errno, f"cannot open {path} for appending: {exc.strerror}") from exc
        self._path = path
        self._rotate_at_ns = next_midnight_ns(now_ns) if self._config.rotate_daily else _NEVER

    def _rotate(self, now_ns: int) -> None:
        self._retire_fd()
        self._open_day(now_ns)
        self.stats.rotations += 1

    def _read_tail(self) -> StreamTail:
        # Torn bytes can only be at the end of the newest non-empty file; the last complete record
        # may sit in an older file if the crash tore the first write of a new day.
        torn: StreamTail | None = None
        for path in reversed(self.stream_files()):
            tail = _tail_of(path, self._config.max_record_bytes)
            if tail is None:
                continue
            if torn is None:
                torn = tail
            if tail.last_record is not None:
                return StreamTail(tail.last_record, torn.torn_bytes, torn.torn_offset, torn.path)
        if torn is not None:
            return torn
        return StreamTail(last_record=None)

    def close_torn_line(self, tail: StreamTail) -> None:
        """End a torn line with a newline (appended, never rewritten) and make it durable."""
        if not tail.torn_bytes or tail.path is None:
            return
        with self._lock:
            if tail.path == self._path:
                self._write_all(b"\n")
                self._written += 1
                os.fdatasync(self._fd)
                return
        try:
            fd = os.open(tail.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            try:
                os.write(fd, b"\n")
                os.fdatasync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise AuditWriteError(exc.errno, f"cannot close the torn line of {tail.path}: {exc.strerror}") from exc

    def _flush_loop(self) -> None:
        interval = self._config.flush_interval_s
        while not self._stop_flusher.wait(interval):
            try:
                self.flush()
            except AuditWriteError:
                # The flusher must not die or stay silent: log, count, retry next interval.
                self.stats.flush_errors += 1
                logger.exception("ledgerline: periodic flush failed; will retry")


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


def _fsync_directory(directory: Path) -> None:
    # A new file's name is durable only once its directory is synced.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

