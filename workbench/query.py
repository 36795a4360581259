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

import functools
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench import filters
from workbench._columns import chronological
from workbench._compiled import cached_table
from workbench.describe import with_description
from workbench.errors import ResultTruncatedWarning, WorkbenchInputError
from workbench.incident import reconstruct_incident
from workbench.parameters import parameter_history
from workbench.trail import Trail, open_trail

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd

    from audit_core.trust.report import VerificationReport

DEFAULT_LIMIT = 10_000
#: Columns ``query_time_range`` returns only when asked (``payload=True`` or ``columns=``): the
#: payload JSON is the largest column and repeats the typed columns. ``description`` and the
#: stored ``record`` are not columns of ``trail.events``; ``describe=True`` adds the first, and
#: ``verify_checksums`` checks the second.
ON_REQUEST = ("payload",)
#: Rows per query (about) when ``query_time_range(limit=None)`` fetches a large result.
CHUNK_ROWS = 250_000


def count_by_type(trail: Trail, start: Any = None, end: Any = None, *, source: Any = None) -> ir.Table:
    """Events per ``event_type`` in ``[start, end)``: ``event_type``, ``count``, most frequent first; lazy."""
    return cached_table(trail, "count_by_type", trail.filter_recipes(start=start, end=end, source=source), _counts)


def _counts(rows: ir.Table) -> ir.Table:
    counts = rows.group_by("event_type").aggregate(count=rows.count())
    return counts.order_by(counts["count"].desc(), "event_type")


def _ordered(rows: ir.Table, names: list[str]) -> ir.Table:
    """``rows`` in chronological order with the columns ``names`` (``description`` computed if named)."""
    ordered = chronological(rows)
    if "description" in names:
        ordered = with_description(ordered)
    return ordered.select(*names)


def _first_rows(rows: ir.Table, *, names: list[str], limit: int) -> ir.Table:
    """The first ``limit + 1`` rows of ``_ordered(rows, names)``: one more than returned tells a cut result."""
    return _ordered(rows, names).limit(limit + 1)


