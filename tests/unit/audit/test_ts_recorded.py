"""``ts_recorded`` (record format 3): stamped by the emitter, never backwards, checked alike by every verifier.

Real emitters and files. A backdated trail is forged the way an insider with the HMAC key would:
one record's ``ts_recorded`` lowered, every later checksum recomputed with the key, the file
resealed. Only the ``ts_recorded`` rule can catch that, so each verifier must report it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import ValidationError
from test_format_vectors import verify_file
from test_tamper import read_lines, rewrite

from audit_core import AuditConfig, AuditEventEmitter, ParameterChangeEvent, parse_record, verify
from audit_core._layout import seal_path
from audit_core.cold._bulk_verify import scan_file, verify_scanned
from audit_core.trust.record import GENESIS_HASH, build_line, compute_checksum, split_record
from audit_core.trust.report import FailureKind
from audit_core.trust.seals import read_seal, seal_file

JAN_5 = 1_767_571_200 * 10**9
KEY = "ts-recorded-key"


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def config_for(base: Path, **overrides) -> AuditConfig:
    return AuditConfig(base_path=base, trader_id="T1", stream_id="s", sync_writes=False, rotate_daily=False,
                       **overrides)


def recorded_times(base: Path) -> list[int]:
    return [json.loads(line)["ts_recorded"] for path in sorted((base / "hot").glob("*.jsonl"))
            for line in path.read_bytes().splitlines()]


class TestStamping:
    def test_a_clock_that_steps_back_never_makes_ts_recorded_go_back_and_ts_event_stays_as_given(self, tmp_path):
        clock = Clock(JAN_5)
        events = []
        with AuditEventEmitter(config_for(tmp_path), clock=clock) as emitter:
            for i, now in enumerate([JAN_5 + 100, JAN_5 + 50, JAN_5 + 40, JAN_5 + 200]):
                clock.now = now
                events.append(emitter.emit_param_change("s", "k", i, i + 1, ts_event=JAN_5 - i))
        assert [e.ts_recorded for e in events] == [JAN_5 + 100, JAN_5 + 100, JAN_5 + 100, JAN_5 + 200]
        assert [e.ts_event for e in events] == [JAN_5, JAN_5 - 1, JAN_5 - 2, JAN_5 - 3]  # may go back
        assert recorded_times(tmp_path) == [e.ts_recorded for e in events]
        assert verify(tmp_path).ok

    def test_a_prebuilt_event_gets_ts_recorded_from_the_clock_and_a_defaulted_ts_event_shares_the_read(self, tmp_path):
        clock = Clock(JAN_5)
        with AuditEventEmitter(config_for(tmp_path), clock=clock) as emitter:
            clock.now = JAN_5 + 7
            defaulted = emitter.emit_system("sys.note", "test")
            clock.now = JAN_5 + 9
            built = emitter.emit(ParameterChangeEvent(source="s", param_name="k", new_value=1, ts_event=3))
        assert (defaulted.ts_event, defaulted.ts_recorded) == (JAN_5 + 7, JAN_5 + 7)
        assert (built.ts_event, built.ts_recorded, built.format) == (3, JAN_5 + 9, 3)
        assert parse_record(built.to_line()) == built

    def test_a_restart_with_an_earlier_clock_continues_from_the_last_ts_recorded(self, tmp_path):
        with AuditEventEmitter(config_for(tmp_path), clock=lambda: JAN_5 + 10**12) as emitter:
            emitter.emit_system("sys.note", "test")
        with AuditEventEmitter(config_for(tmp_path), clock=lambda: JAN_5) as emitter:  # a backtest re-run
            emitter.emit_system("sys.note", "test")
        assert recorded_times(tmp_path) == [JAN_5 + 10**12, JAN_5 + 10**12]
        report = verify(tmp_path)
        assert report.ok, report.to_text()

    def test_a_failed_emit_leaves_the_event_unstamped(self, tmp_path):
        emitter = AuditEventEmitter(config_for(tmp_path))
        emitter.close()
        event = ParameterChangeEvent(source="s", param_name="k", new_value=1)
        with pytest.raises(Exception, match="closed"):
            emitter.emit(event)
        assert (event.sequence, event.format, event.ts_recorded) == (None, None, None)


class TestParsing:
    def test_a_format_3_record_without_ts_recorded_is_refused_naming_the_field(self):
        line = ParameterChangeEvent(source="s", param_name="k", new_value=1, format=3, sequence=0,
                                    prev_hash=GENESIS_HASH).to_line()
        with pytest.raises(ValidationError, match=r"ts_recorded[\s\S]*format 3 record needs ts_recorded"):
            parse_record(line)

    def test_a_format_2_record_with_ts_recorded_is_refused(self):
        line = ParameterChangeEvent(source="s", param_name="k", new_value=1, format=2, ts_recorded=5).to_line()
        with pytest.raises(ValidationError, match=r"format 2 record has ts_recorded"):
            parse_record(line)

    def test_format_2_records_keep_their_bytes_and_verify_before_format_3_ones(self, tmp_path):
        """An upgrade: a stream written as format 2 continues as format 3, all one verified chain."""
        hot = tmp_path / "hot"
        hot.mkdir()
        lines, prev = [], GENESIS_HASH
        for sequence in range(3):
            event = ParameterChangeEvent(ts_event=JAN_5 + sequence, source="s", param_name="k", new_value=sequence,
                                         trader_id="T1", sequence=sequence, prev_hash=prev, format=2)
            body = event.canonical_bytes()
            prev = compute_checksum(body)
            lines.append(build_line(body, prev))
        old = hot / "audit.T1.s.2026-01-05.0000.jsonl"
        old.write_bytes(b"".join(lines))
        with AuditEventEmitter(config_for(tmp_path), clock=lambda: JAN_5 + 10) as emitter:
            emitter.emit_system("sys.note", "test")
        assert old.read_bytes().startswith(b"".join(lines))
        assert [parse_record(line).to_line() for line in lines] == lines
        report = verify(tmp_path)
        assert report.ok, report.to_text()
        assert [split_record(line).ts_recorded for line in read_lines(emitter.writer.path)] == [None] * 3 + [JAN_5 + 10]
        scan = scan_file(emitter.writer.path)
        assert scan.clean and verify_scanned(emitter.writer.path, scan).ok


def forge_backdated(path: Path, at: int, key: str, *, by: int) -> None:
    """Lower line ``at``'s ts_recorded by ``by`` ns, recompute every checksum from there with ``key``, reseal."""
    lines = read_lines(path)
    out, prev = list(lines[:at]), split_record(lines[at - 1]).checksum
    for index, line in enumerate(lines[at:], start=at):
        fields = split_record(line)
        record = json.loads(fields.body)
        record["prev_hash"] = prev
        if index == at:
            record["ts_recorded"] -= by
        body = parse_record(json.dumps(record).encode()).canonical_bytes()
        prev = compute_checksum(body, key.encode())
        out.append(build_line(body, prev))
    rewrite(path, out)
    os.remove(seal_path(path))
    seal_file(path, hmac_key=key.encode())


