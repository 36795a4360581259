"""Rotating and revoking a stream's signing key: the records go into the chain, then the key changes.

``rotate_signing_key`` writes a ``sys.key_rotation`` record endorsed by the old key, makes it
durable, and only then hands the writer's ``KeySlot`` the new key, all under the slot's lock: every
seal and checkpoint signed before the record's ``rotated_at_ns`` is by the old key, every one after
by the new (so a trusted-keys file drafted from the records holds each signature).
``revoke_signing_key`` records that a key is not valid from a given time on; the key signing the
stream now cannot be revoked (not even from a later time: the writer would go on signing past it,
and every later seal would fall outside the key's window), and a revoked key cannot be rotated in.
Formats:
``trust.key_history`` and docs/format.md section 6.1.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from audit_core.errors import AuditConfigError
from audit_core.trust.key_history import (
    KEY_RECORD_SOURCE,
    REVOCATION_EVENT,
    ROTATION_EVENT,
    current_key_problem,
    read_key_history,
    rotation_payload,
)
from audit_core.trust.signing import KeySlot, key_id
from audit_core.trust.stream_tree import stream_origin

if TYPE_CHECKING:
    from audit_core.config import AuditConfig
    from audit_core.events import SystemEvent
    from audit_core.trust.signing import SigningKey


class _Writer(Protocol):
    stream_id: str
    signing_keys: KeySlot

    def stream_files(self) -> list[Path]: ...

    def _release_stream(self) -> None: ...


class _Emitter(Protocol):
    """What key rotation uses of ``AuditEventEmitter`` (a Protocol: the emitter imports this module)."""

    config: AuditConfig

    @property
    def writer(self) -> Any: ...

    def emit_system(self, event_type: str, source: str, payload: Mapping[str, Any] | None = None) -> SystemEvent: ...

    def flush(self) -> None: ...


def check_signer_at_start(writer: _Writer) -> None:
    """Refuse to open a stream whose history says the configured key may no longer sign it.

    After a rotation the configuration must name the new key (a restart with the old one would
    sign with a key the auditor's window has closed); a revoked key cannot sign either.

    Raises:
        AuditConfigError: naming the key, the record and the key to configure; the stream is released.
    """
    signer = writer.signing_keys.current
    if signer is None:
        return
    problem = current_key_problem(writer.stream_files(), key_id(signer.public_key()))
    if problem is not None:
        writer._release_stream()
        raise AuditConfigError(problem)

_MAX_REASON = 500


def rotate_signing_key(emitter: _Emitter, new_key: SigningKey) -> SystemEvent:
    """Replace the stream's signing key with ``new_key``; returns the ``sys.key_rotation`` record.

    Raises:
        AuditConfigError: the trail is not signed, or ``new_key`` is the current key or one the stream revoked.
        AuditSigningError: the old key (a signing command) could not sign the endorsement; nothing changed.
        AuditWriteError: the record could not be made durable; the old key stays in use.
    """
    slot = emitter.writer.signing_keys
    origin = stream_origin(emitter.config.trader_id, emitter.writer.stream_id)
    with slot.lock:
        old = slot.current
        if old is None:
            raise AuditConfigError("this trail is not signed (no signing key configured): there is no key to rotate")
        new_id = key_id(new_key.public_key())
        if key_id(old.public_key()) == new_id:
            raise AuditConfigError(f"key {new_id} is already the signing key")
        for past in read_key_history(emitter.writer.stream_files()).events:
            if past.kind == "revocation" and past.problem is None and past.payload["key_id"] == new_id:
                raise AuditConfigError(f"key {new_id} cannot be rotated in: {past.describe()}")
        payload = rotation_payload(origin, old, new_key, slot.clock())
        event = emitter.emit_system(ROTATION_EVENT, KEY_RECORD_SOURCE, payload)
        emitter.flush()
        slot.current = new_key
    return event


def revoke_signing_key(emitter: _Emitter, revoked_key_id: str, not_after_ns: int, reason: str) -> SystemEvent:
    """Record that key ``revoked_key_id`` is not valid from ``not_after_ns`` on; returns the record.

    The key signing the stream now cannot be revoked, from any time: rotate to a new key first.

    Raises:
        AuditConfigError: a malformed key id, time or reason, or the stream's current key.
    """
    if not isinstance(revoked_key_id, str) or len(revoked_key_id) != 16 or not all(
            c in "0123456789abcdef" for c in revoked_key_id):
        raise AuditConfigError(f"key_id: expected 16 lowercase hex characters, got {revoked_key_id!r}")
    if type(not_after_ns) is not int or not_after_ns < 0:
        raise AuditConfigError(f"not_after_ns: expected nanoseconds since the epoch, got {not_after_ns!r}")
    if not isinstance(reason, str) or not reason or len(reason) > _MAX_REASON:
        raise AuditConfigError(f"reason: expected a non-empty text of at most {_MAX_REASON} characters")
    slot = emitter.writer.signing_keys
    with slot.lock:
        current = slot.current
        now = slot.clock()
        if current is not None and key_id(current.public_key()) == revoked_key_id:
            raise AuditConfigError(
                f"key {revoked_key_id} signs this stream now: rotate to a new key before revoking it")
        payload = {"key_id": revoked_key_id, "not_after_ns": not_after_ns, "reason": reason, "revoked_at_ns": now}
        event = emitter.emit_system(REVOCATION_EVENT, KEY_RECORD_SOURCE, payload)
        emitter.flush()
    return event
