"""Projection versions: old stores stay verifiable, and ``convert --rebuild`` brings them to the current one.

Stores of projection 1 are written by the real converter (``projection_version=1``), from real
trails written by the emitter, in every trail mode. The rebuild must carry every record over byte
for byte, verify before and after, record what it replaced, refuse a store that does not verify,
and survive a crash inside its directory swap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit_core import AuditConfig, AuditEventEmitter, AuditIntegrityError
from audit_core.cli import main
from audit_core.cold import ParquetConverter, verify_cold
from audit_core.cold import _parquet as parquet_module
from audit_core.cold import rebuild as rebuild_module
from audit_core.cold.lines import source_lines
from audit_core.cold.manifest import MANIFEST_DIR, file_sha256, read_manifest, read_root, write_entry
from audit_core.cold.projection import PROJECTION_METADATA_KEY, PROJECTION_VERSION, PROJECTIONS
from audit_core.cold.rebuild import BUILDING_SUFFIX, REPLACED_SUFFIX, rebuild_projection
from audit_core.errors import AuditConfigError
from audit_core.trust.report import FailureKind
from audit_core.trust.signing import generate_keypair, load_private_key, load_public_key

JAN_5 = 1_767_571_200 * 10**9  # 2026-01-05 00:00 UTC
HOUR = 3600 * 10**9
KEY = b"rebuild-k3y"


@dataclass
class Trail:
    base: Path
    config: AuditConfig
    hmac_key: bytes | None
    signing_key: Any
    public_key: Any

    @property
    def cold(self) -> Path:
        return self.base / "cold"

    def converter(self, **options: Any) -> ParquetConverter:
        return ParquetConverter(self.base / "hot", self.cold, hmac_key=self.hmac_key, public_key=self.public_key,
                                signing_key=self.signing_key, **options)

    def verify(self) -> Any:
        return verify_cold(self.cold, self.hmac_key, self.public_key)

    def write(self, start: int, hours: int) -> None:
        now = [start]
        with AuditEventEmitter(self.config, clock=lambda: now[0]) as audit:
            for i in range(hours):
                now[0] = start + i * HOUR + 1
                audit.emit_param_change("meta", "risk_multiplier", i / 10, (i + 1) / 10, f"drawdown {i}",
                                        event_type="param.risk_change")
                audit.emit_trade("trade.fill", "obs", "EUR/USD.SIM", order_id=f"O-{i}", side="BUY", size="1000",
                                 price=f"1.1{i:03d}", commission="0.20", currency="USD")


def make_trail(base: Path, mode: str) -> Trail:
    base.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {}
    signing_key = public_key = None
    if mode == "signed":
        generate_keypair(base / "writer.key", base / "writer.pub")
        options["signing_key_path"] = base / "writer.key"
        signing_key, public_key = load_private_key(base / "writer.key"), load_public_key(base / "writer.pub")
    hmac_key = None if mode == "unkeyed" else KEY
    config = AuditConfig(base_path=base, trader_id="T1", sync_writes=False,
                         hmac_key=None if hmac_key is None else hmac_key.decode(), **options)
    trail = Trail(base, config, hmac_key, signing_key, public_key)
    trail.write(JAN_5, 30)  # two days, two sealed files
    return trail


@pytest.fixture(params=["unkeyed", "hmac", "signed"])
def old_store(request, tmp_path) -> Trail:
    """A trail whose cold store was written with projection 1, as the previous version did."""
    trail = make_trail(tmp_path, request.param)
    assert all(r.converted for r in trail.converter(projection_version=1).convert_all())
    return trail


def stored(cold: Path) -> dict[str, Any]:
    """The evidence: each hot file's lines as the store gives them back (any projection), and its files."""
    evidence: dict[str, Any] = {}
    for path in sorted((cold / MANIFEST_DIR).glob("*.json")):
        entry = read_manifest(path)
        evidence[entry["source"]] = (sorted(o["path"] for o in entry["outputs"]),
                                     b"".join(source_lines(cold, entry["source"])))
    return evidence


def versions(cold: Path) -> set[int]:
    return {read_manifest(path)["projection_version"] for path in (cold / MANIFEST_DIR).glob("*.json")}


