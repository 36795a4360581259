"""Attacks on the cold store, each tried in every trail mode: unkeyed, HMAC, HMAC + Ed25519.

The attacker can write the disk (Parquet, manifests, root, holds) but has no key. Every attack
below is detected in the keyed and signed modes, and every one but the "full recompute" attacks
in the unkeyed mode too. What an unkeyed trail cannot stop (``test_an_unkeyed_trail_cannot_stop_a
_full_recompute``, stated in the README): someone who recomputes every hash (record checksums,
seal copy, manifest entry, root) after an edit, because SHA-256 needs no key. The typed columns
stay bound to the stored record in every mode: only an edit of the record itself, with its
checksum, chain and seal recomputed, goes unnoticed without a key.

And no false alarms: a clean trail verifies converted, half converted and after a crash recovery
(torn lines); after retention once retention rewrites manifests with ``manifest.write_entry`` and
the root with ``update_cold_root``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audit_core import AuditConfig, AuditEventEmitter
from audit_core.cli import main
from audit_core.cold._id_filter import id_filter
from audit_core.cold._parquet import parameter_index_sql
from audit_core.cold.cold_verify import verify_cold
from audit_core.cold.converter import ParquetConverter
from audit_core.cold.lines import source_lines
from audit_core.cold.manifest import (
    HOLDS_FILE,
    JOURNAL_DIR,
    MANIFEST_DIR,
    ROOT_FILE,
    file_sha256,
    manifest_path,
    read_manifest,
    update_cold_root,
    write_entry,
)
from audit_core.cold.retention import apply_retention
from audit_core.hot.verifier import verify
from audit_core.trust import documents
from audit_core.trust.record import split_record
from audit_core.trust.report import FailureKind
from audit_core.trust.seals import SEAL_CHECKSUM, FileDigest, read_seal
from audit_core.trust.signing import generate_keypair, load_private_key, load_public_key

JAN_5 = 1_767_571_200 * 10**9  # 2026-01-05 00:00 UTC
HOUR = 3600 * 10**9
DAYS = 3
KEY = b"cold-k3y"
MODES = ("unkeyed", "hmac", "signed")


@dataclass
class Trail:
    """A closed trail of three days (three sealed hot files) in one mode, and its keys."""

    base: Path
    mode: str
    config: AuditConfig
    hmac_key: bytes | None
    signing_key: Any
    public_key: Any

    @property
    def hot(self) -> Path:
        return self.base / "hot"

    @property
    def cold(self) -> Path:
        return self.base / "cold"

    def hot_files(self) -> list[Path]:
        return sorted(self.hot.glob("audit.*.main.*.jsonl"))

    def converter(self) -> ParquetConverter:
        return ParquetConverter(self.hot, self.cold, hmac_key=self.hmac_key, public_key=self.public_key,
                                signing_key=self.signing_key)

    def convert(self) -> None:
        results = self.converter().convert_all()
        assert all(r.converted or r.skipped == "already converted" for r in results), results

    def verify(self) -> Any:
        return verify_cold(self.cold, self.hmac_key, self.public_key)

    def parquet(self) -> list[Path]:
        return sorted(self.cold.glob("year=*/month=*/day=*/*.parquet"))


def write_days(config: AuditConfig, start: int = JAN_5) -> None:
    now = [start]
    with AuditEventEmitter(config, clock=lambda: now[0]) as emitter:
        for i in range(DAYS * 8):
            now[0] = start + i * 3 * HOUR + 1
            emitter.emit_param_change("meta", "risk_multiplier", i / 10, (i + 1) / 10, f"drawdown {i}",
                                      event_type="param.risk_change")
            emitter.emit_signal("pp", "momentum", 0.5 + i, 0.9, regime="VENTRAL", correlation_id=f"S-{i}")
            emitter.emit_trade("trade.fill", "obs", "EUR/USD.SIM", order_id=f"O-{i}", side="BUY", size="1000",
                               price=f"1.1{i:03d}", commission="0.20", currency="USD", correlation_id=f"S-{i}")


def make_trail(base: Path, mode: str, *, rotate_daily: bool = True) -> Trail:
    hmac_key = None if mode == "unkeyed" else KEY
    signing_key = public_key = None
    options: dict[str, Any] = {}
    base.mkdir(parents=True, exist_ok=True)
    if mode == "signed":
        generate_keypair(base / "writer.key", base / "writer.pub")
        options["signing_key_path"] = base / "writer.key"
        signing_key = load_private_key(base / "writer.key")
        public_key = load_public_key(base / "writer.pub")
    config = AuditConfig(base_path=base, trader_id="T1", sync_writes=False, rotate_daily=rotate_daily,
                         hmac_key=None if hmac_key is None else hmac_key.decode(), **options)
    write_days(config)
    return Trail(base, mode, config, hmac_key, signing_key, public_key)


@pytest.fixture(params=MODES)
def trail(request, tmp_path) -> Trail:
    return make_trail(tmp_path, request.param)


@pytest.fixture(params=["hmac", "signed"])
def keyed_trail(request, tmp_path) -> Trail:
    return make_trail(tmp_path, request.param)


@pytest.fixture
def converted(trail) -> Trail:
    trail.convert()
    assert trail.verify().ok, trail.verify().to_text()
    return trail


def kinds(report: Any) -> set[str]:
    return {failure.kind.value for failure in report.failures}


def rewrite(file: Path, table: pa.Table, **options: Any) -> None:
    """Write ``table`` over ``file`` as an attacker with pyarrow would, keeping the key-value metadata."""
    os.chmod(file, 0o644)
    metadata = pq.read_metadata(file).metadata
    pq.write_table(table.replace_schema_metadata(metadata), file, compression="zstd", **options)


def edit_column(file: Path, column: str, change: Any) -> int:
    """Change the first non-NULL value of ``column`` in ``file``; returns that row's source line."""
    table = pq.read_table(file)
    values = table.column(column).to_pylist()
    row = next(index for index, value in enumerate(values) if value is not None)
    values[row] = change(values[row])
    index = table.schema.get_field_index(column)
    rewrite(file, table.set_column(index, column, pa.array(values, table.schema.field(column).type)))
    return int(table.column("source_line")[row].as_py())


