"""The cold tier: day-partitioned Parquet derived from verified hot files, its signed root, and retention.

``ParquetConverter`` writes it, ``verify_cold`` checks it, ``apply_retention`` prunes it,
``rebuild_projection`` brings it to the current projection version. pyarrow
and DuckDB are imported only when these run. The names below are loaded on first use (PEP 562,
as ``audit_core``'s), so a reader of one module (the workbench's ``projection`` and ``manifest``
at ``open_trail``) does not pay for the converter, cold verification and retention.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit_core._lazy import lazy_exports

if TYPE_CHECKING:
    from audit_core.cold.cold_verify import verify_cold
    from audit_core.cold.converter import ConversionResult, ParquetConverter
    from audit_core.cold.manifest import update_cold_root
    from audit_core.cold.rebuild import RebuildResult, rebuild_projection
    from audit_core.cold.retention import LegalHold, RetentionPlan, apply_retention

#: Where each public name lives.
_EXPORTS = {
    "verify_cold": "audit_core.cold.cold_verify",
    "ConversionResult": "audit_core.cold.converter",
    "ParquetConverter": "audit_core.cold.converter",
    "update_cold_root": "audit_core.cold.manifest",
    "RebuildResult": "audit_core.cold.rebuild",
    "rebuild_projection": "audit_core.cold.rebuild",
    "LegalHold": "audit_core.cold.retention",
    "RetentionPlan": "audit_core.cold.retention",
    "apply_retention": "audit_core.cold.retention",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "ConversionResult",
    "LegalHold",
    "ParquetConverter",
    "RebuildResult",
    "RetentionPlan",
    "apply_retention",
    "rebuild_projection",
    "update_cold_root",
    "verify_cold",
]
