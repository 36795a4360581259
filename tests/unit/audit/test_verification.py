"""``verify_trail``: one verification of hot and cold, the one the CLI, AuditQuery and the workbench call."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit_core import AuditConfig, AuditEventEmitter, FailureKind, TrailReport, verify_trail
from audit_core.cli import main
from audit_core.cold.converter import ParquetConverter
from audit_core.verification import cold_stores

DAY = 86_400 * 10**9
T = int(dt.datetime(2026, 1, 5, tzinfo=dt.UTC).timestamp()) * 10**9


@pytest.fixture
def trail(tmp_path) -> Path:
    """Two days of records, the first converted to Parquet, the second still hot."""
    now = [T]
    with AuditEventEmitter(AuditConfig(base_path=tmp_path, sync_writes=False), clock=lambda: now[0]) as audit:
        for day in range(2):
            now[0] = T + day * DAY
            for value in range(5):
                audit.emit_param_change("meta_controller", "k", value, value + 1, "test", ts_event=now[0] + value)
    converter = ParquetConverter(tmp_path / "hot", tmp_path / "cold")
    (first, _) = sorted((tmp_path / "hot").glob("*.jsonl"))
    assert converter.convert_file(first).converted
    return tmp_path


def test_one_report_with_a_labelled_part_for_hot_and_for_cold(trail):
    report = verify_trail(trail)
    assert isinstance(report, TrailReport) and report.ok
    assert [label.split()[0] for label, _ in report.parts] == ["hot", "cold"]
    assert report.records == sum(part.records for _, part in report.parts) and report.records >= 10
    assert cold_stores(trail) == [trail / "cold"]


def test_a_damaged_cold_column_fails_the_whole_trail(trail):
    (parquet,) = sorted((trail / "cold").rglob("*.parquet"))
    table = pq.read_table(parquet)
    forged = pa.array([99.0] * table.num_rows, pa.float64())  # the record column is left alone
    edited = table.set_column(table.column_names.index("new_value_num"), "new_value_num", forged)
    parquet.chmod(0o644)
    pq.write_table(edited, parquet)
    report = verify_trail(trail)
    assert not report.ok
    hot, cold = (part for _, part in report.parts)
    assert hot.ok and not cold.ok  # the failure is the cold part's, and the whole trail's
    assert {failure.kind for failure in report.failures} & {FailureKind.COLUMN_MISMATCH, FailureKind.PARQUET_MISMATCH}


def test_the_cli_and_audit_query_give_the_library_answer(trail, capsys):
    from workbench import AuditQuery

    assert main(["verify", str(trail)]) == 0
    out = capsys.readouterr().out
    assert out.count("OK:") == 2  # the hot part, then the cold part
    checked = AuditQuery(trail).verify_checksums()
    assert isinstance(checked, TrailReport) and checked.ok
    assert [label for label, _ in checked.parts] == [label for label, _ in verify_trail(trail).parts]


def test_a_hot_only_trail_has_one_part(tmp_path):
    with AuditEventEmitter(AuditConfig(base_path=tmp_path, sync_writes=False)) as audit:
        audit.emit_system("sys.regime_change", "meta", {"to": "DORSAL"})
    report = verify_trail(tmp_path)
    assert report.ok and [label.split()[0] for label, _ in report.parts] == ["hot"]


def test_a_cold_store_that_agrees_with_itself_still_fails_against_its_hot_file(trail):
    """Unkeyed: rows cut and the seal copy, entry and root recomputed agree among themselves; the hot
    file's own seal, still on disk, does not (found by the tamper battery)."""
    import json

    (manifest,) = sorted((trail / "cold" / "_manifest").glob("*.json"))
    entry = json.loads(manifest.read_text())
    entry["seal"]["records"] -= 1  # what a forger who cut a row would write into the copy
    manifest.chmod(0o644)
    manifest.write_text(json.dumps(entry))
    failures = [f for f in verify_trail(trail).failures if "differs from the seal the hot file has" in f.detail]
    assert [f.kind for f in failures] == [FailureKind.SEAL_MISMATCH]
    assert "records: 4 vs 5" in failures[0].detail


class TestNothingVerified:
    """A trail deleted whole, an empty directory or /dev/null is not "OK: 0 files" (issue 13, finding 1)."""

    @pytest.mark.parametrize("where", ["empty", "missing", "devnull"])
    def test_nothing_to_verify_fails_unless_allowed(self, tmp_path, capsys, where):
        path = {"empty": tmp_path, "missing": tmp_path / "gone", "devnull": Path("/dev/null")}[where]
        report = verify_trail(path)
        assert not report.ok
        assert [f.kind for f in report.failures] == [FailureKind.NOTHING_VERIFIED]
        assert main(["verify", str(path)]) == 1
        out = capsys.readouterr().out
        assert "FAILED" in out and "nothing was verified" in out and "--allow-empty" in out
        if where != "missing":
            assert verify_trail(path, allow_empty=True).ok
            assert main(["verify", str(path), "--allow-empty"]) == 0

    def test_a_deleted_trail_fails_where_it_passed(self, tmp_path):
        with AuditEventEmitter(AuditConfig(base_path=tmp_path, sync_writes=False)) as audit:
            audit.emit_param_change("meta", "k", 1, 2, "why")
        assert verify_trail(tmp_path).ok
        for file in (tmp_path / "hot").iterdir():
            file.chmod(0o644)
            file.unlink()
        assert [f.kind for f in verify_trail(tmp_path).failures] == [FailureKind.NOTHING_VERIFIED]
