"""``verify_cold``'s fast path for one manifest entry: accept it whole, or leave it to the careful checks.

``clean_entry`` reads the entry's Parquet files with pyarrow, a batch at a time in source-line
order, and rebuilds each row's line from its record (``_bodies.rebuild_bodies``: ``record.rebuild_line``'s
rule, which ``projection.chained_rows`` writes in SQL for the careful checks; column-wise, where the
nested SQL steps cost about 12 us a row); DuckDB checks whether any typed column differs from its
derivation from that very body (``cold_verify``'s column checks). The lines are taken
in source-line order and THE chain rule's fast path runs over them (``chain.clean_run``: checksums,
sequences, ``prev_hash`` links, ``ts_recorded`` order, as hot ``verify`` checks a file); then the
seal's claims, and each file's parameter index and id filter. It only ever accepts an entry the
careful checks would pass without a failure: anything it does not plainly recognise (a torn line, an
older record format, any mismatch, anything unreadable) returns None, and
``cold_verify._EntryCheck``, which alone writes failures, checks the entry row by row.
``tests/unit/audit/test_cold_verify_fast.py`` holds the two to the same report.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit_core.cold._bodies import rebuild_bodies
from audit_core.cold._id_filter import ID_COLUMNS, id_filter
from audit_core.cold._parquet import parameter_index_sql
from audit_core.cold.projection import DERIVED_PREV_HASH_SINCE, structure
from audit_core.trust.chain import clean_run
from audit_core.trust.record import CHECKSUM_SUFFIX_PREFIX, GENESIS_HASH, INT_FIELDS, split_record

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

#: What ``parameter_index_sql`` reads (``_EntryCheck._check_parameters`` checks an index only then).
PARAMETER_COLUMNS = frozenset({"owner", "param_name", "event_type", "ts_event"})
#: Lines handed to the chain rule at a time: bounds the memory of an entry of millions of rows.
_BATCH_ROWS = 65_536
_FILE_SQL = "read_parquet($file)"
#: The columns a clean row's line is rebuilt from (``record.rebuild_line``).
_CHAIN_COLUMNS = ("source_line", "record", "checksum", "torn_bytes", *INT_FIELDS)
#: The name a batch of rows is registered under in DuckDB for the typed-column check.
_ROWS_VIEW = "clean_entry_rows"


@dataclass(frozen=True)
class EntryRows:
    """What ``clean_entry`` checks of one entry: its files (each passed the file checks) and claims."""

    files: list[tuple[Path, dict[str, Any], list[str]]]  # each output's path, its record in the entry, columns
    seal: dict[str, Any]
    stream: str | None
    version: int
    #: ``cold_verify``'s typed-column check of a row: the derived values, and whether any differs.
    values_sql: str
    differs_sql: str
    #: The SQL test of a row with neither a record nor torn bytes.
    empty_sql: str


def clean_entry(con: duckdb.DuckDBPyConnection, entry: EntryRows, hmac_key: bytes | None) -> int | None:
    """The entry's record count if every row, chain, seal claim, typed column and index checks out, else None."""
    if entry.version < DERIVED_PREV_HASH_SINCE or not entry.files:
        return None
    if any(columns != entry.files[0][2] for _, _, columns in entry.files):
        return None  # the column checks are per file: one query over all of them needs one schema
    try:
        count = _rows_and_chain(con, entry, hmac_key)
        if count is None or not all(_indexes(con, path, recorded, columns) for path, recorded, columns in entry.files):
            return None
    except Exception:  # duckdb.Error: a file or a record that cannot be read: the careful checks report it
        return None
    return count


