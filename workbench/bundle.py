"""Opening an evidence bundle (``ledgerline export``) as a read-only trail, verified first.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from audit_core import AuditConfig, AuditEventEmitter
>>> from audit_core.evidence import export_bundle
>>> from workbench import open_trail
>>> base = Path(tempfile.mkdtemp())
>>> config = AuditConfig(base_path=base, trader_id="T1", hmac_key="a-trail-key")
>>> with AuditEventEmitter(config, clock=lambda: 10**18) as emitter:
...     _ = emitter.emit_param_change("meta_controller", "risk_multiplier", 1.0, 0.5, "drawdown")
>>> case = export_bundle(base, base / "case.bundle", start_ns=0, end_ns=2 * 10**18)
>>> trail = open_trail(case, hmac_key=b"a-trail-key")
>>> trail.bundle_report.claim, trail.verification.state
('complete', 'verified')
>>> trail.filter(param_name="risk_multiplier").count().execute()
1
"""

from __future__ import annotations

import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import ibis

from workbench import _backend
from workbench.errors import UnreadableFileWarning, WorkbenchInputError
from workbench.verification import FAILED, UNVERIFIED, VERIFIED, VerificationStatus

#: How a bundle's claim maps to a trail's verification state.
_STATE = {"complete": VERIFIED, "complete-redacted": VERIFIED, "positions-only": VERIFIED,
          "unauthenticated": UNVERIFIED, "invalid": FAILED}


def open_bundle(
    path: Path | str,
    backend: Any = None,
    *,
    on_unknown: str = "warn",
    trusted_keys: Any = None,
    public_key: Any = None,
    hmac_key: bytes | None = None,
) -> Any:
    """Verify the evidence bundle at ``path`` and open its full records as a read-only ``Trail``.

    Parameters
    ----------
    path
        The bundle file.
    backend
        As for ``open_trail`` (default: a new in-process DuckDB connection).
    on_unknown
        As for ``open_trail``.
    trusted_keys, public_key, hmac_key
        What ``audit_core.evidence.verify_bundle`` checks the bundle with.

    Returns
    -------
    Trail
        ``events`` holds every full record of the bundle (the window's records and the edge records
        just outside it; redacted positions are not rows), with the columns of a hot trail.
        ``trail.bundle_report`` is the ``BundleReport``; ``trail.verification.state`` is
        ``"verified"`` for the claims ``complete``, ``complete-redacted`` and ``positions-only``,
        ``"unverified"`` for ``unauthenticated`` and ``"failed"`` for ``invalid``.

    Raises
    ------
    WorkbenchInputError
        The file is not a bundle whose lines can be read (``bundle_malformed``).
    """
    import pyarrow as pa

    from audit_core.cold.converter import read_hot_file
    from audit_core.errors import AuditFormatError
    from audit_core.evidence import verify_bundle
    from workbench._time import utc_day
    from workbench.trail import HotSnapshot, Trail, cold_schema, events_of

    root = Path(path)
    report = verify_bundle(root, trusted_keys=trusted_keys, public_key=public_key, hmac_key=hmac_key)
    if any(failure.reason == "bundle_malformed" for failure in report.failures):
        raise WorkbenchInputError(f"path={str(path)!r} is not a readable evidence bundle: "
                                  f"{report.failures[0].message}")
    backend = _backend.resolve(backend)
    schema = cold_schema()
    tables = []
    with zipfile.ZipFile(root) as archive, tempfile.TemporaryDirectory(prefix="ledgerline-bundle-") as scratch:
        for stream in report.streams:
            trader, stream_id = stream.origin.split("/")[1:]
            # Named like a hot file so that rows get their stream from the one reader of hot files.
            lines = Path(scratch) / f"audit.{trader}.{stream_id}.1970-01-01.0000.jsonl"
            lines.write_bytes(archive.read(f"streams/{trader}.{stream_id}.lines"))

            def unreadable(error: AuditFormatError) -> None:
                warnings.warn(f"open_bundle: left out: {error}", UnreadableFileWarning, stacklevel=3)

            table = read_hot_file(lines, on_error=unreadable)
            if table.num_rows:
                tables.append(table)
    if tables:
        rows = pa.concat_tables(tables, promote_options="permissive")
        days = [utc_day(ts) for ts in rows.column("ts_event").to_pylist()]
        for part in _backend.PARTITIONS:
            rows = rows.append_column(part, pa.array([getattr(day, part) for day in days], pa.int32()))
        base = _backend.memtable(backend, rows.select(schema.names).cast(schema.to_pyarrow()))
    else:
        base = ibis.memtable(schema.to_pyarrow().empty_table())
    status = VerificationStatus(_STATE[report.claim], f"evidence bundle: claim {report.claim}",
                                mode="signature" if report.claim != "unauthenticated" else "none",
                                source="verify_bundle", path=str(root))
    events = events_of(backend, base, schema)
    trail = Trail(root, backend, _backend.as_view(backend, events), HotSnapshot(), False, on_unknown, status)
    trail._keys = (hmac_key, public_key, None)  # refresh() verifies and opens the bundle again
    trail._definition = events
    trail.bundle_report = report
    return trail