class TestEveryVerifierRefusesABackdatedRecord:
    def trail(self, base: Path) -> Path:
        clock = Clock(JAN_5)
        with AuditEventEmitter(config_for(base, hmac_key=KEY), clock=clock) as emitter:
            for i in range(5):
                clock.now = JAN_5 + 1000 * i  # ts_recorded 1000 ns apart
                emitter.emit_param_change("s", "k", i, i + 1)
            return emitter.writer.path

    def test_a_rechained_and_resealed_backdated_record_fails_only_the_ts_recorded_rule(self, tmp_path):
        path = self.trail(tmp_path)
        forge_backdated(path, 3, KEY, by=1500)  # now earlier than line 3's
        report = verify([path], KEY.encode(), require_stream_start=True)
        assert [(f.kind, f.line, f.sequence) for f in report.failures] == [
            (FailureKind.TS_RECORDED_BACKWARDS, 4, 3)]
        scan = scan_file(path, KEY.encode())
        assert not scan.clean and any("ts_recorded" in problem for problem in scan.problems)
        assert not verify_scanned(path, scan, KEY.encode()).ok
        assert "line 4: ts_recorded goes backwards" in verify_file(path.read_bytes(), read_seal(path), KEY.encode())

    def test_the_same_forgery_keeping_the_order_passes_every_verifier(self, tmp_path):
        """The control: the forge itself is sound, so the failure above is the rule's, not the forge's."""
        path = self.trail(tmp_path)
        forge_backdated(path, 3, KEY, by=1000)  # equal to line 3's: allowed (non-decreasing)
        assert verify([path], KEY.encode(), require_stream_start=True).ok
        scan = scan_file(path, KEY.encode())
        assert scan.clean and verify_scanned(path, scan, KEY.encode()).ok
        assert verify_file(path.read_bytes(), read_seal(path), KEY.encode()) == []


def test_the_cold_verifier_applies_the_same_rule_to_a_store_converted_without_it(tmp_path, monkeypatch):
    """A backdated record that reached cold storage (a converter without the rule: an older version, or
    one an insider patched) is still reported by ``verify_cold``, from the bound ``ts_recorded`` column."""
    from audit_core.cold import converter as converter_module
    from audit_core.cold.cold_verify import verify_cold

    path = TestEveryVerifierRefusesABackdatedRecord().trail(tmp_path)
    forge_backdated(path, 3, KEY, by=1500)
    real = converter_module.verify_scanned

    def without_the_rule(*args, **kwargs):
        report = real(*args, **kwargs)
        report.failures = [f for f in report.failures if f.kind is not FailureKind.TS_RECORDED_BACKWARDS]
        return report

    monkeypatch.setattr(converter_module, "verify_scanned", without_the_rule)
    converter = converter_module.ParquetConverter(tmp_path / "hot", tmp_path / "cold", hmac_key=KEY.encode())
    results = converter.convert_all()
    assert [r.converted for r in results] == [True]
    report = verify_cold(tmp_path / "cold", hmac_key=KEY.encode())
    assert [(f.kind, f.line, f.sequence) for f in report.failures] == [(FailureKind.TS_RECORDED_BACKWARDS, 4, 3)]
