"""Exceptions of the workbench: one root, a shallow tree, messages that name the argument and its value.

Errors raised by the query engine itself (DuckDB, Spark) are not caught or turned into empty
results: they reach the caller as the engine raised them.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Root of every error raised by the workbench."""


class WorkbenchInputError(WorkbenchError, ValueError):
    """An argument is unusable: the message names it, says what was expected and what was given."""


class TrailNotFoundError(WorkbenchError, FileNotFoundError):
    """The path given to ``open_trail`` holds no trail (no ``hot/`` and no cold partitions)."""


class WorkbenchWarning(UserWarning):
    """Root of every warning the workbench emits (``warnings.simplefilter("ignore", WorkbenchWarning)``)."""


class ResultTruncatedWarning(WorkbenchWarning):
    """A query returned ``limit`` rows and more matched: the result is not the whole answer."""


class UnknownValueWarning(WorkbenchWarning):
    """A filter value matches nothing in the trail (a typo?); the message suggests the values it may mean.

    ``open_trail(..., on_unknown="raise")`` raises ``WorkbenchInputError`` instead, ``"ignore"`` says nothing.
    """


class UnreadableFileWarning(WorkbenchWarning):
    """``open_trail`` left out a file of the trail, or lines of one, that it could not read.

    The message names the file (and its first unreadable line) and says why: a hot line that is not
    a record, a seal or manifest entry that is not in its format. ``ledgerline verify`` says whether
    that is an honest torn write or damage.
    """


class TrailNotVerifiedWarning(WorkbenchWarning):
    """An analysis reads a trail whose verification status is not ``"verified"``.

    Emitted once per opened ``Trail`` (not per call), naming the state and the status's summary:
    the trail failed ``audit_core.verify_trail`` (tampering, damage), was opened with
    ``verify=False``, or could not be checked (a keyed trail opened without its key). The analysis
    still runs: a tampered trail is what a forensic analyst has to investigate. ``trail.verification``
    has the details; results say so too (``df.attrs["verification"]``, the result's text).
    """