def entries(cold: Path) -> list[Path]:
    return sorted((cold / MANIFEST_DIR).glob("*.json"))


def write_raw(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1))


# --- no false alarms ------------------------------------------------------------------------------


class TestCleanTrails:
    def test_a_converted_trail_verifies(self, converted):
        report = converted.verify()
        assert report.ok, report.to_text()
        assert report.records == DAYS * 8 * 3 and report.sealed_files == DAYS

    def test_a_half_converted_trail_verifies_hot_and_cold(self, trail):
        first, *_ = trail.hot_files()
        assert trail.converter().convert_file(first).converted
        assert trail.verify().ok, trail.verify().to_text()
        assert verify(trail.hot, trail.hmac_key, public_key=trail.public_key).ok

    def test_a_recovered_trail_with_torn_lines_verifies(self, trail, crash):
        emitter = AuditEventEmitter(trail.config, clock=lambda: JAN_5 + DAYS * 24 * HOUR + 5)
        emitter.emit_param_change("c", "k", 1, 2)
        emitter.flush()
        crash(emitter)
        (live,) = [p for p in trail.hot_files() if read_seal(p) is None]
        with live.open("ab") as handle:
            handle.write(b'{"ts_event":1767830400000000000,"event_type":"param.state_chan')
        with AuditEventEmitter(trail.config, clock=lambda: JAN_5 + DAYS * 24 * HOUR + 9) as emitter:
            emitter.emit_param_change("c", "k", 2, 3)  # recovery, one more event, then the seal
        trail.convert()
        event_types = [t for f in trail.parquet() for t in pq.read_table(f).column("event_type").to_pylist()]
        assert "sys.torn_line" in event_types and "sys.recovery" in event_types
        report = trail.verify()
        assert report.ok, report.to_text()

    def test_a_trail_after_retention_verifies(self, converted):
        plan = apply_retention(converted.hot, converted.cold, days=1, now=dt.datetime(2026, 1, 7, 12, tzinfo=dt.UTC),
                               config=converted.config)
        assert plan.partitions
        report = converted.verify()
        assert report.ok, report.to_text()


