"""Ledgerline ingest core: hash-chained, append-only audit records for trading systems.

Imports nothing heavier than pydantic, so a trading process that only emits stays light. The names
below are loaded on first use (PEP 562), so ``import audit_core.hot.verifier`` (``verify``, its
worker processes) does not pay for pydantic and the emitter it never touches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit_core._lazy import lazy_exports

if TYPE_CHECKING:
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
    from audit_core.trust.witness import (
        CallbackWitness,
        DirectoryWitness,
        WitnessConflict,
        WitnessError,
        WitnessRefused,
    )
    from audit_core.verification import TrailReport, verify_trail

#: Where each public name lives.
_EXPORTS = {
    "AuditConfig": "audit_core.config",
    "AuditConfigError": "audit_core.errors",
    "AuditError": "audit_core.errors",
    "AuditFormatError": "audit_core.errors",
    "AuditIntegrityError": "audit_core.errors",
    "AuditSigningError": "audit_core.errors",
    "AuditWriteError": "audit_core.errors",
    "KeyTrustError": "audit_core.errors",
    "AuditEvent": "audit_core.events",
    "AuditEventType": "audit_core.events",
    "OrderSide": "audit_core.events",
    "ParameterChangeEvent": "audit_core.events",
    "SignalEvent": "audit_core.events",
    "SignalFilterReason": "audit_core.events",
    "SystemEvent": "audit_core.events",
    "TradeEvent": "audit_core.events",
    "parse_record": "audit_core.events",
    "AuditEventEmitter": "audit_core.hot.emitter",
    "describe_event": "audit_core.hot.reader",
    "tail": "audit_core.hot.reader",
    "verify": "audit_core.hot.verifier",
    "AppendOnlyWriter": "audit_core.hot.writer",
    "AuditedComponent": "audit_core.integrations.audited",
    "AuditedParameter": "audit_core.integrations.audited",
    "reason": "audit_core.integrations.audited",
    "draft_trusted_keys": "audit_core.trust.key_history",
    "read_key_history": "audit_core.trust.key_history",
    "TrustedKeys": "audit_core.trust.keyring",
    "Signer": "audit_core.trust.signer",
    "FailureKind": "audit_core.trust.report",
    "VerificationFailure": "audit_core.trust.report",
    "VerificationReport": "audit_core.trust.report",
    "CallbackWitness": "audit_core.trust.witness",
    "DirectoryWitness": "audit_core.trust.witness",
    "WitnessConflict": "audit_core.trust.witness",
    "WitnessError": "audit_core.trust.witness",
    "WitnessRefused": "audit_core.trust.witness",
    "TrailReport": "audit_core.verification",
    "verify_trail": "audit_core.verification",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
