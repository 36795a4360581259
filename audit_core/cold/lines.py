"""A hot file's original lines, byte for byte, read back from the cold store.

Retention may remove a hot file once it is converted; its records live on in the cold store, each
row's line rebuilt from ``record`` and its hashes (``projection.chained_rows``, any projection
version). ``source_lines`` gives them back in file order, e.g. for an evidence bundle.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from audit_core.cold._parquet import quiet_connection
from audit_core.cold.manifest import manifest_path, read_manifest, safe_relative
from audit_core.cold.projection import PROJECTIONS, chained_rows
from audit_core.errors import AuditFormatError
from audit_core.trust.record import LINE_SQL

#: Rows fetched from DuckDB at a time: bounds memory on a file of millions of records.
_BATCH_ROWS = 65_536


def source_lines(cold_path: Path | str, source: str) -> Iterator[bytes]:
    """The lines of hot file ``source`` (its name) that the cold store holds, in file order.

    Each line is the hot file's exact bytes, ``\\n`` included (a torn line recovery closed off, too),
    so joining all of a fully kept file's lines gives the file back. Lines of outputs retention
    retired are not there (the manifest entry's ``retired``).

    This checks nothing: run ``verify_cold`` first, or check the lines against the seal copy in the
    manifest entry (count, hashes, Merkle root) before believing them.

    Raises:
        AuditFormatError: no readable manifest entry for ``source``, an output path outside the
            store, a projection version this code does not know, or a Parquet file DuckDB cannot read.
    """
    import duckdb

    cold = Path(cold_path)
    entry_path = manifest_path(cold, source)
    if Path(source).name != source or source in ("", ".", ".."):
        raise AuditFormatError(entry_path, f"source: expected a hot file name, got {source!r}")
    try:
        entry = read_manifest(entry_path)  # AuditFormatError names the file and field
    except OSError as exc:
        raise AuditFormatError(entry_path, f"no readable manifest entry for {source!r}: {exc}") from None
    version = entry.get("projection_version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in PROJECTIONS:
        raise AuditFormatError(entry_path, f"projection_version: expected one of {sorted(PROJECTIONS)}, "
                               f"got {version!r}")
    files = []
    for output in entry.get("outputs") or []:
        target = safe_relative(cold, output.get("path") if isinstance(output, dict) else None)
        if target is None:
            raise AuditFormatError(entry_path, f"output {output!r}: not a path inside the store")
        files.append(str(target))
    if not files:
        return
    rows = chained_rows("read_parquet($files, filename = true, union_by_name = true)", version)
    con = quiet_connection()
    with contextlib.closing(con):
        try:
            reader = con.execute(
                f"SELECT coalesce(torn_bytes, encode({LINE_SQL})) AS line FROM {rows} ORDER BY source_line",
                {"files": files}).to_arrow_reader(_BATCH_ROWS)
            for batch in reader:
                for line in batch.column(0).to_pylist():
                    yield (line or b"") + b"\n"
        except duckdb.Error as exc:
            raise AuditFormatError(entry_path, f"its Parquet files cannot be read: {exc}") from None