# --- attack 1: typed columns rewritten, record left alone -------------------------------------------


class TestColumnsAreBound:
    @pytest.mark.parametrize(("column", "change", "kind"), [
        ("new_value", lambda value: "9.9", FailureKind.COLUMN_MISMATCH),
        ("trigger_reason", lambda value: "manual override approved", FailureKind.COLUMN_MISMATCH),
        ("price", lambda value: value + decimal.Decimal("0.01"), FailureKind.COLUMN_MISMATCH),
        # Projection 4's record leaves ts_event to its column: the column is part of what is hashed.
        ("ts_event", lambda value: value + 3 * HOUR, FailureKind.CHECKSUM_MISMATCH),
    ])
    def test_a_rewritten_column_names_file_row_and_column(self, converted, column, change, kind):
        file = converted.parquet()[1]
        line = edit_column(file, column, change)
        report = converted.verify()
        mismatches = [f for f in report.failures if f.kind is kind]
        assert [(f.file, f.line) for f in mismatches] == [(str(file), line)]
        assert (f"column {column}:" if kind is FailureKind.COLUMN_MISMATCH else column) in mismatches[0].detail
        assert FailureKind.PARQUET_MISMATCH in {f.kind for f in report.failures}  # and the file's hash

    def test_the_column_check_needs_no_key_even_when_every_hash_is_recomputed(self, converted):
        # The attacker edits a column and makes every commitment match again (file SHA-256 in the
        # manifest, the entry's checksum, the root) with the key if there is one: only the
        # derivation from the stored record can tell, and it does in every mode.
        file = converted.parquet()[0]
        line = edit_column(file, "price", lambda value: value * 2)
        recommit(converted, converted.hmac_key, converted.signing_key)
        report = converted.verify()
        assert kinds(report) == {"column_mismatch"}, report.to_text()
        assert report.failures[0].line == line

    def test_a_deleted_column_value_is_a_mismatch_too(self, converted):
        edit_column(converted.parquet()[0], "strategy_source", lambda value: None)
        assert "column_mismatch" in kinds(converted.verify())


def recommit(trail: Trail, hmac_key: bytes | None, signing_key: Any) -> None:
    """Make manifest entries and root match the Parquet files again, with the keys given."""
    for path in entries(trail.cold):
        entry = read_manifest(path)
        for output in entry["outputs"]:
            file = trail.cold / output["path"]
            output["sha256"] = file_sha256(file)
            output["rows"] = pq.read_metadata(file).num_rows
            output["bytes"] = file.stat().st_size
        write_entry(trail.cold, entry, hmac_key, signing_key)
    (trail.cold / ROOT_FILE).unlink()
    update_cold_root(trail.cold, hmac_key, signing_key)


# --- keys ------------------------------------------------------------------------------------------


class TestKeys:
    def test_a_converter_key_of_its_own_is_pinned_separately(self, tmp_path):
        trail = make_trail(tmp_path, "signed")
        generate_keypair(tmp_path / "converter.key", tmp_path / "converter.pub")
        converter_key = load_private_key(tmp_path / "converter.key")
        ParquetConverter(trail.hot, trail.cold, hmac_key=trail.hmac_key, public_key=trail.public_key,
                         signing_key=converter_key).convert_all()
        pinned = verify_cold(trail.cold, trail.hmac_key, trail.public_key,
                             cold_public_key=load_public_key(tmp_path / "converter.pub"))
        assert pinned.ok, pinned.to_text()
        wrong = verify_cold(trail.cold, trail.hmac_key, trail.public_key)  # manifests not signed by the writer
        assert kinds(wrong) == {"manifest_invalid", "root_invalid"}
        assert any("key_untrusted" in f.detail and "not listed as a trusted converter key" in f.detail
                   for f in wrong.failures)

    def test_the_cli_converts_signed_and_verifies_with_both_keys(self, tmp_path, capsys, monkeypatch):
        trail = make_trail(tmp_path, "signed")
        generate_keypair(tmp_path / "converter.key", tmp_path / "converter.pub")
        monkeypatch.setenv("COLD_KEY", KEY.decode())
        keyed = ["--hmac-key-env", "COLD_KEY", "--public-key", str(tmp_path / "writer.pub")]
        assert main(["convert", str(trail.hot), str(trail.cold), "-q", *keyed,
                     "--signing-key", str(tmp_path / "converter.key")]) == 0
        assert main(["verify", str(trail.base), *keyed, "--cold-public-key", str(tmp_path / "converter.pub")]) == 0
        capsys.readouterr()
        assert main(["verify", str(trail.base), *keyed]) == 1
        assert "manifest_invalid" in capsys.readouterr().out