class TestOldStores:
    def test_a_projection_1_store_verifies_and_lacks_the_new_column(self, old_store):
        assert versions(old_store.cold) == {1} and PROJECTION_VERSION == 4
        report = old_store.verify()
        assert report.ok, report.to_text()
        assert report.records == 60
        for file in old_store.cold.glob("year=*/month=*/day=*/*.parquet"):
            assert not {"record_format", "ts_recorded"} & set(pq.read_schema(file).names)
            assert pq.read_metadata(file).metadata[PROJECTION_METADATA_KEY.encode()] == b"1"

    def test_an_edited_column_of_a_projection_1_file_is_still_found(self, old_store):
        file = sorted(old_store.cold.glob("year=*/month=*/day=*/*.parquet"))[0]
        table = pq.read_table(file)
        prices = table.column("price").to_pylist()
        row = next(i for i, value in enumerate(prices) if value is not None)
        prices[row] = prices[row] * 2
        os.chmod(file, 0o644)
        index = table.schema.get_field_index("price")
        pq.write_table(table.set_column(index, "price", pa.array(prices, table.schema.field("price").type))
                       .replace_schema_metadata(pq.read_metadata(file).metadata), file)
        failures = old_store.verify().failures
        assert any(f.kind is FailureKind.COLUMN_MISMATCH and "column price" in f.detail for f in failures)

    def test_the_workbench_reads_old_files_as_record_format_1_beside_new_ones(self, old_store):
        from workbench import open_trail

        old_store.write(JAN_5 + 3 * 24 * HOUR, 3)  # a later day, converted with projection 4
        assert any(r.converted for r in old_store.converter().convert_all())
        assert versions(old_store.cold) == {1, 4}
        assert old_store.verify().ok
        assert read_root(old_store.cold)["projection_version"] == 1  # the oldest a reader must know
        trail = open_trail(old_store.base, hmac_key=old_store.hmac_key, public_key=old_store.public_key)
        counts = trail.events.aggregate(
            unknown=trail.events.record_format.isnull().sum(), format_3=(trail.events.record_format == 3).sum(),
            recorded=trail.events.ts_recorded.notnull().sum(),
        ).to_pandas().iloc[0]
        # Projection 1 did not derive record_format: NULL (unknown) until a rebuild, never a guess.
        assert (counts.unknown, counts.format_3, counts.recorded) == (60, 6, 6)


