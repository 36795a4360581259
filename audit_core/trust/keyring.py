"""The keys a verifier trusts: the trusted-keys file (docs/format.md section 6), roles and validity windows.

A verifier never trusts a key because a trail or a bundle names it: it accepts a signature only
under a key the auditor listed, for the document's role (``writer``: seals, stream checkpoints and
key-lifecycle records; ``converter``: cold manifest entries, the cold root, retention journals;
``witness``: witness cosignatures), at a signing time inside the key's window
``not_before_ns <= signed_at < not_after_ns``. A single ``--public-key`` is the same thing with every
role and an unbounded window (``TrustedKeys.from_public_key``), so there is one code path.

The file is untrusted input: it is read as a regular file of at most ``MAX_FILE_SIZE`` bytes, and
every malformation is an ``AuditFormatError`` naming the field and the value.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from audit_core import _jsonfile
from audit_core.errors import AuditConfigError, AuditFormatError, KeyTrustError
from audit_core.trust.checkpoint import DEFAULT_KEY_NAME, note_key_id
from audit_core.trust.signing import ED25519_KEY_SIZE, b64decode_strict, public_key_from_raw, raw_public_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    #: What a verifier takes: the auditor's trusted keys, or one public key (every role, no window).
    VerifyingKeys: TypeAlias = "Ed25519PublicKey | TrustedKeys"

TRUSTED_KEYS_FORMAT = "ledgerline-trusted-keys/1"
ROLES = ("writer", "converter", "witness")
#: Failure reasons (docs/format.md sections 6 and 7).
KEY_UNTRUSTED = "key_untrusted"
KEY_OUTSIDE_WINDOW = "key_outside_window"
#: A trusted-keys file lists a handful of keys; 1 MiB is thousands of them.
MAX_FILE_SIZE = 1 << 20
_ENTRY_FIELDS = {"key_id", "public_key", "roles", "not_before_ns", "not_after_ns", "comment"}
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_MAX_NS = (1 << 63) - 1


@dataclass(frozen=True)
class TrustedKey:
    """One listed key: its id, raw public key, roles and window (``None`` bounds are unbounded)."""

    key_id: str
    raw: bytes
    roles: frozenset[str]
    not_before_ns: int | None = None
    not_after_ns: int | None = None
    comment: str | None = None

    @property
    def public_key(self) -> Ed25519PublicKey:
        return public_key_from_raw(self.raw)

    @property
    def unbounded(self) -> bool:
        return self.not_before_ns is None and self.not_after_ns is None

    def holds(self, signed_at_ns: int | None) -> bool:
        """Whether a signature made at ``signed_at_ns`` (None: unknown) falls inside the window."""
        if signed_at_ns is None:
            return self.unbounded
        return (self.not_before_ns is None or self.not_before_ns <= signed_at_ns) and (
            self.not_after_ns is None or signed_at_ns < self.not_after_ns
        )

    def to_entry(self) -> dict[str, Any]:
        """The key as an entry of the trusted-keys file."""
        entry: dict[str, Any] = {
            "key_id": self.key_id,
            "public_key": base64.b64encode(self.raw).decode(),
            "roles": [role for role in ROLES if role in self.roles],
            "not_before_ns": self.not_before_ns,
            "not_after_ns": self.not_after_ns,
        }
        if self.comment is not None:
            entry["comment"] = self.comment
        return entry


def key_id_of_raw(raw: bytes) -> str:
    """The 16-hex key id of a raw 32-byte public key (docs/format.md section 6)."""
    return hashlib.sha256(raw).hexdigest()[:16]


class TrustedKeys:
    """The keys an auditor trusts, with roles and windows; ``check`` says whether a signature's key is accepted."""

    def __init__(self, keys: Iterable[TrustedKey], source: str = "trusted keys") -> None:
        self.keys: tuple[TrustedKey, ...] = tuple(keys)
        self.source = source
        self._by_id: dict[str, TrustedKey] = {}
        for index, key in enumerate(self.keys):
            if key.key_id in self._by_id:
                raise AuditFormatError(source, f"keys[{index}].key_id: {key.key_id!r} is listed twice")
            self._by_id[key.key_id] = key
        self._by_note_id: dict[bytes, list[TrustedKey]] = {}
        for key in self.keys:
            note_id = note_key_id(DEFAULT_KEY_NAME, key.public_key)
            self._by_note_id.setdefault(note_id, []).append(key)

    # --- construction ----------------------------------------------------------------------------

    @classmethod
    def from_public_key(cls, public_key: Ed25519PublicKey) -> TrustedKeys:
        """One key with every role and an unbounded window: what ``--public-key`` means."""
        raw = raw_public_key(public_key)
        return cls([TrustedKey(key_id_of_raw(raw), raw, frozenset(ROLES))], source="public key")

    @classmethod
    def from_entries(cls, entries: Sequence[Mapping[str, Any]], source: str = "trusted keys") -> TrustedKeys:
        """Keys from entries shaped like the file's ``keys`` list (untrusted: each one is checked).

        Raises:
            AuditFormatError: a malformed entry, naming ``source``, the entry's index, the field and the value.
        """
        if not isinstance(entries, list) or not entries:
            raise AuditFormatError(source, f"keys: expected a non-empty array of keys, got {_show(entries)}")
        return cls([_parse_entry(entry, index, source) for index, entry in enumerate(entries)], source)

    @classmethod
    def load(cls, path: Path | str) -> TrustedKeys:
        """The trusted-keys file at ``path`` (docs/format.md section 6).

        Raises:
            AuditConfigError: the file does not exist or cannot be read.
            AuditFormatError: not a regular file, larger than ``MAX_FILE_SIZE``, not UTF-8 JSON, or a
                malformed field (named with its value).
        """
        path = Path(path)
        document = _jsonfile.loads(_read_small_regular_file(path), path, "trusted-keys file")
        if not isinstance(document, dict):
            got = _jsonfile.type_name(document)
            raise AuditFormatError(path, f"trusted-keys file: expected a JSON object, got {got}")
        if document.get("format") != TRUSTED_KEYS_FORMAT:
            got = _show(document.get("format"))
            raise AuditFormatError(path, f"format: expected {TRUSTED_KEYS_FORMAT!r}, got {got}")
        extra = set(document) - {"format", "keys"}
        if extra:
            raise AuditFormatError(path, f"unknown field(s) {sorted(extra)}: expected only format and keys")
        return cls.from_entries(document.get("keys"), source=str(path))  # type: ignore[arg-type]

    def to_document(self) -> dict[str, Any]:
        """The trusted-keys file's JSON object for these keys."""
        return {"format": TRUSTED_KEYS_FORMAT, "keys": [key.to_entry() for key in self.keys]}

    # --- checks ----------------------------------------------------------------------------------

    def get(self, key_id: str) -> TrustedKey | None:
        return self._by_id.get(key_id)

    def check(self, key_id: str, role: str, signed_at_ns: int | None) -> Ed25519PublicKey:
        """The public key to verify a signature by ``key_id`` for ``role`` made at ``signed_at_ns``.

        Raises:
            KeyTrustError: reason ``key_untrusted`` (no listed key with that id and role) or
                ``key_outside_window`` (the signing time is outside the key's window, or unknown
                under a bounded key).
        """
        key = self._by_id.get(key_id) if isinstance(key_id, str) else None
        return self._accept([] if key is None else [key], str(key_id)[:80], role, signed_at_ns).public_key

    def for_note_key_id(self, note_id: bytes, role: str, signed_at_ns: int | None) -> Ed25519PublicKey:
        """As ``check``, for the 4-byte key id of a signed-note signature line (key name ``ledgerline``)."""
        return self._accept(self._by_note_id.get(note_id, []), note_id.hex(), role, signed_at_ns).public_key

    def note_candidates(self, note_id: bytes) -> list[TrustedKey]:
        """The listed keys whose signed-note key id is ``note_id`` (ids of 4 bytes may collide)."""
        return list(self._by_note_id.get(note_id, []))

    def _accept(self, candidates: list[TrustedKey], shown_id: str, role: str, signed_at_ns: int | None) -> TrustedKey:
        if role not in ROLES:
            raise ValueError(f"role: expected one of {ROLES}, got {role!r}")
        with_role = [key for key in candidates if role in key.roles]
        if not with_role:
            listed = "is listed, but not" if candidates else "is not listed"
            raise KeyTrustError(
                KEY_UNTRUSTED, f"key {shown_id} {listed} as a trusted {role} key in {self.source}",
                shown_id, role, signed_at_ns)
        for key in with_role:
            if key.holds(signed_at_ns):
                return key
        key = with_role[0]
        when = "signing time unknown" if signed_at_ns is None else f"signed at {signed_at_ns}"
        raise KeyTrustError(
            KEY_OUTSIDE_WINDOW,
            f"key {key.key_id} ({role}) is trusted only from {key.not_before_ns} to {key.not_after_ns} "
            f"(ns, null = unbounded) in {self.source}; {when}",
            key.key_id, role, signed_at_ns)


