"""Opening a trail: cold Parquet partitions plus unconverted hot JSONL as one lazy Ibis table.

Examples
--------
>>> import shutil, tempfile
>>> from benchmarks.trail_gen import generate_trail
>>> from workbench import open_trail
>>> base = tempfile.mkdtemp()
>>> generated = generate_trail(base, events=300, days=2, seed=1)
>>> trail = open_trail(base)
>>> int(trail.events.count().execute()) == generated.events
True
>>> fills = trail.filter(start="2026-01-01", end="2026-01-02", event_type="trade.fill")
>>> int(fills.count().execute()) > 0
True
>>> shutil.rmtree(base)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from workbench import _backend, filters
from workbench._time import utc_day
from workbench.errors import TrailNotFoundError

#: Cold columns that are storage, not evidence to query: the stored form of the record (for
#: ``verify_cold``), a torn line's bytes and the line number in the source file. Left out of ``events``.
STORAGE_COLUMNS = frozenset({"record", "torn_bytes", "source_line"})


def cold_schema() -> ibis.Schema:
    """The queryable cold schema: ``audit_core.converter.COLUMNS`` (DuckDB types) without
    ``STORAGE_COLUMNS``, plus the int32 day partitions."""
    from ibis.backends.sql.datatypes import DuckDBType

    from audit_core.converter import COLUMNS

    columns = {name: DuckDBType.from_string(sql_type) for name, sql_type, _ in COLUMNS if name not in STORAGE_COLUMNS}
    return ibis.schema({**columns, **dict.fromkeys(_backend.PARTITIONS, dt.int32)})


@dataclass
class HotSnapshot:
    """The hot rows read when the trail was opened."""

    files: list[Path] = field(default_factory=list)
    rows: int = 0
    first_ts: int | None = None
    last_ts: int | None = None


class Trail:
    """An opened trail. ``events`` is the lazy table every analysis starts from.

    Build one with ``open_trail``. Columns of ``events``: ``ts_event`` (int64 ns, UTC), ``time``
    (the same instant as a UTC timestamp, microseconds), ``event_type``, ``source``,
    ``description`` (one readable line, ``workbench.describe``; computed only for rows a query
    returns), the other columns of
    ``audit_core.converter.COLUMNS`` but ``STORAGE_COLUMNS`` (``stream`` is
    ``<trader_id>.<stream_id>``; ``sequence`` is NULL on ``sys.torn_line`` rows, which stand for a
    torn line a crash left in a converted file) and the int32 day partitions ``year``, ``month``, ``day``.
    """

    def __init__(self, path: Path, backend: Any, events: ir.Table, hot: HotSnapshot, include_hot: bool) -> None:
        self.path = path
        self.backend = backend
        self.events = events
        self.hot = hot
        self.include_hot = include_hot
        self._definition: ir.Table | None = None

    def __repr__(self) -> str:
        return (f"Trail({str(self.path)!r}, backend={_backend.backend_name(self.backend)!r}, "
                f"hot_files={len(self.hot.files)}, hot_rows={self.hot.rows})")

    @property
    def hot_path(self) -> Path:
        return self.path / "hot"

    @property
    def cold_path(self) -> Path:
        return self.path / "cold"

    def refresh(self) -> Trail:
        """Open the trail again, picking up records written and files converted since."""
        return open_trail(self.path, self.backend, include_hot=self.include_hot)

    def filter(
        self,
        *,
        start: Any = None,
        end: Any = None,
        event_type: str | Iterable[str] | None = None,
        source: str | Iterable[str] | None = None,
        trader: str | Iterable[str] | None = None,
        strategy: str | Iterable[str] | None = None,
        instrument: str | Iterable[str] | None = None,
        correlation_id: str | Iterable[str] | None = None,
        table: ir.Table | None = None,
    ) -> ir.Table:
        """Events matching every filter given; lazy.

        Parameters
        ----------
        start, end
            Time window ``start <= ts_event < end`` (see ``filters.time_window``); prunes day partitions.
        event_type
            Event type patterns with ``*`` wildcards (``"trade.*"``).
        source, trader, strategy, instrument, correlation_id
            Exact values (one string or several) of ``source``, ``trader_id``, ``strategy_source``,
            ``instrument_id`` and ``correlation_id``.
        table
            Filter this table (derived from ``events``) instead of ``events``.

        Returns
        -------
        ir.Table
            The filtered table, unordered; order with ``.order_by("ts_event", "stream", "sequence")``.
        """
        t = self.events if table is None else table
        predicates = []
        if start is not None or end is not None:
            predicates.append(filters.time_window(t, start, end))
        for values, predicate in ((event_type, filters.event_types), (source, filters.sources),
                                  (trader, filters.traders), (strategy, filters.strategies),
                                  (instrument, filters.instruments), (correlation_id, filters.correlation_ids)):
            if values is not None:
                predicates.append(predicate(t, values))
        return t.filter(*predicates) if predicates else t


def open_trail(path: Path | str, backend: Any = None, *, include_hot: bool = True) -> Trail:
    """Open the trail under ``path`` (its ``cold/`` partitions and ``hot/`` files) as lazy Ibis tables.

    Parameters
    ----------
    path
        The trail's root (``AuditConfig.base_path``): ``path/cold`` holds the Parquet partitions
        written by ``ParquetConverter``, ``path/hot`` the JSONL files.
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

    Returns
    -------
    Trail
        ``trail.events`` is the table every analysis starts from.

    Raises
    ------
    TrailNotFoundError
        ``path`` has neither ``cold/`` nor ``hot/``.
    """
    root = Path(path)
    cold_dir, hot_dir = root / "cold", root / "hot"
    if not cold_dir.is_dir() and not hot_dir.is_dir():
        raise TrailNotFoundError(f"path={str(path)!r} holds no trail: expected a cold/ or hot/ directory in it")
    backend = _backend.resolve(backend)
    schema = cold_schema()
    cold = _backend.read_cold(backend, cold_dir) if cold_dir.is_dir() else None
    hot, snapshot = (_read_hot(backend, hot_dir, cold_dir, schema) if include_hot and hot_dir.is_dir()
                     else (None, HotSnapshot()))
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
    first = ("ts_event", "event_type", "source")
    # No description column: a view holding its long expression costs every query on the view ~9 ms
    # of planning, selected or not. Analyses that show one add it (``describe.with_description``).
    events = base.select(base.ts_event, _backend.event_time(backend, base.ts_event).name("time"),
                         base.event_type, base.source,
                         *[base[name] for name in schema.names if name not in first])
    trail = Trail(root, backend, _backend.as_view(backend, events), snapshot, include_hot)
    trail._definition = events  # keeps the hot memtable alive as long as the view that reads it
    return trail


def _read_hot(backend: Any, hot_dir: Path, cold_dir: Path, schema: ibis.Schema) -> tuple[ir.Table | None, HotSnapshot]:
    """Unconverted hot files as one in-memory table with the cold schema."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from audit_core.converter import read_hot_file
    from audit_core.integrity import hot_files

    snapshot = HotSnapshot()
    tables = []
    for file in hot_files(hot_dir):
        if _converted(file, cold_dir):
            continue
        table = read_hot_file(file)
        snapshot.files.append(file)
        if table.num_rows:
            tables.append(table)
    if not tables:
        return None, snapshot
    rows = pa.concat_tables(tables, promote_options="permissive")
    days = [utc_day(ts) for ts in rows.column("ts_event").to_pylist()]
    for part in _backend.PARTITIONS:
        rows = rows.append_column(part, pa.array([getattr(day, part) for day in days], pa.int32()))
    snapshot.rows = rows.num_rows
    snapshot.first_ts = pc.min(rows.column("ts_event")).as_py()
    snapshot.last_ts = pc.max(rows.column("ts_event")).as_py()
    rows = rows.select(schema.names).cast(schema.to_pyarrow())  # STORAGE_COLUMNS are dropped here
    return _backend.memtable(backend, rows), snapshot


def _converted(file: Path, cold_dir: Path) -> bool:
    """Whether the cold manifest records this exact file (same sealed bytes) as converted."""
    from audit_core.converter import MANIFEST_DIR
    from audit_core.integrity import read_seal

    manifest = cold_dir / MANIFEST_DIR / (file.name + ".json")
    if not manifest.exists():
        return False
    seal = read_seal(file)
    converted = json.loads(manifest.read_bytes()).get("seal", {})
    return seal is not None and converted.get("file_sha256") == seal.get("file_sha256")
