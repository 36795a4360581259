"""Signers: the key that signs seals, checkpoints and documents, from a file, a variable or a command.

A ``Signer`` has a key id, a public key and ``sign(message) -> 64-byte Ed25519 signature``. The
private key may be in this process (a PEM file, an environment variable) or never here at all: a
**signing command** (a KMS client, an HSM/PKCS#11 tool, an ssh-agent wrapper) gets the message on
stdin and prints the base64 of the signature on stdout. Such a signer is checked at start-up by
signing a probe, and every signature it returns is verified under the configured public key before
it is used (a KMS that signs with another key is caught at once, not at audit time).

A command that fails, answers garbage or takes longer than its timeout raises ``AuditSigningError``;
signing runs in the sealer and checkpointer threads, never in ``emit``, which count and log it
(and chain ``sys.checkpoint_failed``) as they do any other failure.
"""

from __future__ import annotations

import base64
import binascii
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from audit_core.errors import AuditConfigError, AuditSigningError
from audit_core.trust.signing import ED25519_SIGNATURE_SIZE, key_id, load_private_key, load_public_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    from audit_core.config import AuditConfig

#: What a signing command signs at start-up to show it works and holds the configured key.
PROBE_MESSAGE = b"ledgerline signing probe: this signs nothing of the trail\n"
DEFAULT_COMMAND_TIMEOUT_S = 10.0
_MAX_OUTPUT = 4096


class Signer:
    """A signing key named by its key id; ``sign`` returns the raw 64-byte Ed25519 signature."""

    def __init__(self, public_key: Ed25519PublicKey, sign: Callable[[bytes], bytes], description: str) -> None:
        self._public_key = public_key
        self._sign = sign
        self.description = description
        self.key_id = key_id(public_key)

    def public_key(self) -> Ed25519PublicKey:
        return self._public_key

    def sign(self, data: bytes) -> bytes:
        return self._sign(data)

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id}, {self.description})"

    @classmethod
    def from_private_key(cls, private_key: Ed25519PrivateKey, description: str = "in-process key") -> Signer:
        return cls(private_key.public_key(), private_key.sign, description)

    @classmethod
    def from_file(cls, path: Path | str) -> Signer:
        """The PEM (or base64 raw) private key in ``path`` (``ledgerline keygen``)."""
        return cls.from_private_key(load_private_key(path), f"key file {path}")

    @classmethod
    def from_env(cls, env_var: str) -> Signer:
        """The private key in environment variable ``env_var``."""
        return cls.from_private_key(load_private_key(env_var=env_var), f"environment variable {env_var}")

    @classmethod
    def from_command(
        cls, argv: Sequence[str], public_key_path: Path | str, timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S
    ) -> Signer:
        """A signer that runs ``argv`` per signature: message on stdin, base64 signature on stdout.

        The command is run once now on ``PROBE_MESSAGE``; its signature must verify under the public
        key in ``public_key_path``.

        Raises:
            AuditConfigError: an empty command, a non-positive timeout, or an unreadable public key.
            AuditSigningError: the probe failed (the command's error, timeout, or a wrong key).
        """
        argv = [str(arg) for arg in argv]
        if not argv or not argv[0]:
            raise AuditConfigError("signing_key_command: expected a command and its arguments, got an empty list")
        if not timeout_s > 0:
            raise AuditConfigError(f"signing command timeout: expected seconds > 0, got {timeout_s!r}")
        public_key = load_public_key(public_key_path)
        signer = cls(public_key, _CommandSignature(argv, public_key, timeout_s), f"command {argv[0]}")
        signer.sign(PROBE_MESSAGE)
        return signer


class _CommandSignature:
    """Runs the signing command for one message and checks its answer (a picklable callable)."""

    def __init__(self, argv: list[str], public_key: Ed25519PublicKey, timeout_s: float) -> None:
        self.argv, self.public_key, self.timeout_s = argv, public_key, timeout_s

    def __call__(self, message: bytes) -> bytes:
        from cryptography.exceptions import InvalidSignature

        where = f"signing command {self.argv[0]}"
        try:
            done = subprocess.run(self.argv, input=message, capture_output=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise AuditSigningError(f"{where} did not answer within {self.timeout_s} s (it was killed)") from None
        except OSError as exc:
            raise AuditSigningError(f"{where} could not be started: {exc.strerror}") from None
        if done.returncode != 0:
            stderr = done.stderr[-_MAX_OUTPUT:].decode("utf-8", "replace").strip()
            raise AuditSigningError(f"{where} exited with status {done.returncode}: {stderr[-300:]!r}")
        output = done.stdout[:_MAX_OUTPUT].strip()
        try:
            signature = base64.b64decode(output, validate=True)
        except (binascii.Error, ValueError):
            signature = b""
        if len(signature) != ED25519_SIGNATURE_SIZE:
            raise AuditSigningError(
                f"{where}: expected the base64 of a {ED25519_SIGNATURE_SIZE}-byte Ed25519 signature on stdout, "
                f"got {output[:80]!r}")
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            raise AuditSigningError(
                f"{where}: its signature does not verify under key {key_id(self.public_key)} "
                "(signing_public_key_path): the command signs with another key") from None
        return signature


def load_signer(config: AuditConfig) -> Signer | None:
    """The signer ``config`` names (``signing_key_path``, ``signing_key_env`` or ``signing_key_command``), or None.

    Raises:
        AuditConfigError: an unreadable key or public key.
        AuditSigningError: the signing command's probe failed.
    """
    if config.signing_key_command is not None:
        assert config.signing_public_key_path is not None  # the config's validator requires it
        return Signer.from_command(
            config.signing_key_command, config.signing_public_key_path, config.signing_command_timeout_s)
    if config.signing_key_path is not None:
        return Signer.from_file(config.signing_key_path)
    if config.signing_key_env is not None:
        return Signer.from_env(config.signing_key_env)
    return None