# --- Parquet footers --------------------------------------------------------------------------------


class TestFilesAreCommitted:
    def test_footer_statistics_alone_are_an_edit(self, converted):
        file = converted.parquet()[0]
        table = pq.read_table(file)
        rewrite(file, table, write_statistics=False, row_group_size=7)  # same rows, other footer
        assert pq.read_table(file).equals(table)
        report = converted.verify()
        assert kinds(report) == {"parquet_mismatch"}, report.to_text()
        assert report.failures[0].file == str(file)

    def test_a_parquet_file_from_another_day_swapped_in_is_caught(self, converted):
        first, second, *_ = converted.parquet()
        os.chmod(second, 0o644)
        shutil.copyfile(first, second)
        assert {"parquet_mismatch", "seal_mismatch"} <= kinds(converted.verify())


# --- attack 2: manifest seal copies ---------------------------------------------------------------


class TestSealCopies:
    def test_a_zeroed_seal_checksum_fails(self, converted):
        path = entries(converted.cold)[0]
        entry = read_manifest(path)
        entry["seal"][SEAL_CHECKSUM] = "0" * 64
        write_raw(path, entry)
        failures = converted.verify().failures
        assert any(f.kind is FailureKind.SEAL_INVALID and "seal copy" in f.detail for f in failures)
        assert any(f.kind is FailureKind.MANIFEST_INVALID for f in failures)

    def test_a_stripped_signature_fails_with_the_public_key(self, tmp_path):
        trail = make_trail(tmp_path, "signed")
        trail.convert()
        path = entries(trail.cold)[0]
        entry = read_manifest(path)
        del entry["seal"]["signature"]
        # Even re-authenticating the seal copy and the entry with the HMAC key (an insider who has
        # it but not the signing key) leaves the copy unsigned.
        entry["seal"] = documents.authenticate(entry["seal"], SEAL_CHECKSUM, trail.hmac_key)
        write_entry(trail.cold, entry, trail.hmac_key, None)
        failures = trail.verify().failures
        assert any(f.kind is FailureKind.SIGNATURE_MISSING and "seal copy" in f.detail for f in failures)
        assert any(f.kind is FailureKind.MANIFEST_INVALID and "entry is unsigned" in f.detail for f in failures)

    def test_cut_last_rows_and_a_matching_manifest_fail_with_the_key(self, keyed_trail):
        keyed_trail.convert()
        cut_last_rows(keyed_trail, 5, attacker_key=None)
        report = keyed_trail.verify()
        assert {"manifest_invalid", "seal_invalid", "root_invalid"} <= kinds(report), report.to_text()

    def test_an_unkeyed_trail_cannot_stop_a_full_recompute(self, tmp_path):
        # NOT PROTECTED without a key (README): SHA-256 needs no key, so whoever recomputes the seal
        # copy, the entry and the root after cutting rows leaves a consistent store. The hot file,
        # while it exists, still tells (its seal is the original), and so would a signed trail.
        trail = make_trail(tmp_path, "unkeyed")
        trail.convert()
        cut_last_rows(trail, 5, attacker_key=None)
        assert trail.verify().ok
        assert not verify_cold(trail.cold, b"any key").ok  # and a keyed verifier refuses it, of course


