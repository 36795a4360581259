"""Group commit: making durable tickets durable with as few ``fdatasync`` calls as the threads allow.

Split out of ``writer`` (which keeps to appending, rotating and degrading): ``GroupCommit`` is a
mixin of ``AppendOnlyWriter`` and works on that writer's fd, offsets and episode under its mutex.

A ticket whose bytes are in the hot file is durable once a sync that *started after* they were
written has finished (a sync that was already running may or may not carry them). So a caller:

- returns at once if a finished sync covered its ticket;
- else, if a sync in flight covers it (that sync's target, ``_written`` when it started, reaches
  the ticket), waits for that sync alone: a *follower*, woken by that sync's own lock, with no
  syscall and no lock round trip of its own after a successful sync;
- else, while fewer than ``MAX_CONCURRENT_SYNCS`` syncs run, syncs everything written so far
  itself: a *leader*, alongside the older sync (the disk serves concurrent syncs of one file
  together: on the development VM, raw per-event syncs from 2 threads reach ~1.4x the events/s of
  one thread, so a second thread never waits for a sync that cannot cover it);
- else waits for the oldest sync to end and looks again: by then the next leader's sync covers it
  and every other caller that piled up meanwhile (real group commit: with N threads, several
  records per sync, and fewer GIL round trips for the fdatasync and the live-file ``lstat``).

One thread costs one ``fdatasync`` per durable record and no hand-off. The live-file check (one
``lstat``, see ``_live_file``) runs once per sync, by its leader, after the sync: a ticket is only
acknowledged durable while its bytes are in the file at the stream's path. A failed sync reports
its error to its leader; its followers try again themselves (and get their own error).

What bounds durable throughput on the development VM (measured with
``benchmarks.probe_sync_occupancy``, 2026-12-02, load 3.6-6.5): its ext4 has no journal, so the
disk serves concurrent syncs side by side instead of merging them into one commit, and each thread
completes about one event per ``sync + gap``, the gap being its work between the end of one sync
and the start of its next. The raw write + fdatasync loop's gap is 3-10 us (one ``os.write``); ours
is 55-110 us: the next emit's pipeline run right after a sleep (validate 14 us, serialize 6,
SHA-256 4, about 2.5x their back-to-back cost), the live-file ``lstat`` (~5 us) and this module's
bookkeeping (5-10 us after a sync; a non-durable emit followed by a bare ``fdatasync`` and
``lstat`` costs the same CPU). At 2 threads we lead nearly every sync ourselves, as the raw threads
do (1.04-1.1 records per sync), with 1.45-1.55 syncs in flight against the raw loop's 1.8-1.9: so
``(sync + raw gap) / (sync + our gap)``, ~0.8 at a ~250 us sync, bounds the ratio whatever the
policy. The emitter's and writer's background threads take no measurable share (the checkpointer
~20 ms of CPU per 8,000 records, the flusher none). Under load 6 our 1-thread syncs also took 2-3x
the raw loop's (equal at load ~2): likely the scheduler's wake-up order, which favours the thread
that used less CPU.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit_core.config import AuditConfig
from audit_core.errors import AuditWriteError
from audit_core.hot._degradation import Episode, SpillFile
from audit_core.hot._live_file import file_lost

#: Syncs of the hot file run at once by different callers; one more caller waits for the oldest to
#: end. 1 (one sync at a time, the next one covering every waiter) measured 0.2-0.25x the events/s of
#: raw per-event syncs at 2 threads on the (loaded) development VM: the disk idles while the next
#: leader wakes up. 4 against 2 at 4 threads (2026-12-02, six paired rounds, load 3.4-3.9): +7.6%
#: median events/s, one round of six slower, at the same CPU per event; 8, which at 4 threads is
#: the same policy as 4, measured +1.5%: the difference is within the noise, so 2 stays.
MAX_CONCURRENT_SYNCS = 2


class Sync:
    """One ``fdatasync`` in flight: what it covers, and how its followers wait for it."""

    __slots__ = ("done", "followers", "ok", "target")

    def __init__(self, target: int) -> None:
        self.target = target  # every ticket up to this one was written before the sync started
        self.done: threading.Lock | None = None  # held until the sync ends; made by the first follower
        self.ok = False  # it ended, and the bytes are durable in the file at the stream's path
        self.followers = 0

    def follow(self, covered: bool = True) -> threading.Lock:
        """The lock a follower waits on (called with the writer's mutex held, while the sync is in
        ``_syncing``: its leader releases the lock after taking it out, under the same mutex)."""
        self.followers += covered
        if self.done is None:
            self.done = threading.Lock()
            self.done.acquire()
        return self.done


class GroupCommit:
    """``sync_through``: durable tickets, leaders and followers (see the module docstring)."""

    # The writer's state this mixin uses (defined in ``AppendOnlyWriter.__init__``).
    _config: AuditConfig
    stats: Any  # WriterStats (not imported: writer imports this module)
    _mutex: threading.Lock
    _closed_reason: str | None
    _lost_ranges: list[tuple[int, int, str]]
    _written: int
    _synced: int
    _spilled: int
    _pending_bytes: int
    _unspilled: list[bytes]
    _spill: SpillFile
    _writing: bool
    _episode: Episode
    _fd: int
    _fd_users: int
    _path_str: str
    _identity: tuple[int, int]
    _waiters: int
    _syncing: list[Sync]  # in start order, so targets ascend

    if TYPE_CHECKING:
        def _closed_error(self) -> AuditWriteError: ...
        def _raise_if_lost(self, ticket: int) -> None: ...
        def _wait(self, timeout: float | None = None) -> None: ...
        def _notify(self) -> None: ...
        def _drain(self, force_retry: bool = False) -> None: ...
        def _give_up_file(self, path: Path, reason: str) -> None: ...

    def sync_through(self, ticket: int) -> None:
        """Return once every byte up to ``ticket`` is durable (in the hot file or the spill file).

        Raises:
            AuditWriteError: the bytes cannot be made durable (hot disk failing, no fallback path;
                the live file deleted or replaced; the sync failed).
        """
        deadline = None
        spill = spill_tried = False
        while True:
            follow: threading.Lock | None = None
            follow_oldest = False
            with self._mutex:
                if self._closed_reason is not None:
                    raise self._closed_error()
                if self._lost_ranges and self._spilled < ticket:
                    self._raise_if_lost(ticket)
                if self._synced >= ticket or self._spilled >= ticket:
                    return
                if self._written < ticket:
                    if not self._episode.active:
                        if self._writing:
                            self._wait()
                            continue
                        self._writing = lead = True
                    elif self._writing:
                        # A leader is draining: it may be spilling (or writing) this ticket right now,
                        # so a durable caller woken by the degradation does not give up before it ends.
                        self._wait(self._config.retry_interval_s)
                        continue
                    elif self._unspilled and self._spill.directory is not None and not spill_tried:
                        # Appended after the last leader took the spill list: spill it here, not raise.
                        self._writing = lead = spill = spill_tried = True
                    else:
                        if self._config.durable_failure == "raise" or (
                            deadline is not None and time.monotonic() >= deadline
                        ):
                            raise self._undurable_error()
                        if deadline is None:
                            deadline = time.monotonic() + self._config.durable_wait_s
                        self._wait(self._config.retry_interval_s)
                        if self._writing:
                            continue
                        self._writing = lead = True
                else:
                    lead = False
                    if self._fd < 0:  # a rotation or a lost file: its retirement syncs or raises
                        self._wait()
                        continue
                    syncing = self._syncing
                    # Targets ascend in start order: wait for the first sync that reaches the ticket.
                    covering = next((s for s in syncing if s.target >= ticket), None) if syncing else None
                    if covering is not None:
                        sync, follow = covering, covering.follow()
                    elif len(syncing) >= MAX_CONCURRENT_SYNCS:
                        sync, follow = syncing[0], syncing[0].follow(covered=False)
                        follow_oldest = True
                    else:
                        sync = Sync(self._written)
                        syncing.append(sync)
                        fd, path, identity = self._fd, self._path_str, self._identity
                        self._fd_users += 1
            if lead:
                self._drain(force_retry=not spill)
                spill = False
                continue
            if follow is not None:
                follow.acquire()
                follow.release()  # the next follower of the same sync
                if sync.ok and not follow_oldest:
                    return
                continue  # the oldest sync ended (or failed, or found the file lost): look again
            if self._lead_sync(sync, fd, path, identity):
                # ``sync.target`` covers the ticket, and a ticket that went into a lost file raised
                # above (under the same lock that took ``fd``): no need to look again.
                return
            # The file was lost: the loop raises for this ticket.

    def _lead_sync(self, sync: Sync, fd: int, path: str, identity: tuple[int, int]) -> bool:
        """Run ``sync`` (registered, ``_fd_users`` taken); True once its target is durable in the file
        at ``path``, False if that file was found deleted or replaced (given up). Wakes its followers
        when it ends, however it ends."""
        lost = None
        ok = False
        try:
            try:
                os.fdatasync(fd)
                # After the sync: a file deleted before it is caught here.
                lost = file_lost(fd, path, identity)
                ok = lost is None
            except OSError as exc:
                raise AuditWriteError(exc.errno, f"fdatasync of {path} failed: {exc.strerror}") from exc
            finally:
                with self._mutex:
                    self._fd_users -= 1
                    self._syncing.remove(sync)
                    if ok:
                        sync.ok = True
                        self.stats.syncs += 1
                        self.stats.sync_waits += sync.followers
                        if sync.target > self._synced:
                            self._synced = sync.target
                    self._notify()  # _retire_fd may wait for _fd_users
            if lost is not None:
                self._give_up_file(Path(path), lost)
            return ok
        finally:
            if sync.done is not None:  # no follower attaches once it left _syncing
                sync.done.release()

    def _undurable_error(self) -> AuditWriteError:
        where = ("(configure fallback_path to spill them)" if self._spill.directory is None
                 else f"(the spill to {self._spill.directory} failed too)")
        return AuditWriteError(
            errno.EIO,
            f"record cannot be made durable: {self._episode.error}; {self._pending_bytes} bytes wait in memory {where}",
        )
