"""Exceptions of audit_core: one root, a shallow tree, messages that say what was expected.

Bad event input raises pydantic's ``ValidationError`` (it names the field and the value);
everything else the core raises derives from ``AuditError``.
"""

from __future__ import annotations

import os


class AuditError(Exception):
    """Root of every error raised by audit_core."""


class AuditConfigError(AuditError, ValueError):
    """A configuration value is unusable (for example an HMAC key variable that is unset)."""


class AuditWriteError(AuditError, OSError):
    """A record could not be written (or made durable) to the hot log."""


class AuditIntegrityError(AuditError):
    """A trail failed verification; ``report`` holds every failure found."""

    def __init__(self, message: str, report: object | None = None) -> None:
        super().__init__(message)
        self.report = report


class AuditSigningError(AuditError):
    """A signer could not sign: its command failed, timed out, or answered with a signature that does
    not verify under the configured public key (a wrong key in the KMS)."""


class KeyTrustError(AuditIntegrityError):
    """A signature's key is not one the verifier trusts for that document at that time.

    Attributes:
        reason: ``key_untrusted`` (no trusted key with that id and role) or ``key_outside_window``
            (the key is trusted, but not at the signing time, or the signing time is unknown).
        key_id: The signing key's id as the document names it (16 hex, or 8 hex for a note key id).
        role: The role the document needs (``writer``, ``converter``, ``witness``).
        signed_at_ns: The document's signing time, or None when it has none.
    """

    def __init__(self, reason: str, message: str, key_id: str, role: str, signed_at_ns: int | None) -> None:
        super().__init__(message)
        self.reason = reason
        self.key_id = key_id
        self.role = role
        self.signed_at_ns = signed_at_ns

    def __reduce__(self) -> tuple[type[KeyTrustError], tuple[str, str, str, str, int | None]]:
        return type(self), (self.reason, str(self), self.key_id, self.role, self.signed_at_ns)


class AuditFormatError(AuditError, ValueError):
    """A file the core reads back is not in its format: a record line, seal, checkpoint, manifest,
    legal holds file or Parquet file that is garbage, truncated, too deeply nested or has a field of
    the wrong type.

    The message names the file and, where known, the line (``path:line: detail``); the entry or
    field is named in ``detail``.

    Attributes:
        path: The file that could not be read.
        detail: What is wrong with it (expected vs got).
        line: The 1-based line of a line-oriented file, when known.
    """

    def __init__(self, path: str | os.PathLike[str], detail: str, line: int | None = None) -> None:
        self.path = os.fspath(path)
        self.detail = detail
        self.line = line
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {detail}")

    def __reduce__(self) -> tuple[type[AuditFormatError], tuple[str, str, int | None]]:
        return type(self), (self.path, self.detail, self.line)  # picklable across a process pool


class RetentionJournalError(AuditIntegrityError):
    """A retention journal is not authentic, or names a path outside the trail; nothing was removed."""

    def __init__(self, journal: object, problem: str) -> None:
        super().__init__(
            f"retention journal {journal}: {problem}; retention removed nothing (inspect the journal: "
            "finish or delete it by hand only if you know where it came from)"
        )
        self.journal = journal
        self.problem = problem
