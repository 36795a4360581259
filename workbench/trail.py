"""Opening a trail: cold Parquet partitions plus unconverted hot JSONL as one lazy Ibis table.

Examples
--------
>>> import shutil, tempfile
>>> from benchmarks.trail_gen import generate_trail
>>> from workbench import open_trail
>>> base = tempfile.mkdtemp()
>>> generated = generate_trail(base, events=300, days=2, seed=1)
>>> trail = open_trail(base)
>>> trail.verification.state
'verified'
>>> int(trail.events.count().execute()) == generated.events
True
>>> fills = trail.filter(start="2026-01-01", end="2026-01-02", event_type="trade.fill")
>>> int(fills.count().execute()) > 0
True
>>> shutil.rmtree(base)
"""

from __future__ import annotations

import difflib
import functools
import os
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from workbench import _backend, _compiled, filters, verification
from workbench._time import NS_PER_SECOND, is_integer, to_ns, utc_day
from workbench.errors import (
    TrailNotFoundError,
    TrailNotVerifiedWarning,
    UnknownValueWarning,
    UnreadableFileWarning,
    WorkbenchInputError,
)
from workbench.verification import VerificationStatus

#: Cold columns that are storage, not evidence to query: the stored form of the record (for
#: ``verify_cold``), a torn line's bytes and the line number in the source file. Left out of ``events``.
STORAGE_COLUMNS = frozenset({"record", "torn_bytes", "source_line"})


@functools.cache
def cold_schema() -> ibis.Schema:
    """The queryable cold schema: ``audit_core.cold.converter.COLUMNS`` (DuckDB types) without
    ``STORAGE_COLUMNS``, plus the int32 day partitions.

    Computed once per process (a constant: parsing its ~55 type names cost every ``open_trail`` 5-10 ms),
    each of its few distinct type names parsed once (``_backend.duckdb_type``, which the cold files'
    column types then find parsed).
    """
    from audit_core.cold.projection import COLUMNS

    columns = {name: _backend.duckdb_type(sql_type, True) for name, sql_type, _ in COLUMNS
               if name not in STORAGE_COLUMNS}
    return ibis.schema({**columns, **dict.fromkeys(_backend.PARTITIONS, dt.int32)})


@dataclass
class HotSnapshot:
    """The hot rows read when the trail was opened."""

    files: list[Path] = field(default_factory=list)
    rows: int = 0
    first_ts: int | None = None
    last_ts: int | None = None


#: What ``open_trail(on_unknown=...)`` accepts: what a filter value that matches nothing does.
ON_UNKNOWN = ("warn", "raise", "ignore")
#: Catalogue entries: the argument names that are checked against them, and the column they come from.
CATALOGUE_COLUMNS = {"event_type": "event_type", "source": "source", "param_name": "param_name",
                     "instrument": "instrument_id", "strategy": "strategy_source", "owner": "owner"}
_INSTANT_UNITS = (("seconds", NS_PER_SECOND), ("milliseconds", 1_000_000), ("microseconds", 1_000))


@dataclass(frozen=True)
class Catalogue:
    """What a trail holds: the distinct values of the columns users filter on, and its time range.

    Computed once per opened trail, on first use (one aggregate query), so that a filter value
    that matches nothing can be told apart from an empty answer.
    """

    values: dict[str, frozenset[str]]
    first_ts: int | None
    last_ts: int | None
    rows: int

    @classmethod
    def of(cls, events: ir.Table) -> Catalogue:
        present = {argument: column for argument, column in CATALOGUE_COLUMNS.items() if column in events.columns}
        aggregates = {argument: events[column].collect(distinct=True) for argument, column in present.items()}
        row = events.aggregate(_rows=events.count(), _first=events.ts_event.min(), _last=events.ts_event.max(),
                               **aggregates).to_pyarrow().to_pylist()[0]
        values = {argument: frozenset(row[argument] or ()) for argument in present}
        return cls(values, row["_first"], row["_last"], row["_rows"])


