"""Keys: key ids, the trusted-keys file and acceptance of a signature by role and window.

docs/format.md section 6 ("Key ids, roles and the trusted-keys file").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROLES = ("writer", "converter", "witness")
TRUSTED_KEYS_FORMAT = "ledgerline-trusted-keys/1"
#: The signed-note key name of stream checkpoints (section 3).
NOTE_KEY_NAME = "ledgerline"
#: An Ed25519 SubjectPublicKeyInfo is this DER prefix and the raw 32 bytes (RFC 8410 section 4).
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_ENTRY_FIELDS = {"key_id", "public_key", "roles", "not_before_ns", "not_after_ns", "comment"}
_MAX_NS = 2**63 - 1
#: A reader takes at most this much of a trusted-keys file.
TRUSTED_KEYS_LIMIT = 2**20


class KeyFileError(ValueError):
    """A trusted-keys or public-key file the auditor gave is not valid; the message names field and value."""


def key_id(public_key: bytes) -> str:
    """The key id: the first 8 bytes of SHA-256(raw public key), in hex."""
    return hashlib.sha256(public_key).digest()[:8].hex()


def note_key_id(public_key: bytes, name: str = NOTE_KEY_NAME) -> bytes:
    """The 4-byte signed-note key id: SHA-256(name || 0x0A || 0x01 || raw public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n\x01" + public_key).digest()[:4]


@dataclass(frozen=True)
class Key:
    """A key the verifier may accept a signature under."""

    key_id: str
    public_key: bytes
    roles: frozenset[str]
    not_before_ns: int | None
    not_after_ns: int | None

    @property
    def unbounded(self) -> bool:
        return self.not_before_ns is None and self.not_after_ns is None

    def holds(self, signed_at_ns: int | None) -> bool:
        """``not_before_ns <= signed_at < not_after_ns``; an unknown time only fits an unbounded window."""
        if signed_at_ns is None:
            return self.unbounded
        if self.not_before_ns is not None and signed_at_ns < self.not_before_ns:
            return False
        return self.not_after_ns is None or signed_at_ns < self.not_after_ns


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_key_entry(entry: Any, where: str) -> Key:
    """One entry of a trusted-keys file (or of a bundle's ``keys``); raises KeyFileError naming the field."""
    if not isinstance(entry, dict):
        raise KeyFileError(f"{where}: expected an object, got {entry!r:.80}")
    kid = entry.get("key_id")
    if not isinstance(kid, str) or not _HEX16.fullmatch(kid):
        raise KeyFileError(f"{where}.key_id: expected 16 lower-case hex characters, got {kid!r:.80}")
    encoded = entry.get("public_key")
    try:
        raw = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise KeyFileError(f"{where}.public_key: expected base64 of 32 bytes, got {encoded!r:.80}")
    if key_id(raw) != kid:
        raise KeyFileError(f"{where}.key_id: {kid} is not the id of its public key (expected {key_id(raw)})")
    roles = entry.get("roles")
    if (not isinstance(roles, list) or not roles
            or not all(isinstance(role, str) and role in ROLES for role in roles)):
        raise KeyFileError(f"{where}.roles: expected a non-empty list of {list(ROLES)}, got {roles!r:.80}")
    unknown = sorted(set(entry) - _ENTRY_FIELDS)
    if unknown:
        # A misspelt not_after_ns must not leave a key unbounded.
        raise KeyFileError(f"{where}: unknown field {unknown[0]!r} (expected only {sorted(_ENTRY_FIELDS)})")
    comment = entry.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise KeyFileError(f"{where}.comment: expected a string or null, got {comment!r:.80}")
    bounds = []
    for field in ("not_before_ns", "not_after_ns"):
        value = entry.get(field)
        if value is not None and (not _is_int(value) or value > _MAX_NS):
            raise KeyFileError(f"{where}.{field}: expected an integer up to 2^63 - 1 or null, got {value!r:.80}")
        bounds.append(value)
    if bounds[0] is not None and bounds[1] is not None and bounds[1] <= bounds[0]:
        raise KeyFileError(f"{where}: not_after_ns {bounds[1]} is not after not_before_ns {bounds[0]}")
    return Key(kid, raw, frozenset(roles), bounds[0], bounds[1])


def parse_key_list(entries: Any, where: str) -> list[Key]:
    if not isinstance(entries, list):
        raise KeyFileError(f"{where}: expected a list, got {entries!r:.80}")
    keys = [parse_key_entry(entry, f"{where}[{i}]") for i, entry in enumerate(entries)]
    seen: set[str] = set()
    for key in keys:
        if key.key_id in seen:
            raise KeyFileError(f"{where}: key id {key.key_id} is listed twice")
        seen.add(key.key_id)
    return keys


def load_trusted_keys(path: str | Path) -> list[Key]:
    """Read a trusted-keys file (untrusted input: every malformation is a KeyFileError naming the field)."""
    path = Path(path)
    try:
        if not path.is_file():
            raise KeyFileError(f"{path}: not a regular file")
        with path.open("rb") as stream:
            data = stream.read(TRUSTED_KEYS_LIMIT + 1)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the trusted-keys file ({exc.strerror})") from None
    if len(data) > TRUSTED_KEYS_LIMIT:
        raise KeyFileError(f"{path}: larger than {TRUSTED_KEYS_LIMIT} bytes")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise KeyFileError(f"{path}: not UTF-8 JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != TRUSTED_KEYS_FORMAT:
        got = document.get("format") if isinstance(document, dict) else document
        raise KeyFileError(f"{path}: format: expected {TRUSTED_KEYS_FORMAT!r}, got {got!r:.80}")
    if set(document) != {"format", "keys"}:
        raise KeyFileError(f"{path}: expected the fields ['format', 'keys'], got {sorted(document)}")
    if document["keys"] == []:
        raise KeyFileError(f"{path}: keys: the list is empty (no key would be trusted)")
    return parse_key_list(document["keys"], f"{path}: keys")


def public_key_bytes(text: str) -> bytes:
    """A public key given as a PEM SubjectPublicKeyInfo (what ``ledgerline keygen`` writes) or as base64 of 32 bytes."""
    body = text.strip()
    if body.startswith("-----BEGIN PUBLIC KEY-----"):
        lines = body.splitlines()
        if lines[-1].strip() != "-----END PUBLIC KEY-----":
            raise KeyFileError("public key: the PEM block has no END line")
        body = "".join(line.strip() for line in lines[1:-1])
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"public key: expected PEM or base64, got {text[:80]!r}") from None
    if len(raw) == len(_SPKI_PREFIX) + 32 and raw.startswith(_SPKI_PREFIX):
        raw = raw[len(_SPKI_PREFIX):]
    if len(raw) != 32:
        raise KeyFileError(f"public key: expected an Ed25519 key (32 raw bytes), got {len(raw)} bytes")
    return raw


def key_from_public_key(raw: bytes) -> Key:
    """A single public key given alone: trusted for every role with an unbounded window (section 6)."""
    return Key(key_id(raw), raw, frozenset(ROLES), None, None)
