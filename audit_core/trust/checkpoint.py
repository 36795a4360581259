"""C2SP checkpoints of sealed files: signed notes that state a file's tree size and Merkle root.

A signed seal is also written as ``<file>.checkpoint``, a C2SP ``tlog-checkpoint`` (a C2SP
``signed-note`` whose text is three lines), so tools of the transparency-log ecosystem can check it::

    ledgerline/<trader_id>.<stream_id>/<file name>      origin: which tree
    <records>                                            tree size, decimal
    <base64 of the 32-byte RFC 6962 root>                the seal's merkle_root
                                                         blank line
    — ledgerline <base64(key id || Ed25519 signature)>  one signature line

The signature covers the note text (the three lines, final newline included). The key id is the
first 4 bytes of SHA-256(key name || 0x0A || 0x01 || 32-byte public key), 0x01 being the Ed25519
signature type. The key name is ``ledgerline`` for every file; the specs recommend (SHOULD) that it
match the origin, but one signer seals many files, and a per-file name would give every file its own
key id.

References:
    https://c2sp.org/signed-note (signed-note.md), https://c2sp.org/tlog-checkpoint (tlog-checkpoint.md)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from audit_core.errors import AuditFormatError, AuditIntegrityError
from audit_core.trust.signing import ED25519_SIGNATURE_SIZE, raw_public_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from audit_core.trust.signing import SigningKey

#: The key name in signature lines of ledgerline checkpoints.
DEFAULT_KEY_NAME = "ledgerline"
#: signed-note: the signature type byte of Ed25519, hashed into the key id.
SIGNATURE_TYPE_ED25519 = b"\x01"
#: signed-note: a signature line starts with an em dash (U+2014) and a space.
SIGNATURE_LINE_PREFIX = "\u2014 "
#: signed-note: the key id is a big-endian uint32, the first 4 bytes of the decoded signature.
KEY_ID_SIZE = 4
ORIGIN_PREFIX = "ledgerline/"


class Checkpoint(NamedTuple):
    """The three lines of a checkpoint's note text."""

    origin: str
    tree_size: int
    root_hash: bytes


def origin_for(seal: dict[str, Any]) -> str:
    """The origin line of a seal's checkpoint: ``ledgerline/<stream>/<file>`` (no stream: ``ledgerline/<file>``)."""
    stream = seal.get("stream")
    return f"{ORIGIN_PREFIX}{stream}/{seal.get('file')}" if stream else f"{ORIGIN_PREFIX}{seal.get('file')}"


def note_key_id(key_name: str, public_key: Ed25519PublicKey) -> bytes:
    """signed-note key id: SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4]."""
    material = key_name.encode() + b"\n" + SIGNATURE_TYPE_ED25519 + raw_public_key(public_key)
    return hashlib.sha256(material).digest()[:KEY_ID_SIZE]


def verifier_key(public_key: Ed25519PublicKey, key_name: str = DEFAULT_KEY_NAME) -> str:
    """The signed-note verifier key text, ``<name>+<hex key id>+<base64(0x01 || public key)>``."""
    encoded = base64.b64encode(SIGNATURE_TYPE_ED25519 + raw_public_key(public_key)).decode()
    return f"{key_name}+{note_key_id(key_name, public_key).hex()}+{encoded}"


def checkpoint_text(seal: dict[str, Any]) -> str:
    """The note text (three lines, each ending in a newline) for a seal."""
    root = bytes.fromhex(seal["merkle_root"])
    return f"{origin_for(seal)}\n{int(seal['records'])}\n{base64.b64encode(root).decode()}\n"


def sign_checkpoint(seal: dict[str, Any], private_key: SigningKey, key_name: str = DEFAULT_KEY_NAME) -> str:
    """The signed checkpoint note of a seal: text, blank line, one Ed25519 signature line."""
    text = checkpoint_text(seal)
    signature = note_key_id(key_name, private_key.public_key()) + private_key.sign(text.encode())
    return f"{text}\n{SIGNATURE_LINE_PREFIX}{key_name} {base64.b64encode(signature).decode()}\n"