class Trail:
    """An opened trail. ``events`` is the lazy table every analysis starts from.

    Build one with ``open_trail``. Columns of ``events``: ``ts_event`` (int64 ns since the epoch,
    UTC: the canonical instant, exact on every engine and in ``to_pandas()``; pass it back to any
    analysis), ``time`` (the same instant as a UTC timestamp, microseconds: for display only),
    ``event_type``, ``source``, the other columns of ``audit_core.cold.converter.COLUMNS`` but
    ``STORAGE_COLUMNS`` (``stream`` is ``<trader_id>.<stream_id>``; ``sequence`` is NULL on
    ``sys.torn_line`` rows, which stand for a torn line a crash left in a converted file; ``owner``
    is the component whose parameter a ``param.*`` record changed; parameter values are typed in
    ``*_value_num``/``_text``/``_bool``/``_json`` beside their JSON text) and the int32 day
    partitions ``year``, ``month``, ``day``. A readable ``description`` is not a column: add it to
    the rows you select with ``workbench.with_description``.

    ``verification`` says whether the files verified (``open_trail(verify=...)``). Reading
    ``events`` (which every analysis does) on a trail whose status is not ``"verified"`` warns
    ``TrailNotVerifiedWarning`` once per ``Trail``; the analysis still runs.
    """

    def __init__(self, path: Path, backend: Any, events: ir.Table, hot: HotSnapshot, include_hot: bool,
                 on_unknown: str = "warn", status: VerificationStatus | None = None) -> None:
        if on_unknown not in ON_UNKNOWN:
            raise WorkbenchInputError(f"on_unknown={on_unknown!r}: expected one of {ON_UNKNOWN}")
        self.path = path
        self.backend = backend
        self._events = events
        self.hot = hot
        self.include_hot = include_hot
        self.on_unknown = on_unknown
        self._definition: ir.Table | None = None
        self._catalogue: Catalogue | None = None
        self._time_range: tuple[int | None, int | None] | None = None
        self._keys: tuple[bytes | None, Any, Any] = (None, None, None)  # kept for refresh(); never shown
        self._verification = status if status is not None else verification.not_verified(path, "not checked")
        self._warned = False
        self._verify = True  # open_trail(verify=...), kept for refresh()
        #: The ``audit_core.evidence.BundleReport`` of a trail opened from an evidence bundle, else None.
        self.bundle_report: Any = None
        verification.register_view(events, self)
        _compiled.remember_relation(events.op())  # its SQL shape pictured once, not per query

    @property
    def events(self) -> ir.Table:
        """The trail's rows, lazy: what every analysis starts from.

        The first read on a trail that is not ``"verified"`` warns ``TrailNotVerifiedWarning``.
        """
        self._warn_unless_verified()
        return self._events

    @property
    def verification(self) -> VerificationStatus:
        """The files' verification status: ``state``, ``summary``, ``report`` (``workbench.VerificationStatus``)."""
        return self._verification

    def verify(self) -> VerificationStatus:
        """Verify the files again now, ignoring cached results (the fresh result is cached).

        Returns the new status, which ``verification`` holds from now on. Use it when a cached
        result is not enough (an unkeyed cache entry is only as trustworthy as the directory it is
        in). It is the status of the files as they are now: hot rows were read when the trail was
        opened, so after files changed ``refresh()`` (rows and status) is what you want. A change
        of state warns again on the next read.
        """
        hmac_key, public_key, cold_public_key = self._keys
        status = verification.verification_status(self.path, hmac_key, public_key, use_cache=False,
                                                  cold_public_key=cold_public_key)
        if status.state != self._verification.state:
            self._warned = False
        self._verification = status
        return status

    def _warn_unless_verified(self) -> None:
        if self._warned or self._verification.state == verification.VERIFIED:
            return
        self._warned = True
        status = self._verification
        warnings.warn(f"trail {str(self.path)!r} {status.summary}. Analyses still run and their results say so "
                      "(df.attrs['verification']); trail.verification has the details", TrailNotVerifiedWarning,
                      stacklevel=_caller_level())

    @property
    def catalogue(self) -> Catalogue:
        """Distinct event types, sources, parameters, instruments, strategies, owners and the time range."""
        if self._catalogue is None:
            self._catalogue = Catalogue.of(self.events)
        return self._catalogue

    def time_range(self) -> tuple[int | None, int | None]:
        """The first and last ``ts_event`` (None, None on an empty trail): the catalogue's, or the cold
        files' footer statistics and the hot rows read by ``open_trail``, or else one min/max query.

        The min/max query costs a fraction of the catalogue's distinct values (a first query with
        an integer instant needs only the range), and the footers nothing more (``open_trail`` reads
        them anyway): a min/max query scanned every file's ``ts_event`` before a cold start's first query.
        """
        if self._catalogue is not None:
            return self._catalogue.first_ts, self._catalogue.last_ts
        if self._time_range is None:
            events = self.events
            (row,) = events.aggregate(first=events.ts_event.min(), last=events.ts_event.max()).to_pyarrow().to_pylist()
            self._time_range = (row["first"], row["last"])
        return self._time_range

    def check_values(self, argument: str, values: str | Iterable[str] | None) -> None:
        """Warn (or raise, per ``on_unknown``) when a value of ``argument`` matches nothing in the trail.

        ``argument`` is a key of ``CATALOGUE_COLUMNS``; event types may be ``*`` patterns. The
        message names the argument and the value and suggests close values ("did you mean ...").
        Nothing is checked on an empty trail or with ``on_unknown="ignore"``.
        """
        if values is None or self.on_unknown == "ignore":
            return
        given = filters.string_values(values, argument)
        catalogue = self.catalogue
        known = catalogue.values.get(argument)
        if known is None or catalogue.rows == 0:
            return
        for value in given:
            if argument == "event_type" and "*" in value:
                if any(filters.pattern_matches(value, candidate) for candidate in known):
                    continue
                probe = value.replace("*", "")
            elif value in known:
                continue
            else:
                probe = value
            suggestions = _suggestions(probe, known)
            if argument == "event_type" and any(k.startswith(value + ".") for k in known):
                suggestions = [value + ".*", *suggestions][:3]  # "trade" for every trade type
            self._unknown(argument, value, suggestions)

    def _unknown(self, argument: str, value: str, suggestions: list[str]) -> None:
        hint = f"; did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        message = f"{argument}={value!r} matches nothing in this trail{hint}"
        if self.on_unknown == "raise":
            raise WorkbenchInputError(message)
        warnings.warn(message, UnknownValueWarning, stacklevel=4)

    def to_ns(self, value: Any, argument: str) -> int:
        """An instant as int64 nanoseconds (``workbench._time.to_ns``), refusing a likely unit mistake.

        An integer that lies outside the trail's time range as nanoseconds, but inside it read as
        seconds, milliseconds or microseconds, raises ``WorkbenchInputError`` with the value to
        pass instead. Other integers (tiny synthetic test times included) are taken as given.
        """
        ns = to_ns(value, argument)
        if not is_integer(value):
            return ns
        first, last = self.time_range()
        if first is None or last is None or first <= ns <= last:
            return ns
        for unit, factor in _INSTANT_UNITS:
            if first <= ns * factor <= last:
                raise WorkbenchInputError(
                    f"{argument}={value!r} lies outside this trail as nanoseconds but inside it as {unit}: "
                    f"instants are int64 nanoseconds since the epoch; pass {ns * factor} (or a datetime/string)")
        return ns

    def __repr__(self) -> str:
        return (f"Trail({str(self.path)!r}, backend={_backend.backend_name(self.backend)!r}, "
                f"hot_files={len(self.hot.files)}, hot_rows={self.hot.rows}, "
                f"verification={self._verification.state!r})")

    @property
    def hot_path(self) -> Path:
        return self.path / "hot"

    @property
    def cold_path(self) -> Path:
        return self.path / "cold"

    def refresh(self) -> Trail:
        """Open the trail again, picking up records written and files converted since.

        The keys and ``verify`` are kept; the verification status is computed again for the files
        as they are now (a cached result only if no file changed).
        """
        hmac_key, public_key, cold_public_key = self._keys
        return open_trail(self.path, self.backend, include_hot=self.include_hot, on_unknown=self.on_unknown,
                          hmac_key=hmac_key, public_key=public_key, cold_public_key=cold_public_key,
                          verify=self._verify)

    def filter(
        self,
        *,
        start: Any = None,
        end: Any = None,
        event_type: str | Iterable[str] | None = None,
        exclude: str | Iterable[str] | None = None,
        family: str | Iterable[str] | None = None,
        source: str | Iterable[str] | None = None,
        trader: str | Iterable[str] | None = None,
        strategy: str | Iterable[str] | None = None,
        instrument: str | Iterable[str] | None = None,
        param_name: str | Iterable[str] | None = None,
        owner: str | Iterable[str] | None = None,
        correlation_id: str | Iterable[str] | None = None,
        table: ir.Table | None = None,
        check: bool = True,
    ) -> ir.Table:
        """Events matching every filter given; lazy.

        Parameters
        ----------
        start, end
            Time window ``start <= ts_event < end``: int64 nanoseconds (the canonical instant),
            a pandas ``Timestamp`` (nanoseconds kept), a datetime (naive is UTC), a date or a
            string like ``"2026-01-05 14:32"``. Prunes day partitions. An integer that only makes
            sense as seconds, milliseconds or microseconds raises ``WorkbenchInputError``.
        event_type
            Event type patterns with ``*`` wildcards. ``"trade.*"`` matches every ``trade.`` type,
            signals included; ``family=`` or ``exclude=`` tell signals and trades apart.
        exclude
            Event type patterns to leave out (``"trade.signal*"``).
        family
            ``"parameter"``, ``"signal"``, ``"order"`` (orders, acceptances, rejections, cancels),
            ``"fill"``, ``"position"`` or ``"system"`` (``filters.FAMILIES``), or several.
        source, trader, strategy, instrument, param_name, owner, correlation_id
            Exact values (one string or several) of ``source``, ``trader_id``, ``strategy_source``,
            ``instrument_id``, ``param_name``, ``owner`` and ``correlation_id``.
        table
            Filter this table (derived from ``events``) instead of ``events``.
        check
            Warn (``UnknownValueWarning``, or raise: ``open_trail(on_unknown=...)``) when an event
            type, source, strategy, instrument, parameter or owner matches nothing in the trail,
            suggesting close values. Analyses pass ``False`` for their own constants.

        Returns
        -------
        ir.Table
            The filtered table, unordered; ``workbench.chronological(table)`` orders it causally.
        """
        t = self.events if table is None else table
        recipes = self.filter_recipes(start=start, end=end, event_type=event_type, exclude=exclude, family=family,
                                      source=source, trader=trader, strategy=strategy, instrument=instrument,
                                      param_name=param_name, owner=owner, correlation_id=correlation_id, check=check)
        return filters.where(t, recipes)

    def filter_recipes(self, *, start: Any = None, end: Any = None, event_type: Any = None, exclude: Any = None,
                       family: Any = None, source: Any = None, trader: Any = None, strategy: Any = None,
                       instrument: Any = None, param_name: Any = None, owner: Any = None, correlation_id: Any = None,
                       check: bool = True) -> list[filters.Recipe]:
        """``filter``'s predicates as recipes (``filters.build``), its checks done: one per filter given.

        The analyses that compile their SQL once per shape (``workbench._compiled.cached_table``) start here.
        """
        predicates: list[filters.Recipe] = []
        if start is not None or end is not None:
            start_ns = None if start is None else (self.to_ns(start, "start") if check else to_ns(start, "start"))
            end_ns = None if end is None else (self.to_ns(end, "end") if check else to_ns(end, "end"))
            predicates.append(filters.window_recipe(start_ns, end_ns))
        if family is not None:
            predicates.append(filters.event_types_recipe(filters.family_patterns(family)))
        if exclude is not None:
            predicates.append(("not", filters.event_types_recipe(exclude)))
        if event_type is not None:
            predicates.append(filters.event_types_recipe(event_type))
        for values, column, argument in ((source, "source", "source"), (trader, "trader_id", "trader"),
                                         (strategy, "strategy_source", "strategy"),
                                         (instrument, "instrument_id", "instrument"),
                                         (correlation_id, "correlation_id", "correlation_id"),
                                         (param_name, "param_name", "param_name"), (owner, "owner", "owner")):
            if values is not None:
                predicates.append(filters.isin_recipe(column, filters.string_values(values, argument)))
        if check:  # after the predicates, which refuse malformed values first
            for argument, values in (("event_type", event_type), ("event_type", exclude), ("source", source),
                                     ("strategy", strategy), ("instrument", instrument),
                                     ("param_name", param_name), ("owner", owner)):
                self.check_values(argument, values)
        return predicates

    # The analyses as methods, so a notebook reads ``trail.state_at(...)``; the module functions stay.

    def state_at(self, ts: Any, **options: Any) -> Any:
        """The value of every parameter in force at ``ts`` (``workbench.state_at``)."""
        from workbench.parameters import state_at

        return state_at(self, ts, **options)

    def parameter_history(self, name: str, **options: Any) -> Any:
        """Every change of one parameter, in order (``workbench.parameter_history``)."""
        from workbench.parameters import parameter_history

        return parameter_history(self, name, **options)

    def incident(self, at: Any, minutes: Any = 5, **options: Any) -> Any:
        """Every event within ``minutes`` of ``at``, in causal order (``workbench.reconstruct_incident``)."""
        from workbench.incident import reconstruct_incident

        return reconstruct_incident(self, at, minutes, **options)

    def lifecycle(self, order_id: str | None = None, **options: Any) -> Any:
        """Signal, order, fills and positions of one trade (``workbench.trade_lifecycle``)."""
        from workbench.trades import trade_lifecycle

        return trade_lifecycle(self, order_id, **options)

    def pnl(self, balances: Any = None, **options: Any) -> Any:
        """Realized P&L against recorded balances (``workbench.pnl_reconciliation``)."""
        from workbench.pnl import pnl_reconciliation

        return pnl_reconciliation(self, balances, **options)

    def pnl_events(self, **options: Any) -> Any:
        """The records that carry realized P&L by the one rule (``workbench.realized_pnl_events``)."""
        from workbench.pnl import realized_pnl_events

        return realized_pnl_events(self, **options)

    def pnl_series(self, by: str = "strategy_source", **options: Any) -> Any:
        """Realized P&L over time with running totals (``workbench.realized_pnl_series``)."""
        from workbench.pnl import realized_pnl_series

        return realized_pnl_series(self, by, **options)

    def conversion(self, by: str = "strategy_source", **options: Any) -> Any:
        """Signal-to-trade conversion and why signals were not traded (``workbench.signal_conversion``)."""
        from workbench.trades import signal_conversion

        return signal_conversion(self, by, **options)

    def unexplained_changes(self, **options: Any) -> Any:
        """Unexplained parameter changes and integrity failures (``workbench.detect_unexplained_changes``)."""
        from workbench.anomalies import detect_unexplained_changes

        return detect_unexplained_changes(self, **options)

    def count_by_type(self, start: Any = None, end: Any = None, **options: Any) -> Any:
        """Events per event type, most frequent first (``workbench.count_by_type``)."""
        from workbench.query import count_by_type

        return count_by_type(self, start, end, **options)


