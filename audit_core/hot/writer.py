"""Append-only writer of hot JSONL files: the only code that opens them for writing.

One writer owns one stream (an exclusive lock file per trader and stream). Records are appended
with ``os.write`` to a file opened ``O_APPEND``; bytes once written are never touched again.

- **Batching.** ``append`` queues a record and returns a ticket (its end offset in the stream).
  The first thread to find no write in progress becomes the leader and writes everything queued,
  in ticket order, with one ``os.write`` per batch; the others wait for their ticket to be written.
  Without contention a batch is one record. Queued bytes are bounded by ``max_buffer_bytes``;
  beyond it ``append`` blocks (back-pressure, never a silent drop).
- **Group commit.** ``sync_through(ticket)`` returns once the ticket is durable (``_group_commit``):
  a caller that a sync in flight already covers (it started after the caller's bytes were written)
  waits for that sync, with no ``fdatasync`` of its own; any other caller syncs everything written so
  far itself, outside the write path, alongside an older sync; beyond two running syncs it waits for
  the older one and is covered by the next, with every caller that piled up. One thread costs one
  sync per durable record and no hand-off. ``append`` takes whole batches of lines, so N records can
  share one write and one sync (``AuditEventEmitter.emit_many``).
- **Rotation and seals.** At UTC midnight the file is synced, closed and sealed in the background
  (sidecar with count, hashes, file SHA-256 and Merkle root; write bits dropped). ``close`` seals too.
  With a signing key configured, seals are signed and get a C2SP checkpoint. A clock behind the
  newest file's day (an NTP step back, a backtest re-run) keeps writing under that day (``_segments``).
- **Degradation.** ``ENOSPC``/``EIO``/``EDQUOT`` never reach the trading loop for non-durable
  records: the unwritten bytes stay queued (and are spilled to ``fallback_path`` if configured), the
  writer reports ``is_degraded``, retries every ``retry_interval_s`` and reports the episode through
  ``on_state_change`` so the emitter can chain ``sys.degraded``/``sys.recovered`` records. A short
  write is completed by appending the rest of the bytes, so the file ends byte-identical to a clean
  write; the rest goes into the record's own file before any rotation (midnight while the disk is
  full never splits a record across two files). A durable record that cannot be made durable
  anywhere raises ``AuditWriteError``.
- **The live file deleted or replaced** (checked after each sync, by the idle flusher, at rotation
  and at close; see ``_live_file``) is a degradation like a failed disk: logged at ERROR, never
  written or sealed again; the stream continues in a new segment; durable tickets that went into it
  raise ``AuditWriteError``, and so does ``close``. The non-durable append path is unchanged.
- **fork().** A child's copy of a writer refuses every write (disowned once, at fork time, via
  ``os.register_at_fork``: no per-append pid check) and its ``close`` touches nothing.

No disk-space check runs per write (a full disk shows up as the write's own error) and no date is
formatted per write (one integer comparison decides rotation).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from audit_core.config import AuditConfig
from audit_core.errors import AuditSigningError, AuditWriteError
from audit_core.hot._checkpointer import start_checkpointer
from audit_core.hot._degradation import (
    DEGRADING_ERRNOS,
    Episode,
    SpillFile,
    StateChange,
    report_changes,
)
from audit_core.hot._group_commit import GroupCommit, Sync
from audit_core.hot._live_file import LiveFileGuard, file_identity, file_lost
from audit_core.hot._segments import NEVER as _NEVER
from audit_core.hot._segments import StreamFiles
from audit_core.hot.key_lifecycle import check_signer_at_start
from audit_core.trust.seals import fsync_directory, seal_file
from audit_core.trust.signer import load_signer
from audit_core.trust.signing import KeySlot
from audit_core.trust.witness import Witness

logger = logging.getLogger("ledgerline.writer")

_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_FILE_MODE = 0o640

#: Writers open in this process, disowned in a ``fork()`` child (see ``_disown_writers_after_fork``).
_OPEN_WRITERS: weakref.WeakSet[AppendOnlyWriter] = weakref.WeakSet()


def _disown_writers_after_fork() -> None:
    for writer in list(_OPEN_WRITERS):
        writer._disown_after_fork()


# The pid check runs once, in the child, at fork time (not per append): the hot path keeps its one
# ``_closed`` test. A C extension that forks without PyOS_AfterFork_Child bypasses this (and breaks
# Python's own locks too).
os.register_at_fork(after_in_child=_disown_writers_after_fork)


@dataclass
class WriterStats:
    records: int = 0
    batches: int = 0
    syncs: int = 0
    sync_waits: int = 0  # durable waits a sync run by another caller covered (no fdatasync of their own)
    rotations: int = 0
    seals: int = 0
    seal_errors: int = 0
    flush_errors: int = 0
    write_errors: int = 0
    degraded_episodes: int = 0
    spilled_bytes: int = 0
    blocked_appends: int = 0


class AppendOnlyWriter(StreamFiles, LiveFileGuard, GroupCommit):
    """Appends record lines to the current file of one stream.

    Args:
        config: Where to write, which stream, rotation, flushing, buffering and degradation.
        clock: Nanoseconds since the epoch (UTC); injectable so tests can cross midnight.
        on_state_change: Called (outside the writer's locks) when the writer degrades or recovers.
        witness: Where stream checkpoints go (default: ``config.witness_path``, if set).
    """

    def __init__(
        self,
        config: AuditConfig,
        clock: Callable[[], int] = time.time_ns,
        on_state_change: Callable[[StateChange], None] | None = None,
        witness: Witness | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self.on_state_change = on_state_change
        self._dir = config.hot_path
        self._hmac_key = config.resolve_hmac_key()
        self.signing_keys = KeySlot(load_signer(config), clock)  # a key rotation swaps it
        self.stats = WriterStats()
        self._mutex = threading.Lock()  # guards the queue and offsets below
        self._cond = threading.Condition(self._mutex)
        self._waiters = 0
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._queued = 0  # tickets: logical end offset of everything appended
        self._written = 0  # ... of everything in the hot file
        self._synced = 0  # ... of everything durable in the hot file
        self._spilled = 0  # ... of everything durable in the spill file
        self._unspilled: list[bytes] = []
        self._writing = False  # a leader is writing; only the leader writes to or rotates the fd
        self._fd_users = 0  # fdatasyncs running outside the lock; the fd is not closed under them
        self._syncing: list[Sync] = []  # those fdatasyncs, oldest first (see _group_commit)
        self._fd = -1
        self._identity = (0, 0)  # file_identity(self._fd)
        self._path: Path | None = None
        self._path_str = ""  # str(self._path) of the open file, for the per-sync check
        self._rotate_at_ns = _NEVER
        self._episode = Episode(clock)
        # Per episode ended whose on_state_change has not returned yet, the thread reporting it.
        self._recovery_reporters: list[int] = []
        self._next_retry = 0.0
        fallback = config.fallback_path
        self._spill = SpillFile(None if fallback is None else Path(fallback))
        self._closed = False
        self._sealers: list[threading.Thread] = []
        self._unsealed_previous: Path | None = None  # rotated out, sealed once its successor is open
        self._head_whole: bytes | None = None  # the whole record whose rest heads the queue after a short write
        self._lost_ranges: list[tuple[int, int, str]] = []  # see LiveFileGuard
        self._file_start = 0
        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = -1
        self._pid = os.getpid()
        self._closed_reason: str | None = None  # why appends are refused, when not a plain close()
        self.stream_id = self._acquire_stream()
        check_signer_at_start(self)  # a rotated-out or revoked key must not seal anything on reopen
        self._open_stream()
        self._stop_flusher = threading.Event()
        self._wake_flusher = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="ledgerline-flusher", daemon=True)
        self._flusher.start()
        self.checkpointer = start_checkpointer(config, self, (self._hmac_key, self.signing_keys), witness)
        _OPEN_WRITERS.add(self)

    # --- public API ---------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The file currently appended to."""
        assert self._path is not None
        return self._path

    @property
    def is_degraded(self) -> bool:
        """True while the hot file is failing and records wait in memory (or the spill file), and
        until the end of the episode has been reported (the emitter's ``sys.recovered`` record)."""
        return self._episode.active or bool(self._recovery_reporters)

    @property
    def buffered_bytes(self) -> int:
        """Bytes appended but not yet in the hot file."""
        return self._pending_bytes

    def write(self, data: bytes, durable: bool = False) -> None:
        """Append ``data`` (whole lines) and wait for it; with ``durable``, until it is synced."""
        ticket, lead = self.append(data)
        self.commit(ticket, lead, durable)

    def append(self, data: bytes, records: int = 1) -> tuple[int, bool]:
        """Queue ``data`` (``records`` whole lines); return its ticket and whether the caller must
        ``commit`` as leader.

        Callers that need records in a fixed order call this under their own lock and ``commit``
        after releasing it. Blocks while more than ``max_buffer_bytes`` are queued. ``data`` is
        queued whole or, if this raises, not at all.
        """
        with self._mutex:
            if self._closed:
                raise self._closed_error()
            while self._pending_bytes and self._pending_bytes + len(data) > self._config.max_buffer_bytes:
                self.stats.blocked_appends += 1
                self._wait(self._config.retry_interval_s)
                if self._closed:
                    raise self._closed_error()
            stats = self.stats
            stats.records += records
            size = len(data)
            self._queued += size
            if not (self._writing or self._pending or self._episode.since_ns is not None or self._fd < 0) and (
                self._clock() < self._rotate_at_ns
            ):
                # Uncontended: write here, under the lock, with no queueing at all.
                try:
                    written = os.write(self._fd, data)
                except OSError:
                    written = 0
                self._written += written
                if written == size:
                    stats.batches += 1
                    return self._queued, False
                if written:
                    self._head_whole = data
                data = data[written:]  # short or failed: the leader's drain retries, or degrades
            self._pending.append(data)
            self._pending_bytes += len(data)
            if self._episode.active:
                self._unspilled.append(data)
            lead = not self._writing
            if lead:
                self._writing = True
            return self._queued, lead

    def commit(self, ticket: int, lead: bool, durable: bool = False) -> None:
        """Write (as leader) or wait for the ticket to be written; with ``durable``, sync it.

        While degraded, a non-durable ticket returns once it is queued (and spilled, if a fallback
        path is configured); a durable one follows ``config.durable_failure``.
        """
        if lead:
            self._drain()
        elif self._written < ticket:
            with self._mutex:
                while self._written < ticket and self._writing and not self._episode.active:
                    self._wait()
                lead = self._written < ticket and not self._writing and not self._episode.active
                if lead:
                    self._writing = True
            if lead:
                self._drain()
        if durable:
            self.sync_through(ticket)
            if self._recovery_reporters:
                self._await_recovery_reports()

    def _await_recovery_reports(self) -> None:
        """Wait until every ended episode is on record (the emitter's ``sys.recovered``).

        A durable record that waited out a full disk may have been written by another thread's
        drain, which reports the recovery just after: returning before that report would leave the
        caller looking at ``is_degraded`` still True and a trail without the recovery. The reporting
        thread itself (whose report may emit durable records) does not wait for itself.
        """
        me = threading.get_ident()
        with self._mutex:
            while self._recovery_reporters and me not in self._recovery_reporters:
                self._wait()

    def flush(self) -> None:
        """Make everything written so far durable (no-op for bytes still queued while degraded)."""
        with self._mutex:
            if self._closed_reason is not None:
                raise self._closed_error()
            target = self._written
        if target > self._synced:
            self.sync_through(target)
        else:
            self._check_live_file()  # nothing to sync: still notice a deleted file while idle

    def close(self) -> None:
        """Write what is queued, seal the current file, release the stream. Idempotent.

        Raises:
            AuditWriteError: records could not be written anywhere; they are logged at CRITICAL
                level first, so they are never lost silently.
        """
        with self._mutex:
            if self._closed:
                return
            self._closed = True  # no new appends from here on
            _OPEN_WRITERS.discard(self)
            while self._writing:
                self._wait()
            self._writing = True
        self._drain(force_retry=True)
        with self._mutex:
            self._writing = True  # the file is closed below: no leader may write any more
            unwritten = list(self._pending) if self._written < self._queued else []
            self._notify()
        self._stop_flusher.set()
        self._wake_flusher.set()
        if self._flusher is not threading.current_thread():
            self._flusher.join()
        try:
            if self._fd >= 0:
                self._retire_fd()  # raises, and nothing is sealed, if the live file was deleted or replaced
                assert self._path is not None
                self._seal(self._path, next_file=None)
        finally:
            for sealer in self._sealers:
                sealer.join()
            self._spill.close()
            self.checkpointer.close()  # the final checkpoint, of the sealed files, before the lock goes
            self._release_stream()
        if unwritten and self._spilled < self._queued:
            for line in unwritten:
                logger.critical("ledgerline: unwritten audit record: %s", line.decode(errors="replace").rstrip())
            raise AuditWriteError(
                errno.EIO, f"{len(unwritten)} queued record batch(es) could not be written to {self._path} "
                f"({self._episode.error}); they were logged at CRITICAL level"
            )
        if self._episode.active and self._lost_ranges:
            # A live file was lost and nothing was written after it: no sys.recovered record in the
            # trail follows it, so closing must not look like a clean close.
            raise AuditWriteError(errno.ESTALE, f"closed while degraded: {self._lost_ranges[-1][2]}")

    def _closed_error(self) -> AuditWriteError:
        return AuditWriteError(self._closed_reason or f"writer for {self._path} is closed")

    def _disown_after_fork(self) -> None:
        """In a ``fork()`` child the stream is the parent's (both would write the same sequences):
        refuse every write and touch none of its files. A parent thread may have held the mutex, so
        it is recreated; the child's fd copies are closed (the parent's flock stays held)."""
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._waiters = 0
        self._syncing = []
        self._closed = True
        self._closed_reason = (
            f"the audit writer for {self._path} was opened in pid {self._pid} and this is pid {os.getpid()}, "
            "a fork() child: it cannot write on the parent's stream; open a new emitter in the child "
            "(with its own stream_id)"
        )
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._lock_fd = -1
        self._spill.close()
        self._sealers = []

    def _wait(self, timeout: float | None = None) -> None:
        """Wait for a state change; called with ``_mutex`` held."""
        self._waiters += 1
        try:
            self._cond.wait(timeout)
        finally:
            self._waiters -= 1

    def _notify(self) -> None:
        # notify_all is pure Python and walks the waiters: skip it on the uncontended path.
        if self._waiters:
            self._cond.notify_all()

    # --- the leader's write path --------------------------------------------------------------

    def _drain(self, force_retry: bool = False) -> None:
        """Write queued batches until none are left. Only the leader (``_writing``) calls this."""
        changes: list[StateChange] = []
        try:
            while True:
                with self._mutex:
                    if not self._pending:
                        return
                    if self._episode.active and not force_retry and time.monotonic() < self._next_retry:
                        spill = self._unspilled
                        self._unspilled = []
                        if not spill:
                            return
                    elif self._head_whole is not None:
                        # The rest of a record a short write cut: written alone, so that it completes
                        # the record in its own file before any rotation (see _write_batch).
                        spill, batch = [], self._pending[:1]
                        del self._pending[0]
                    else:
                        spill = []
                        batch = self._pending
                        self._pending = []
                if spill:
                    self._spill_lines(spill)
                    return
                data = batch[0] if len(batch) == 1 else b"".join(batch)
                written, failure = self._write_batch(data)
                with self._mutex:
                    self._written += written
                    self._pending_bytes -= written
                    if failure is None:
                        self.stats.batches += 1
                        self._head_whole = None
                        # Degraded until the whole backlog is in the file (the rest of a cut record
                        # is written alone first); the disk took a write, so no waiting for the timer.
                        if self._episode.active and not self._pending:
                            # Counted before the episode ends: is_degraded reads both without the lock,
                            # and Episode.end logs between them (a reader saw neither, and emitted
                            # ahead of the sys.recovered record).
                            self._recovery_reporters.append(threading.get_ident())
                            changes.append(self._episode.end(self.stats.spilled_bytes, self._path))
                        force_retry = True
                        self._unspilled = []
                        self._notify()
                        continue
                    # The rest is appended when the disk recovers, completing a torn line in place.
                    self._requeue(batch, written)
                    if not self._episode.active:
                        changes.append(self._degrade(failure))
                        # The spill gets whole records; a restart skips the ones already here.
                        self._unspilled = [self._head_whole or self._pending[0], *self._pending[1:]]
                    self._next_retry = time.monotonic() + self._config.retry_interval_s
                    self.stats.write_errors += 1
                    force_retry = False
                    self._notify()
        finally:
            with self._mutex:
                self._writing = False
                self._notify()
            try:
                self._report(changes)
            finally:
                if recovered := sum(change.kind == "recovered" for change in changes):
                    with self._mutex:
                        for _ in range(recovered):
                            self._recovery_reporters.remove(threading.get_ident())
                        self._notify()

    def _requeue(self, batch: list[bytes], written: int) -> None:
        """Put back what a failed write left of ``batch``; remember the whole record a cut falls in."""
        offset, index = 0, 0
        while offset + len(batch[index]) <= written:
            offset += len(batch[index])
            index += 1
        cut = written - offset
        head_whole = self._head_whole if index == 0 else None  # batch[0] may itself be a remainder
        self._pending[:0] = [batch[index][cut:], *batch[index + 1 :]]
        self._head_whole = (head_whole or batch[index]) if cut else head_whole

    def _write_batch(self, data: bytes) -> tuple[int, OSError | None]:
        """Append ``data`` to the hot file; return bytes written and the error that stopped it."""
        written = 0
        try:
            if self._head_whole is None:  # never rotate between the two halves of one record
                self._rotate_if_due()
            if self._fd < 0:
                self._open_current()
            while written < len(data):
                written += os.write(self._fd, data[written:] if written else data)
        except OSError as exc:
            if exc.errno not in DEGRADING_ERRNOS and exc.errno != errno.ESTALE:  # ESTALE: logged where found
                logger.error("ledgerline: unexpected write error on %s: %s", self._path, exc)
            return written, exc
        return written, None

    def _rotate_if_due(self) -> None:
        now = self._clock()
        if now < self._rotate_at_ns:
            return
        if self._fd >= 0:
            self._unsealed_previous = self._path
            try:
                self._retire_fd()  # closes the fd even when its final sync fails
            except AuditWriteError as exc:
                if exc.errno == errno.ESTALE:
                    self._unsealed_previous = None  # not our file any more: never seal what is at its path
                raise
        self._path = self._new_file_path(now)
        self._rotate_at_ns = self._next_rotation_ns(now)
        self.stats.rotations += 1

    def _open_current(self) -> None:
        assert self._path is not None
        created = not self._path.exists()
        self._fd = os.open(self._path, _OPEN_FLAGS, _FILE_MODE)
        self._identity, self._path_str = file_identity(self._fd), str(self._path)
        self._file_start = self._written  # the stream offset this file starts taking bytes at
        if created:
            fsync_directory(self._dir)
        previous, self._unsealed_previous = self._unsealed_previous, None
        if previous is not None:
            # Sealed in the background once its successor exists, so midnight never stalls a writer.
            sealer = threading.Thread(
                target=self._seal, args=(previous, self._path.name), name="ledgerline-sealer", daemon=True
            )
            self._sealers.append(sealer)
            sealer.start()

    def _retire_fd(self) -> None:
        """Sync and close the hot file (rotation, close). Only the leader calls this."""
        with self._mutex:
            while self._fd_users:  # syncs running outside the lock finish on the open fd first
                self._wait()
            fd, self._fd = self._fd, -1
        assert self._path is not None
        try:
            if self._written > self._synced:
                os.fdatasync(fd)
                self.stats.syncs += 1
            lost = file_lost(fd, self._path, self._identity)
        except OSError as exc:
            raise AuditWriteError(exc.errno, f"fdatasync of {self._path} failed: {exc.strerror}") from exc
        finally:
            os.close(fd)
        with self._mutex:
            if lost is not None:
                error = self._record_loss(self._path, lost)
                self._notify()
                raise error
            self._synced = max(self._synced, self._written)
            self._notify()

    # --- degradation --------------------------------------------------------------------------

    def _degrade(self, failure: OSError) -> StateChange:
        self.stats.degraded_episodes += 1
        self._wake_flusher.set()  # switch the flusher to retry_interval_s now, not after its sleep
        return self._episode.begin(failure, self._path, self._pending_bytes, self._spill.directory)

    def _spill_lines(self, lines: list[bytes]) -> None:
        """Append records the hot file cannot take to the fallback file, synced."""
        if self._spill.directory is None:
            return
        data = b"".join(lines)
        try:
            assert self._path is not None
            self._spill.append(self._path, data)
        except OSError as exc:
            with self._mutex:
                self._unspilled[:0] = lines
            logger.error("ledgerline: spill to %s failed too: %s", self._spill.directory, exc)
            return
        with self._mutex:
            self.stats.spilled_bytes += len(data)
            self._spilled = self._written + self._pending_bytes - sum(map(len, self._unspilled))
            self._notify()

    def _report(self, changes: list[StateChange]) -> None:
        report_changes(self.on_state_change, changes)

    def _seal(self, path: Path, next_file: str | None) -> None:
        try:
            signer, sealed_at_ns = self.signing_keys.stamp()
            seal_file(path, next_file=next_file, hmac_key=self._hmac_key, sealed_at_ns=sealed_at_ns, signing_key=signer)
            self.stats.seals += 1
        except (OSError, AuditSigningError) as exc:
            # The next open seals it (files a crash leaves unsealed are sealed on open).
            self.stats.seal_errors += 1
            logger.error("ledgerline: sealing %s failed: %s; it will be sealed when the stream reopens", path, exc)

    def _flush_loop(self) -> None:
        while not self._stop_flusher.is_set():
            interval = self._config.retry_interval_s if self.is_degraded else self._config.flush_interval_s
            self._wake_flusher.wait(interval)
            self._wake_flusher.clear()
            if self._stop_flusher.is_set():
                return
            try:
                with self._mutex:
                    lead = bool(self._pending) and not self._writing
                    if lead:
                        self._writing = True
                if lead:
                    self._drain(force_retry=True)
                if not self.is_degraded:
                    self.flush()
            except Exception:
                # The flusher must neither die nor stay silent: log, count, retry next interval.
                self.stats.flush_errors += 1
                logger.exception("ledgerline: periodic flush failed; will retry")
