"""Stream checkpoint notes: parsing and checking their one signature line.

docs/format.md section 3 ("Stream trees and checkpoints") and section 6 (the ``signed-at``
extension line, acceptance by role and window). A C2SP signed note: the text lines, a blank line,
then signature lines ``— <key name> <base64(4-byte key id || signature)>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass

from spec_verifier import ed25519
from spec_verifier.keys import NOTE_KEY_NAME, Key, note_key_id

_ORIGIN = re.compile(r"ledgerline/([A-Za-z0-9][A-Za-z0-9_-]{0,63})/([A-Za-z0-9][A-Za-z0-9_-]{0,63})")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_SIGNATURE_LINE = re.compile(r"\u2014 (\S+) (\S+)")
HMAC_KEY_NAME = "ledgerline-hmac"
UNSIGNED_KEY_NAME = "ledgerline-unsigned"
_HMAC_KEY_ID_LABEL = b"ledgerline stream checkpoint key id"
KEY_NAMES = (NOTE_KEY_NAME, HMAC_KEY_NAME, UNSIGNED_KEY_NAME)


class NoteError(ValueError):
    """A note that is not a stream checkpoint in the documented layout (``checkpoint_malformed``)."""


@dataclass(frozen=True)
class Note:
    origin: str
    size: int
    root: bytes
    signed_at_ns: int | None
    key_name: str
    key_id: bytes
    signature: bytes
    text: bytes  # the signed text: every text line with its newline


def parse_origin(origin: str) -> tuple[str, str] | None:
    """``ledgerline/<trader>/<stream>`` -> (trader, stream), or None for any other origin."""
    match = _ORIGIN.fullmatch(origin)
    return (match.group(1), match.group(2)) if match else None


def parse_note(note: str) -> Note:
    """Parse a stream checkpoint note; raises NoteError saying what is wrong."""
    if not note.endswith("\n"):
        raise NoteError("the note does not end with a newline")
    text, separator, signatures = note.partition("\n\n")
    if not separator:
        raise NoteError("the note has no blank line before its signature")
    lines = text.split("\n")
    if len(lines) not in (3, 4):
        raise NoteError(f"expected 3 text lines (origin, size, root) and an optional signed-at line, got {len(lines)}")
    origin, size_text, root_text = lines[:3]
    if parse_origin(origin) is None:
        raise NoteError(f"origin {origin[:80]!r} is not ledgerline/<trader>/<stream>")
    if not _DECIMAL.fullmatch(size_text):
        raise NoteError(f"tree size {size_text[:80]!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError):
        root = b""
    if len(root) != 32:
        raise NoteError(f"root {root_text[:80]!r} is not base64 of 32 bytes")
    signed_at = None
    if len(lines) == 4:
        match = re.fullmatch(r"signed-at (0|[1-9][0-9]*)", lines[3])
        if not match:
            raise NoteError(f"extension line {lines[3][:80]!r} is not 'signed-at <nanoseconds>'")
        signed_at = int(match.group(1))
    # C2SP signed notes may carry other signatures (cosignatures): lines of other key names are ignored.
    ours = []
    for line in signatures[:-1].split("\n"):
        match = _SIGNATURE_LINE.fullmatch(line)
        if not match:
            raise NoteError(f"signature line {line[:80]!r} is not '\u2014 <name> <base64>'")
        if match.group(1) in KEY_NAMES:
            ours.append(match)
    if len(ours) != 1:
        raise NoteError(f"expected exactly one signature line named one of {list(KEY_NAMES)}, got {len(ours)}")
    match = ours[0]
    try:
        blob = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise NoteError("the signature is not base64") from None
    if len(blob) < 5:
        raise NoteError("the signature is shorter than a key id")
    return Note(origin, int(size_text), root, signed_at, match.group(1), blob[:4], blob[4:],
                (text + "\n").encode("utf-8"))


@dataclass(frozen=True)
class SignatureResult:
    """What a note's signature line proved.

    ``failure`` is a reason code or None; ``key`` the trusted key that verified an Ed25519 line;
    ``authenticated`` whether the note is vouched for (a trusted key, or the trail's HMAC key);
    ``checked`` False when nothing could be checked.
    """

    failure: str | None
    message: str
    key: Key | None = None
    authenticated: bool = False
    checked: bool = True


def check_signature(note: Note, keys: list[Key] | None, bundle_keys: list[Key], *, hmac_key: bytes | None,
                    role: str = "writer") -> SignatureResult:
    """Check the note's signature line (section 7, "Signature").

    ``keys`` are the auditor's trusted keys (None when none were given: then the bundle's own
    ``bundle_keys`` are tried, by signed-note key id only, and nothing is trusted).
    """
    if note.key_name == NOTE_KEY_NAME:
        if keys is None:
            candidates = [key for key in bundle_keys if note_key_id(key.public_key) == note.key_id]
            if not candidates:
                return SignatureResult(None, "no trusted keys given and no bundle key has signed-note key id "
                                       f"{note.key_id.hex()}: not checked", checked=False)
            if not any(ed25519.verify(key.public_key, note.text, note.signature) for key in candidates):
                return SignatureResult("signature_invalid", "the Ed25519 signature does not verify under the "
                                       "bundle's key " + ", ".join(key.key_id for key in candidates))
            return SignatureResult(None, "verified only under a key the bundle itself lists: not trusted")
        candidates = [key for key in keys if role in key.roles and note_key_id(key.public_key) == note.key_id]
        if not candidates:
            return SignatureResult("key_untrusted", f"no trusted {role} key has signed-note key id "
                                   f"{note.key_id.hex()}")
        verified = [key for key in candidates if ed25519.verify(key.public_key, note.text, note.signature)]
        if not verified:
            return SignatureResult("signature_invalid", "the Ed25519 signature does not verify under key "
                                   + ", ".join(key.key_id for key in candidates))
        in_window = [key for key in verified if key.holds(note.signed_at_ns)]
        if not in_window:
            when = "signing time unknown" if note.signed_at_ns is None else f"signed at {note.signed_at_ns}"
            return SignatureResult("key_outside_window", f"key {verified[0].key_id} does not hold the note's "
                                   f"signing time ({when})")
        return SignatureResult(None, f"signed by trusted key {in_window[0].key_id}", in_window[0], True)
    if note.key_name == HMAC_KEY_NAME:
        if hmac_key is None:
            return SignatureResult(None, "an HMAC note: not checked without the trail key", checked=False)
        expected_id = hmac.new(hmac_key, _HMAC_KEY_ID_LABEL, hashlib.sha256).digest()[:4]
        expected = hmac.new(hmac_key, note.text, hashlib.sha256).digest()
        if note.key_id != expected_id or not hmac.compare_digest(note.signature, expected):
            return SignatureResult("signature_invalid", "the HMAC note does not verify under the trail key")
        return SignatureResult(None, "an HMAC note, checked with the trail key", None, True)
    if note.key_id != b"\0\0\0\0" or note.signature != hashlib.sha256(note.text).digest():
        return SignatureResult("signature_invalid", "the unsigned note's SHA-256 does not match its text")
    return SignatureResult(None, "an unsigned note: proves nothing about who wrote it")
