"""`ledgerline convert`, `stats`, `retention` and `verify` on the cold side, checked through the library."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit_core import AuditConfig, AuditEventEmitter
from audit_core.cli import main
from audit_core.cold.cold_verify import verify_cold
from audit_core.cold.converter import ParquetConverter
from audit_core.hot.verifier import verify

JAN_1 = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()) * 10**9
HOUR = 3600 * 10**9


@pytest.fixture
def trail(tmp_path) -> Path:
    """Three days of one rotating stream, closed (so every file is sealed)."""
    now = [JAN_1]
    with AuditEventEmitter(AuditConfig(base_path=tmp_path, sync_writes=False), clock=lambda: now[0]) as emitter:
        for i in range(72):
            now[0] = JAN_1 + i * HOUR + 1
            emitter.emit_param_change("meta", "risk_multiplier", i, i + 1, "drawdown")
    return tmp_path


def parquet_files(cold: Path) -> list[Path]:
    return sorted(cold.glob("year=*/month=*/day=*/*.parquet"))


class TestConvert:
    def test_converts_every_sealed_file_and_says_so(self, trail, capsys):
        assert main(["convert", str(trail / "hot"), str(trail / "cold"), "-q"]) == 0
        out = capsys.readouterr().out
        assert out.count("converted audit.") == 3 and "3 converted, 0 failed verification" in out
        assert len(parquet_files(trail / "cold")) == 3
        assert verify_cold(trail / "cold").ok

    def test_second_run_converts_nothing(self, trail, capsys):
        main(["convert", str(trail / "hot"), str(trail / "cold"), "-q"])
        before = {p: p.stat().st_mtime_ns for p in parquet_files(trail / "cold")}
        assert main(["convert", str(trail / "hot"), str(trail / "cold")]) == 0
        assert "0 converted" in capsys.readouterr().out
        assert {p: p.stat().st_mtime_ns for p in parquet_files(trail / "cold")} == before

    def test_progress_bar_goes_to_stderr(self, trail, capsys, monkeypatch):
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # the bar only shows on a terminal
        assert main(["convert", str(trail / "hot"), str(trail / "cold")]) == 0
        captured = capsys.readouterr()
        assert "converting" in captured.err and "3/3" in captured.err
        assert "converting" not in captured.out

    def test_a_tampered_file_exits_one_and_is_not_converted(self, trail, capsys):
        path = sorted((trail / "hot").glob("*.jsonl"))[1]
        path.chmod(0o640)
        path.write_bytes(path.read_bytes().replace(b'"new_value":30', b'"new_value":31', 1))
        assert main(["convert", str(trail / "hot"), str(trail / "cold"), "-q"]) == 1
        assert f"NOT converted {path.name}" in capsys.readouterr().out
        assert len(parquet_files(trail / "cold")) == 2

    def test_missing_hot_path_is_a_one_line_error(self, tmp_path, capsys):
        assert main(["convert", str(tmp_path / "nope"), str(tmp_path / "cold")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ledgerline convert: error:") and "nope" in err and err.count("\n") == 1


class TestStats:
    def test_matches_the_library(self, trail, capsys):
        ParquetConverter(trail / "hot", trail / "cold").convert_all()
        assert main(["stats", str(trail / "cold"), "--json"]) == 0
        printed = json.loads(capsys.readouterr().out)
        library = ParquetConverter(trail / "hot", trail / "cold").get_partition_stats()
        assert printed == [vars(p) for p in library]
        assert [p["rows"] for p in printed] == [24, 24, 24]

    def test_table_output(self, trail, capsys):
        ParquetConverter(trail / "hot", trail / "cold").convert_all()
        assert main(["stats", str(trail / "cold")]) == 0
        out = capsys.readouterr().out
        assert "year=2026/month=01/day=02" in out and "3 partition(s), 72 rows" in out


class TestRetention:
    def test_dry_run_then_real(self, trail, capsys):
        ParquetConverter(trail / "hot", trail / "cold").convert_all()
        args = ["retention", str(trail / "cold"), "--days", "1", "--now", "2026-01-03T12:00"]
        assert main([*args, "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "would remove partition year=2026/month=01/day=01" in out
        assert len(parquet_files(trail / "cold")) == 3
        assert main(args) == 0
        out = capsys.readouterr().out
        assert "removed 1 partition(s) and 1 hot file(s); recorded as sys.retention" in out
        assert len(parquet_files(trail / "cold")) == 2
        assert verify(trail / "hot").ok

    def test_bad_date_is_a_usage_error(self, trail, capsys):
        with pytest.raises(SystemExit) as exit_info:
            main(["retention", str(trail / "cold"), "--days", "1", "--now", "yesterday"])
        assert exit_info.value.code == 2
        assert "'yesterday' is not an ISO date" in capsys.readouterr().err


class TestVerifyBothSides:
    def test_a_trail_directory_verifies_hot_and_cold(self, trail, capsys):
        ParquetConverter(trail / "hot", trail / "cold").convert_all()
        assert main(["verify", str(trail)]) == 0
        out = capsys.readouterr().out
        assert out.count("OK:") == 2  # the hot report, then the cold one

    def test_a_deleted_parquet_row_fails_cold_verification(self, trail, capsys):
        ParquetConverter(trail / "hot", trail / "cold").convert_all()
        target = parquet_files(trail / "cold")[1]
        table = pq.read_table(target)
        target.chmod(0o640)
        pq.write_table(pa.concat_tables([table.slice(0, 5), table.slice(6)]), target)
        assert main(["verify", str(trail / "cold")]) == 1
        assert "FAILED" in capsys.readouterr().out
        assert not verify_cold(trail / "cold").ok
