"""Ledgerline ingest core: hash-chained, append-only audit records for trading systems.

Imports nothing heavier than pydantic, so a trading process that only emits stays light.
"""

from audit_core.audited import AuditedComponent, AuditedParameter, reason
from audit_core.config import AuditConfig
from audit_core.emitter import AuditEventEmitter
from audit_core.errors import AuditConfigError, AuditError, AuditFormatError, AuditIntegrityError, AuditWriteError
from audit_core.events import (
    AuditEvent,
    AuditEventType,
    OrderSide,
    ParameterChangeEvent,
    SignalEvent,
    SignalFilterReason,
    SystemEvent,
    TradeEvent,
    parse_record,
)
from audit_core.integrity import FailureKind, VerificationFailure, VerificationReport, verify
from audit_core.reader import describe_event, tail
from audit_core.verification import TrailReport, verify_trail
from audit_core.writer import AppendOnlyWriter

__all__ = [
    "AppendOnlyWriter",
    "AuditConfig",
    "AuditConfigError",
    "AuditError",
    "AuditEvent",
    "AuditEventEmitter",
    "AuditEventType",
    "AuditFormatError",
    "AuditIntegrityError",
    "AuditWriteError",
    "AuditedComponent",
    "AuditedParameter",
    "FailureKind",
    "OrderSide",
    "ParameterChangeEvent",
    "SignalEvent",
    "SignalFilterReason",
    "SystemEvent",
    "TradeEvent",
    "TrailReport",
    "VerificationFailure",
    "VerificationReport",
    "describe_event",
    "parse_record",
    "reason",
    "tail",
    "verify",
    "verify_trail",
]
