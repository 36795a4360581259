"""The converter writes a hot file's day files while it is still being verified: staged, published only after.

DuckDB stages the Parquet files in ``cold/_staging/<source>/`` beside the scan that verifies the
file (``converter._ColumnarPass``); they are renamed into the store and the manifest entry written
only once the file and its seal verify. A file that fails must leave nothing published and nothing
staged, and a staged file left by a crash must never be taken for a converted one.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_converter import TestTornLines as _TornLines
from test_converter import cold_rows, original_line, write_trail

import audit_core.cold.converter as converter_module
from audit_core.cold.cold_verify import verify_cold
from audit_core.cold.converter import STAGING_DIR, ParquetConverter
from audit_core.cold.manifest import MANIFEST_DIR


def _tamper(path: Path, where: str) -> None:
    """Change one record line of ``path`` (its checksum no longer matches), or make it no JSON at all."""
    lines = path.read_bytes().splitlines(keepends=True)
    index = {"middle": len(lines) // 2, "end": len(lines) - 1, "unparseable": len(lines) // 2}[where]
    if where == "unparseable":
        lines[index] = lines[index].replace(b'"source":"', b'"source":', 1)  # a string without its quote
    else:
        lines[index] = lines[index].replace(b'"trader_id":"', b'"trader_id":"X', 1)
    assert lines[index] != path.read_bytes().splitlines(keepends=True)[index]
    os.chmod(path, 0o640)
    path.write_bytes(b"".join(lines))


def _published(cold: Path) -> list[Path]:
    return sorted(cold.glob("year=*/month=*/day=*/*.parquet"))


class _StagingWatch:
    """Records what the DuckDB thread staged (real ``stage_partitions``), and holds the verdict until then,
    so a failing file is judged only after its day files were written into the staging directory."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.staged: list[Path] = []
        self.done = threading.Event()
        stage, verify = converter_module.stage_partitions, converter_module.verify_scanned

        def staging(*args: Any, **kwargs: Any) -> Any:
            try:
                result = stage(*args, **kwargs)
                self.staged = [file for file, _, _ in result if file.exists()]
                return result
            finally:
                self.done.set()

        def verifying(*args: Any, **kwargs: Any) -> Any:
            assert self.done.wait(120), "the DuckDB thread never finished staging"
            return verify(*args, **kwargs)

        monkeypatch.setattr(converter_module, "stage_partitions", staging)
        monkeypatch.setattr(converter_module, "verify_scanned", verifying)


@pytest.mark.parametrize("where", ["middle", "end"])
def test_a_file_that_fails_verification_publishes_nothing_it_staged(tmp_path, monkeypatch, where):
    write_trail(tmp_path / "t")
    (path,) = (tmp_path / "t" / "hot").glob("*.jsonl")
    _tamper(path, where)
    watch = _StagingWatch(monkeypatch)
    cold = tmp_path / "cold"
    (result,) = ParquetConverter(tmp_path / "t" / "hot", cold).convert_all()
    assert not result.converted and result.skipped == "failed verification"
    assert any("checksum_mismatch" in failure for failure in result.failures), result.failures
    assert len(watch.staged) == 2  # both days were written, unpublished, before the verdict
    assert all(STAGING_DIR in file.parts for file in watch.staged)
    assert not any(file.exists() for file in watch.staged)
    assert not list(cold.rglob("*.parquet"))
    assert not (cold / STAGING_DIR / path.name).exists()
    assert not (cold / MANIFEST_DIR).exists()


def test_a_file_duckdb_cannot_parse_is_reported_as_failing_verification(tmp_path):
    write_trail(tmp_path / "t")
    (path,) = (tmp_path / "t" / "hot").glob("*.jsonl")
    _tamper(path, "unparseable")
    cold = tmp_path / "cold"
    (result,) = ParquetConverter(tmp_path / "t" / "hot", cold).convert_all()
    assert not result.converted and result.skipped == "failed verification"
    assert not list(cold.rglob("*.parquet"))
    assert not (cold / STAGING_DIR / path.name).exists()