def cut_last_rows(trail: Trail, count: int, attacker_key: bytes | None) -> None:
    """Cut the last ``count`` rows of the last file and make its seal copy, entry (its parameter index and id
    filter too) and root agree."""
    file = trail.parquet()[-1]
    table = pq.read_table(file).sort_by("source_line")
    kept = table.slice(0, table.num_rows - count)
    rewrite(file, kept)
    path = entries(trail.cold)[-1]
    entry = read_manifest(path)
    digest = FileDigest()
    for line in source_lines(trail.cold, entry["source"]):
        digest.add_line(line, split_record(line))
    entry["seal"].update(digest.finish().seal_fields())
    entry["seal"].pop("signature", None)
    entry["seal"] = documents.authenticate(entry["seal"], SEAL_CHECKSUM, attacker_key)
    output = next(o for o in entry["outputs"] if trail.cold / o["path"] == file)
    output.update(rows=kept.num_rows, sha256=file_sha256(file), bytes=file.stat().st_size,
                  last_sequence=kept.column("sequence")[-1].as_py(), last_hash=kept.column("checksum")[-1].as_py(),
                  parameters=[list(row) for row in duckdb.execute(  # the cut rows held parameter changes
                      parameter_index_sql("read_parquet($file)"), {"file": str(file)}).fetchall()],
                  ids=id_filter(duckdb.connect(), "read_parquet($file)", {"file": str(file)}))  # and their ids
    write_entry(trail.cold, entry, attacker_key, None)
    (trail.cold / ROOT_FILE).unlink()
    update_cold_root(trail.cold, attacker_key, None)


# --- attack 3: a forged manifest entry ------------------------------------------------------------


class TestForgedEntry:
    def forge(self, trail: Trail) -> Path:
        """Convert the first file only; forge an entry claiming the second is converted too."""
        first, second, _ = trail.hot_files()
        trail.converter().convert_file(first)
        seal = read_seal(second)
        entry = json.loads(manifest_path(trail.cold, first.name).read_text())
        forged = {**entry, "source": second.name, "seal": seal, "outputs": []}
        # Without the key, the best the attacker can do is a plain SHA-256 checksum.
        write_entry(trail.cold, forged, None, None)
        return second

    def test_the_converter_still_converts_it(self, trail):
        second = self.forge(trail)
        result = trail.converter().convert_file(second)
        assert result.converted and result.rows == read_seal(second)["records"]
        assert trail.verify().ok

    def test_the_workbench_still_reads_it_from_hot(self, trail):
        from workbench import open_trail
        from workbench._backend import COLD_GLOB
        from workbench._converted import converted

        second = self.forge(trail)
        assert not converted(second, trail.cold, set(trail.cold.glob(COLD_GLOB)), set(), trail.hmac_key,
                             None if trail.signing_key is None else trail.signing_key.public_key())
        assert second in open_trail(trail.base).hot.files

    def test_retention_keeps_it(self, trail):
        second = self.forge(trail)
        plan = apply_retention(trail.hot, trail.cold, days=1, now=dt.datetime(2026, 1, 9, tzinfo=dt.UTC),
                               dry_run=True, config=trail.config, public_key=trail.public_key)
        assert second.name not in [h.file for h in plan.hot_files]
        assert any(item == second.name and "not converted" in why for item, why in plan.kept), plan.kept

    def test_verify_reports_it(self, trail):
        self.forge(trail)
        assert "manifest_invalid" in kinds(trail.verify())


# --- attack 5: the manifest directory deleted -------------------------------------------------------


class TestManifestsDeleted:
    def test_verify_fails_and_says_so(self, converted):
        shutil.rmtree(converted.cold / MANIFEST_DIR)
        report = converted.verify()
        assert {"manifest_missing", "root_invalid", "unexpected_file"} <= kinds(report)
        assert any("no _manifest/ directory" in f.detail for f in report.failures)

    def test_the_cli_still_verifies_the_cold_store(self, converted, capsys, monkeypatch):
        shutil.rmtree(converted.cold / MANIFEST_DIR)
        argv = ["verify", str(converted.base)]
        if converted.hmac_key is not None:
            monkeypatch.setenv("COLD_KEY", converted.hmac_key.decode())
            argv += ["--hmac-key-env", "COLD_KEY"]
        assert main(argv) == 1
        assert "manifest_missing" in capsys.readouterr().out

    def test_the_cli_finds_a_store_without_manifests_or_root(self, converted, capsys):
        shutil.rmtree(converted.cold / MANIFEST_DIR)
        (converted.cold / ROOT_FILE).unlink()
        assert main(["verify", str(converted.cold)]) == 1
        assert "manifest_missing" in capsys.readouterr().out


