"""Retention: only what aged out, only what is safe, recorded in the trail before it goes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from audit_core import AuditConfig, AuditEventEmitter, parse_record
from audit_core.cold import retention as retention_module
from audit_core.cold._retention_guard import JOURNAL_CHECKSUM
from audit_core.cold.cold_verify import verify_cold
from audit_core.cold.converter import ParquetConverter
from audit_core.cold.manifest import HOLDS_FILE, JOURNAL_DIR, MANIFEST_DIR, update_cold_root
from audit_core.cold.retention import (
    MAX_RETENTION_DAYS,
    LegalHold,
    apply_retention,
    load_holds,
)
from audit_core.errors import AuditConfigError, AuditFormatError, RetentionJournalError
from audit_core.hot.verifier import verify
from audit_core.trust.documents import canonical_bytes, keyed_digest
from audit_core.trust.report import FailureKind
from audit_core.trust.seals import read_seal

JAN_1 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
HOUR = 3600 * 10**9
DAYS = 5  # the trail covers 2026-01-01 .. 2026-01-05


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def build_trail(base: Path) -> tuple[Path, Path]:
    """Five days of a rotating stream, sealed and converted: one hot file and one partition a day."""
    now = [int(JAN_1.timestamp()) * 10**9]
    config = AuditConfig(base_path=base, trader_id="T1", sync_writes=False)
    with AuditEventEmitter(config, clock=lambda: now[0]) as emitter:
        for i in range(DAYS * 48):  # every half hour of five days
            now[0] = int(JAN_1.timestamp()) * 10**9 + i * HOUR // 2 + 1
            emitter.emit_param_change("meta", "risk_multiplier", i, i + 1, "drawdown")
    hot, cold = base / "hot", base / "cold"
    results = ParquetConverter(hot, cold).convert_all()
    assert all(r.converted for r in results), results
    return hot, cold


def partitions(cold: Path) -> list[str]:
    days = sorted(cold.glob("year=*/month=*/day=*"))
    return [f"{p.parent.parent.name[5:]}-{p.parent.name[6:]}-{p.name[4:]}" for p in days]


def main_files(hot: Path) -> list[str]:
    return [p.name for p in sorted(hot.glob("audit.T1.main.*.jsonl"))]


def retention_records(hot: Path) -> list[dict]:
    records = []
    for path in sorted(hot.glob("audit.*.retention*.jsonl")):
        for line in path.read_bytes().splitlines(keepends=True):
            event = parse_record(line)
            assert event.event_type == "sys.retention"
            records.append(event.payload)  # type: ignore[attr-defined]
    return records


@pytest.fixture
def trail(tmp_path):
    return build_trail(tmp_path)


class TestWindow:
    def test_only_days_before_the_cutoff_go(self, trail):
        hot, cold = trail
        plan = apply_retention(hot, cold, days=3, now=utc(2026, 1, 7, 0, 0, 1))
        assert plan.cutoff == dt.date(2026, 1, 4)
        assert partitions(cold) == ["2026-01-04", "2026-01-05"]
        assert [f[14:24] for f in main_files(hot)] == ["2026-01-04", "2026-01-05"]
        assert sorted(h.file[14:24] for h in plan.hot_files) == ["2026-01-01", "2026-01-02", "2026-01-03"]

    def test_one_second_before_midnight_keeps_the_boundary_day(self, trail):
        hot, cold = trail
        apply_retention(hot, cold, days=3, now=utc(2026, 1, 6, 23, 59, 59))
        assert partitions(cold) == ["2026-01-03", "2026-01-04", "2026-01-05"]
        assert len(main_files(hot)) == 3

    def test_zero_days_keeps_everything(self, trail):
        hot, cold = trail
        plan = apply_retention(hot, cold, days=0, now=utc(2030, 1, 1))
        assert plan.empty and plan.cutoff is None
        assert len(partitions(cold)) == DAYS and len(main_files(hot)) == DAYS
        assert retention_records(hot) == []

    def test_dry_run_changes_nothing(self, trail):
        hot, cold = trail
        before = sorted(p for p in hot.parent.rglob("*"))
        plan = apply_retention(hot, cold, days=1, now=utc(2026, 1, 10), dry_run=True)
        assert len(plan.partitions) == DAYS and len(plan.hot_files) == DAYS
        assert sorted(p for p in hot.parent.rglob("*")) == before

    def test_negative_days_is_a_config_error(self, trail):
        with pytest.raises(AuditConfigError, match="days=-1"):
            apply_retention(*trail, days=-1)

    def test_more_than_a_hundred_years_is_a_config_error(self, trail):
        with pytest.raises(AuditConfigError, match=f"days=99999999999: expected .* to {MAX_RETENTION_DAYS}"):
            apply_retention(*trail, days=99999999999)


class TestTheRecord:
    def test_the_purge_is_recorded_with_the_seals_of_what_went(self, trail):
        hot, cold = trail
        seals = {p.name: read_seal(p) for p in hot.glob("audit.T1.main.*.jsonl")}
        plan = apply_retention(hot, cold, days=3, now=utc(2026, 1, 7))
        [payload] = retention_records(hot)
        assert payload["plan_id"] == plan.plan_id
        assert payload["partitions"] == ["year=2026/month=01/day=01", "year=2026/month=01/day=02",
                                         "year=2026/month=01/day=03"]
        for removed in payload["hot_files"]:
            seal = seals[removed["file"]]
            assert removed["last_hash"] == seal["last_hash"]
            assert removed["merkle_root"] == seal["merkle_root"]
            assert removed["file_sha256"] == seal["file_sha256"]
        assert json.loads((cold / JOURNAL_DIR / f"{plan.plan_id}.json").read_text())["status"] == "done"

    def test_the_trail_still_verifies_and_says_why_it_starts_late(self, trail):
        hot, cold = trail
        apply_retention(hot, cold, days=3, now=utc(2026, 1, 7))
        report = verify(hot)
        assert report.ok, report.to_text()
        assert len(report.retired) == 1 and "removed by retention plan" in report.retired[0]
        assert "retention (not a failure)" in report.to_text()

    def test_a_file_removed_without_a_record_is_still_a_gap(self, trail):
        hot, cold = trail
        apply_retention(hot, cold, days=3, now=utc(2026, 1, 7))
        first = sorted(hot.glob("audit.T1.main.*.jsonl"))[0]
        first.chmod(0o640)
        first.unlink()
        report = verify(hot)
        assert not report.ok
        assert FailureKind.SEQUENCE_GAP in {f.kind for f in report.failures}

    def test_a_forged_retention_record_does_not_excuse_a_deletion(self, trail):
        hot, cold = trail
        apply_retention(hot, cold, days=3, now=utc(2026, 1, 7))
        [path] = hot.glob("audit.*.retention*.jsonl")
        path.chmod(0o640)
        data = path.read_bytes()
        path.write_bytes(data.replace(b'"last_sequence":', b'"last_sequence":1', 1))  # checksum now wrong
        assert not verify(hot).ok

    def test_cold_side_still_verifies_with_retired_outputs(self, trail):
        hot, cold = trail
        apply_retention(hot, cold, days=3, now=utc(2026, 1, 7))
        report = verify_cold(cold)
        assert report.ok, report.to_text()
        entry = json.loads(next((cold / MANIFEST_DIR).glob("*2026-01-01*.json")).read_text())
        assert entry["outputs"] == [] and entry["retired"][0]["path"].startswith("year=2026/month=01/day=01/")


class TestNeverRemoved:
    def test_a_legal_hold_pins_its_days(self, trail):
        hot, cold = trail
        (cold / HOLDS_FILE).write_text(json.dumps([{"start": "2026-01-02", "end": "2026-01-02", "reason": "SEC 42"}]))
        update_cold_root(cold, accept_legal_holds=True)  # the deliberate change, committed to by the cold root
        plan = apply_retention(hot, cold, days=1, now=utc(2026, 1, 20))
        assert partitions(cold) == ["2026-01-02"]
        assert [f[14:24] for f in main_files(hot)] == ["2026-01-02"]
        assert any("SEC 42" in why for _, why in plan.kept)
        assert verify(hot).ok

    def test_a_hold_passed_in_code_works_too(self, trail):
        hot, cold = trail
        hold = LegalHold(dt.date(2026, 1, 1), dt.date(2026, 1, 3), "litigation")
        apply_retention(hot, cold, days=1, now=utc(2026, 1, 20), holds=[hold])
        assert partitions(cold) == ["2026-01-01", "2026-01-02", "2026-01-03"]

    def test_an_unconverted_file_stays(self, trail):
        hot, cold = trail
        manifest = next((cold / MANIFEST_DIR).glob("*2026-01-02*.json"))
        manifest.unlink()
        plan = apply_retention(hot, cold, days=1, now=utc(2026, 1, 20))
        assert [f[14:24] for f in main_files(hot)] == ["2026-01-02"]
        assert any("not converted" in why for _, why in plan.kept)

    def test_a_file_that_fails_verification_stays(self, trail):
        hot, cold = trail
        path = sorted(hot.glob("audit.T1.main.*.jsonl"))[0]
        path.chmod(0o640)
        data = bytearray(path.read_bytes())
        data[40] ^= 1
        path.write_bytes(bytes(data))
        plan = apply_retention(hot, cold, days=1, now=utc(2026, 1, 20))
        assert path.exists()
        assert any("fails verification" in why or "not converted" in why for _, why in plan.kept)

    def test_malformed_hold_file_names_the_entry(self, trail):
        _, cold = trail
        (cold / HOLDS_FILE).write_text(json.dumps([{"start": "2026-13-01", "end": "2026-01-02"}]))
        with pytest.raises(AuditFormatError, match="hold #0"):
            load_holds(cold)


class TestTheJournal:
    def test_it_is_an_authenticated_document(self, trail):
        hot, cold = trail
        plan = apply_retention(hot, cold, days=3, now=utc(2026, 1, 7))
        journal = json.loads((cold / JOURNAL_DIR / f"{plan.plan_id}.json").read_text())
        assert journal[JOURNAL_CHECKSUM] == keyed_digest(canonical_bytes(journal, [JOURNAL_CHECKSUM]))
        assert journal["plan_id"] == plan.plan_id and "signature" not in journal  # no signing key configured

    def test_a_journal_whose_record_never_reached_the_trail_removed_nothing_and_is_abandoned(self, trail, monkeypatch):
        hot, cold = trail
        monkeypatch.setattr(retention_module, "_record", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            apply_retention(hot, cold, days=3, now=utc(2026, 1, 7))
        monkeypatch.undo()
        plan = apply_retention(hot, cold, days=0)
        assert plan.resumed is False and len(partitions(cold)) == DAYS and retention_records(hot) == []
        [journal] = (cold / JOURNAL_DIR).glob("*.json")
        assert json.loads(journal.read_text())["status"] == "abandoned"

    def test_a_finished_journal_of_an_older_version_is_ignored(self, trail):
        hot, cold = trail
        (cold / JOURNAL_DIR).mkdir()
        (cold / JOURNAL_DIR / ("a" * 32 + ".json")).write_text(json.dumps(
            {"plan_id": "a" * 32, "cutoff": None, "partitions": [], "hot_files": [], "status": "done"}))
        apply_retention(hot, cold, days=3, now=utc(2026, 1, 7))
        assert len(partitions(cold)) == 2

    def test_an_unfinished_journal_without_a_checksum_is_refused(self, trail):
        hot, cold = trail
        (cold / JOURNAL_DIR).mkdir()
        (cold / JOURNAL_DIR / ("a" * 32 + ".json")).write_text(json.dumps(
            {"plan_id": "a" * 32, "cutoff": None, "partitions": [], "hot_files": [], "status": "recorded"}))
        with pytest.raises(RetentionJournalError, match=f"{'a' * 32}.json: journal_checksum does not match"):
            apply_retention(hot, cold, days=3, now=utc(2026, 1, 7))
        assert len(partitions(cold)) == DAYS


class TestCrashHalfWay:
    def test_crash_during_removal_is_finished_by_the_next_run(self, trail, monkeypatch):
        hot, cold = trail
        real_rmtree, calls = retention_module.shutil.rmtree, []

        def rmtree_then_die(path, ignore_errors=False):
            if calls:
                raise KeyboardInterrupt("power cut")
            calls.append(path)
            real_rmtree(path, ignore_errors=ignore_errors)

        monkeypatch.setattr(retention_module.shutil, "rmtree", rmtree_then_die)
        with pytest.raises(KeyboardInterrupt):
            apply_retention(hot, cold, days=3, now=utc(2026, 1, 7))
        monkeypatch.setattr(retention_module.shutil, "rmtree", real_rmtree)
        assert len(partitions(cold)) == DAYS - 1  # one partition went before the crash

        plan = apply_retention(hot, cold, days=3, now=utc(2026, 1, 7))
        assert partitions(cold) == ["2026-01-04", "2026-01-05"]
        assert len(retention_records(hot)) == 1, "the resumed purge must not be recorded twice"
        assert plan.empty  # nothing left to plan after finishing the interrupted one
        assert verify(hot).ok and verify_cold(cold).ok

    def test_crash_after_the_record_before_the_journal_says_so(self, trail, monkeypatch):
        hot, cold = trail
        real_write, writes = retention_module._write_json, []

        def write_then_die(target, data):
            if data.get("status") == "recorded":
                raise KeyboardInterrupt("power cut")
            writes.append(data["status"])
            real_write(target, data)

        monkeypatch.setattr(retention_module, "_write_json", write_then_die)
        with pytest.raises(KeyboardInterrupt):
            apply_retention(hot, cold, days=3, now=utc(2026, 1, 7))
        monkeypatch.setattr(retention_module, "_write_json", real_write)
        assert len(retention_records(hot)) == 1 and len(partitions(cold)) == DAYS

        resumed = apply_retention(hot, cold, days=3, now=utc(2026, 1, 8), dry_run=False)
        assert len(retention_records(hot)) == 2  # the resumed purge's, then the next day's own
        assert retention_records(hot)[0]["plan_id"] != retention_records(hot)[1]["plan_id"]
        assert not resumed.empty
        assert partitions(cold) == ["2026-01-05"]
        assert verify(hot).ok

    def test_crash_before_the_record_records_it_on_resume(self, trail, monkeypatch):
        hot, cold = trail
        monkeypatch.setattr(retention_module, "_record", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            apply_retention(hot, cold, days=3, now=utc(2026, 1, 7))
        monkeypatch.undo()
        assert retention_records(hot) == [] and len(partitions(cold)) == DAYS
        apply_retention(hot, cold, days=3, now=utc(2026, 1, 7))
        assert len(retention_records(hot)) == 1
        assert partitions(cold) == ["2026-01-04", "2026-01-05"]
        assert verify(hot).ok


def test_a_keyed_trail_gets_a_keyed_record(tmp_path):
    now = [0]
    config = AuditConfig(base_path=tmp_path, trader_id="T1", sync_writes=False, hmac_key="k3y")
    with AuditEventEmitter(config, clock=lambda: now[0]) as emitter:
        for i in range(60):
            now[0] = int(JAN_1.timestamp()) * 10**9 + i * HOUR
            emitter.emit_param_change("meta", "k", i, i + 1, "vol")
    hot, cold = tmp_path / "hot", tmp_path / "cold"
    ParquetConverter(hot, cold, hmac_key=b"k3y").convert_all()
    apply_retention(hot, cold, days=1, now=utc(2026, 1, 4), config=config)
    assert verify(hot, hmac_key=b"k3y").ok
    assert not verify(hot).ok  # the record is HMAC'd like the rest of the trail


def test_the_converter_applies_retention_with_its_own_paths_and_key(tmp_path):
    now = [0]
    config = AuditConfig(base_path=tmp_path, trader_id="T1", sync_writes=False, hmac_key="k3y", retention_days=2)
    with AuditEventEmitter(config, clock=lambda: now[0]) as emitter:
        for i in range(96):
            now[0] = int(JAN_1.timestamp()) * 10**9 + i * HOUR
            emitter.emit_param_change("meta", "k", i, i + 1, "vol")
    converter = ParquetConverter(tmp_path / "hot", tmp_path / "cold", hmac_key=b"k3y")
    converter.convert_all()
    plan = converter.apply_retention(utc(2026, 1, 5), config=config)  # days from config.retention_days
    assert plan.cutoff == dt.date(2026, 1, 3)
    assert partitions(tmp_path / "cold") == ["2026-01-03", "2026-01-04"]
    assert verify(tmp_path / "hot", hmac_key=b"k3y").ok
    assert verify_cold(tmp_path / "cold", hmac_key=b"k3y").ok
    plan = ParquetConverter(tmp_path / "hot", tmp_path / "cold", hmac_key=b"k3y").apply_retention(
        utc(2026, 1, 6), days=1)  # no config: the record is keyed with the converter's key
    assert plan.cutoff == dt.date(2026, 1, 5) and len(plan.partitions) == 2
    assert verify(tmp_path / "hot", hmac_key=b"k3y").ok
