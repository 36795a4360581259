"""A torn line that crash recovery closed off: a sys.torn_line row with NULL sequence, handled everywhere."""

from __future__ import annotations

from audit_core import AuditConfig, AuditEventEmitter
from audit_core.cold.converter import ParquetConverter
from workbench import detect_unexplained_changes, open_trail, reconstruct_incident

S = 1_000_000_000
T0 = 1_767_621_600 * S  # 2026-01-05 14:00 UTC


def test_a_torn_line_is_a_row_without_sequence(tmp_path, crash):
    clock = [T0]
    config = AuditConfig(base_path=tmp_path, sync_writes=False)
    emitter = AuditEventEmitter(config, clock=lambda: clock[0])
    emitter.emit_param_change("meta_controller", "risk_multiplier", 1.0, 0.5, "drawdown")
    emitter.flush()
    crash(emitter)
    (hot,) = (tmp_path / "hot").glob("*.jsonl")
    with hot.open("ab") as file:
        file.write(b'{"ts_event":17676216')  # the write the crash cut short
    clock[0] = T0 + 60 * S
    with AuditEventEmitter(config, clock=lambda: clock[0]) as emitter:
        emitter.emit_param_change("meta_controller", "risk_multiplier", 0.5, 0.7, "recovered")
    assert all(r.converted for r in ParquetConverter(tmp_path / "hot", tmp_path / "cold").convert_all())

    trail = open_trail(tmp_path)
    rows = reconstruct_incident(trail, T0, minutes=2).to_pyarrow().to_pylist()
    assert [(r["event_type"], r["sequence"]) for r in rows] == [
        ("param.state_change", 0), ("sys.torn_line", None), ("sys.recovery", 1), ("param.state_change", 2)]
    found = detect_unexplained_changes(trail)
    assert found.findings.count().execute() == 0 and found.integrity_ok
