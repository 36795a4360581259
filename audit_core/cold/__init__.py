"""The cold tier: day-partitioned Parquet derived from verified hot files, its signed root, and retention.

``ParquetConverter`` writes it, ``verify_cold`` checks it, ``apply_retention`` prunes it,
``rebuild_projection`` brings it to the current projection version. pyarrow
and DuckDB are imported only when these run.
"""

from audit_core.cold.cold_verify import verify_cold
from audit_core.cold.converter import ConversionResult, ParquetConverter
from audit_core.cold.manifest import update_cold_root
from audit_core.cold.rebuild import RebuildResult, rebuild_projection
from audit_core.cold.retention import LegalHold, RetentionPlan, apply_retention

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