def _caller_level() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside the workbench (and Ibis)."""
    frame = sys._getframe(2)  # the caller of the method that warns
    level = 2
    package = str(Path(__file__).parent) + os.sep
    while frame is not None and (frame.f_code.co_filename.startswith(package)
                                 or f"{os.sep}ibis{os.sep}" in frame.f_code.co_filename):
        frame = frame.f_back
        level += 1
    return level


def _suggestions(value: str, known: Iterable[str]) -> list[str]:
    """Known values close to ``value``: the same name with a suffix (``EURUSD`` -> ``EURUSD.SIM``), or similar."""
    candidates = sorted(known, key=str)
    extended = [k for k in candidates if k.lower().startswith(value.lower()) and k != value]
    close = difflib.get_close_matches(value, candidates, n=3, cutoff=0.6)
    return list(dict.fromkeys(extended[:3] + close))[:3]


def open_trail(
    path: Path | str,
    backend: Any = None,
    *,
    include_hot: bool = True,
    on_unknown: str = "warn",
    hmac_key: bytes | None = None,
    public_key: Any = None,
    cold_public_key: Any = None,
    verify: bool = True,
) -> Trail:
    """Open the trail under ``path`` (its ``cold/`` partitions and ``hot/`` files) as lazy Ibis tables.

    Parameters
    ----------
    path
        The trail's root (``AuditConfig.base_path``): ``path/cold`` holds the Parquet partitions
        written by ``ParquetConverter``, ``path/hot`` the JSONL files. A file is taken as an
        evidence bundle (``ledgerline export``) and opened with ``workbench.bundle.open_bundle``.
    backend
        An Ibis backend connection (``ibis.duckdb.connect(...)``, ``ibis.pyspark.connect(spark)``),
        or a name: ``"duckdb"`` (the default, a new in-process connection) or ``"spark"`` (a local
        Spark session, ``local[2]``, UTC; an already running session is reused). A pyspark
        connection is used through ``workbench._spark.ExactSparkBackend`` over the same session,
        which fetches results through Arrow so that nanoseconds and decimals arrive exactly.
    include_hot
        Also read every hot file the cold store's manifest does not list as converted: today's
        live file, and sealed files the converter has not reached yet. They are read once, now
        (``Trail.refresh()`` reads them again). A record found in both hot and cold (a file
        converted after it was listed, or Parquet copied without its manifest) counts once: hot
        rows whose (``stream``, ``sequence``) is in cold are dropped.
    on_unknown
        What a filter value that matches nothing in the trail (a misspelt event type, source,
        parameter, instrument without its venue suffix...) does: ``"warn"`` (the default, an
        ``UnknownValueWarning`` suggesting close values), ``"raise"`` (``WorkbenchInputError``) or
        ``"ignore"``.
    hmac_key, public_key, cold_public_key
        The trail's HMAC key; the writer's Ed25519 public key (seals must be signed by it); the
        converter's, when it signs manifests and the cold root with a key of its own (default:
        ``public_key``). They are what the files are verified with. Whether a hot file was
        converted is decided from an authentic manifest entry (``audit_core.cold.manifest.converted_entry``):
        on a keyed trail, without the key no entry is authentic, so every hot file still present is
        read again (its rows also in cold count once: the answers are the same, only slower).
    verify
        Verify the files first (``audit_core.verify_trail``: hot chains and seals, every cold
        store's Parquet columns, manifests and root) and keep the result as ``trail.verification``
        (``VerificationStatus``: ``"verified"``, ``"failed"`` or ``"unverified"``). The result is
        cached (``workbench.verification``): opening unchanged files again with the same keys does
        not verify again. ``False``: not checked, ``"unverified"``. An analysis on a trail that is
        not ``"verified"`` warns ``TrailNotVerifiedWarning`` once and says so in its result; a
        failed trail is still opened, so that it can be investigated.

    Returns
    -------
    Trail
        ``trail.events`` is the table every analysis starts from; ``trail.verification`` its status.

    Raises
    ------
    TrailNotFoundError
        ``path`` has neither ``cold/`` nor ``hot/``.
    """
    root = Path(path)
    if root.is_file():  # an evidence bundle (``ledgerline export``): verified, then opened read-only
        from workbench.bundle import open_bundle

        return open_bundle(root, backend, on_unknown=on_unknown, hmac_key=hmac_key, public_key=public_key)
    cold_dir, hot_dir = root / "cold", root / "hot"
    if not isinstance(verify, bool):
        raise WorkbenchInputError(f"verify={verify!r}: expected True or False")
    if not cold_dir.is_dir() and not hot_dir.is_dir():
        raise TrailNotFoundError(f"path={str(path)!r} holds no trail: expected a cold/ or hot/ directory in it")
    backend = _backend.resolve(backend)
    # Before the files are read: the status is for the files as they were, at most, when read.
    status = (verification.verification_status(root, hmac_key, public_key, cold_public_key=cold_public_key)
              if verify else verification.not_verified(root, "opened with verify=False"))
    schema = cold_schema()
    damaged: list[tuple[Path, str]] = []
    extent: list[int | None] = [None, None]
    cold_files = sorted(cold_dir.glob(_backend.COLD_GLOB)) if cold_dir.is_dir() else []
    cold = _backend.read_cold(backend, cold_dir, damaged, extent, cold_files) if cold_dir.is_dir() else None
    for file, why in damaged:
        warnings.warn(f"open_trail: left out {file}: {why}; the rows of its source are read from the hot file "
                      "if it is still there. `ledgerline verify` reports the damage", UnreadableFileWarning,
                      stacklevel=2)
    lost = {file.resolve() for file, _ in damaged}
    keys = (hmac_key, public_key, cold_public_key)
    hot, snapshot = (_read_hot(backend, hot_dir, cold_dir, schema, set(cold_files), lost, keys)
                     if include_hot and hot_dir.is_dir()
                     else (None, HotSnapshot()))
    key = _backend.definition_key(backend, (cold, hot), snapshot.first_ts, snapshot.last_ts)
    direct = (lambda: _backend.cold_view_sql(backend, cold, schema.names)) if cold is not None and hot is None else None
    view, events = _backend.events_view(backend, lambda: _definition(backend, cold, hot, snapshot, schema), key,
                                        direct)
    trail = Trail(root, backend, view, snapshot, include_hot, on_unknown, status)
    trail._keys = keys
    trail._verify = verify
    # Keeps the hot memtable alive as long as the view that reads it; None when the view was made from
    # kept or directly written SQL (DuckDB only, whose hot rows are a temporary table: it lives as long
    # as the connection).
    trail._definition = events
    trail._time_range = _time_range(cold, extent, snapshot)
    return trail


def _definition(backend: Any, cold: ir.Table | None, hot: ir.Table | None, snapshot: HotSnapshot,
                schema: ibis.Schema) -> ir.Table:
    """The trail's ``events`` from its cold table and hot rows: hot rows already in cold counted once."""
    if cold is not None:
        cold = cold.select(*schema.names)
    if cold is not None and hot is not None:
        assert snapshot.first_ts is not None and snapshot.last_ts is not None
        in_cold = cold.filter(
            cold.ts_event.between(snapshot.first_ts, snapshot.last_ts),
            filters.partition_predicate(cold, snapshot.first_ts, snapshot.last_ts),
        ).select("stream", "sequence")
        hot = hot.anti_join(in_cold, ["stream", "sequence"])
        hot = hot.select(*[hot[name].cast(cold.schema()[name]) for name in schema.names])
        base = cold.union(hot)
    elif cold is not None or hot is not None:
        base = cold if cold is not None else hot
    else:
        base = ibis.memtable(schema.to_pyarrow().empty_table())
    assert base is not None
    return events_of(backend, base, schema)


def events_of(backend: Any, base: ir.Table, schema: ibis.Schema) -> ir.Table:
    """The ``events`` columns of a trail from rows in the cold schema (``base``): ``time`` after ``ts_event``."""
    first = ("ts_event", "event_type", "source")
    # No description column: a view holding its long expression costs every query on the view ~9 ms
    # of planning, selected or not. Analyses that show one add it (``describe.with_description``).
    return base.select(base.ts_event, _backend.event_time(backend, base.ts_event).name("time"),
                       base.event_type, base.source, *[base[name] for name in schema.names if name not in first])


def _time_range(cold: ir.Table | None, extent: list[int | None], hot: HotSnapshot) -> tuple[int, int] | None:
    """The trail's first and last ``ts_event`` from the cold footers' statistics (``read_cold``) and the
    hot rows read, or None when a cold file had none (``Trail.time_range`` then asks the engine).

    Only the unit-mistake check of ``Trail.to_ns`` reads it: the statistics of unverified files can
    at worst make that check miss a mistake or refuse an instant, never change a query's rows.
    """
    ends = [(hot.first_ts, hot.last_ts)] if hot.first_ts is not None and hot.last_ts is not None else []
    if cold is not None:
        first, last = extent
        if first is None or last is None:
            return None
        ends.append((first, last))
    if not ends:
        return None  # no rows: the engine's answer (None, None)
    return min(first for first, _ in ends), max(last for _, last in ends)


def _read_hot(
    backend: Any,
    hot_dir: Path,
    cold_dir: Path,
    schema: ibis.Schema,
    present: set[Path],
    lost: set[Path] | None = None,
    keys: tuple[bytes | None, Any, Any] = (None, None, None),
) -> tuple[ir.Table | None, HotSnapshot]:
    """Unconverted hot files (``workbench._converted``) as one in-memory table with the cold schema.

    ``present`` are the cold Parquet files the trail reads, ``lost`` those left out as damaged.

    What cannot be read is left out with an ``UnreadableFileWarning`` naming the file: lines that
    are not records, or a whole file that cannot be opened. A file whose seal or manifest entry is
    unreadable counts as not converted, so its hot rows are read (rows also in cold count once).
    """
    from audit_core._layout import NOT_A_TRAIL_FILE, trail_files  # not the verifier's imports
    from audit_core.cold.manifest import vouched_entries
    from audit_core.errors import AuditFormatError
    from workbench._converted import converted

    def unreadable(error: AuditFormatError | OSError, what: str = "left out") -> None:
        warnings.warn(f"open_trail: {what}: {error}", UnreadableFileWarning, stacklevel=4)

    snapshot = HotSnapshot()
    tables = []
    files, strays = trail_files(hot_dir)
    for stray in strays:  # a forged record in notes.jsonl must not become a row
        unreadable(AuditFormatError(stray, NOT_A_TRAIL_FILE))
    cold_key = keys[2] if keys[2] is not None else keys[1]
    # The cold root, checked once: entries it commits to are not authenticated again one by one.
    vouched = vouched_entries(cold_dir, keys[0], cold_key) if files else None
    for file in files:
        try:
            if converted(file, cold_dir, present, lost or set(), keys[0], cold_key, vouched):
                continue
        except (AuditFormatError, OSError) as exc:
            unreadable(exc, "cannot tell whether it was converted; reading its hot rows")
        from audit_core.cold.converter import read_hot_file  # here: a converted trail's open needs no converter

        try:
            table = read_hot_file(file, on_error=unreadable)
        except (AuditFormatError, OSError) as exc:
            unreadable(exc)
            continue
        snapshot.files.append(file)
        if table.num_rows:
            tables.append(table)
    if not tables:
        return None, snapshot
    import pyarrow as pa
    import pyarrow.compute as pc  # ~0.6 s to import: only when there are hot rows

    rows = pa.concat_tables(tables, promote_options="permissive")
    days = [utc_day(ts) for ts in rows.column("ts_event").to_pylist()]
    for part in _backend.PARTITIONS:
        rows = rows.append_column(part, pa.array([getattr(day, part) for day in days], pa.int32()))
    snapshot.rows = rows.num_rows
    snapshot.first_ts = pc.min(rows.column("ts_event")).as_py()
    snapshot.last_ts = pc.max(rows.column("ts_event")).as_py()
    rows = rows.select(schema.names).cast(schema.to_pyarrow())  # STORAGE_COLUMNS are dropped here
    return _backend.memtable(backend, rows), snapshot