class TestRebuild:
    def test_rebuild_derives_the_new_columns_and_carries_every_record_over(self, old_store):
        before, old_hashes = stored(old_store.cold), {
            p.name: file_sha256(p) for p in old_store.cold.glob("year=*/month=*/day=*/*.parquet")}
        result = old_store.converter().rebuild()
        assert result.rebuilt and result.from_versions == {1: 2} and result.to_version == 4
        assert (result.files, result.rows, result.records) == (2, 60, 60)
        assert "rebuilt 2 manifest entries (2 from projection 1) to projection 4" in result.summary()
        assert stored(old_store.cold) == before  # the evidence, byte for byte
        report = old_store.verify()
        assert report.ok, report.to_text()
        assert versions(old_store.cold) == {4} and read_root(old_store.cold)["projection_version"] == 4
        for path in (old_store.cold / MANIFEST_DIR).glob("*.json"):
            (history,) = read_manifest(path)["rebuilt"]
            assert history["from_projection_version"] == 1
            assert {Path(r["path"]).name: r["sha256"] for r in history["replaced"]}.items() <= old_hashes.items()
        formats = duckdb.execute("SELECT DISTINCT record_format, ts_recorded IS NULL FROM read_parquet($g)",
                                 {"g": str(old_store.cold / "year=*/month=*/day=*/*.parquet")}).fetchall()
        assert formats == [(3, False)]  # derived from the records, which this version's emitter wrote
        assert not (old_store.base / ("cold" + BUILDING_SUFFIX)).exists()
        assert not (old_store.base / ("cold" + REPLACED_SUFFIX)).exists()
        again = old_store.converter().rebuild()
        assert not again.rebuilt and "nothing to rebuild" in again.summary()

    def test_a_projection_3_store_loses_its_prev_hash_column_and_keeps_every_line(self, tmp_path):
        trail = make_trail(tmp_path, "hmac")
        assert all(r.converted for r in trail.converter(projection_version=3).convert_all())
        files = sorted(trail.cold.glob("year=*/month=*/day=*/*.parquet"))
        assert all("prev_hash" in pq.read_schema(file).names for file in files)
        before, size = stored(trail.cold), sum(file.stat().st_size for file in files)
        assert trail.verify().ok
        result = trail.converter().rebuild()
        assert result.rebuilt and result.from_versions == {3: 2}
        assert stored(trail.cold) == before  # every line of every hot file, byte for byte
        report = trail.verify()
        assert report.ok and report.records == 60, report.to_text()
        files = sorted(trail.cold.glob("year=*/month=*/day=*/*.parquet"))
        assert not any("prev_hash" in pq.read_schema(file).names for file in files)
        assert sum(file.stat().st_size for file in files) < size

    def test_a_store_whose_hot_files_are_gone_rebuilds_and_verifies(self, old_store):
        for path in (old_store.base / "hot").iterdir():
            os.chmod(path, 0o644)
            path.unlink()
        assert rebuild_projection(old_store.cold, hmac_key=old_store.hmac_key, public_key=old_store.public_key,
                                  signing_key=old_store.signing_key).rebuilt
        assert old_store.verify().ok

    def test_a_store_that_does_not_verify_is_not_touched(self, old_store):
        file = sorted(old_store.cold.glob("year=*/month=*/day=*/*.parquet"))[0]
        os.chmod(file, 0o644)
        with file.open("r+b") as handle:  # one byte of the footer region
            handle.seek(-20, os.SEEK_END)
            byte = handle.read(1)
            handle.seek(-20, os.SEEK_END)
            handle.write(bytes([byte[0] ^ 1]))
        damaged = file_sha256(file)
        with pytest.raises(AuditIntegrityError, match=r"does not verify.*nothing was changed"):
            old_store.converter().rebuild()
        assert file_sha256(file) == damaged and versions(old_store.cold) == {1}
        assert not (old_store.base / ("cold" + BUILDING_SUFFIX)).exists()

    def test_a_crash_inside_the_swap_is_finished_by_the_next_run(self, old_store, monkeypatch):
        # The crash is injected (os.rename raising after the store was moved aside): everything
        # else is the real filesystem.
        real_rename, calls = os.rename, []

        def rename_then_die(source, target):
            calls.append(target)
            if len(calls) == 2:
                raise KeyboardInterrupt("power cut")
            real_rename(source, target)

        monkeypatch.setattr(rebuild_module.os, "rename", rename_then_die)
        with pytest.raises(KeyboardInterrupt):
            old_store.converter().rebuild()
        monkeypatch.setattr(rebuild_module.os, "rename", real_rename)
        assert not old_store.cold.exists()
        assert (old_store.base / ("cold" + BUILDING_SUFFIX)).is_dir()
        assert (old_store.base / ("cold" + REPLACED_SUFFIX)).is_dir()
        assert not old_store.converter().rebuild().rebuilt  # finishes the swap; nothing left to do
        assert old_store.verify().ok and versions(old_store.cold) == {PROJECTION_VERSION}
        assert not (old_store.base / ("cold" + REPLACED_SUFFIX)).exists()


def test_a_signed_store_needs_the_signing_key(tmp_path):
    trail = make_trail(tmp_path, "signed")
    trail.converter(projection_version=1).convert_all()
    with pytest.raises(AuditConfigError, match="signed; pass the converter's signing key"):
        rebuild_projection(trail.cold, hmac_key=KEY, public_key=trail.public_key)
    assert versions(trail.cold) == {1}


def test_an_entry_of_an_unknown_projection_version_is_reported(tmp_path):
    trail = make_trail(tmp_path, "hmac")
    trail.converter().convert_all()
    path = sorted((trail.cold / MANIFEST_DIR).glob("*.json"))[0]
    entry = {k: v for k, v in read_manifest(path).items() if k != "manifest_checksum"}
    entry["projection_version"] = max(PROJECTIONS) + 1  # authentic (written with the key), but from the future
    write_entry(trail.cold, entry, KEY)
    trail.converter().update_root()
    failures = trail.verify().failures
    assert any(f.kind is FailureKind.MANIFEST_INVALID and "is not one this verifier knows" in f.detail
               for f in failures), failures