class AuditQuery:
    """Time-range queries, counts, incidents, parameter histories and checksum verification of a trail.

    The original specification's query class, with its method names; each method executes and
    returns a pandas DataFrame (or a verification report). Frames are exact: columns keep their
    Arrow types (``int64[pyarrow]`` nanoseconds, ``decimal128(38, 18)[pyarrow]`` money,
    ``string[pyarrow]`` text, NULL as ``pd.NA``; see ``workbench._backend.exact_dtype``). ``time``
    (``datetime64[us, UTC]``) is for reading only: pass ``ts_event`` (int64 ns) back as an instant.

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
        *,
        columns: str | Iterable[str] | None = None,
        describe: bool = False,
        payload: bool = False,
    ) -> pd.DataFrame:
        """Events with ``start_time <= ts_event < end_time``, in chronological order.

        Parameters
        ----------
        start_time, end_time
            The window: nanoseconds (int), datetimes (naive is UTC), pandas Timestamps, dates or
            ISO strings; None leaves that side open.
        event_type
            Event type patterns with ``*`` wildcards (``"trade.*"``), one or several.
        source
            Exact sources, one or several.
        limit
            At most this many rows; when more match, the first ``limit`` are returned with a
            ``ResultTruncatedWarning``. None returns every row (fetched in time slices of about
            ``CHUNK_ROWS`` rows, so the engine never sorts the whole result at once).
        columns
            The columns to return, in this order (any of ``trail.events``' columns, and
            ``"description"``); default every column of ``trail.events`` but ``payload``.
        describe
            Add ``description``, one readable line per event (``workbench.describe``).
        payload
            Add ``payload``, the event's JSON payload.

        Returns
        -------
        pandas.DataFrame
            ``attrs["truncated"]`` says whether ``limit`` cut it (also ``last_truncated``).

        Raises
        ------
        WorkbenchInputError
            A bad ``limit`` or an unknown column name.

        Examples
        --------
        >>> import shutil, tempfile
        >>> from benchmarks.trail_gen import generate_trail
        >>> base = tempfile.mkdtemp()
        >>> _ = generate_trail(base, events=300, days=1, seed=7)
        >>> query = AuditQuery(base)
        >>> frame = query.query_time_range("2026-01-01", "2026-01-02", event_type="trade.fill", limit=None)
        >>> str(frame["price"].dtype), str(frame["ts_event"].dtype), "payload" in frame.columns
        ('decimal128(38, 18)[pyarrow]', 'int64[pyarrow]', False)
        >>> query.query_time_range("2026-01-01", "2026-01-02", event_type="trade.fill",
        ...                        columns=["ts_event", "event_type"], describe=True).columns.tolist()
        ['ts_event', 'event_type', 'description']
        >>> shutil.rmtree(base)
        """
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise WorkbenchInputError(f"limit={limit!r}: expected a positive int, or None for no limit")
        names = self._columns(columns, describe=describe, payload=payload)
        recipes = self.trail.filter_recipes(start=start_time, end=end_time, event_type=event_type, source=source)
        if limit is None:
            self.last_truncated = False
            frame = self._every_row(filters.where(self.trail.events, recipes), names)
        else:
            # On DuckDB compiled once per shape (the columns, the filters given, the limit): another
            # window or event type builds no expression (``_compiled.cached_table``).
            frame = cached_table(self.trail, ("query_time_range", tuple(names), limit), recipes,
                                 functools.partial(_first_rows, names=names, limit=limit)).to_pandas()
            self.last_truncated = len(frame) > limit
            if self.last_truncated:
                frame = frame.iloc[:limit]
                warnings.warn(
                    f"query_time_range returned the first {limit} rows; more match. Pass limit=None for all, "
                    "or narrow the window or filters", ResultTruncatedWarning, stacklevel=2)
        frame.attrs["truncated"] = self.last_truncated
        return frame

    def _columns(self, columns: str | Iterable[str] | None, *, describe: bool, payload: bool) -> list[str]:
        """The result's column names: ``columns`` (checked) or the default, plus those asked for by flag."""
        available = [*self.trail.events.columns, "description"]
        if columns is None:
            names = [name for name in self.trail.events.columns if name not in ON_REQUEST]
        else:
            names = [columns] if isinstance(columns, str) else list(columns)
            unknown = [name for name in names if name not in available]
            if unknown or not names:
                raise WorkbenchInputError(
                    f"columns={columns!r}: {'no column named' if not names else f'unknown {unknown}'}; "
                    f"expected names from {available}")
        for wanted, name in ((describe, "description"), (payload, "payload")):
            if wanted and name not in names:
                names.append(name)
        return names

    def _every_row(self, rows: ir.Table, names: list[str]) -> pd.DataFrame:
        """Every row of ``rows`` in order, fetched in slices of time of about ``CHUNK_ROWS`` rows.

        Why slices: the engine sorts a result before returning it and holds it all while it does
        (DuckDB peaked at 2.3 GB for 1M rows, twice the frame). A slice boundary falls between two
        instants, so ordering within one instant (``chronological``) is the same as in one query.
        """
        import pyarrow as pa

        from workbench._backend import exact_frame

        stats = rows.aggregate(rows=rows.count(), first=rows.ts_event.min(), last=rows.ts_event.max())
        (extent,) = stats.to_pyarrow().to_pylist()
        slices = max(1, -(-extent["rows"] // CHUNK_ROWS))
        if slices == 1:
            return exact_frame(_ordered(rows, names).to_pyarrow())
        first, stop = extent["first"], extent["last"] + 1
        width = -(-(stop - first) // slices)
        tables = []
        for low in range(first, stop, width):
            part = rows.filter(filters.time_window(rows, low, min(low + width, stop)))
            tables.append(_ordered(part, names).to_pyarrow())
        return exact_frame(pa.concat_tables(tables))

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

    def verify_checksums(self, hmac_key: bytes | None = None, public_key: Any = None) -> VerificationReport:
        """Verify the trail's hot files and cold store (``audit_core.verify_trail``); one report for both.

        Returns ``audit_core.VerificationReport`` (``.ok``, ``.failures``, ``.to_text()``; ``.parts``
        per hot and cold part); it never raises for tampering (``report.raise_for_failures()`` does).
        """
        from audit_core.verification import verify_trail

        return verify_trail(self.trail.path, hmac_key=hmac_key, public_key=public_key)