# --- parsing ---------------------------------------------------------------------------------------


def _read_small_regular_file(path: Path) -> bytes:
    """Its bytes; never blocks on a FIFO and never reads more than ``MAX_FILE_SIZE`` + 1 bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise AuditConfigError(f"trusted-keys file {path} does not exist") from None
    except OSError as exc:
        raise AuditConfigError(f"trusted-keys file {path} cannot be opened: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise AuditFormatError(path, "trusted-keys file: expected a regular file")
        chunks, size = [], 0
        while size <= MAX_FILE_SIZE:
            chunk = os.read(fd, MAX_FILE_SIZE + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise AuditConfigError(f"trusted-keys file {path} cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size > MAX_FILE_SIZE:
        raise AuditFormatError(path, f"trusted-keys file is larger than {MAX_FILE_SIZE} bytes")
    return b"".join(chunks)


def _parse_entry(entry: object, index: int, source: str) -> TrustedKey:
    def bad(field: str, detail: str) -> AuditFormatError:
        return AuditFormatError(source, f"keys[{index}].{field}: {detail}")

    if not isinstance(entry, Mapping):
        raise AuditFormatError(source, f"keys[{index}]: expected an object, got {_show(entry)}")
    extra = set(entry) - _ENTRY_FIELDS
    if extra:
        # a misspelt not_after_ns must not leave a key silently unbounded
        raise AuditFormatError(
            source, f"keys[{index}]: unknown field(s) {sorted(extra)}; expected {sorted(_ENTRY_FIELDS)}")
    encoded = entry.get("public_key")
    raw = b64decode_strict(encoded)
    if raw is None or len(raw) != ED25519_KEY_SIZE:
        raise bad("public_key",
                  f"expected base64 of the {ED25519_KEY_SIZE} raw bytes of an Ed25519 key, got {_show(encoded)}")
    try:
        public_key_from_raw(raw)
    except ValueError:
        raise bad("public_key", f"not an Ed25519 public key: {_show(encoded)}") from None
    key_id = entry.get("key_id")
    if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
        raise bad("key_id", f"expected 16 lowercase hex characters, got {_show(key_id)}")
    if key_id != key_id_of_raw(raw):
        raise bad("key_id", f"{key_id!r} is not the id of its public_key (expected {key_id_of_raw(raw)!r})")
    roles = entry.get("roles")
    if not isinstance(roles, list) or not roles or not all(isinstance(role, str) for role in roles):
        raise bad("roles", f"expected a non-empty array of {list(ROLES)}, got {_show(roles)}")
    unknown = [role for role in roles if role not in ROLES]
    if unknown:
        raise bad("roles", f"unknown role {_show(unknown[0])}; expected one of {list(ROLES)}")
    bounds = []
    for field in ("not_before_ns", "not_after_ns"):
        value = entry.get(field)
        if value is not None and (type(value) is not int or not 0 <= value <= _MAX_NS):
            raise bad(field, f"expected null or an integer of nanoseconds since the epoch, got {_show(value)}")
        bounds.append(value)
    not_before, not_after = bounds
    if not_before is not None and not_after is not None and not_after <= not_before:
        raise bad("not_after_ns", f"{not_after} is not after not_before_ns {not_before}: the window is empty")
    comment = entry.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise bad("comment", f"expected a string or null, got {_show(comment)}")
    return TrustedKey(key_id, raw, frozenset(roles), not_before, not_after, comment)



def _show(value: object) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else _jsonfile.type_name(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_trusted(keys: Ed25519PublicKey | TrustedKeys | None) -> TrustedKeys | None:
    """``keys`` as ``TrustedKeys``: one public key becomes ``TrustedKeys.from_public_key`` (one code path)."""
    if keys is None or isinstance(keys, TrustedKeys):
        return keys
    return TrustedKeys.from_public_key(keys)


def trusted_key_ids(keys: Ed25519PublicKey | TrustedKeys) -> str:
    """The ids of the keys a verifier trusts, comma-separated (a report's ``signing_key_id``)."""
    trusted = as_trusted(keys)
    assert trusted is not None
    return ",".join(key.key_id for key in trusted.keys)