def _rows_and_chain(con: duckdb.DuckDBPyConnection, entry: EntryRows, hmac_key: bytes | None) -> int | None:
    """Source lines 1..n once each, no row failing, THE chain rule over the lines, and the seal's first and last.

    The files are read with pyarrow, a batch at a time, in source-line order; each row's body is
    rebuilt column-wise (``_bodies.rebuild_bodies``: ``rebuild_line``'s rule, ``chained_rows``'s in
    Python), hashed and chained in Python, and the same bodies are handed to DuckDB for the typed
    column check, so the columns are compared with the very lines the chain authenticates.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    seen = 0
    expected: int | None = None
    first: tuple[int, str] | None = None
    previous: str | None = None
    last_recorded: int | None = None
    readers = [pq.ParquetFile(path) for path, _, _ in entry.files]
    # Source-line order: the files by their first line, each file's rows in order (read as they are
    # where they are in order, as the converter writes records that come in time order; else sorted).
    orders = [reader.read(columns=["source_line"]).column(0) for reader in readers]
    if any(len(order) == 0 or order.null_count for order in orders):
        return None
    for index in sorted(range(len(readers)), key=lambda i: pc.min(orders[i]).as_py()):
        reader, order = readers[index], orders[index]
        if len(order) < 2 or pc.all(pc.less(order[:-1], order[1:])).as_py():
            batches: Iterable[pa.RecordBatch] = reader.iter_batches(batch_size=_BATCH_ROWS)
        else:
            table = reader.read()
            batches = table.take(pc.sort_indices(table.column("source_line"))).to_batches(_BATCH_ROWS)
        prior: str | None = None  # a record's prev_hash comes from the row one source line before, in its file
        for batch in batches:
            size = batch.num_rows
            if size == 0:
                continue
            columns = {name: batch.column(name) for name in _CHAIN_COLUMNS}
            if columns["torn_bytes"].null_count != size or any(
                    columns[name].null_count for name in _CHAIN_COLUMNS if name != "torn_bytes"):
                return None
            if not _all_equal(columns["source_line"], pa.array(range(seen + 1, seen + size + 1), pa.int64())):
                return None
            checksums = columns["checksum"]
            priors = pa.concat_arrays([pa.array([prior], pa.string()), checksums.slice(0, size - 1)])
            bodies = rebuild_bodies(columns["record"].cast(pa.binary()), priors, columns["ts_event"],
                                    columns["sequence"], columns["ts_recorded"])
            chunk = _lines(bodies, checksums)
            if expected is None or previous is None:
                try:
                    head = split_record(chunk[0])
                except ValueError:
                    return None
                if head.prev_hash is None or (head.sequence == 0 and head.prev_hash != GENESIS_HASH):
                    return None
                expected, previous = head.sequence, head.prev_hash
            run = clean_run(chunk, expected, previous, last_recorded, hmac_key)
            if run is None or not _columns_match(con, entry, batch, bodies):
                return None
            computed, recorded = run
            if first is None:
                first = (expected, computed[0])
            expected, previous, last_recorded = expected + size, computed[-1], recorded[-1]
            prior = checksums[-1].as_py()
            seen += size
    seal = entry.seal
    if first is None or expected is None or seen != seal.get("records"):
        return None
    if first != (seal.get("first_sequence"), seal.get("first_hash")) or (expected - 1, previous) != (
            seal.get("last_sequence"), seal.get("last_hash")):
        return None
    return seen


def _columns_match(
    con: duckdb.DuckDBPyConnection, entry: EntryRows, batch: pa.RecordBatch, bodies: pa.Array
) -> bool:
    """Whether every typed column of ``batch`` derives from its row's body (``cold_verify``'s column check)."""
    import pyarrow as pa

    rows = pa.Table.from_batches([batch]).append_column("body", bodies.cast(pa.string()))
    # A body must end with its closing brace: the line puts the checksum field in front of it.
    failing = " OR ".join(filter(None, ["NOT suffix(body, '}')", entry.empty_sql, entry.differs_sql]))
    con.register(_ROWS_VIEW, rows)
    try:
        (bad,) = con.execute(
            f"""SELECT count(*) FILTER ({failing}) + count(*) FILTER (({failing}) IS NULL)
                FROM (SELECT *{entry.values_sql}
                      FROM (SELECT *, json_transform(body, $structure) AS j, NULL::BIGINT AS torn_ts
                            FROM {_ROWS_VIEW}))""",
            {"structure": structure(entry.version), "stream": entry.stream}).fetchone() or (None,)
    finally:
        con.unregister(_ROWS_VIEW)
    return bool(bad == 0)


def _all_equal(left: pa.Array, right: pa.Array) -> bool:
    import pyarrow.compute as pc

    return len(left) == len(right) and pc.all(pc.equal(left, right)).as_py() is True


def _lines(bodies: pa.Array, checksums: pa.Array) -> list[bytes]:
    """Each record line (newline in) of its body and its stored checksum: ``record.build_line``, column-wise."""
    import pyarrow as pa
    import pyarrow.compute as pc

    binary = pa.binary()
    return pc.binary_join_element_wise(  # type: ignore[no-any-return]
        pc.binary_slice(bodies, 0, -1), pa.scalar(CHECKSUM_SUFFIX_PREFIX, binary), checksums.cast(binary),
        pa.scalar(b'"}\n', binary), pa.scalar(b"", binary)).to_pylist()


def _indexes(con: duckdb.DuckDBPyConnection, path: Path, recorded: dict[str, Any], columns: list[str]) -> bool:
    """A file's parameter index and id filter are what its rows make (where the entry records them)."""
    names = set(columns)
    parameters = {"file": str(path)}
    if "parameters" in recorded and names >= PARAMETER_COLUMNS and recorded["parameters"] != [
            list(row) for row in con.execute(parameter_index_sql(_FILE_SQL), parameters).fetchall()]:
        return False
    return not ("ids" in recorded and names >= set(ID_COLUMNS)
                and recorded["ids"] != id_filter(con, _FILE_SQL, parameters))