def test_a_complete_staged_file_left_by_a_crash_is_never_published(tmp_path):
    """A crash after staging but before the verdict leaves whole, valid Parquet files in the staging
    directory; the next run must not publish them, even if the hot file now fails verification."""
    write_trail(tmp_path / "t")
    (path,) = (tmp_path / "t" / "hot").glob("*.jsonl")
    ParquetConverter(tmp_path / "t" / "hot", tmp_path / "first").convert_all()
    cold = tmp_path / "cold"
    staging = cold / STAGING_DIR / path.name
    staging.mkdir(parents=True)
    for file in _published(tmp_path / "first"):  # what the crashed run had staged: complete day files
        day = "".join(part.split("=")[1] for part in file.parts[-4:-1])
        shutil.copyfile(file, staging / f"{day}.parquet")
    # Before any run: the store's readers do not see the staged files.
    report = verify_cold(cold)
    assert report.records == 0
    _tamper(path, "middle")
    (result,) = ParquetConverter(tmp_path / "t" / "hot", cold).convert_all()
    assert result.skipped == "failed verification"
    assert not _published(cold)
    assert not staging.exists()
    assert not (cold / MANIFEST_DIR).exists()


def test_staged_files_of_another_source_are_ignored_by_the_store(tmp_path):
    lines = write_trail(tmp_path / "t")
    cold = tmp_path / "cold"
    ParquetConverter(tmp_path / "t" / "hot", cold).convert_all()
    stray = cold / STAGING_DIR / "audit.other.jsonl"
    stray.mkdir(parents=True)
    for number, file in enumerate(_published(cold)):
        shutil.copyfile(file, stray / f"2026010{number}.parquet")
    report = verify_cold(cold)
    assert report.ok, report.to_text()
    assert report.records == len(lines)
    assert len(cold_rows(cold)) == len(lines)


def test_a_file_with_torn_lines_is_staged_while_it_is_verified(tmp_path, monkeypatch, crash):
    """Fed chunk by chunk, DuckDB gets the end of the input when the scan ends, not when the verdict is
    in: the verdict (the full ``verify`` here) waits for the staging, and still gets there."""
    path = _TornLines()._torn_trail(tmp_path, crash)
    lines = path.read_bytes().splitlines()
    watch = _StagingWatch(monkeypatch)
    (result,) = ParquetConverter(tmp_path / "t" / "hot", tmp_path / "cold").convert_all()
    assert result.converted, result.failures
    assert len(watch.staged) == 1 and not watch.staged[0].exists()  # staged, then renamed into place
    rows = sorted(cold_rows(tmp_path / "cold"), key=lambda row: row["source_line"])
    assert [original_line(row) for row in rows] == lines


def test_a_file_failing_while_duckdb_still_loads_it_interrupts_the_load_and_publishes_nothing(tmp_path, monkeypatch):
    """The scan verifies a file without torn lines beside DuckDB's load of it, not after: a verdict
    that comes while the load still runs interrupts it, and nothing is staged, published or recorded."""
    import duckdb

    write_trail(tmp_path / "t")
    (path,) = (tmp_path / "t" / "hot").glob("*.jsonl")
    _tamper(path, "middle")
    loading, load_done = threading.Event(), threading.Event()
    load_running_at_verdict: list[bool] = []
    interrupted: list[BaseException] = []

    def slow_load(self: Any, parsed: str, *, plain: bool) -> None:
        """A load that takes up to 60 s unless interrupted: statements of a second or more each, so the
        interrupt lands inside one (not in the microseconds between two)."""
        loading.set()
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline and not self._cancelled:
                self.con.execute("SELECT sum(hash(i)) FROM range(200_000_000) t(i)").fetchall()
        except duckdb.InterruptException as exc:
            interrupted.append(exc)
            raise
        finally:
            load_done.set()

    verify = converter_module.verify_scanned

    def verifying(*args: Any, **kwargs: Any) -> Any:
        assert loading.wait(60)
        report = verify(*args, **kwargs)
        load_running_at_verdict.append(not load_done.is_set())
        time.sleep(0.2)  # well inside one of the load's statements
        return report

    monkeypatch.setattr(converter_module._ColumnarPass, "_create_rows", slow_load)
    monkeypatch.setattr(converter_module, "verify_scanned", verifying)
    cold = tmp_path / "cold"
    (result,) = ParquetConverter(tmp_path / "t" / "hot", cold).convert_all()
    assert load_running_at_verdict == [True]
    assert len(interrupted) == 1  # the load ended by DuckDB's interrupt, not by running out its 60 s
    assert not result.converted and result.skipped == "failed verification"
    assert any("checksum_mismatch" in failure for failure in result.failures), result.failures
    assert not list(cold.rglob("*.parquet"))
    assert not (cold / STAGING_DIR / path.name).exists()
    assert not (cold / MANIFEST_DIR).exists()
