"""Key-lifecycle records in the hot log: rotation and revocation (docs/format.md section 6.1).

A **rotation** record (``sys.key_rotation``) is written by the stream's writer when it changes its
signing key; it carries an **endorsement**: the old key's Ed25519 signature over
``rotation_message`` (the stream's origin, both key ids, the new public key and the rotation time),
so only the holder of the old key can introduce a successor. A **revocation** record
(``sys.key_revocation``) states that a key is not valid from ``not_after_ns`` on.

These records are evidence, not trust: a verifier takes its trust from the auditor's trusted-keys
file. It checks every rotation's endorsement under the old key the record names, reports the key
history, and ``draft_trusted_keys`` turns the history into a trusted-keys file for the auditor to
review, so nobody writes windows by hand.
"""

from __future__ import annotations

import base64
import json
import mmap
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit_core._layout import parse_hot_file_name
from audit_core.trust.keyring import TrustedKey, TrustedKeys, key_id_of_raw
from audit_core.trust.record import KEY_RECORD_MARKER, parse_object
from audit_core.trust.signing import (
    ED25519_KEY_SIZE,
    ED25519_SIGNATURE_SIZE,
    b64decode_strict,
    key_id,
    public_key_from_raw,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from audit_core.trust.signing import SigningKey

ROTATION_EVENT = "sys.key_rotation"
REVOCATION_EVENT = "sys.key_revocation"
#: The ``source`` of key-lifecycle records.
KEY_RECORD_SOURCE = "ledgerline.keys"
_MARKER = KEY_RECORD_MARKER  # only lines holding it are parsed


def rotation_message(origin: str, old_key_id: str, new_key_id: str, new_public_key: str, rotated_at_ns: int) -> bytes:
    """The bytes the old key signs to endorse the new one (docs/format.md section 6.1)."""
    return (
        "ledgerline key rotation v1\n"
        f"origin {origin}\n"
        f"old {old_key_id}\n"
        f"new {new_key_id}\n"
        f"new-public-key {new_public_key}\n"
        f"at {rotated_at_ns}\n"
    ).encode()


def rotation_payload(origin: str, old: SigningKey, new: SigningKey, rotated_at_ns: int) -> dict[str, Any]:
    """The payload of a ``sys.key_rotation`` record, endorsed by ``old`` (which signs here)."""
    from audit_core.trust.signing import raw_public_key

    old_public = base64.b64encode(raw_public_key(old.public_key())).decode()
    new_public = base64.b64encode(raw_public_key(new.public_key())).decode()
    old_id, new_id = key_id(old.public_key()), key_id(new.public_key())
    endorsement = old.sign(rotation_message(origin, old_id, new_id, new_public, rotated_at_ns))
    return {
        "origin": origin,
        "old_key_id": old_id,
        "old_public_key": old_public,
        "new_key_id": new_id,
        "new_public_key": new_public,
        "rotated_at_ns": rotated_at_ns,
        "endorsement": base64.b64encode(endorsement).decode(),
    }


@dataclass(frozen=True)
class KeyEvent:
    """A rotation or revocation record found in a hot file; ``problem`` says why it does not hold."""

    kind: str  # "rotation" or "revocation"
    stream: str  # <trader>.<stream>
    file: Path
    sequence: int | None
    payload: dict[str, Any]
    problem: str | None = None

    @property
    def at_ns(self) -> int:
        value = self.payload.get("rotated_at_ns" if self.kind == "rotation" else "not_after_ns")
        return value if type(value) is int else 0

    def describe(self) -> str:
        where = f"{self.file.name}, sequence {self.sequence}"
        if self.kind == "rotation":
            text = (f"stream {self.stream}: key {self.payload.get('old_key_id')} -> {self.payload.get('new_key_id')} "
                    f"at {self.payload.get('rotated_at_ns')} ({where})")
        else:
            text = (f"stream {self.stream}: key {self.payload.get('key_id')} revoked from "
                    f"{self.payload.get('not_after_ns')}: {self.payload.get('reason')!r} ({where})")
        return text if self.problem is None else f"{text}: INVALID, {self.problem}"


@dataclass
class KeyHistory:
    """Every key-lifecycle record under a path, in stream and file order."""

    events: list[KeyEvent] = field(default_factory=list)

    @property
    def problems(self) -> list[KeyEvent]:
        return [event for event in self.events if event.problem is not None]

    def lines(self) -> list[str]:
        return [event.describe() for event in self.events]


def read_key_history(files: Iterable[Path]) -> KeyHistory:
    """The key-lifecycle records of ``files`` (hot files in stream order), each rotation checked.

    A rotation holds when its payload is well formed, ``old_key_id``/``new_key_id`` are the ids of
    the public keys it carries, its ``origin`` is its stream's, its endorsement verifies under the
    old key, and its old key is the key the stream's previous rotation introduced (if any).
    Only lines that name a ``sys.key_*`` event type are parsed; the chain and seals of the files
    are ``verify``'s business.
    """
    history = KeyHistory()
    current: dict[str, str] = {}
    for path in files:
        name = parse_hot_file_name(path)
        stream = name.stream_key if name else path.name
        for line in _marked_lines(path):
            record = parse_object(line)
            if record is None or record.get("event_type") not in (ROTATION_EVENT, REVOCATION_EVENT):
                continue
            payload = record.get("payload")
            payload = payload if isinstance(payload, dict) else {}
            sequence = record.get("sequence") if type(record.get("sequence")) is int else None
            if record["event_type"] == ROTATION_EVENT:
                problem = _rotation_problem(payload, stream, current.get(stream))
                if problem is None:
                    current[stream] = str(payload["new_key_id"])
                history.events.append(KeyEvent("rotation", stream, path, sequence, payload, problem))
            else:
                problem = _revocation_problem(payload)
                history.events.append(KeyEvent("revocation", stream, path, sequence, payload, problem))
    return history


def _marked_lines(path: Path) -> list[bytes]:
    """The lines of ``path`` that contain the key-record marker, found without reading the file into memory."""
    try:
        with path.open("rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                return []
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                lines, at = [], data.find(_MARKER)
                while at >= 0:
                    start = data.rfind(b"\n", 0, at) + 1
                    end = data.find(b"\n", at)
                    end = len(data) if end < 0 else end
                    lines.append(data[start:end])
                    at = data.find(_MARKER, end)
                return lines
    except (OSError, ValueError):
        return []  # verify reports unreadable files


def current_key_problem(files: Iterable[Path], signing_key_id: str) -> str | None:
    """Why a writer must not sign its stream with ``signing_key_id`` now, or None.

    The stream's last valid rotation introduced another key (the configuration still names the old
    one: after a restart the writer would sign with a key the auditor's file closes), or the key
    is revoked, from any time (from a later one it would go on signing past the end of its window).
    """
    history = read_key_history(files)
    rotations = [event for event in history.events if event.kind == "rotation" and event.problem is None]
    if rotations and rotations[-1].payload["new_key_id"] != signing_key_id:
        last = rotations[-1]
        return (f"signing key {signing_key_id} is not the stream's current key: {last.describe()}; configure "
                f"key {last.payload['new_key_id']} (a key changes only by a rotation its predecessor endorses)")
    for event in history.events:
        if event.kind == "revocation" and event.problem is None and event.payload["key_id"] == signing_key_id:
            return f"signing key {signing_key_id} is revoked: {event.describe()}; rotate to a new key first"
    return None


def draft_trusted_keys(
    history: KeyHistory, initial_key: Ed25519PublicKey, *, converter_keys: Iterable[Ed25519PublicKey] = ()
) -> TrustedKeys:
    """A trusted-keys file drafted from a trail's key history, for the auditor to review.

    The initial key is trusted as ``writer`` from the beginning (``not_before_ns`` null) until the
    first rotation away from it; each rotated-in key from its rotation time until it is rotated out;
    a revocation ends a key's window at its ``not_after_ns`` when that is earlier. Only rotations
    that hold are used (an invalid endorsement introduces nothing), and a key is introduced only
    by a rotation from a key already in the draft, so a forged chain cannot add a key.
    ``converter_keys`` are listed with the role ``converter`` and no window (cold documents carry
    no signing time, section 6).
    """
    from audit_core.trust.signing import raw_public_key

    raw = raw_public_key(initial_key)
    windows: dict[str, dict[str, Any]] = {
        key_id_of_raw(raw): {"raw": raw, "from": None, "until": None, "comment": "initial key"}}
    for event in history.events:
        if event.kind != "rotation" or event.problem is not None:
            continue
        old, new, at = event.payload["old_key_id"], event.payload["new_key_id"], event.payload["rotated_at_ns"]
        if old not in windows:
            continue
        previous_until = windows[old]["until"]
        windows[old]["until"] = at if previous_until is None else max(previous_until, at)
        if new not in windows:
            new_raw = base64.b64decode(event.payload["new_public_key"])
            where = f"{event.file.name}, sequence {event.sequence}"
            windows[new] = {"raw": new_raw, "from": at, "until": None,
                            "comment": f"rotated in on stream {event.stream} ({where})"}
        else:
            start = windows[new]["from"]
            windows[new]["from"] = at if start is None else min(start, at)
    for event in history.events:
        if event.kind == "revocation" and event.problem is None and event.payload["key_id"] in windows:
            window = windows[event.payload["key_id"]]
            cut = event.payload["not_after_ns"]
            window["until"] = cut if window["until"] is None else min(window["until"], cut)
            window["comment"] += f"; revoked: {event.payload.get('reason')}"
    keys = []
    for kid, window in windows.items():
        start, until = window["from"], window["until"]
        if start is not None and until is not None and until <= start:
            until = start + 1  # revoked before it was rotated in: an empty window the file cannot hold
            window["comment"] += " (revoked before its rotation: window left at one nanosecond)"
        keys.append(TrustedKey(kid, window["raw"], frozenset({"writer"}), start, until, window["comment"]))
    for converter in converter_keys:
        raw = raw_public_key(converter)
        keys.append(TrustedKey(key_id_of_raw(raw), raw, frozenset({"converter"}), comment="converter key"))
    return TrustedKeys(keys, source="drafted from the trail's key history")


# --- checks ---------------------------------------------------------------------------------------


def _b64(value: object, size: int) -> bytes | None:
    decoded = b64decode_strict(value)
    return decoded if decoded is not None and len(decoded) == size else None


def _rotation_problem(payload: dict[str, Any], stream: str, previous_new: str | None) -> str | None:
    from cryptography.exceptions import InvalidSignature

    old_raw = _b64(payload.get("old_public_key"), ED25519_KEY_SIZE)
    new_raw = _b64(payload.get("new_public_key"), ED25519_KEY_SIZE)
    endorsement = _b64(payload.get("endorsement"), ED25519_SIGNATURE_SIZE)
    at = payload.get("rotated_at_ns")
    if old_raw is None or new_raw is None or endorsement is None or type(at) is not int:
        return ("malformed: expected old_public_key and new_public_key (base64, 32 bytes), endorsement "
                "(base64, 64 bytes) and an integer rotated_at_ns")
    if payload.get("old_key_id") != key_id_of_raw(old_raw) or payload.get("new_key_id") != key_id_of_raw(new_raw):
        return "old_key_id/new_key_id are not the ids of the public keys the record carries"
    trader, _, stream_id = stream.partition(".")
    if payload.get("origin") != f"ledgerline/{trader}/{stream_id}":
        return f"origin {json.dumps(payload.get('origin'))} is not this stream's (ledgerline/{trader}/{stream_id})"
    if previous_new is not None and payload["old_key_id"] != previous_new:
        return f"its old key {payload['old_key_id']} is not the key the previous rotation introduced ({previous_new})"
    message = rotation_message(payload["origin"], payload["old_key_id"], payload["new_key_id"],
                               payload["new_public_key"], at)
    try:
        public_key_from_raw(old_raw).verify(endorsement, message)
    except (InvalidSignature, ValueError):
        return f"the endorsement does not verify under the old key {payload['old_key_id']} (forged rotation?)"
    return None


def _revocation_problem(payload: dict[str, Any]) -> str | None:
    kid, not_after = payload.get("key_id"), payload.get("not_after_ns")
    reason = payload.get("reason")
    if not isinstance(kid, str) or len(kid) != 16 or type(not_after) is not int or not isinstance(reason, str):
        return "malformed: expected key_id (16 hex), an integer not_after_ns and a reason"
    return None
