"""Ed25519 keys and signatures for seals and other authenticated documents: generate, load, sign, verify.

Keys are files in PEM: the private key as unencrypted PKCS#8 (``-----BEGIN PRIVATE KEY-----``, mode
0600), the public key as SubjectPublicKeyInfo (``-----BEGIN PUBLIC KEY-----``), the formats
``openssl pkey`` reads and writes. Where a PEM is awkward (an environment variable), a key may also
be given as the standard base64 of its raw 32 bytes (RFC 8032 encoding). A key is named by its
``key_id``: the first 8 bytes, in hex, of SHA-256 over the raw 32-byte public key.

``cryptography`` (the ``signing`` extra) is imported only when a key is used, so a process that
does not sign never loads it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from audit_core.errors import AuditConfigError, AuditIntegrityError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

#: The ``alg`` of a signature field.
SEAL_SIGNATURE_ALG = "ed25519"
#: RFC 8032: Ed25519 public keys, private keys (seeds) and signatures are 32, 32 and 64 bytes.
ED25519_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
_PRIVATE_KEY_MODE = 0o600
_PUBLIC_KEY_MODE = 0o644


class SigningKey(Protocol):
    """What signs: an ``Ed25519PrivateKey``, or a ``trust.signer.Signer`` (a file, a variable, a command/KMS)."""

    def public_key(self) -> Ed25519PublicKey: ...

    def sign(self, data: bytes) -> bytes: ...


class KeySlot:
    """The signing key a writer uses now, swapped by a key rotation.

    ``stamp`` returns the key and the signing time together under one lock, and ``replace`` takes
    the rotation time under the same lock: every signature made before the rotation time is by the
    old key, every one at or after it by the new key, so windows drafted from the rotation records
    hold each signature.
    """

    def __init__(self, key: SigningKey | None, clock: Callable[[], int]) -> None:
        self.current = key
        self.clock = clock
        self.lock = threading.Lock()

    def stamp(self) -> tuple[SigningKey | None, int]:
        """(the current key, now): sign with that key and call the signature made at that time."""
        with self.lock:
            return self.current, self.clock()


def _ed25519() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:  # pragma: no cover - the signing extra is part of dev
        raise AuditConfigError(
            "signing needs the 'cryptography' package: pip install 'ledgerline[signing]'"
        ) from exc
    return ed25519


def generate_keypair(private_path: Path | str, public_path: Path | str) -> str:
    """Write a new Ed25519 key pair as PEM files and return its key id.

    The private key file is created with mode 0600 and never overwrites an existing file.

    Raises:
        FileExistsError: either file exists already.
    """
    ed25519 = _ed25519()  # first: a missing 'cryptography' is a one-line error naming the extra
    from cryptography.hazmat.primitives import serialization

    private_path, public_path = Path(private_path), Path(public_path)
    for path in (private_path, public_path):
        if path.exists():
            raise FileExistsError(f"{path} exists; keys are never overwritten, choose another name")
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new(private_path, private_pem, _PRIVATE_KEY_MODE)
    _write_new(public_path, public_pem, _PUBLIC_KEY_MODE)
    return key_id(key.public_key())


def load_private_key(path: Path | str | None = None, *, env_var: str | None = None) -> Ed25519PrivateKey:
    """The Ed25519 private key in file ``path``, or in environment variable ``env_var``.

    Either holds a PKCS#8 PEM or the base64 of the raw 32-byte private key.

    Raises:
        AuditConfigError: no source, both sources, a missing file or variable, or not an Ed25519 private key.
    """
    if (path is None) == (env_var is None):
        raise AuditConfigError("give a private key file or an environment variable name, not both or neither")
    if env_var is not None:
        data = os.environ.get(env_var, "").encode()
        where = f"environment variable {env_var}"
        if not data.strip():
            raise AuditConfigError(f"{where} is unset or empty; export the signing key or drop signing_key_env")
    else:
        where = str(path)
        data = _read_key_file(Path(str(path)), "private")
    return cast("Ed25519PrivateKey", _parse_key(data, where, private=True))


def load_public_key(path: Path | str) -> Ed25519PublicKey:
    """The Ed25519 public key in file ``path`` (SubjectPublicKeyInfo PEM, or base64 of the raw 32 bytes).

    Raises:
        AuditConfigError: a missing file, a private key, or not an Ed25519 public key.
    """
    return cast("Ed25519PublicKey", _parse_key(_read_key_file(Path(path), "public"), str(path), private=False))


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    """The 32-byte RFC 8032 encoding of ``public_key``."""
    from cryptography.hazmat.primitives import serialization

    raw: bytes = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    """The Ed25519 public key whose RFC 8032 encoding is ``raw`` (``raw_public_key``'s inverse)."""
    return cast("Ed25519PublicKey", _ed25519().Ed25519PublicKey.from_public_bytes(raw))


def key_id(public_key: Ed25519PublicKey) -> str:
    """Hex of the first 8 bytes of SHA-256(raw public key): the name a seal gives its signer."""
    return hashlib.sha256(raw_public_key(public_key)).hexdigest()[:16]


def sign(message: bytes, private_key: SigningKey) -> dict[str, str]:
    """The ``signature`` field of a document (a seal, a journal) whose signed bytes are ``message``."""
    return {
        "alg": SEAL_SIGNATURE_ALG,
        "key_id": key_id(private_key.public_key()),
        "sig": base64.b64encode(private_key.sign(message)).decode(),
    }


def verify_signature(signature: object, message: bytes, public_key: Ed25519PublicKey, *, what: str = "seal") -> None:
    """Check a document's ``signature`` field against its signed bytes and the trusted public key.

    ``what`` names the document in the messages ("seal", "retention journal").

    Raises:
        AuditIntegrityError: a malformed field, another signer, or a signature that does not verify.
    """
    from cryptography.exceptions import InvalidSignature

    if not isinstance(signature, dict):
        raise AuditIntegrityError(f"signature must be an object with alg, key_id and sig, got {signature!r}")
    if signature.get("alg") != SEAL_SIGNATURE_ALG:
        raise AuditIntegrityError(f"signature alg: expected {SEAL_SIGNATURE_ALG!r}, got {signature.get('alg')!r}")
    expected_id = key_id(public_key)
    if signature.get("key_id") != expected_id:
        raise AuditIntegrityError(
            f"{what} signed by another key: expected key_id {expected_id}, got {signature.get('key_id')!r}"
        )
    sig = b64decode_strict(signature.get("sig"))
    if sig is None or len(sig) != ED25519_SIGNATURE_SIZE:
        raise AuditIntegrityError(
            f"signature sig must be base64 of {ED25519_SIGNATURE_SIZE} bytes, got {signature.get('sig')!r}"
        )
    try:
        public_key.verify(sig, message)
    except InvalidSignature:
        raise AuditIntegrityError(
            f"the {what}'s Ed25519 signature by key {expected_id} does not match its contents (edited {what}?)"
        ) from None


# --- helpers --------------------------------------------------------------------------------------


def _read_key_file(path: Path, kind: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise AuditConfigError(f"{kind} key file {path} does not exist") from None
    except OSError as exc:
        raise AuditConfigError(f"{kind} key file {path} cannot be read: {exc.strerror}") from None


def _parse_key(data: bytes, where: str, *, private: bool) -> object:
    """A PEM or base64-raw Ed25519 key of the wanted kind, or AuditConfigError naming ``where``."""
    ed25519 = _ed25519()
    from cryptography.hazmat.primitives import serialization

    wanted = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    kind = "private" if private else "public"
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        if not private and b"PRIVATE KEY" in text.split(b"\n", 1)[0]:
            raise AuditConfigError(f"{where} holds a private key; pass the public key (keygen's PUBLIC file)")
        if private and b"PRIVATE KEY" not in text.split(b"\n", 1)[0]:
            raise AuditConfigError(f"{where} holds a public key; the signing key is the private one")
        try:
            key = (
                serialization.load_pem_private_key(text, password=None)
                if private
                else serialization.load_pem_public_key(text)
            )
        except (ValueError, TypeError) as exc:
            raise AuditConfigError(f"{where} is not a readable PEM {kind} key: {exc}") from None
        if not isinstance(key, wanted):
            raise AuditConfigError(f"{where}: expected an Ed25519 {kind} key, got {type(key).__name__}")
        return key
    raw = b64decode_strict(text.decode("ascii", "replace"))
    if raw is None or len(raw) != ED25519_KEY_SIZE:
        raise AuditConfigError(
            f"{where}: expected a PEM Ed25519 {kind} key or base64 of its {ED25519_KEY_SIZE} raw bytes"
        )
    return wanted.from_private_bytes(raw) if private else wanted.from_public_bytes(raw)


def b64decode_strict(value: object) -> bytes | None:
    """The bytes a standard-base64 string encodes, or None for anything else (a non-string, bad padding or alphabet)."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
