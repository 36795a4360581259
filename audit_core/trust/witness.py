"""Witnesses of stream checkpoints: where a stream's tree is anchored outside the writer's files.

A ``Witness`` takes a new checkpoint together with the size of the checkpoint the writer believes
the witness holds and a consistency proof from it, as C2SP ``tlog-witness`` prescribes:

- it keeps only the latest checkpoint per origin;
- it accepts a new one only if ``old_size`` is the size it holds (else ``WitnessConflict``, carrying
  the size it holds, so the writer can send a proof from there) and the RFC 9162 consistency proof
  leads from the held root to the new one;
- it refuses a smaller tree (rollback, truncation) or a different root (split view) with
  ``WitnessRefused``.

``DirectoryWitness`` keeps the notes as files in a directory. A directory on the same disk as the
trail is for tests: whoever can rewrite the trail can rewrite it too. A real witness lives outside
the attacker's write access (another host, object-lock storage); ``CallbackWitness`` hands each
checkpoint to a function that publishes it there.

References: https://c2sp.org/tlog-witness
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from audit_core.errors import AuditError, AuditFormatError, AuditIntegrityError
from audit_core.trust.keyring import as_trusted
from audit_core.trust.stream_tree import StreamCheckpoint, read_note, verify_consistency

if TYPE_CHECKING:
    from audit_core.trust.keyring import VerifyingKeys

CHECKPOINT_FILE_SUFFIX = ".checkpoint"
TEMP_SUFFIX = ".tmp"
#: Largest note a witness reads back: a note is a few hundred bytes.
MAX_NOTE_BYTES = 64 * 1024


class WitnessError(AuditError):
    """A witness did not take a checkpoint."""


class WitnessConflict(WitnessError):
    """``old_size`` is not the size of the checkpoint the witness holds (tlog-witness: 409 Conflict)."""

    def __init__(self, origin: str, held_size: int, old_size: int) -> None:
        super().__init__(f"witness holds {origin} at tree size {held_size}, not {old_size}: "
                         f"send a consistency proof from {held_size}")
        self.held_size = held_size


class WitnessRefused(WitnessError):
    """The new checkpoint does not extend the held one: a rollback, truncation or split view."""


class Witness(Protocol):
    """Anything that takes stream checkpoints (see the module docstring for the rules)."""

    def add_checkpoint(self, note: str, old_size: int, proof: Sequence[bytes]) -> None:
        """Take ``note``, consistent with the held checkpoint of size ``old_size`` by ``proof``.

        Raises:
            WitnessConflict: the witness holds another size; retry with a proof from ``held_size``.
            WitnessRefused: the checkpoint is not consistent with the one held.
            WitnessError, OSError: anything else that kept the checkpoint from being recorded.
        """


class CallbackWitness:
    """Publishes each checkpoint through ``publish(note, old_size, proof)``: to a remote witness, a bucket..."""

    def __init__(self, publish: Callable[[str, int, Sequence[bytes]], None]) -> None:
        self._publish = publish

    def add_checkpoint(self, note: str, old_size: int, proof: Sequence[bytes]) -> None:
        self._publish(note, old_size, list(proof))


class DirectoryWitness:
    """A tlog-witness kept in a local directory: one ``<trader>.<stream>.checkpoint`` file per stream.

    Args:
        directory: Where the latest checkpoint of each stream is kept (created if missing).
        public_key: When given, only notes signed by this Ed25519 key are accepted.
        hmac_key: When given (and no public key), notes must carry the trail's HMAC line.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        public_key: VerifyingKeys | None = None,
        hmac_key: bytes | None = None,
    ) -> None:
        self.directory = Path(directory)
        self._public_key = as_trusted(public_key)  # one lookup table for every note
        self._hmac_key = hmac_key

    def path_for(self, trader_id: str, stream_id: str) -> Path:
        # Names come from a parsed origin, so they hold no separator: the path stays in the directory.
        return self.directory / f"{trader_id}.{stream_id}{CHECKPOINT_FILE_SUFFIX}"

    def held(self, trader_id: str, stream_id: str) -> StreamCheckpoint | None:
        """The checkpoint held for a stream, or None. Raises AuditFormatError/AuditIntegrityError if damaged."""
        path = self.path_for(trader_id, stream_id)
        note = read_note_file(path, missing_ok=True)
        if note is None:
            return None
        held = read_note(note, str(path), public_key=self._public_key, hmac_key=self._hmac_key)
        if (held.trader_id, held.stream_id) != (trader_id, stream_id):
            raise AuditFormatError(path, f"holds a checkpoint of {held.origin}, not of {trader_id}/{stream_id}")
        return held

    def add_checkpoint(self, note: str, old_size: int, proof: Sequence[bytes]) -> None:
        try:
            new = read_note(note, "new checkpoint", public_key=self._public_key, hmac_key=self._hmac_key)
        except (AuditFormatError, AuditIntegrityError) as exc:
            raise WitnessRefused(f"checkpoint refused: {exc}") from None
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._locked():
            held = self.held(new.trader_id, new.stream_id)
            held_size = 0 if held is None else held.size
            if new.size < held_size:
                raise WitnessRefused(f"checkpoint of {new.origin} refused: tree size {new.size} is smaller than the "
                                     f"{held_size} held (a rollback or truncation)")
            if old_size != held_size:
                raise WitnessConflict(new.origin, held_size, old_size)
            if held is not None:
                try:
                    verify_consistency(held.size, new.size, held.root, new.root, proof)
                except AuditIntegrityError as exc:
                    raise WitnessRefused(f"checkpoint of {new.origin} refused: {exc}") from None
                if held.size == new.size:
                    return  # nothing new: keep the note held
            target = self.path_for(new.trader_id, new.stream_id)
            remove_stale_temp_files(target)  # under the lock: only a killed writer's can be there
            write_atomically(target, note.encode())

    def checkpoints(self) -> list[tuple[Path, StreamCheckpoint | Exception]]:
        """Every checkpoint file in the directory, parsed; a damaged one comes back as its error."""
        found: list[tuple[Path, StreamCheckpoint | Exception]] = []
        if not self.directory.is_dir():
            return found
        for path in sorted(self.directory.glob(f"*{CHECKPOINT_FILE_SUFFIX}")):
            try:
                note = read_note_file(path)
                assert note is not None
                checkpoint = read_note(note, str(path), public_key=self._public_key, hmac_key=self._hmac_key)
                if path.name != f"{checkpoint.trader_id}.{checkpoint.stream_id}{CHECKPOINT_FILE_SUFFIX}":
                    raise AuditFormatError(path, f"holds a checkpoint of {checkpoint.origin}: the name does not match")
                found.append((path, checkpoint))
            except (OSError, AuditError) as exc:
                found.append((path, exc))
        return found

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.directory / ".witness.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def read_note_file(path: Path, *, missing_ok: bool = False) -> str | None:
    """A note file's text: not following a symlink, at most ``MAX_NOTE_BYTES``, UTF-8.

    Raises:
        AuditFormatError: not a regular file, too large, or not UTF-8.
        OSError: unreadable (missing, unless ``missing_ok``).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise
    except OSError as exc:
        raise AuditFormatError(path, f"cannot be opened as a regular file: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_NOTE_BYTES + 1)
    if len(data) > MAX_NOTE_BYTES:
        raise AuditFormatError(path, f"checkpoint is larger than {MAX_NOTE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AuditFormatError(path, f"checkpoint is not UTF-8: {exc}") from None


def remove_stale_temp_files(path: Path) -> None:
    """Remove temp files of ``write_atomically(path, ...)`` that a killed process left (never a live one's:
    the caller holds the lock that lets it write ``path``)."""
    for temp in path.parent.glob(f".{path.name}.*{TEMP_SUFFIX}"):
        if temp.is_file() and not temp.is_symlink():
            temp.unlink(missing_ok=True)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (temp file, fsync, rename, fsync directory)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)