# --- legal holds ------------------------------------------------------------------------------------


class TestLegalHolds:
    @pytest.fixture
    def held(self, converted) -> Trail:
        holds = converted.cold / HOLDS_FILE
        holds.write_text(json.dumps([{"start": "2026-01-05", "end": "2026-01-05", "reason": "inquiry 7"}]))
        assert "root_invalid" in kinds(converted.verify())  # a new hold is not blessed behind anyone's back
        converted.converter().update_root(accept_legal_holds=True)  # the deliberate change
        assert converted.verify().ok
        return converted

    def test_a_deleted_holds_file_fails(self, held):
        (held.cold / HOLDS_FILE).unlink()
        report = held.verify()
        assert kinds(report) == {"root_invalid"} and "legal holds" in report.failures[0].detail

    def test_an_edited_holds_file_fails(self, held):
        (held.cold / HOLDS_FILE).write_text("[]")
        assert kinds(held.verify()) == {"root_invalid"}

    def test_retention_refuses_while_the_holds_file_is_not_the_one_committed_to(self, held):
        from audit_core.errors import AuditConfigError

        before = sorted(p.name for p in held.parquet())
        (held.cold / HOLDS_FILE).unlink()  # the attack: lift the hold, let retention purge the held day
        with pytest.raises(AuditConfigError, match="not the legal holds file the cold root commits to"):
            apply_retention(held.hot, held.cold, days=1, now=dt.datetime(2026, 1, 20, tzinfo=dt.UTC),
                            config=held.config, public_key=held.public_key)
        assert sorted(p.name for p in held.parquet()) == before

    def test_the_cli_accepts_a_deliberate_change(self, held, capsys, monkeypatch):
        (held.cold / HOLDS_FILE).write_text("[]")
        assert kinds(held.verify()) == {"root_invalid"}
        argv = ["update-root", str(held.cold), "--accept-legal-holds"]
        if held.hmac_key is not None:
            monkeypatch.setenv("COLD_KEY", held.hmac_key.decode())
            argv += ["--hmac-key-env", "COLD_KEY"]
        if held.signing_key is not None:
            argv += ["--signing-key", str(held.base / "writer.key")]
        assert main(argv) == 0
        assert "root rewritten" in capsys.readouterr().out
        assert held.verify().ok

    def test_the_next_conversion_does_not_bless_a_deleted_hold(self, held, tmp_path):
        (held.cold / HOLDS_FILE).unlink()
        write_days(held.config, JAN_5 + 10 * 24 * HOUR)  # more files to convert
        held.convert()
        assert kinds(held.verify()) == {"root_invalid"}


# --- the root -------------------------------------------------------------------------------------


class TestRoot:
    def test_a_missing_root_fails(self, converted):
        (converted.cold / ROOT_FILE).unlink()
        assert kinds(converted.verify()) == {"root_invalid"}

    def test_an_entry_deleted_with_its_parquet_fails(self, converted):
        path = entries(converted.cold)[0]
        for output in read_manifest(path)["outputs"]:
            (converted.cold / output["path"]).unlink()
        path.unlink()
        report = converted.verify()
        assert kinds(report) == {"root_invalid"}
        assert path.name in report.failures[0].detail

    def test_a_root_rewritten_without_the_key_fails(self, keyed_trail):
        keyed_trail.convert()
        path = entries(keyed_trail.cold)[0]
        path.unlink()
        root = json.loads((keyed_trail.cold / ROOT_FILE).read_text())
        root["manifests"] = [m for m in root["manifests"] if m["path"] != f"{MANIFEST_DIR}/{path.name}"]
        write_raw(keyed_trail.cold / ROOT_FILE, documents.authenticate(root, "root_checksum", None))
        assert "root_invalid" in kinds(keyed_trail.verify())

    def test_the_converter_refuses_to_overwrite_an_unauthentic_root(self, keyed_trail):
        from audit_core.errors import AuditIntegrityError

        keyed_trail.convert()
        root = json.loads((keyed_trail.cold / ROOT_FILE).read_text())
        write_raw(keyed_trail.cold / ROOT_FILE, documents.authenticate(root, "root_checksum", None))
        with pytest.raises(AuditIntegrityError, match="not rewritten"):
            keyed_trail.converter().update_root()


