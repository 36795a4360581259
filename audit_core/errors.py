"""Exceptions of audit_core: one root, a shallow tree, messages that say what was expected.

Bad event input raises pydantic's ``ValidationError`` (it names the field and the value);
everything else the core raises derives from ``AuditError``.
"""

from __future__ import annotations


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


class RetentionJournalError(AuditIntegrityError):
    """A retention journal is not authentic, or names a path outside the trail; nothing was removed."""

    def __init__(self, journal: object, problem: str) -> None:
        super().__init__(
            f"retention journal {journal}: {problem}; retention removed nothing (inspect the journal: "
            "finish or delete it by hand only if you know where it came from)"
        )
        self.journal = journal
        self.problem = problem
