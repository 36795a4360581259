"""The live file deleted or replaced under a running writer: noticing it, giving it up, degrading.

Split out of ``writer`` (which keeps to appending, rotating and syncing): ``LiveFileGuard`` is a
mixin of ``AppendOnlyWriter`` and works on that writer's fd, offsets and episode under its mutex.
Bytes written to an unlinked or replaced inode reach no file a reader opens, so a lost file is a
degradation like a failed disk, never a silent success: see the writer's module docstring.

What this cannot do: records acknowledged before the check that found the file gone were in that
file and are gone with it (the trail then fails ``verify`` where they are missing; only an anchor
outside the file can prove they existed), and a deletion between two syncs is found at the next one.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit_core.config import AuditConfig
from audit_core.errors import AuditWriteError
from audit_core.hot._degradation import Episode, StateChange

logger = logging.getLogger("ledgerline.writer")


def file_identity(fd: int) -> tuple[int, int]:
    """``(st_dev, st_ino)`` of the file open as ``fd``: fixed for as long as ``fd`` stays open."""
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


def file_lost(fd: int, path: Path | str, identity: tuple[int, int] | None = None) -> str | None:
    """Why the file open as ``fd`` is no longer the file at ``path``, or None while it still is.

    Unlinked (link count 0), moved away (nothing at ``path``) or replaced (another inode at
    ``path``, a symlink included): bytes written to ``fd`` then reach no file a reader will open.
    The writer runs this on its sync path, never per record. With ``identity`` (``file_identity(fd)``,
    taken when the file was opened) the usual answer costs one ``lstat``: our inode linked at
    ``path`` is neither unlinked, nor moved, nor replaced (and its inode number cannot be reused
    while it is open); any other answer is explained by the full check below.
    """
    if identity is not None:
        try:
            found = os.lstat(path)
        except FileNotFoundError:
            pass
        else:
            if found.st_ino == identity[1] and found.st_dev == identity[0]:
                return None
    mine = os.fstat(fd)
    try:
        there: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        there = None
    if there is not None and (there.st_dev, there.st_ino) != (mine.st_dev, mine.st_ino):
        return "was replaced by another file"
    if mine.st_nlink == 0:
        return "was deleted (unlinked)"
    if there is None:
        return "was moved away (nothing at its path)"
    return None


class LiveFileGuard:
    """Checks that the writer's open file is still the file at its path; abandons it when not."""

    # The writer's state this mixin uses (defined in ``AppendOnlyWriter.__init__``).
    _config: AuditConfig
    _clock: Callable[[], int]
    _dir: Path
    stream_id: str
    stats: Any  # WriterStats (not imported: writer imports this module)
    _mutex: threading.Lock
    _fd: int
    _fd_users: int
    _path: Path | None
    _closed: bool
    _writing: bool
    _written: int
    _synced: int
    _episode: Episode
    _next_retry: float
    #: (synced, written, message) when a live file was found lost: tickets in (synced, written]
    #: went into that file and are gone with it.
    _lost_ranges: list[tuple[int, int, str]]
    _file_start: int  # the stream offset the current file started taking bytes at

    if TYPE_CHECKING:
        def _wait(self, timeout: float | None = None) -> None: ...
        def _notify(self) -> None: ...
        def _report(self, changes: list[StateChange]) -> None: ...
        def _degrade(self, failure: OSError) -> StateChange: ...
        def _new_file_path(self, now_ns: int) -> Path: ...

    def _check_live_file(self) -> None:
        """Give up the live file if it was deleted or replaced (the flusher's idle check)."""
        with self._mutex:
            if self._fd < 0 or self._closed or self._path is None:
                return
            fd, path = self._fd, self._path
            self._fd_users += 1
        try:
            lost = file_lost(fd, path)
        finally:
            with self._mutex:
                self._fd_users -= 1
                self._notify()
        if lost is not None:
            self._give_up_file(path, lost)

    def _give_up_file(self, path: Path, reason: str) -> None:
        """Become the leader and abandon ``path`` (unless a rotation, another thread or close got there)."""
        with self._mutex:
            while self._writing and not self._closed:
                self._wait()
            if self._closed or self._path != path or self._fd < 0:
                return  # close() checks the file itself; a new file is already open
            self._writing = True
        changes: list[StateChange] = []
        try:
            changes = self._abandon_live_file(reason)
        finally:
            with self._mutex:
                self._writing = False
                self._notify()
            self._report(changes)

    def _abandon_live_file(self, reason: str) -> list[StateChange]:
        """Stop writing to a live file that was deleted or replaced; degrade until a new segment opens.

        The bytes this writer put in it since its last checked sync are gone with the inode (durable
        tickets among them raise); nothing is sealed (a replaced path holds someone else's bytes).
        The degradation episode (``sys.degraded``) names the file and reason; the next drain opens a
        new segment, never reusing the name, and ends the episode (``sys.recovered``) there. Only
        the leader calls this.
        """
        with self._mutex:
            while self._fd_users:
                self._wait()
            fd, self._fd = self._fd, -1
            assert self._path is not None
            lost_path = self._path
            error = self._record_loss(lost_path, reason)
            # Degraded in the same critical section that records the loss: a durable caller woken by
            # the loss must find the writer degraded (it raises, then may wait for the recovery).
            changes = [] if self._episode.active else [self._degrade(error)]
            self._next_retry = time.monotonic() + self._config.retry_interval_s
            self.stats.write_errors += 1
            self._path = self._new_file_path(self._clock())
            self._notify()
        os.close(fd)
        return changes

    def _record_loss(self, path: Path, reason: str) -> AuditWriteError:
        """Remember which tickets went into a lost file; log it at ERROR. Called with ``_mutex`` held."""
        message = (
            f"live audit file {path} {reason} while this writer had it open; bytes "
            f"{self._file_start}..{self._written} this writer put in it are gone with it "
            f"({self._synced}..{self._written} not yet acknowledged durable)"
        )
        self._lost_ranges.append((self._synced, self._written, message))
        logger.error("ledgerline: %s", message)
        return AuditWriteError(errno.ESTALE, message)

    def _raise_if_lost(self, ticket: int) -> None:
        for low, high, message in self._lost_ranges:
            if low < ticket <= high:
                raise AuditWriteError(errno.ESTALE, f"record cannot be made durable: {message}")