# --- attack 6: retired entries ----------------------------------------------------------------------


def retire_first_day(trail: Trail) -> Path:
    """What retention does to the first day: remove its partition, mark its output retired, journal."""
    plan_id = "p" * 32
    (trail.cold / JOURNAL_DIR).mkdir(exist_ok=True)
    (trail.cold / JOURNAL_DIR / f"{plan_id}.json").write_text(json.dumps({"plan_id": plan_id, "status": "done"}))
    retired_from = None
    for path in entries(trail.cold):
        entry = read_manifest(path)
        gone = [o for o in entry["outputs"] if o["path"].startswith("year=2026/month=01/day=05/")]
        if not gone:
            continue
        for output in gone:
            (trail.cold / output["path"]).unlink()
        entry["outputs"] = [o for o in entry["outputs"] if o not in gone]
        entry["retired"] = [{**o, "plan_id": plan_id} for o in gone]
        write_entry(trail.cold, entry, trail.hmac_key, trail.signing_key)
        retired_from = path
    update_cold_root(trail.cold, trail.hmac_key, trail.signing_key)
    assert retired_from is not None
    return retired_from


class TestRetiredEntries:
    @pytest.fixture(params=MODES)
    def retired(self, request, tmp_path) -> Trail:
        # One file spanning three days, so its entry keeps two outputs after the first day is retired.
        trail = make_trail(tmp_path, request.param, rotate_daily=False)
        trail.convert()
        retire_first_day(trail)
        report = trail.verify()
        assert report.ok, report.to_text()
        return trail

    def test_rows_cut_from_the_start_of_a_remaining_output_fail(self, retired):
        file = retired.parquet()[0]
        table = pq.read_table(file).sort_by("source_line")
        rewrite(file, table.slice(3))
        report = retired.verify()
        assert {"parquet_mismatch", "seal_mismatch"} <= kinds(report), report.to_text()

    def test_an_entry_deleted_with_its_parquet_fails(self, retired):
        path = entries(retired.cold)[-1]
        for output in read_manifest(path)["outputs"]:
            (retired.cold / output["path"]).unlink()
        path.unlink()
        assert kinds(retired.verify()) == {"root_invalid"}

    def test_a_retired_output_without_its_journal_fails(self, retired):
        shutil.rmtree(retired.cold / JOURNAL_DIR)
        assert {"manifest_invalid", "root_invalid"} <= kinds(retired.verify())


# --- the checksum in SQL ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, b"k", b"x" * 64, b"long key " * 20, bytes(range(256))[:70]])
def test_the_sql_checksum_is_pythons_sha256_and_hmac(key):
    import hashlib
    import hmac

    import duckdb

    from audit_core.cold.cold_verify import _digest_sql

    bodies = ['{"a":1}', '{"text":"caf\u00e9 \u2603 \U0001f600"}', "", '{"x":"' + "y" * 5000 + '"}']
    sql, parameters = _digest_sql("body", key)
    con = duckdb.connect()
    got = [con.execute(f"SELECT {sql} FROM (SELECT $body AS body)", {**parameters, "body": body}).fetchone()[0]
           for body in bodies]
    expected = [hashlib.sha256(body.encode()).hexdigest() if key is None
                else hmac.new(key, body.encode(), hashlib.sha256).hexdigest() for body in bodies]
    assert got == expected
