"""Configuration of an audit stream: where it lives, how durable it is, how it is keyed.

Every value is validated when the config is built, so a typo fails at start-up with the field
named, not hours later inside the trading loop.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from audit_core.errors import AuditConfigError

# Identifiers become parts of file names; keep them to characters that are safe everywhere.
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$"
_EVENT_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_*]+)*(\.\*)?$|^\*$")

#: Largest serialized record accepted. One record is one ``os.write``; 64 KiB keeps it a single,
#: uninterleaved append and bounds what a reader must buffer to find the last line of a file.
DEFAULT_MAX_RECORD_BYTES = 64 * 1024


class AuditConfig(BaseModel):
    """Settings for one audit stream (one writing process).

    Args:
        base_path: Root of the trail; hot JSONL files go to ``base_path/hot``.
        trader_id: Stamped on every record and used in file names.
        stream_id: Names this process's stream; two processes on one ``base_path`` need two.
        sync_writes: When true, events matching ``durable_event_types`` are fdatasync'ed before
            ``emit`` returns. When false nothing is synced synchronously (tests, replays).
        durable_event_types: Event-type patterns (``"trade.*"``, ``"sys.recovery"``) made durable
            before ``emit`` returns.
        flush_interval_s: Other events are synced at most this long after they are written.
        rotate_daily: Start a new file at each UTC midnight.
        retention_days: Days cold partitions are kept (applied by the converter).
        max_record_bytes: Records larger than this are rejected before anything is written.
        hmac_key: Key for HMAC-SHA256 checksums. Prefer ``hmac_key_env`` so the key stays out of code.
        hmac_key_env: Name of an environment variable that holds the HMAC key.
        fallback_path: Directory for spill files while the hot disk fails (ENOSPC, EIO). Records
            that cannot reach the hot file are appended (and synced) there until it recovers.
        max_buffer_bytes: Records waiting for the hot file (a burst, or a failing disk) are held in
            memory up to this many bytes; beyond it ``emit`` blocks until they drain. Never dropped.
        retry_interval_s: While degraded, how often the hot file is tried again.
        durable_failure: What a durable emit does when its record cannot be made durable anywhere:
            ``"raise"`` (``AuditWriteError`` at once) or ``"wait"`` (retry for ``durable_wait_s``, then raise).
        durable_wait_s: How long ``"wait"`` waits.
        signing_key_path: File with the Ed25519 private key (PEM from ``ledgerline keygen``) that
            signs every seal; each signed seal also gets a C2SP checkpoint. Needs the ``signing``
            extra. The key is read once at start-up and never written to the trail.
        signing_key_env: Name of an environment variable that holds the private key instead (PEM,
            or base64 of its raw 32 bytes).
        signing_key_command: A command (argv list) that signs instead, so the private key never
            touches this machine (a KMS or HSM client): it gets the message on stdin and prints the
            base64 Ed25519 signature on stdout. Needs ``signing_public_key_path``; checked at
            start-up by signing a probe. See ``trust.signer``.
        signing_public_key_path: The public key (PEM or base64 raw) of ``signing_key_command``'s key.
        signing_command_timeout_s: How long one signature by the command may take before it is
            killed and the seal or checkpoint fails (counted, logged, retried; never in ``emit``).
        checkpoint_interval_s: How often a background thread checkpoints the stream's tree (and at
            close): it keeps the tree sidecar and the stream's checkpoint note and sends the note to
            the witness. None turns stream checkpoints off (no sidecar, no witness).
        checkpoint_every_records: Also checkpoint after this many appends (None: by time only).
        witness_path: Directory of a ``DirectoryWitness`` the checkpoints go to. A directory on the
            trail's own disk is for tests: a real witness lives where whoever can change the trail
            cannot (another host, object-lock storage); see ``trust.witness``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_path: Path
    trader_id: str = Field(default="TRADER-001", pattern=_NAME_PATTERN)
    stream_id: str = Field(default="main", pattern=_NAME_PATTERN)
    sync_writes: bool = True
    durable_event_types: tuple[str, ...] = ("trade.*",)
    flush_interval_s: float = Field(default=1.0, gt=0, le=3600)
    rotate_daily: bool = True
    retention_days: int = Field(default=90, ge=1, le=36500)
    max_record_bytes: int = Field(default=DEFAULT_MAX_RECORD_BYTES, ge=1024, le=1024 * 1024)
    hmac_key: SecretStr | None = None
    hmac_key_env: str | None = None
    fallback_path: Path | None = None
    max_buffer_bytes: int = Field(default=64 * 1024 * 1024, ge=64 * 1024)
    retry_interval_s: float = Field(default=0.5, gt=0, le=60)
    durable_failure: Literal["raise", "wait"] = "raise"
    durable_wait_s: float = Field(default=5.0, gt=0, le=3600)
    signing_key_path: Path | None = None
    signing_key_env: str | None = None
    signing_key_command: tuple[str, ...] | None = None
    signing_public_key_path: Path | None = None
    signing_command_timeout_s: float = Field(default=10.0, gt=0, le=600)
    checkpoint_interval_s: float | None = Field(default=2.0, gt=0, le=3600)
    checkpoint_every_records: int | None = Field(default=None, ge=1)
    witness_path: Path | None = None

    @field_validator("durable_event_types")
    @classmethod
    def _check_patterns(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            if not _EVENT_PATTERN.match(pattern):
                raise ValueError(
                    f"event-type pattern {pattern!r} is not dotted lowercase like 'trade.*' or 'sys.recovery'"
                )
        return patterns

    @model_validator(mode="after")
    def _check_key_source(self) -> AuditConfig:
        if self.hmac_key is not None and self.hmac_key_env is not None:
            raise ValueError("set hmac_key or hmac_key_env, not both")
        sources = [name for name in ("signing_key_path", "signing_key_env", "signing_key_command")
                   if getattr(self, name) is not None]
        if len(sources) > 1:
            raise ValueError(f"set one of signing_key_path, signing_key_env, signing_key_command, not {sources}")
        if self.signing_key_command is not None and (not self.signing_key_command or not self.signing_key_command[0]):
            raise ValueError("signing_key_command: expected a command and its arguments, got an empty one")
        if (self.signing_key_command is None) != (self.signing_public_key_path is None):
            raise ValueError("signing_key_command and signing_public_key_path go together: the public key "
                             "checks every signature the command returns")
        if self.hmac_key is not None and not self.hmac_key.get_secret_value():
            raise ValueError("hmac_key is empty; omit it for plain SHA-256 checksums")
        if self.fallback_path is not None and Path(self.fallback_path).resolve() == self.hot_path.resolve():
            raise ValueError("fallback_path must not be the hot directory itself; put it on another disk")
        return self

    @property
    def hot_path(self) -> Path:
        """Directory of the append-only JSONL files."""
        return self.base_path / "hot"

    def resolve_hmac_key(self) -> bytes | None:
        """The HMAC key as bytes, or None for plain SHA-256.

        Raises:
            AuditConfigError: ``hmac_key_env`` names a variable that is unset or empty.
        """
        if self.hmac_key is not None:
            return self.hmac_key.get_secret_value().encode()
        if self.hmac_key_env is None:
            return None
        value = os.environ.get(self.hmac_key_env, "")
        if not value:
            raise AuditConfigError(
                f"hmac_key_env={self.hmac_key_env!r}: the environment variable is unset or empty; "
                "export it or drop hmac_key_env"
            )
        return value.encode()

    def is_durable(self, event_type: str) -> bool:
        """Whether events of this type are synced before ``emit`` returns."""
        if not self.sync_writes:
            return False
        return any(_matches(event_type, pattern) for pattern in self.durable_event_types)


def _matches(event_type: str, pattern: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern
