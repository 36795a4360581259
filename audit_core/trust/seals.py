"""Seals: what closes a hot file (count, hashes, RFC 6962 Merkle root, signature), and THE seal check.

``seal_file`` writes a file's seal sidecar; ``check_seal`` compares a file with its seal and
``check_seal_copy`` authenticates a seal wherever it is found (the hot sidecar, a cold manifest's
copy): its ``seal_checksum`` (HMAC-SHA256 with the trail's key) and, with a trusted key, its Ed25519
signature and C2SP checkpoint. Hot ``verify``, the converter's fast path, cold verification and
stream resumption all call these.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit_core import _jsonfile
from audit_core._layout import checkpoint_path, parse_hot_file_name, seal_path
from audit_core.errors import AuditFormatError, AuditIntegrityError
from audit_core.trust import checkpoint, documents
from audit_core.trust.keyring import as_trusted
from audit_core.trust.merkle import MerkleTree, leaf_hashes, merkle_leaf_hash
from audit_core.trust.record import RecordFields, _slice, split_record
from audit_core.trust.report import FailureKind, VerificationFailure, VerificationReport

if TYPE_CHECKING:
    from audit_core.trust.keyring import VerifyingKeys
    from audit_core.trust.signing import SigningKey


SEAL_FORMAT = "ledgerline-seal/1"


_SEAL_MODE = 0o440  # sealed files and their seals lose their write bits


#: A seal is an authenticated document (``documents.py``) with this checksum field.
SEAL_CHECKSUM = "seal_checksum"


#: Leaves hashed per block before they join the Merkle tree (``MerkleTree``'s block: one reduction each).
_LEAF_BLOCK = 4096
_NO_NEWLINE = slice(None, -1)  # a Merkle leaf is its line without the newline


@dataclass
class FileDigest:
    """What a seal says about a file, computed in one pass over its bytes."""

    lines: int = 0
    size: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    first_hash: str | None = None
    last_hash: str | None = None
    file_sha256: str = ""
    merkle_root: str = ""
    #: Not a seal field: whether the lines hold ``record.KEY_RECORD_MARKER`` (``chain.verify_file`` notes it).
    key_records: bool = False
    #: False: ``file_sha256`` and ``merkle_root`` are not computed (left ""), an authenticated seal
    #: vouches for them (``CheckedSeal.vouches``); ``check_seal`` then does not compare them.
    hashed: bool = True
    _sha: Any = field(default_factory=hashlib.sha256, repr=False)
    _tree: MerkleTree = field(default_factory=MerkleTree, repr=False)
    _leaves: list[bytes] = field(default_factory=list, repr=False)  # hashed, joining the tree a block at a time

    def add_line(self, line: bytes, record: RecordFields | None) -> None:
        self._sha.update(line)
        self._leaves.append(merkle_leaf_hash(line[:-1] if line.endswith(b"\n") else line))
        if len(self._leaves) == _LEAF_BLOCK:
            self._tree.add_leaf_hashes(self._leaves)
            self._leaves = []
        self.lines += 1
        self.size += len(line)
        if record is not None:
            if self.first_sequence is None:
                self.first_sequence, self.first_hash = record.sequence, record.checksum
            self.last_sequence, self.last_hash = record.sequence, record.checksum

    def add_lines(self, lines: list[bytes], data: bytes) -> None:
        """``add_line`` of each of ``lines`` (whole lines, newlines in: ``read_chunks``'); ``data`` is
        their bytes. The record fields are the caller's to set."""
        if self.hashed:
            self._sha.update(data)
            self._leaves += leaf_hashes(map(_slice, lines, repeat(_NO_NEWLINE)))
            self._tree.add_leaf_hashes(self._leaves)
            self._leaves = []
        self.lines += len(lines)
        self.size += len(data)

    def finish(self) -> FileDigest:
        if not self.hashed:
            return self
        self.file_sha256 = self._sha.hexdigest()
        self._tree.add_leaf_hashes(self._leaves)
        self._leaves = []
        self.merkle_root = self._tree.root()
        return self

    def seal_fields(self) -> dict[str, Any]:
        return {
            "records": self.lines,
            "file_size": self.size,
            "first_sequence": self.first_sequence,
            "last_sequence": self.last_sequence,
            "first_hash": self.first_hash,
            "last_hash": self.last_hash,
            "file_sha256": self.file_sha256,
            "merkle_root": self.merkle_root,
        }


def digest_file(path: Path) -> FileDigest:
    """Count, sequence range, hashes, SHA-256 and Merkle root of a hot file.

    The range is that of the first and the last line that are records (``split_record``); lines that
    are not (torn) count and are hashed like any other. Hashed a chunk at a time, and only the lines
    it takes to find the first and the last record are parsed: a sealer runs beside the writer at
    every rotation, and parsing each line of a day's file in Python held the GIL for 7 us a line
    (a NautilusTrader backtest's event loop stalled 40-65 ms at each midnight for a 7k-record day).
    """
    digest = FileDigest()
    last: RecordFields | None = None
    for lines, data in read_chunks(path):
        if not data.endswith(b"\n"):  # a torn last line (no newline): hashed, never a record
            digest.add_line(data, None)
            continue
        digest.add_lines(lines, data)
        if digest.first_sequence is None:
            first = _first_record(lines)
            if first is not None:
                digest.first_sequence, digest.first_hash = first.sequence, first.checksum
        last = _first_record(reversed(lines)) or last
    if last is not None:
        digest.last_sequence, digest.last_hash = last.sequence, last.checksum
    return digest.finish()


def _first_record(lines: Iterable[bytes]) -> RecordFields | None:
    """The first of ``lines`` (whole lines) that is a record, as ``split_record`` reads it."""
    for line in lines:
        try:
            return split_record(line)
        except ValueError:
            continue
    return None


def seal_file(
    path: Path,
    *,
    next_file: str | None = None,
    hmac_key: bytes | None = None,
    sealed_at_ns: int = 0,
    signing_key: SigningKey | None = None,
) -> dict[str, Any]:
    """Write ``path``'s seal sidecar and drop the write bits of both. Returns the seal.

    The seal is written to a temporary name, synced and renamed, so it is whole or absent.
    ``next_file`` names the stream's following file, so deleting that file is detectable.
    ``seal_checksum`` covers the seal itself (HMAC-SHA256 with a key: unforgeable without it).
    With ``signing_key`` the seal gets a ``signature`` (Ed25519 over its canonical bytes without
    ``signature`` and ``seal_checksum``) and a C2SP checkpoint ``<file>.checkpoint`` is written first.
    """
    name = parse_hot_file_name(path)
    seal: dict[str, Any] = {
        "format": SEAL_FORMAT,
        "file": path.name,
        "stream": name.stream_key if name else None,
        **digest_file(path).seal_fields(),
        "next_file": next_file,
        "sealed_at_ns": sealed_at_ns,
    }
    if signing_key is not None:
        _write_read_only(checkpoint_path(path), checkpoint.sign_checkpoint(seal, signing_key).encode())
    seal = documents.authenticate(seal, SEAL_CHECKSUM, hmac_key, signing_key)
    _write_read_only(seal_path(path), json.dumps(seal, indent=1).encode() + b"\n")
    os.chmod(path, _SEAL_MODE)
    fsync_directory(path.parent)
    return seal


def _write_read_only(target: Path, data: bytes) -> None:
    """Write ``data`` to a temporary name, sync it, drop its write bits and rename it to ``target``."""
    temporary = target.with_name(target.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)  # a read-only leftover of a crash between chmod and rename
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(temporary, _SEAL_MODE)
    os.replace(temporary, target)


#: The fields ``seal_file`` writes and the JSON types each may hold; ``signature`` is there when signed.
SEAL_FIELDS: dict[str, tuple[type, ...]] = {
    "format": (str,), "file": (str,), "stream": (str, type(None)), "records": (int,), "file_size": (int,),
    "first_sequence": (int, type(None)), "last_sequence": (int, type(None)), "first_hash": (str, type(None)),
    "last_hash": (str, type(None)), "file_sha256": (str,), "merkle_root": (str,), "next_file": (str, type(None)),
    "sealed_at_ns": (int,), "seal_checksum": (str,),
}


_OPTIONAL_SEAL_FIELDS: dict[str, tuple[type, ...]] = {"signature": (dict,)}


_PLAIN = (str, int, float, bool, type(None))


def read_seal(path: Path) -> dict[str, Any] | None:
    """The seal of hot file ``path``, or None if it has none.

    Raises:
        AuditFormatError: the seal is not JSON, not a ``ledgerline-seal/1`` object, or a field
            has the wrong type (``check_seal_format``); names the seal file.
        OSError: the seal exists but cannot be read.
    """
    target = seal_path(path)
    if not target.exists():
        return None
    return parse_seal(target.read_bytes(), target)


def parse_seal(data: bytes, where: Path) -> dict[str, Any]:
    """The seal in ``data``, the bytes of seal file ``where``: parsed and its form checked (``read_seal``).

    Raises:
        AuditFormatError: as ``read_seal``; names ``where``.
    """
    seal = _jsonfile.loads_object(data, where, "seal")
    check_seal_format(seal, where)
    return seal


def check_seal_format(seal: Any, where: Path | str, name: str = "seal") -> None:
    """Check that ``seal`` is a flat ``ledgerline-seal/1`` object with a value of the right type in every field.

    Only the form is checked here; whether the values are true of the file is ``verify``'s job.
    Fields other than ``SEAL_FIELDS`` may be present but must hold plain values, not arrays or objects;
    ``signature`` is an object of plain values (``signing.verify_seal_signature`` checks what they say).

    Raises:
        AuditFormatError: names ``where`` and the field, with the type expected and the one found.
    """
    if not isinstance(seal, dict):
        raise AuditFormatError(where, f"{name}: expected a JSON object, got {_jsonfile.type_name(seal)}")
    if seal.get("format") != SEAL_FORMAT:
        raise AuditFormatError(where, f"{name}: format {seal.get('format')!r}, expected {SEAL_FORMAT!r}")
    for key, value in seal.items():
        kinds = SEAL_FIELDS.get(key) or _OPTIONAL_SEAL_FIELDS.get(key) or _PLAIN
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            expected = " or ".join(_jsonfile.type_name(kind()) if kind is not type(None) else "null" for kind in kinds)
            raise AuditFormatError(
                where, f"{name} field {key!r}: expected {expected}, got {_jsonfile.type_name(value)} {value!r:.40}"
            )
        if isinstance(value, dict) and not all(isinstance(item, _PLAIN) for item in value.values()):
            raise AuditFormatError(
                where, f"{name} field {key!r}: expected an object of plain values, got {value!r:.40}"
            )
    missing = [key for key in SEAL_FIELDS if key not in seal]
    if missing:
        raise AuditFormatError(where, f"{name} lacks field(s) {', '.join(missing)}")


def seal_signed_bytes(seal: dict[str, Any]) -> bytes:
    """The bytes a seal's Ed25519 ``signature`` covers: the canonical seal without signature and checksum."""
    return documents.signed_bytes(seal, SEAL_CHECKSUM)


def fsync_directory(directory: Path) -> None:
    """Make a new or renamed file's name durable: its directory entry is synced."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: The seal fields an authenticated seal vouches for when the chain reaches its last hash (``CheckedSeal.vouches``).
_VOUCHED_FIELDS = frozenset({"file_sha256", "merkle_root"})


@dataclass
class CheckedSeal:
    """A hot file's seal, read and authenticated (``open_seal``) before the file is compared with it."""

    seal: dict[str, Any] | None  # None: no seal, or an unreadable one (``failures`` says so)
    failures: list[VerificationFailure]  # what is wrong with the seal document itself, not yet reported
    #: Verified with a key the verifier holds: its HMAC ``seal_checksum`` with the trail's key, or its
    #: Ed25519 signature (and checkpoint) with a trusted key; nothing about the document failed.
    authenticated: bool

    def vouches(self, deep: bool) -> bool:
        """Whether this seal's ``merkle_root`` and ``file_sha256`` may stand without being recomputed.

        Only an authenticated seal, and not when ``deep`` asks for them. Why that is sound: every
        byte of a record line is either its body or fixed by its checksum (``record.build_line``),
        the body holds the previous record's checksum (``prev_hash``), and the checksum is a
        SHA-256 (or HMAC) of the body. So the authenticated ``last_hash``, with the chain checked
        unbroken from the sealed ``first_hash`` over exactly ``records`` lines and the sealed
        sequence range, fixes every line of the file; and ``clean_file`` accepts a file only if it
        is nothing but such lines (every line a whole current-format record ending with its newline,
        no torn last line), whose bytes add up to the sealed ``file_size``. The root and file hash
        are functions of those bytes, so the key holder who signed them vouches for them. ``check_seal``
        takes them from the seal only when every other claim of it holds (file name, count, size,
        first and last sequence and hash), else computes them. What this does not catch is a sealer
        that signed a wrong root: ``deep`` recomputes to catch that.
        """
        return self.authenticated and not deep


def open_seal(
    path: Path, hmac_key: bytes | None, public_key: VerifyingKeys | None = None
) -> CheckedSeal:
    """Read hot file ``path``'s seal and check the document (``check_seal_copy``, then its checkpoint)."""
    try:
        seal = read_seal(path)
    except (OSError, ValueError) as exc:
        return CheckedSeal(None, [VerificationFailure(str(path), 0, None, FailureKind.SEAL_INVALID, str(exc))], False)
    if seal is None:
        return CheckedSeal(None, [], False)
    failures = _seal_document_failures(path, seal, hmac_key, public_key)
    return CheckedSeal(seal, failures, not failures and (hmac_key is not None or public_key is not None))


def check_seal(
    path: Path,
    digest: FileDigest,
    is_newest: bool,
    stream_names: set[str],
    hmac_key: bytes | None,
    report: VerificationReport,
    public_key: VerifyingKeys | None = None,
    checked: CheckedSeal | None = None,
) -> None:
    """Compare a file with its seal; a file that is not its stream's newest must have one.

    ``checked``: the seal as ``open_seal`` read it (default: read now). A digest without hashes
    (``FileDigest.hashed`` false) takes them from the seal if it is authenticated and its every other
    claim is what the file holds (then ``report.vouched`` lists the file); otherwise they are
    computed here and compared like the rest.
    """
    where = str(path)
    checked = open_seal(path, hmac_key, public_key) if checked is None else checked
    seal = checked.seal
    if seal is None:
        report.failures += checked.failures
        if not checked.failures and not is_newest and parse_hot_file_name(path) is not None:
            report.failures.append(VerificationFailure(
                where, 0, digest.last_sequence, FailureKind.SEAL_MISSING,
                "a file followed by later files of its stream must be sealed; its seal is missing",
            ))
        return
    report.sealed_files += 1
    report.failures += checked.failures
    expected = digest.seal_fields()
    if not digest.hashed:
        claims = {key: value for key, value in expected.items() if key not in _VOUCHED_FIELDS}
        if checked.authenticated and seal.get("file") == path.name and all(
                seal.get(key) == value for key, value in claims.items()):
            expected = claims
            report.vouched.append(where)
        else:  # the chain does not end where the seal says: its hashes vouch for nothing, compare them
            hashed = digest_file(path)
            expected.update(file_sha256=hashed.file_sha256, merkle_root=hashed.merkle_root)
    for key, value in expected.items():
        if seal.get(key) != value:
            report.failures.append(VerificationFailure(
                where, digest.lines, digest.last_sequence, FailureKind.SEAL_MISMATCH,
                f"seal says {key}={seal.get(key)!r}, the file has {value!r}",
            ))
    if seal.get("file") != path.name:
        report.failures.append(VerificationFailure(
            where, 0, None, FailureKind.SEAL_MISMATCH, f"seal names file {seal.get('file')!r}, not {path.name!r}",
        ))
    next_file = seal.get("next_file")
    if next_file is not None and not isinstance(next_file, str):
        report.failures.append(VerificationFailure(
            where, 0, None, FailureKind.SEAL_INVALID, f"seal's next_file {next_file!r} is not a file name",
        ))
    elif next_file is not None and next_file not in stream_names and not (path.parent / next_file).exists():
        report.failures.append(VerificationFailure(
            where, digest.lines, digest.last_sequence, FailureKind.FILE_MISSING,
            f"the seal names the stream's next file {next_file!r}, which is missing",
        ))


_SEAL_PROBLEM_KINDS = {
    documents.ProblemKind.CHECKSUM: FailureKind.SEAL_INVALID,
    documents.ProblemKind.SIGNATURE_MISSING: FailureKind.SIGNATURE_MISSING,
    documents.ProblemKind.SIGNATURE_INVALID: FailureKind.SIGNATURE_INVALID,
    documents.ProblemKind.KEY_UNTRUSTED: FailureKind.KEY_UNTRUSTED,
    documents.ProblemKind.KEY_OUTSIDE_WINDOW: FailureKind.KEY_OUTSIDE_WINDOW,
}


def check_seal_copy(
    seal: dict[str, Any],
    where: str,
    name: str,
    hmac_key: bytes | None = None,
    public_key: VerifyingKeys | None = None,
) -> list[VerificationFailure]:
    """The seal check of ``verify``: its ``seal_checksum`` and, with trusted keys, its signature.

    Serves a hot file's seal and the copies of it elsewhere (a cold manifest entry's ``seal``).

    Args:
        seal: The parsed seal.
        where: The file the failures are reported against.
        name: How the messages name the seal (``x.jsonl.seal``, ``manifest x.jsonl.json: seal copy``).
        hmac_key: The trail's HMAC key; None checks a plain SHA-256.
        public_key: The trusted keys (or one key); with them the seal must carry a valid signature of
            a key trusted as a ``writer`` at its ``sealed_at_ns``.
    """
    problems = documents.check_document(seal, SEAL_CHECKSUM, hmac_key, public_key, what="seal",
                                        role="writer", signed_at_field="sealed_at_ns")
    return [VerificationFailure(where, 0, None, _SEAL_PROBLEM_KINDS[p.kind], f"{name}: {p}") for p in problems]


def _seal_document_failures(
    path: Path,
    seal: dict[str, Any],
    hmac_key: bytes | None,
    public_key: VerifyingKeys | None,
) -> list[VerificationFailure]:
    """The seal's own checksum and (with trusted keys) signature, then its checkpoint, if any."""
    where = str(path)
    failures = check_seal_copy(seal, where, seal_path(path).name, hmac_key, public_key)
    note = checkpoint_path(path)
    signature_problems = [f for f in failures if f.kind is not FailureKind.SEAL_INVALID]
    if public_key is None or signature_problems or not note.exists():
        return failures
    trusted = as_trusted(public_key)
    assert trusted is not None
    signer = trusted.get(str(seal[documents.SIGNATURE_FIELD]["key_id"]))  # the key that verified the seal
    assert signer is not None
    try:
        checkpoint.verify_checkpoint(checkpoint.read_checkpoint(note), signer.public_key, seal, source=note)
    except AuditFormatError as exc:
        failures.append(VerificationFailure(exc.path, 0, None, FailureKind.UNREADABLE_FILE, str(exc)))
    except (AuditIntegrityError, OSError, ValueError) as exc:
        failures.append(VerificationFailure(where, 0, None, FailureKind.SIGNATURE_INVALID, str(exc)))
    return failures


def read_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from handle


#: Bytes ``read_chunks`` reads at a time: bounds memory (a chunk and what is sliced from it), large
#: enough that the per-chunk costs vanish (about 200 lines), and under glibc's mmap threshold (128 KiB):
#: a larger block is mapped fresh and faulted in page by page on every read (reading and cutting 12
#: hot files, when lines were cut by ``bytes.split``: 0.5-0.6 us a line in 64 KiB blocks, 1.0 in 256
#: KiB and 1.1-1.2 in 1 MiB ones, 25,000-40,000 minor faults where 64 KiB had none).
CHUNK_BYTES = 64 << 10


def read_chunks(path: Path) -> Iterator[tuple[list[bytes], bytes]]:
    """The file's whole lines (each with its newline), a chunk at a time, each with its chunk's bytes.

    Bytes after the last newline (a torn last line) come last, as a chunk of their own whose bytes do
    not end with a newline. A block is cut into lines once, by ``BytesIO.readlines`` (memchr: 0.06 us
    a line of a hot file, where ``bytes.split``, a byte-by-byte loop in CPython 3.11, took 0.18), and
    the chunk's bytes come with them, not joined again. Only ``\n`` ends a line (``bytes.splitlines``
    would also cut at ``\r``, and a line the writer never wrote would look like two records).
    """
    pending: list[bytes] = []  # bytes of a line not ended yet (it may span several blocks)
    with path.open("rb", buffering=0) as handle:
        while block := handle.read(CHUNK_BYTES):
            cut = block.rfind(b"\n") + 1
            if not cut:
                pending.append(block)
                continue
            data = block if cut == len(block) else block[:cut]
            if pending:
                data = b"".join((*pending, data))
            pending = [block[cut:]] if cut < len(block) else []
            yield io.BytesIO(data).readlines(), data
    if pending:
        tail = b"".join(pending)
        yield [tail], tail
