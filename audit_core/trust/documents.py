"""Authenticated JSON documents: the one checksum and signature rule of seals, journals and manifests.

A document is a JSON object stored on disk next to the evidence it describes (a hot file's seal,
a retention journal). Anyone who can write the disk can edit it, so two fields authenticate it:

- ``signature`` (optional): Ed25519 (RFC 8032) over the document's canonical bytes without the
  checksum field and without ``signature`` itself; the object ``{"alg", "key_id", "sig"}`` of
  ``signing.sign``. Unforgeable without the private key, checked against a trusted public key.
- the checksum field (each kind names its own: ``seal_checksum``, ``journal_checksum``): SHA-256
  hex over the canonical bytes without the checksum field (so it covers the signature too), or
  HMAC-SHA256 with the trail's key. Without a key anyone can recompute it: it then only catches
  accidents, not an attacker.

Canonical bytes are ``json.dumps(document, sort_keys=True, separators=(",", ":"))`` of the object
without the excluded fields: compact, keys sorted, non-ASCII escaped as ``\\uXXXX``. Seals written
before this module existed used exactly these bytes, so they keep verifying.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from audit_core.errors import AuditIntegrityError, KeyTrustError
from audit_core.trust import signing
from audit_core.trust.keyring import as_trusted

if TYPE_CHECKING:
    from audit_core.trust.keyring import VerifyingKeys
    from audit_core.trust.signing import SigningKey

#: The field that holds a document's Ed25519 signature.
SIGNATURE_FIELD = "signature"


def keyed_digest(data: bytes, hmac_key: bytes | None = None) -> str:
    """SHA-256 hex of ``data``, or HMAC-SHA256 hex when ``hmac_key`` is given."""
    if hmac_key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.digest(hmac_key, data, "sha256").hex()  # one-shot in OpenSSL: the same HMAC, much cheaper


def canonical_bytes(document: Mapping[str, Any], exclude: Collection[str] = ()) -> bytes:
    """Compact, key-sorted JSON of ``document`` without the ``exclude`` fields."""
    body = {key: value for key, value in document.items() if key not in exclude}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def signed_bytes(document: Mapping[str, Any], checksum_field: str) -> bytes:
    """What the ``signature`` covers: the canonical bytes without the checksum and the signature."""
    return canonical_bytes(document, (checksum_field, SIGNATURE_FIELD))


def authenticate(
    document: Mapping[str, Any],
    checksum_field: str,
    hmac_key: bytes | None = None,
    signing_key: SigningKey | None = None,
) -> dict[str, Any]:
    """A copy of ``document`` with a fresh ``signature`` (when ``signing_key`` is given) and checksum.

    Any old checksum and signature are dropped first; the new fields are appended in that order
    (signature, then checksum), so the document's other fields keep their order on disk.
    """
    body = {key: value for key, value in document.items() if key not in (checksum_field, SIGNATURE_FIELD)}
    if signing_key is not None:
        body[SIGNATURE_FIELD] = signing.sign(signed_bytes(body, checksum_field), signing_key)
    body[checksum_field] = keyed_digest(canonical_bytes(body, (checksum_field,)), hmac_key)
    return body


#: ``check_document`` options for what the converter signs (format.md section 6: role ``converter``;
#: the signing time is ``written_at_ns`` where a document has one, else unknown).
CONVERTER_SIGNED: dict[str, Any] = {"role": "converter", "signed_at_field": "written_at_ns"}


class ProblemKind(enum.StrEnum):
    CHECKSUM = "checksum"
    SIGNATURE_MISSING = "signature_missing"
    SIGNATURE_INVALID = "signature_invalid"
    #: docs/format.md section 6: the signing key is not trusted for the role, or not at the signing time.
    KEY_UNTRUSTED = "key_untrusted"
    KEY_OUTSIDE_WINDOW = "key_outside_window"


@dataclass(frozen=True)
class DocumentProblem:
    """Why a document is not authentic."""

    kind: ProblemKind
    detail: str

    def __str__(self) -> str:
        return self.detail


def check_document(
    document: Mapping[str, Any],
    checksum_field: str,
    hmac_key: bytes | None = None,
    public_key: VerifyingKeys | None = None,
    *,
    what: str = "document",
    role: str = "writer",
    signed_at_field: str | None = None,
) -> list[DocumentProblem]:
    """Everything that makes ``document`` not authentic; an empty list when it is.

    Args:
        document: The parsed JSON object.
        checksum_field: The name of its checksum field.
        hmac_key: The trail's HMAC key; None checks a plain SHA-256.
        public_key: The trusted keys (a ``TrustedKeys``, or one Ed25519 key: every role, no window).
            With them the document must carry a valid signature of a key trusted for ``role`` at
            its signing time; without them the signature is not checked (only covered by the checksum).
        what: What the document is, for the messages ("seal", "retention journal").
        role: The role its signer needs (docs/format.md section 6): ``writer`` or ``converter``.
        signed_at_field: The field holding its signing time (``sealed_at_ns``); without one, or
            when the field is absent, the signing time is unknown.
    """
    problems = []
    stored = document.get(checksum_field)
    actual = keyed_digest(canonical_bytes(document, (checksum_field,)), hmac_key)
    if not isinstance(stored, str) or not hmac.compare_digest(actual.encode(), stored.encode()):
        problems.append(DocumentProblem(
            ProblemKind.CHECKSUM, f"{checksum_field} does not match the {what}'s contents (edited {what}?)"
        ))
    trusted = as_trusted(public_key)
    if trusted is None:
        return problems
    if SIGNATURE_FIELD not in document:
        problems.append(DocumentProblem(
            ProblemKind.SIGNATURE_MISSING,
            f"the {what} is unsigned, but a public key was given: expected a signature of key "
            f"{', '.join(key.key_id for key in trusted.keys)}",
        ))
        return problems
    signature = document[SIGNATURE_FIELD]
    signed_at = document.get(signed_at_field) if signed_at_field is not None else None
    if not isinstance(signature, dict) or not isinstance(signature.get("key_id"), str):
        problems.append(DocumentProblem(
            ProblemKind.SIGNATURE_INVALID, f"the {what}'s signature must be an object with alg, key_id and sig"))
        return problems
    try:
        trusted_key = trusted.check(signature["key_id"], role, signed_at if type(signed_at) is int else None)
        signing.verify_signature(signature, signed_bytes(document, checksum_field), trusted_key, what=what)
    except KeyTrustError as exc:
        problems.append(DocumentProblem(ProblemKind(exc.reason), f"{exc.reason}: the {what}'s {exc}"))
    except AuditIntegrityError as exc:
        problems.append(DocumentProblem(ProblemKind.SIGNATURE_INVALID, str(exc)))
    return problems