def test_the_cli_rebuilds_then_converts(tmp_path, capsys, monkeypatch):
    trail = make_trail(tmp_path, "hmac")
    trail.converter(projection_version=1).convert_all()
    monkeypatch.setenv("REBUILD_KEY", KEY.decode())
    assert main(["convert", str(trail.base / "hot"), str(trail.cold), "--rebuild", "-q",
                 "--hmac-key-env", "REBUILD_KEY"]) == 0
    out = capsys.readouterr().out
    assert "rebuilt 2 manifest entries (2 from projection 1) to projection 4" in out
    assert main(["verify", str(trail.base), "--hmac-key-env", "REBUILD_KEY"]) == 0


class TestPageFormat:
    """Cold files have v1 data pages (no BYTE_STREAM_SPLIT, which Spark 4.0's fast reader refuses); a store an
    older converter wrote with v2 pages is written again in v1 pages by ``convert --rebuild``."""

    @staticmethod
    def files(cold: Path) -> list[Path]:
        return sorted(cold.glob("year=*/month=*/day=*/*.parquet"))

    def test_the_converter_writes_v1_pages_and_no_byte_stream_split(self, tmp_path):
        trail = make_trail(tmp_path, "hmac")
        trail.converter().convert_all()
        assert "PARQUET_VERSION V1" in parquet_module.COPY_OPTIONS
        for file in self.files(trail.cold):
            metadata = pq.read_metadata(file)
            assert metadata.format_version == "1.0"
            assert pq.read_table(file, columns=["new_value_num"]).column(0).null_count < metadata.num_rows
            assert not parquet_module.uses_byte_stream_split(file)

    def test_a_store_with_v2_pages_is_rebuilt_into_v1_pages_at_the_same_version(self, tmp_path, monkeypatch):
        trail = make_trail(tmp_path, "signed")
        with monkeypatch.context() as patch:  # the previous converter: the same code with v2 pages
            patch.setattr(parquet_module, "COPY_OPTIONS",
                          parquet_module.COPY_OPTIONS.replace("PARQUET_VERSION V1", "PARQUET_VERSION V2"))
            assert all(r.converted for r in trail.converter().convert_all())
        assert all(parquet_module.uses_byte_stream_split(file) for file in self.files(trail.cold))
        assert versions(trail.cold) == {PROJECTION_VERSION}
        before = stored(trail.cold)
        result = trail.converter().rebuild()
        assert result.rebuilt and result.from_versions == {PROJECTION_VERSION: 2} and result.files == 2
        assert not any(parquet_module.uses_byte_stream_split(file) for file in self.files(trail.cold))
        assert stored(trail.cold) == before
        report = trail.verify()
        assert report.ok, report.to_text()
        for path in (trail.cold / MANIFEST_DIR).glob("*.json"):
            (history,) = read_manifest(path)["rebuilt"]
            assert history["from_projection_version"] == PROJECTION_VERSION
        assert not trail.converter().rebuild().rebuilt

    def test_an_unreadable_footer_is_not_taken_for_byte_stream_split(self, tmp_path):
        (tmp_path / "x.parquet").write_bytes(b"PAR1 not really")
        assert not parquet_module.uses_byte_stream_split(tmp_path / "x.parquet")


def test_entries_without_the_parameter_index_are_rebuilt_with_it(tmp_path):
    trail = make_trail(tmp_path, "hmac")
    trail.converter().convert_all()
    written = {}
    for path in (trail.cold / MANIFEST_DIR).glob("*.json"):  # as the converter before the index wrote them
        entry = {k: v for k, v in read_manifest(path).items() if k != "manifest_checksum"}
        for output in entry["outputs"]:
            written[output["path"]] = output.pop("parameters")
        write_entry(trail.cold, entry, KEY)
    trail.converter().update_root()
    assert trail.verify().ok and all(written.values())
    result = trail.converter().rebuild()
    assert result.rebuilt and result.from_versions == {PROJECTION_VERSION: 2}
    rebuilt = {output["path"]: output["parameters"] for path in (trail.cold / MANIFEST_DIR).glob("*.json")
               for output in read_manifest(path)["outputs"]}
    assert rebuilt == written
    assert trail.verify().ok
