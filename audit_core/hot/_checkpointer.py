"""The background checkpointer: keeps a stream's tree sidecar and sends its checkpoints to a witness.

It runs in its own thread and never on the emit path: it reads back the lines the writer has put in
the stream's files (so the emit path has no hook at all), hashes them into leaves, appends those to
the sidecar and fsyncs it, makes the checkpoint note (signing it if a key is configured), replaces
the stream's local checkpoint file and hands the note, with a consistency proof from the size the
witness holds, to the witness. It does so every ``checkpoint_interval_s`` seconds, after
``checkpoint_every_records`` appends, and once more at close, after the last file is sealed.

A witness or disk failure never reaches the trading loop and never vanishes: it is counted
(``failures``), kept (``last_error``) and logged at ERROR, as degradation is; the next checkpoint
tries again with a proof from whatever the witness holds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from audit_core._layout import parse_hot_file_name, stream_checkpoint_path, stream_leaves_path
from audit_core.errors import AuditIntegrityError
from audit_core.hot._degradation import StateChange, report_changes
from audit_core.hot.anchors import read_sidecar, rebuild_stream
from audit_core.trust.merkle import HASH_SIZE, merkle_leaf_hash
from audit_core.trust.signing import KeySlot
from audit_core.trust.stream_tree import LeafSource, StreamTree, line_leaves, make_note, stream_origin
from audit_core.trust.witness import (
    DirectoryWitness,
    Witness,
    WitnessConflict,
    remove_stale_temp_files,
    write_atomically,
)

if TYPE_CHECKING:
    from audit_core.config import AuditConfig

logger = logging.getLogger("ledgerline.checkpointer")

#: How often the thread looks at the record count when ``checkpoint_every_records`` is set.
_POLL_S = 0.05


class _SidecarLeaves(LeafSource):
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def leaves(self, start: int, end: int) -> list[bytes]:
        data = os.pread(self.fd, (end - start) * HASH_SIZE, start * HASH_SIZE)
        return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


class NoCheckpoints:
    """Stream checkpoints turned off (``checkpoint_interval_s=None``): no thread, no sidecar, no witness."""

    failures = checkpoints = 0
    last_error: str | None = None

    def close(self) -> None:
        pass

    def kill(self) -> None:
        pass


class Checkpointer:
    """Checkpoints one stream in a background thread (see the module docstring)."""

    def __init__(
        self,
        config: AuditConfig,
        stream_id: str,
        list_files: Callable[[], list[Path]],
        appended: Callable[[], int],
        *,
        hmac_key: bytes | None,
        signing_keys: KeySlot | None,
        witness: Witness | None,
        report: Callable[[StateChange], None] | None = None,
    ) -> None:
        self._dir = config.hot_path
        self._report = report  # the writer's on_state_change: the emitter chains sys.checkpoint_* records
        self._trader, self._stream = config.trader_id, stream_id
        self.origin = stream_origin(config.trader_id, stream_id)
        self._interval = config.checkpoint_interval_s or 0.0
        self._every = config.checkpoint_every_records
        self._list_files, self._appended = list_files, appended
        self._hmac_key, self.witness = hmac_key, witness
        self._signing_keys = signing_keys or KeySlot(None, time.time_ns)
        self.failures = 0
        self._failing = False  # in a failure episode (reported once when it starts and once when it ends)
        self.checkpoints = 0
        self.last_error: str | None = None
        self.witnessed_size = 0  # the size the witness is believed to hold
        self.published_size = -1  # the size of the last local checkpoint note
        self.tree: StreamTree | None = None
        self._fd = -1
        self._file: Path | None = None  # the file being read, and how far
        self._offset = 0
        self._lock = threading.Lock()  # one checkpoint at a time (thread, close)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledgerline-checkpointer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and make the final checkpoint (the files are sealed by now). Never raises."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        self.checkpoint(final=True)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def kill(self) -> None:
        """Stop as SIGKILL would stop it: no final checkpoint (tests simulating a crash use this)."""
        self._stop.set()
        self._thread.join()
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _run(self) -> None:
        last_time, last_count = time.monotonic(), self._appended()
        poll = min(self._interval, _POLL_S) if self._every else self._interval
        while not self._stop.wait(poll):
            count = self._appended()
            if time.monotonic() - last_time >= self._interval or (self._every and count - last_count >= self._every):
                last_time, last_count = time.monotonic(), count
                self.checkpoint()

    def checkpoint(self, *, final: bool = False) -> None:
        """Take new lines into the tree and publish a checkpoint; failures are counted, never raised.

        The first failure of an episode and the success that ends it are also reported to the writer's
        ``on_state_change`` (``checkpoint_failed``/``checkpoint_recovered``), which the emitter chains
        as ``sys.checkpoint_failed``/``sys.checkpoint_recovered`` records, as it does for degradation;
        not at close (``final``), when the stream takes no more records: the ERROR log says it.
        """
        change = None
        with self._lock:
            try:
                if self.tree is None:
                    self._file, self._offset = None, 0
                    self._open()
                self._take_new_lines()
                size = self._size()
                if size != self.published_size or (self.witness is not None and self.witnessed_size != size):
                    self._publish()
                if self._failing:
                    self._failing = False
                    change = StateChange("checkpoint_recovered", {
                        "origin": self.origin, "failures": self.failures, "witnessed_size": self.witnessed_size})
            except Exception as exc:  # a checkpoint failure must never reach the trading loop
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.error("ledgerline: checkpoint of %s failed (%d so far): %s; the records after the last "
                             "witnessed checkpoint are not anchored", self.origin, self.failures, self.last_error)
                if not self._failing:
                    self._failing = True
                    change = StateChange("checkpoint_failed", {
                        "origin": self.origin, "error": self.last_error, "witnessed_size": self.witnessed_size})
        if change is not None and not final:
            report_changes(self._report, [change])

    def _size(self) -> int:
        return 0 if self.tree is None else self.tree.size

    def _open(self) -> None:
        """Rebuild the tree from the files and the sidecar (a crash may have left either behind)."""
        path = stream_leaves_path(self._dir, self._trader, self._stream)
        for ours in (path, stream_checkpoint_path(self._dir, self._trader, self._stream)):
            remove_stale_temp_files(ours)  # a process killed mid-replace left it; this writer holds the stream lock
        files = self._list_files()
        rebuilt = rebuild_stream(files, read_sidecar(path))
        if rebuilt.sidecar_problem is not None:
            kept = path.with_name(f"{path.name}.replaced-{time.time_ns()}")
            logger.error("ledgerline: tree sidecar %s: %s; it is kept as %s and rebuilt from the files",
                         path, rebuilt.sidecar_problem, kept.name)
            path.rename(kept)  # evidence of what the stream held: never overwritten
        data = b"".join(rebuilt.leaves)
        if not path.exists() or path.stat().st_size != len(data):
            write_atomically(path, data)  # new, rebuilt, or ending in a partial hash from a crash
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        self.tree = StreamTree(_SidecarLeaves(self._fd), len(rebuilt.leaves))
        if files:  # the last file's trailing piece is taken once it ends its line
            self._file, self._offset = files[-1], rebuilt.last_file_covered

    def _take_new_lines(self) -> None:
        """Hash the lines written since the last checkpoint into the sidecar and the tree.

        Where it has read to moves on only once the sidecar holds the new leaves; a failed or short
        sidecar write drops the tree, so the next checkpoint rebuilds it from the files.
        """
        files = self._list_files()
        current, offset = self._file, self._offset
        leaves: list[bytes] = []
        while files:
            if current is None or current not in files:
                if current is not None:
                    logger.error("ledgerline: %s disappeared before its lines were checkpointed", current)
                gone = None if current is None else parse_hot_file_name(current)
                later = [f for f in files if gone is None or _order(f) > gone.order]
                if not later:
                    break
                current, offset = later[0], 0
            with current.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
            cut = data.rfind(b"\n") + 1
            # Per-line SHA-256 holds the GIL (hashlib frees it only from 2 KiB): yield it between batches
            # so a burst never stalls the emitting thread for a whole switch interval.
            leaves += line_leaves(data[:cut], pause=_yield_gil)
            offset += cut
            following = files.index(current) + 1
            if following == len(files):
                break
            if cut < len(data):  # a later file exists: this file is final, its trailing piece a line
                leaves.append(merkle_leaf_hash(data[cut:]))
            current, offset = files[following], 0
        if leaves:
            assert self.tree is not None
            try:
                data = b"".join(leaves)
                if os.write(self._fd, data) != len(data):
                    raise OSError(f"short write to the tree sidecar of {self.origin}")
                os.fdatasync(self._fd)
            except OSError:
                os.close(self._fd)
                self._fd, self.tree = -1, None
                raise
            self.tree.extend_to(self.tree.size + len(leaves))
        self._file, self._offset = current, offset

    def _publish(self) -> None:
        assert self.tree is not None
        size = self.tree.size
        signer, signed_at_ns = self._signing_keys.stamp()
        note = make_note(self.origin, size, self.tree.root(), signing_key=signer, hmac_key=self._hmac_key,
                         signed_at_ns=signed_at_ns)
        write_atomically(stream_checkpoint_path(self._dir, self._trader, self._stream), note.encode())
        self.checkpoints += 1
        self.published_size = size
        if self.witness is None:
            return
        try:
            self.witness.add_checkpoint(note, self.witnessed_size, self.tree.consistency_proof(self.witnessed_size))
        except WitnessConflict as conflict:
            if conflict.held_size > size:
                raise AuditIntegrityError(
                    f"the witness holds {self.origin} at {conflict.held_size} line(s), the stream has only {size}: "
                    "lines the witness covers were truncated or rolled back") from None
            self.witness.add_checkpoint(note, conflict.held_size, self.tree.consistency_proof(conflict.held_size))
        self.witnessed_size = size


def _yield_gil() -> None:
    time.sleep(0)


def _order(path: Path) -> tuple[object, ...]:
    name = parse_hot_file_name(path)
    return () if name is None else name.order


class CheckpointedWriter(Protocol):
    """What the checkpointer uses of its writer."""

    stream_id: str
    stats: Any  # .records: appends so far

    def stream_files(self) -> list[Path]: ...

    def _report(self, changes: list[StateChange]) -> None: ...


def start_checkpointer(
    config: AuditConfig,
    writer: CheckpointedWriter,
    keys: tuple[bytes | None, KeySlot | None],
    witness: Witness | None,
) -> Checkpointer | NoCheckpoints:
    """The writer's checkpointer (``NoCheckpoints`` if ``checkpoint_interval_s`` is None); ``keys``: (HMAC, signing)."""
    if config.checkpoint_interval_s is None:
        return NoCheckpoints()
    if witness is None and config.witness_path is not None:
        witness = DirectoryWitness(config.witness_path)
    return Checkpointer(config, writer.stream_id, writer.stream_files, lambda: int(writer.stats.records),
                        hmac_key=keys[0], signing_keys=keys[1], witness=witness,
                        report=lambda change: writer._report([change]))
