"""Ledgerline ingest core: hash-chained, append-only audit records for trading systems.

Imports nothing heavier than pydantic, so a trading process that only emits stays light.
"""

from audit_core.config import AuditConfig
from audit_core.errors import (
    AuditConfigError,
    AuditError,
    AuditFormatError,
    AuditIntegrityError,
    AuditSigningError,
    AuditWriteError,
    KeyTrustError,
)
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
from audit_core.hot.emitter import AuditEventEmitter
from audit_core.hot.reader import describe_event, tail
from audit_core.hot.verifier import verify
from audit_core.hot.writer import AppendOnlyWriter
from audit_core.integrations.audited import AuditedComponent, AuditedParameter, reason
from audit_core.trust.key_history import draft_trusted_keys, read_key_history
from audit_core.trust.keyring import TrustedKeys
from audit_core.trust.report import FailureKind, VerificationFailure, VerificationReport
from audit_core.trust.signer import Signer
from audit_core.trust.witness import CallbackWitness, DirectoryWitness, WitnessConflict, WitnessError, WitnessRefused
from audit_core.verification import TrailReport, verify_trail

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
    "AuditSigningError",
    "AuditWriteError",
    "AuditedComponent",
    "AuditedParameter",
    "CallbackWitness",
    "DirectoryWitness",
    "FailureKind",
    "KeyTrustError",
    "OrderSide",
    "ParameterChangeEvent",
    "SignalEvent",
    "SignalFilterReason",
    "Signer",
    "SystemEvent",
    "TradeEvent",
    "TrailReport",
    "TrustedKeys",
    "VerificationFailure",
    "VerificationReport",
    "WitnessConflict",
    "WitnessError",
    "WitnessRefused",
    "describe_event",
    "draft_trusted_keys",
    "parse_record",
    "read_key_history",
    "reason",
    "tail",
    "verify",
    "verify_trail",
]
