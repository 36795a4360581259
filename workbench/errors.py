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


class ResultTruncatedWarning(UserWarning):
    """A query returned ``limit`` rows and more matched: the result is not the whole answer."""


class UnknownValueWarning(UserWarning):
    """A filter value matches nothing in the trail (a typo?); the message suggests the values it may mean.

    ``open_trail(..., on_unknown="raise")`` raises ``WorkbenchInputError`` instead, ``"ignore"`` says nothing.
    """


class UnreadableFileWarning(UserWarning):
    """``open_trail`` left out a file of the trail, or lines of one, that it could not read.

    The message names the file (and its first unreadable line) and says why: a hot line that is not
    a record, a seal or manifest entry that is not in its format. ``ledgerline verify`` says whether
    that is an honest torn write or damage.
    """