def read_checkpoint(path: Path) -> str:
    """The note in checkpoint file ``path``. AuditFormatError if it is not UTF-8; OSError if unreadable."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AuditFormatError(path, f"checkpoint is not UTF-8: {exc}") from None


def parse_checkpoint(
    note: str, source: str | os.PathLike[str] = "checkpoint"
) -> tuple[Checkpoint, str, list[tuple[str, bytes, bytes]]]:
    """Split a signed checkpoint into its fields, its signed text and its (name, key id, signature) lines.

    Args:
        note: The checkpoint's text.
        source: The file it came from, named in errors.

    Raises:
        AuditFormatError: the note or its text does not have the C2SP layout; names ``source``.
    """

    def malformed(detail: str) -> AuditFormatError:
        return AuditFormatError(source, f"checkpoint {detail}")

    if any(ord(char) < 0x20 and char != "\n" for char in note):
        raise malformed("contains a control character other than newline")
    text, separator, signature_block = note.rpartition("\n\n")
    if not separator or not signature_block.endswith("\n"):
        raise malformed("layout: expected text, a blank line and newline-terminated signature lines")
    text += "\n"
    signatures = []
    for line in signature_block[:-1].split("\n"):
        if not line.startswith(SIGNATURE_LINE_PREFIX) or line.count(" ") != 2:
            raise malformed(f"signature line {line[:80]!r} is not '— <key name> <base64>'")
        name, encoded = line[len(SIGNATURE_LINE_PREFIX) :].split(" ")
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise malformed(f"signature of {name[:80]!r} is not base64") from None
        if not name or "+" in name or len(decoded) <= KEY_ID_SIZE:
            raise malformed(f"signature line of {name[:80]!r} is malformed")
        signatures.append((name, decoded[:KEY_ID_SIZE], decoded[KEY_ID_SIZE:]))
    lines = text[:-1].split("\n")
    if (
        len(lines) < 3 or not lines[0] or not (lines[1].isascii() and lines[1].isdigit())
        or (lines[1].startswith("0") and lines[1] != "0") or len(lines[1]) > 20
    ):
        raise malformed(f"text must be origin, decimal tree size and root; got {[line[:80] for line in lines[:3]]!r}")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except (binascii.Error, ValueError):
        raise malformed(f"root {lines[2][:80]!r} is not base64") from None
    return Checkpoint(lines[0], int(lines[1]), root), text, signatures


def verify_checkpoint(
    note: str,
    public_key: Ed25519PublicKey,
    seal: dict[str, Any] | None = None,
    key_name: str = DEFAULT_KEY_NAME,
    *,
    source: str | os.PathLike[str] = "checkpoint",
) -> Checkpoint:
    """Check a signed checkpoint against the trusted key and, if given, the seal it was made from.

    Signature lines of other keys are ignored, as signed-note requires; one of the trusted key
    must verify.

    Raises:
        AuditFormatError: the note is not a C2SP checkpoint (``parse_checkpoint``); names ``source``.
        AuditIntegrityError: no signature of the key, one that does not verify, or fields that differ
            from the seal (expected vs got).
    """
    from cryptography.exceptions import InvalidSignature

    checkpoint, text, signatures = parse_checkpoint(note, source)
    wanted_id = note_key_id(key_name, public_key)
    ours = [sig for name, kid, sig in signatures if name == key_name and kid == wanted_id]
    if not ours:
        raise AuditIntegrityError(
            f"checkpoint has no signature of key {key_name}+{wanted_id.hex()}: "
            f"got {[f'{name}+{kid.hex()}' for name, kid, _ in signatures]}"
        )
    for sig in ours:
        try:
            if len(sig) != ED25519_SIGNATURE_SIZE:
                raise InvalidSignature
            public_key.verify(sig, text.encode())
        except InvalidSignature:
            raise AuditIntegrityError(
                f"checkpoint signature of key {key_name}+{wanted_id.hex()} does not match its text"
            ) from None
    if seal is not None:
        expected = (origin_for(seal), seal.get("records"), str(seal.get("merkle_root")))
        got = (checkpoint.origin, checkpoint.tree_size, checkpoint.root_hash.hex())
        for field, want, have in zip(Checkpoint._fields, expected, got, strict=True):
            if want != have:
                raise AuditIntegrityError(f"checkpoint {field}: the seal says {want!r}, the checkpoint {have!r}")
    return checkpoint
