"""Ledgerline forensics workbench: lazy Ibis queries and forensic analyses over an audit trail.

Open a trail with ``open_trail``; ``trail.verification`` says whether its files verified. Every
analysis takes the trail first and returns a lazy Ibis expression (or a small result object with
lazy parts and ``to_pandas()``). Execution happens only at the edges: ``to_pandas()``,
``to_pyarrow()``, ``execute()`` and charts; their results say how verified the trail is.
"""

from workbench._columns import chronological
from workbench.anomalies import UnexplainedChanges, detect_unexplained_changes
from workbench.describe import describe, with_description
from workbench.errors import (
    ResultTruncatedWarning,
    TrailNotFoundError,
    TrailNotVerifiedWarning,
    UnknownValueWarning,
    UnreadableFileWarning,
    WorkbenchError,
    WorkbenchInputError,
    WorkbenchWarning,
)
from workbench.incident import reconstruct_incident
from workbench.parameters import decode_values, parameter_changes, parameter_history, state_at
from workbench.pnl import PnlReconciliation, pnl_reconciliation, realized_pnl_events, realized_pnl_series
from workbench.query import AuditQuery, count_by_type
from workbench.sessions import session_config_diff, sessions
from workbench.trades import SignalConversion, signal_conversion, trade_lifecycle
from workbench.trail import Trail, open_trail
from workbench.verification import VerificationStatus

__all__ = [
    "AuditQuery",
    "PnlReconciliation",
    "ResultTruncatedWarning",
    "SignalConversion",
    "Trail",
    "TrailNotFoundError",
    "TrailNotVerifiedWarning",
    "UnexplainedChanges",
    "UnknownValueWarning",
    "UnreadableFileWarning",
    "VerificationStatus",
    "WorkbenchError",
    "WorkbenchInputError",
    "WorkbenchWarning",
    "chronological",
    "count_by_type",
    "decode_values",
    "describe",
    "detect_unexplained_changes",
    "open_trail",
    "parameter_changes",
    "parameter_history",
    "pnl_reconciliation",
    "realized_pnl_events",
    "realized_pnl_series",
    "reconstruct_incident",
    "session_config_diff",
    "sessions",
    "signal_conversion",
    "state_at",
    "trade_lifecycle",
    "with_description",
]
