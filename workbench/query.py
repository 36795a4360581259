"""``AuditQuery``: the seed's query class, kept for its callers, implemented on the workbench expressions.

Every method executes and returns a pandas DataFrame (or a verification report). Nothing is capped
silently: when ``limit`` cuts a result, a ``ResultTruncatedWarning`` says so, the frame's
``attrs["truncated"]`` is True and ``last_truncated`` is set. Query errors propagate.

Examples
--------
>>> import shutil, tempfile
>>> from benchmarks.trail_gen import generate_trail
>>> from workbench import AuditQuery
>>> base = tempfile.mkdtemp()
>>> generated = generate_trail(base, events=300, days=1, seed=7)
>>> query = AuditQuery(base)
>>> counts = query.count_by_type()
>>> int(counts["count"].sum()) == generated.events
True
>>> fills = query.query_time_range("2026-01-01", "2026-01-02", event_type="trade.fill", limit=None)
>>> set(fills["event_type"])
{'trade.fill'}
>>> shutil.rmtree(base)
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench._columns import CHRONOLOGICAL
from workbench.errors import ResultTruncatedWarning, WorkbenchInputError
from workbench.incident import reconstruct_incident
from workbench.parameters import parameter_history
from workbench.trail import Trail, open_trail

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd

    from audit_core.integrity import VerificationReport

DEFAULT_LIMIT = 10_000


def count_by_type(trail: Trail, start: Any = None, end: Any = None, *, source: Any = None) -> ir.Table:
    """Events per ``event_type`` in ``[start, end)``: ``event_type``, ``count``, most frequent first; lazy."""
    rows = trail.filter(start=start, end=end, source=source)
    counts = rows.group_by("event_type").aggregate(count=rows.count())
    return counts.order_by(counts["count"].desc(), "event_type")


class AuditQuery:
    """Time-range queries, counts, incidents, parameter histories and checksum verification of a trail.

    Parameters
    ----------
    trail
        An opened ``Trail``, or the trail's root path (opened with ``open_trail``).
    backend
        An Ibis backend for ``open_trail`` when ``trail`` is a path.
    """

    def __init__(self, trail: Trail | Path | str, backend: Any = None) -> None:
        self.trail = trail if isinstance(trail, Trail) else open_trail(trail, backend)
        #: Whether the last ``query_time_range`` result was cut at its ``limit``.
        self.last_truncated = False

    def query_time_range(
        self,
        start_time: Any,
        end_time: Any,
        event_type: Any = None,
        source: Any = None,
        limit: int | None = DEFAULT_LIMIT,
    ) -> pd.DataFrame:
        """Events with ``start_time <= ts_event < end_time``, in chronological order.

        ``event_type`` takes wildcards (``"trade.*"``). ``limit=None`` returns everything; when more
        rows than ``limit`` match, the first ``limit`` are returned with a ``ResultTruncatedWarning``.
        """
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise WorkbenchInputError(f"limit={limit!r}: expected a positive int, or None for no limit")
        rows = self.trail.filter(start=start_time, end=end_time, event_type=event_type, source=source)
        rows = rows.order_by(*CHRONOLOGICAL)
        if limit is None:
            self.last_truncated = False
            frame = rows.to_pandas()
        else:
            frame = rows.limit(limit + 1).to_pandas()
            self.last_truncated = len(frame) > limit
            if self.last_truncated:
                frame = frame.iloc[:limit]
                warnings.warn(
                    f"query_time_range returned the first {limit} rows; more match. Pass limit=None for all, "
                    "or narrow the window or filters", ResultTruncatedWarning, stacklevel=2)
        frame.attrs["truncated"] = self.last_truncated
        return frame

    def count_by_type(self, start_time: Any = None, end_time: Any = None, source: Any = None) -> pd.DataFrame:
        """Events per ``event_type`` (columns ``event_type``, ``count``), most frequent first."""
        return count_by_type(self.trail, start_time, end_time, source=source).to_pandas()

    def reconstruct_incident(self, timestamp: Any, minutes: float = 5) -> pd.DataFrame:
        """Every event within ``minutes`` of ``timestamp``, in order, with a ``description`` per row."""
        return reconstruct_incident(self.trail, timestamp, minutes).to_pandas()

    def get_parameter_history(
        self, param_name: str, source: Any = None, start_time: Any = None, end_time: Any = None
    ) -> pd.DataFrame:
        """Every change of ``param_name`` in order (see ``parameter_history``)."""
        return parameter_history(self.trail, param_name, source, start=start_time, end=end_time).to_pandas()

    def verify_checksums(self, hmac_key: bytes | None = None) -> VerificationReport:
        """Verify checksums, chains and seals of the hot files and the cold store; one report for both.

        Returns ``audit_core.VerificationReport`` (``.ok``, ``.failures``, ``.to_text()``); it never
        raises for tampering (``report.raise_for_failures()`` does).
        """
        from audit_core.converter import verify_cold
        from audit_core.integrity import VerificationReport, verify

        report = VerificationReport(keyed=hmac_key is not None)
        parts = []
        if self.trail.hot_path.is_dir() and any(self.trail.hot_path.glob("*.jsonl")):
            parts.append(verify(self.trail.hot_path, hmac_key))
        if self.trail.cold_path.is_dir():
            parts.append(verify_cold(self.trail.cold_path, hmac_key))
        for part in parts:
            report.files += part.files
            report.records += part.records
            report.failures += part.failures
            report.recovered += part.recovered
            report.streams.update(part.streams)
            report.sealed_files += part.sealed_files
        return report
