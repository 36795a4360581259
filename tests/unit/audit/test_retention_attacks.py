"""Retention and its special records cannot be steered by files on disk (issue 12, attacks 4, 7 and 8).

Each test names the attack it stops. The attacker can write the disk but holds no key; in an
unkeyed trail they can recompute any SHA-256, so there confinement and the policy re-check are
what stop them, and in keyed and signed trails authentication does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from audit_core import AuditConfig, AuditEventEmitter
from audit_core._layout import checkpoint_path, seal_path
from audit_core.cli import main
from audit_core.cold import retention as retention_module
from audit_core.cold._retention_guard import JOURNAL_CHECKSUM, JOURNAL_FORMAT
from audit_core.cold.cold_verify import verify_cold
from audit_core.cold.converter import ParquetConverter
from audit_core.cold.manifest import HOLDS_FILE, JOURNAL_DIR
from audit_core.cold.retention import apply_retention
from audit_core.errors import AuditConfigError, RetentionJournalError
from audit_core.hot.verifier import verify
from audit_core.trust.documents import authenticate, canonical_bytes, keyed_digest
from audit_core.trust.report import FailureKind
from audit_core.trust.seals import read_seal
from audit_core.trust.signing import generate_keypair, load_public_key

JAN_1 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
JAN_7 = dt.datetime(2026, 1, 7, tzinfo=dt.UTC)  # with days=3 the cutoff is 2026-01-04
HOUR = 3600 * 10**9
DAYS = 5
KEY = "k3y"


class Trail:
    """Five days of one rotating stream, sealed and converted, built by the real emitter and converter."""

    def __init__(self, base: Path, mode: str) -> None:
        self.base, self.mode = base, mode
        self.hot, self.cold = base / "hot", base / "cold"
        self.hmac_key = KEY.encode() if mode in ("keyed", "signed") else None
        self.private = self.public = None
        settings: dict[str, Any] = {"base_path": base, "trader_id": "T1", "sync_writes": False}
        if self.hmac_key:
            settings["hmac_key"] = KEY
        if mode in ("signed", "signed-unkeyed"):
            keys = base.parent / f"{base.name}-keys"
            keys.mkdir()
            generate_keypair(keys / "ledgerline.key", keys / "ledgerline.pub")
            self.private, self.public = keys / "ledgerline.key", load_public_key(keys / "ledgerline.pub")
            settings["signing_key_path"] = self.private
        self.config = AuditConfig(**settings)
        self.emit(DAYS * 48)
        # The converter signs manifest entries and the cold root with the trail's key, as retention does.
        results = ParquetConverter.from_config(self.config, self.cold, public_key=self.public).convert_all()
        assert all(r.converted for r in results), results

    def emit(self, count: int, start_ns: int | None = None) -> None:
        now = [int(JAN_1.timestamp()) * 10**9 if start_ns is None else start_ns]
        first = now[0]
        with AuditEventEmitter(self.config, clock=lambda: now[0]) as emitter:
            for i in range(count):
                now[0] = first + i * HOUR // 2 + 1
                emitter.emit_param_change("meta", "risk_multiplier", i, i + 1, "drawdown")

    def retention(self, **kwargs: Any) -> Any:
        kwargs.setdefault("now", JAN_7)
        kwargs.setdefault("days", 3)
        return apply_retention(self.hot, self.cold, config=self.config, public_key=self.public, **kwargs)

    def verify(self) -> Any:
        return verify(self.hot, self.hmac_key, public_key=self.public)

    def accept_legal_holds(self) -> None:
        """Commit the cold root to the holds file as it is now: how a deliberate change to it is made."""
        ParquetConverter.from_config(self.config, self.cold).update_root(accept_legal_holds=True)

    def verify_cold(self) -> Any:
        return verify_cold(self.cold, hmac_key=self.hmac_key, public_key=self.public)

    def main_files(self) -> list[Path]:
        return sorted(self.hot.glob("audit.T1.main.*.jsonl"))

    def partitions(self) -> list[str]:
        return sorted(p.relative_to(self.cold).as_posix() for p in self.cold.glob("year=*/month=*/day=*"))


def snapshot(root: Path) -> dict[str, Any]:
    """Every file's bytes, every link's target and every directory under ``root``."""
    state: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_symlink():
            state[key] = f"-> {os.readlink(path)}"
        elif path.is_file():
            state[key] = path.read_bytes()
        else:
            state[key] = "dir"
    return state


def forge_journal(cold: Path, *, partitions: list[Any] = (), hot_files: list[Any] = (), status: str = "recorded",
                  hmac_key: bytes | None = None, plan_id: str = "f" * 32) -> Path:
    """A journal as an attacker writes it: authenticated with whatever they have (no key: plain SHA-256)."""
    document = {"format": JOURNAL_FORMAT, "plan_id": plan_id, "cutoff": "2026-01-04", "partitions": list(partitions),
                "hot_files": list(hot_files), "status": status, "record_sequence": 0}
    path = cold / JOURNAL_DIR / f"{plan_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(authenticate(document, JOURNAL_CHECKSUM, hmac_key)))
    return path


def reseal_without_key(path: Path, edit: Any) -> None:
    """Edit a journal and recompute its checksum as plain SHA-256 (all an attacker without the key can do)."""
    document = json.loads(path.read_text())
    edit(document)
    document[JOURNAL_CHECKSUM] = keyed_digest(canonical_bytes(document, [JOURNAL_CHECKSUM]))
    path.write_text(json.dumps(document))


def crash_during_removal(trail: Trail, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run a purge (days=3) that dies after removing its first partition: a 'recorded' journal stays."""
    real_rmtree, calls = retention_module.shutil.rmtree, []

    def rmtree_then_die(path: Any, ignore_errors: bool = False) -> None:
        if calls:
            raise KeyboardInterrupt("power cut")
        calls.append(path)
        real_rmtree(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(retention_module.shutil, "rmtree", rmtree_then_die)
    with pytest.raises(KeyboardInterrupt):
        trail.retention()
    monkeypatch.setattr(retention_module.shutil, "rmtree", real_rmtree)


@pytest.fixture
def precious(tmp_path: Path) -> Path:
    """Something outside the trail that retention must never touch."""
    directory = tmp_path / "precious"
    directory.mkdir()
    (directory / "secret.jsonl").write_text("keep me\n")
    return directory


@pytest.fixture
def unkeyed(tmp_path: Path) -> Trail:
    return Trail(tmp_path / "trail", "unkeyed")


@pytest.fixture
def keyed(tmp_path: Path) -> Trail:
    return Trail(tmp_path / "trail", "keyed")


@pytest.fixture
def signed(tmp_path: Path) -> Trail:
    return Trail(tmp_path / "trail", "signed")


# --- attack 4: a journal names paths outside the trail --------------------------------------------


class TestJournalPathsStayInside:
    """An unkeyed trail's journal can be forged with a valid checksum: confinement must stop it."""

    @pytest.mark.parametrize("days", [0, 3])
    @pytest.mark.parametrize("entry", [
        "../precious", "../../precious", "year=2026/month=01/../../../precious", "{precious}", "year=2026/month=01",
    ])
    def test_a_partition_outside_the_cold_store_removes_nothing(self, unkeyed, precious, tmp_path, entry, days):
        entry = entry.format(precious=precious)  # the absolute path too
        journal = forge_journal(unkeyed.cold, partitions=["year=2026/month=01/day=01", entry])
        before = snapshot(tmp_path)
        with pytest.raises(RetentionJournalError, match=rf"{journal.name}.*partition '{entry}'") as raised:
            unkeyed.retention(days=days)
        assert "removed nothing" in str(raised.value)
        assert snapshot(tmp_path) == before  # not even the journal's own first partition went

    @pytest.mark.parametrize("name", [
        "../precious/secret.jsonl", "{precious}/secret.jsonl", "*", "audit.T1.main.*.jsonl",
        "sub/audit.T1.main.2026-01-01.0000.jsonl",
    ])
    def test_a_hot_file_entry_that_is_not_a_trail_file_name_removes_nothing(self, unkeyed, precious, tmp_path, name):
        name = name.format(precious=precious)
        removed = {"file": name, "stream": "T1.main", "first_sequence": 0, "last_sequence": 47,
                   "last_hash": "0" * 64, "merkle_root": "", "file_sha256": ""}
        forge_journal(unkeyed.cold, hot_files=[removed])
        before = snapshot(tmp_path)
        with pytest.raises(RetentionJournalError, match="not a trail file name"):
            unkeyed.retention()
        assert snapshot(tmp_path) == before

    def test_a_symlinked_partition_in_a_journal_is_refused(self, unkeyed, precious, tmp_path):
        link = unkeyed.cold / "year=2025/month=12/day=31"
        link.parent.mkdir(parents=True)
        link.symlink_to(precious, target_is_directory=True)
        forge_journal(unkeyed.cold, partitions=["year=2025/month=12/day=31"])
        before = snapshot(tmp_path)
        with pytest.raises(RetentionJournalError, match="symbolic link"):
            unkeyed.retention(days=0)
        assert snapshot(tmp_path) == before

    def test_a_symlinked_month_directory_is_refused_too(self, unkeyed, precious, tmp_path):
        (precious / "day=31").mkdir()
        (unkeyed.cold / "year=2025").mkdir()
        (unkeyed.cold / "year=2025/month=12").symlink_to(precious, target_is_directory=True)
        forge_journal(unkeyed.cold, partitions=["year=2025/month=12/day=31"])
        with pytest.raises(RetentionJournalError, match="symbolic link"):
            unkeyed.retention()
        assert (precious / "day=31").is_dir() and (precious / "secret.jsonl").exists()

    def test_a_symlinked_hot_file_in_a_journal_is_refused(self, unkeyed, precious, tmp_path):
        name = "audit.T1.main.2025-12-31.0000.jsonl"
        (unkeyed.hot / name).symlink_to(precious / "secret.jsonl")
        removed = {"file": name, "stream": "T1.main", "first_sequence": 0, "last_sequence": 0,
                   "last_hash": "0" * 64, "merkle_root": "", "file_sha256": ""}
        forge_journal(unkeyed.cold, hot_files=[removed])
        before = snapshot(tmp_path)
        with pytest.raises(RetentionJournalError, match="symbolic link"):
            unkeyed.retention()
        assert snapshot(tmp_path) == before

    def test_a_symlinked_journal_is_refused(self, unkeyed, tmp_path):
        elsewhere = forge_journal(tmp_path / "elsewhere", partitions=["year=2026/month=01/day=01"])
        (unkeyed.cold / JOURNAL_DIR).mkdir(exist_ok=True)
        (unkeyed.cold / JOURNAL_DIR / elsewhere.name).symlink_to(elsewhere)
        with pytest.raises(RetentionJournalError, match="symbolic link"):
            unkeyed.retention()
        assert len(unkeyed.partitions()) == DAYS

    def test_the_planner_never_follows_a_symlinked_partition(self, unkeyed, precious):
        link = unkeyed.cold / "year=2025/month=12/day=31"
        link.parent.mkdir(parents=True)
        link.symlink_to(precious, target_is_directory=True)
        plan = unkeyed.retention()
        assert (precious / "secret.jsonl").read_text() == "keep me\n" and link.is_symlink()
        assert any(item == "year=2025/month=12/day=31" and "symbolic link" in why for item, why in plan.kept)
        assert unkeyed.partitions() == ["year=2025/month=12/day=31", "year=2026/month=01/day=04",
                                        "year=2026/month=01/day=05"]

    def test_the_planner_never_removes_a_symlinked_hot_file(self, unkeyed, precious):
        old = unkeyed.main_files()[0]
        target = precious / old.name
        old.rename(target)
        old.symlink_to(target)
        seal_path(old).rename(precious / seal_path(old).name)
        plan = unkeyed.retention()
        assert target.exists() and old.is_symlink()
        assert any(item == old.name and "symbolic link" in why for item, why in plan.kept)


# --- attack 4: a journal is edited or forged -------------------------------------------------------


class TestJournalsAreAuthenticated:
    def test_journals_carry_a_keyed_checksum_and_a_signature(self, signed):
        plan = signed.retention()
        journal = json.loads((signed.cold / JOURNAL_DIR / f"{plan.plan_id}.json").read_text())
        assert journal["format"] == JOURNAL_FORMAT and journal["status"] == "done"
        assert journal[JOURNAL_CHECKSUM] == keyed_digest(canonical_bytes(journal, [JOURNAL_CHECKSUM]), KEY.encode())
        assert journal["signature"]["alg"] == "ed25519"

    @pytest.mark.parametrize("edit", [
        pytest.param(lambda j: j.update(status="recorded"), id="status flipped"),
        pytest.param(lambda j: j["partitions"].append("year=2026/month=01/day=05"), id="partition added"),
        pytest.param(lambda j: j["hot_files"].clear(), id="hot files dropped"),
    ])
    def test_an_edited_journal_of_a_keyed_trail_is_refused(self, keyed, tmp_path, edit):
        plan = keyed.retention()
        reseal_without_key(keyed.cold / JOURNAL_DIR / f"{plan.plan_id}.json", edit)
        before = snapshot(tmp_path)
        with pytest.raises(RetentionJournalError, match="journal_checksum does not match"):
            keyed.retention(days=1)
        assert snapshot(tmp_path) == before

    def test_a_journal_forged_without_the_key_is_refused(self, keyed, tmp_path):
        forge_journal(keyed.cold, partitions=["year=2026/month=01/day=05"], hmac_key=None)
        before = snapshot(tmp_path)
        with pytest.raises(RetentionJournalError, match="journal_checksum does not match"):
            keyed.retention(days=3)
        assert snapshot(tmp_path) == before

    def test_an_edited_journal_of_a_signed_unkeyed_trail_fails_its_signature(self, tmp_path, monkeypatch):
        trail = Trail(tmp_path / "trail", "signed-unkeyed")
        crash_during_removal(trail, monkeypatch)
        [journal] = (trail.cold / JOURNAL_DIR).glob("*.json")
        reseal_without_key(journal, lambda j: j["partitions"].append("year=2026/month=01/day=05"))
        before = snapshot(tmp_path)
        with pytest.raises(RetentionJournalError, match="signature"):
            trail.retention()
        assert snapshot(tmp_path) == before

    def test_an_unreadable_journal_is_named(self, unkeyed):
        (unkeyed.cold / JOURNAL_DIR).mkdir()
        (unkeyed.cold / JOURNAL_DIR / ("0" * 32 + ".json")).write_text("[" * 100_000)
        with pytest.raises(RetentionJournalError, match="not readable JSON"):
            unkeyed.retention()
        assert len(unkeyed.partitions()) == DAYS

    def test_the_cli_reports_a_bad_journal_as_a_failure(self, keyed, capsys, monkeypatch):
        forge_journal(keyed.cold, partitions=["../precious"])
        monkeypatch.setenv("LEDGERLINE_TEST_KEY", KEY)
        code = main(["retention", str(keyed.cold), "--days", "3", "--now", "2026-01-07T00:00",
                     "--hmac-key-env", "LEDGERLINE_TEST_KEY"])
        err = capsys.readouterr().err
        assert code == 1 and err.count("\n") == 1 and "FAILED: retention journal" in err


# --- attack 4: the policy is checked again before a replayed removal -------------------------------


class TestReplayFollowsTheCurrentPolicy:
    def test_an_authentic_journal_cannot_widen_a_purge(self, unkeyed):
        """Unkeyed: anyone can write an authentic-looking journal; it removes only what the policy removes."""
        forge_journal(unkeyed.cold, partitions=["year=2026/month=01/day=04", "year=2026/month=01/day=05"])
        plan = unkeyed.retention(days=3)
        assert unkeyed.partitions() == ["year=2026/month=01/day=04", "year=2026/month=01/day=05"]
        assert len(unkeyed.main_files()) == 2
        assert unkeyed.verify().ok and unkeyed.verify_cold().ok
        assert not plan.empty  # the run's own purge of days 1-3 still happened

    def test_a_replay_with_days_0_removes_nothing_the_policy_keeps(self, keyed, monkeypatch):
        crash_during_removal(keyed, monkeypatch)  # day 1 went; days 2, 3 and three hot files are announced
        assert len(keyed.partitions()) == DAYS - 1
        before_files = [p.name for p in keyed.main_files()]
        resumed = keyed.retention(days=0)
        assert keyed.partitions() == [f"year=2026/month=01/day=0{d}" for d in (2, 3, 4, 5)]
        assert [p.name for p in keyed.main_files()] == before_files
        assert resumed.resumed and resumed.partitions == ["year=2026/month=01/day=01"]  # gone already: marked
        assert {item for item, _ in resumed.kept} >= {"year=2026/month=01/day=02", "year=2026/month=01/day=03"}
        [journal] = (keyed.cold / JOURNAL_DIR).glob("*.json")
        assert json.loads(journal.read_text())["status"] == "recorded"  # unfinished, for a later run
        assert keyed.verify().ok and keyed.verify_cold().ok
        keyed.retention(days=3)  # the policy now covers it: finished under the same record
        assert keyed.partitions() == ["year=2026/month=01/day=04", "year=2026/month=01/day=05"]
        assert json.loads(journal.read_text())["status"] == "done"
        assert keyed.verify().ok and keyed.verify_cold().ok

    def test_a_hold_placed_after_the_crash_is_respected_by_the_replay(self, keyed, monkeypatch):
        crash_during_removal(keyed, monkeypatch)
        hold = {"start": "2026-01-02", "end": "2026-01-02", "reason": "SEC"}
        (keyed.cold / HOLDS_FILE).write_text(json.dumps([hold]))
        keyed.accept_legal_holds()
        keyed.retention()
        assert keyed.partitions() == [f"year=2026/month=01/day=0{d}" for d in (2, 4, 5)]
        assert "2026-01-02" in " ".join(p.name for p in keyed.main_files())
        assert keyed.verify().ok and keyed.verify_cold().ok

    @pytest.mark.parametrize("days", [-1, 36501, 99999999999, True, 2.5])
    def test_days_is_checked_before_a_journal_is_replayed(self, keyed, monkeypatch, tmp_path, days):
        crash_during_removal(keyed, monkeypatch)
        before = snapshot(tmp_path)
        with pytest.raises(AuditConfigError, match="retention days="):
            keyed.retention(days=days)
        assert snapshot(tmp_path) == before

    def test_huge_days_is_a_one_line_usage_error(self, unkeyed, capsys):
        with pytest.raises(SystemExit) as exit_info:  # argparse's usage error
            main(["retention", str(unkeyed.cold), "--days", "99999999999"])
        code, err = exit_info.value.code, capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "--days" in err and "99999999999" in err


# --- attack 8: retention without the trail's key --------------------------------------------------


class TestTheKeyIsRequired:
    def test_a_keyed_trail_without_its_key_is_refused_untouched(self, keyed, tmp_path):
        before = snapshot(tmp_path)
        with pytest.raises(AuditConfigError, match=r"HMAC-keyed.*touched nothing"):
            apply_retention(keyed.hot, keyed.cold, days=3, now=JAN_7)
        assert snapshot(tmp_path) == before

    def test_the_cli_refuses_with_exit_2_and_touches_nothing(self, keyed, tmp_path, capsys):
        before = snapshot(tmp_path)
        code = main(["retention", str(keyed.cold), "--days", "3", "--now", "2026-01-07T00:00"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "--hmac-key-env" in err
        assert snapshot(tmp_path) == before
        assert keyed.verify().ok

    def test_the_cli_with_the_key_works(self, keyed, capsys, monkeypatch):
        monkeypatch.setenv("LEDGERLINE_TEST_KEY", KEY)
        code = main(["retention", str(keyed.cold), "--days", "3", "--now", "2026-01-07T00:00",
                     "--hmac-key-env", "LEDGERLINE_TEST_KEY"])
        assert code == 0, capsys.readouterr().err
        assert len(keyed.partitions()) == 2 and keyed.verify().ok and keyed.verify_cold().ok
        assert [p.name for p in keyed.hot.glob("audit.T1.retention.*.jsonl")]  # the trail's trader, not a default

    def test_a_wrong_key_is_refused(self, keyed, tmp_path):
        before = snapshot(tmp_path)
        with pytest.raises(AuditConfigError, match="wrong key"):
            apply_retention(keyed.hot, keyed.cold, days=3, now=JAN_7, hmac_key=b"not-the-key")
        assert snapshot(tmp_path) == before

    def test_a_key_on_an_unkeyed_trail_is_refused(self, unkeyed, tmp_path):
        before = snapshot(tmp_path)
        with pytest.raises(AuditConfigError, match="written without one"):
            apply_retention(unkeyed.hot, unkeyed.cold, days=3, now=JAN_7, hmac_key=b"k")
        assert snapshot(tmp_path) == before

    def test_a_cold_only_keyed_store_is_detected_from_its_manifests(self, keyed, tmp_path):
        before = snapshot(tmp_path)
        emitter_config = AuditConfig(base_path=tmp_path / "elsewhere", trader_id="T1", stream_id="retention")
        with AuditEventEmitter(emitter_config) as emitter, pytest.raises(AuditConfigError, match="manifest"):
            apply_retention(None, keyed.cold, days=3, now=JAN_7, emitter=emitter)
        assert snapshot(tmp_path / "trail") == {k[6:]: v for k, v in before.items() if k.startswith("trail/")}

    def test_a_signed_trail_without_its_signing_key_is_refused(self, signed, tmp_path, capsys, monkeypatch):
        before = snapshot(tmp_path)
        with pytest.raises(AuditConfigError, match=r"signed.*signing key"):
            apply_retention(signed.hot, signed.cold, days=3, now=JAN_7, hmac_key=KEY.encode())
        monkeypatch.setenv("LEDGERLINE_TEST_KEY", KEY)
        args = ["retention", str(signed.cold), "--days", "3", "--now", "2026-01-07T00:00",
                "--hmac-key-env", "LEDGERLINE_TEST_KEY"]
        assert main(args) == 2 and "--signing-key" in capsys.readouterr().err
        assert snapshot(tmp_path) == before
        assert main([*args, "--signing-key", str(signed.private)]) == 0
        assert len(signed.partitions()) == 2 and signed.verify().ok and signed.verify_cold().ok

    def test_a_dry_run_of_a_signed_trail_needs_only_the_public_key(self, signed, tmp_path):
        before = snapshot(tmp_path)
        plan = apply_retention(signed.hot, signed.cold, days=3, now=JAN_7, hmac_key=KEY.encode(),
                               public_key=signed.public, dry_run=True)
        assert len(plan.partitions) == 3 and len(plan.hot_files) == 3
        assert snapshot(tmp_path) == before

    def test_the_record_emitter_must_write_the_retention_stream(self, unkeyed, tmp_path):
        config = AuditConfig(base_path=tmp_path / "elsewhere", trader_id="T1")
        with AuditEventEmitter(config) as emitter, pytest.raises(AuditConfigError, match="stream 'main'"):
            apply_retention(unkeyed.hot, unkeyed.cold, days=3, now=JAN_7, emitter=emitter)


# --- attack 7: special records are parsed, in their own verified stream ---------------------------


def forged_retention_line(trail: Trail, removed: Path, tmp_path: Path, stream: str = "forger") -> bytes:
    """A genesis sys.retention record (valid plain SHA-256) announcing the removal of ``removed``."""
    seal = read_seal(removed)
    assert seal is not None
    payload = {"plan_id": "forged", "cutoff": None, "partitions": [], "hot_files": [{
        "file": removed.name, "stream": "T1.main", "first_sequence": seal["first_sequence"],
        "last_sequence": seal["last_sequence"], "last_hash": seal["last_hash"],
        "merkle_root": seal["merkle_root"], "file_sha256": seal["file_sha256"],
    }]}
    config = AuditConfig(base_path=tmp_path / "forgery", trader_id="T1", stream_id=stream, sync_writes=False)
    with AuditEventEmitter(config) as emitter:
        emitter.emit_system("sys.retention", "ledgerline.retention", payload)
    [line] = next((tmp_path / "forgery" / "hot").glob("*.jsonl")).read_bytes().splitlines(keepends=True)
    return line


def delete_hot_file(path: Path) -> None:
    for target in (path, seal_path(path), checkpoint_path(path)):
        if target.exists():
            target.chmod(0o640)
            target.unlink()


class TestSpecialRecordsAreParsedInTheirStream:
    def test_a_forged_retention_line_in_notes_jsonl_covers_nothing(self, tmp_path):
        trail = Trail(tmp_path / "trail", "signed-unkeyed")
        middle = trail.main_files()[2]
        (trail.hot / "notes.jsonl").write_bytes(forged_retention_line(trail, middle, tmp_path))
        delete_hot_file(middle)
        report = trail.verify()
        kinds = {(Path(f.file).name, f.kind) for f in report.failures}
        assert ("notes.jsonl", FailureKind.UNEXPECTED_FILE) in kinds
        assert {FailureKind.SEQUENCE_GAP, FailureKind.FILE_MISSING} <= {f.kind for f in report.failures}
        assert report.retired == []

    def test_a_forged_unsealed_retention_stream_does_not_cover_with_a_public_key(self, tmp_path):
        trail = Trail(tmp_path / "trail", "signed-unkeyed")
        middle = trail.main_files()[2]
        line = forged_retention_line(trail, middle, tmp_path, stream="retention")
        (trail.hot / "audit.T1.retention.2026-01-06.0000.jsonl").write_bytes(line)  # valid chain, no seal
        delete_hot_file(middle)
        report = trail.verify()
        assert FailureKind.SEQUENCE_GAP in {f.kind for f in report.failures} and report.retired == []

    @pytest.mark.parametrize("stream", ["main", "retention"])
    def test_a_retention_text_in_an_ordinary_payload_covers_nothing(self, keyed, stream):
        middle = keyed.main_files()[2]
        seal = read_seal(middle)
        assert seal is not None
        injected = {"event_type": "sys.retention", "plan_id": "x", "hot_files": [{
            "file": middle.name, "stream": "T1.main", "last_sequence": seal["last_sequence"],
            "last_hash": seal["last_hash"],
        }]}
        config = keyed.config.model_copy(update={"stream_id": stream})
        with AuditEventEmitter(config) as emitter:  # an honest, keyed record that carries the text
            emitter.emit_system("sys.order_note", "strategy", injected)
            assert b'"event_type":"sys.retention"' in emitter.writer.path.read_bytes()
        delete_hot_file(middle)
        report = keyed.verify()
        assert {FailureKind.SEQUENCE_GAP, FailureKind.FILE_MISSING} <= {f.kind for f in report.failures}
        assert report.retired == []

    def test_a_recovery_text_in_an_ordinary_payload_does_not_excuse_an_injected_line(self, keyed):
        with AuditEventEmitter(keyed.config, clock=lambda: int(JAN_7.timestamp()) * 10**9) as emitter:
            emitter.emit_system("sys.note", "strategy", {"n": 1})
            path = emitter.writer.path
            offset = path.stat().st_size
            injected = b'{"event_type":"trade.fill","price":"1"}'
            with path.open("ab") as handle:
                handle.write(injected + b"\n")
            emitter.emit_system("sys.note", "strategy", {"event_type": "sys.recovery", "torn_file": path.name,
                                                         "torn_offset": offset, "torn_length": len(injected),
                                                         "torn_sha256": hashlib.sha256(injected).hexdigest()})
        report = keyed.verify()
        assert FailureKind.UNPARSEABLE_LINE in {f.kind for f in report.failures} and report.recovered == []

    def test_a_stray_file_is_unexpected_but_the_trail_still_verifies_with_it_gone(self, unkeyed):
        (unkeyed.hot / "notes.jsonl").write_text("hello\n")
        report = unkeyed.verify()
        [failure] = report.failures
        assert failure.kind is FailureKind.UNEXPECTED_FILE and failure.file.endswith("notes.jsonl")
        assert str(unkeyed.hot / "notes.jsonl") not in report.files
        (unkeyed.hot / "notes.jsonl").unlink()
        assert unkeyed.verify().ok


# --- honest retention: no false alarms ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["unkeyed", "keyed", "signed"])
class TestHonestRetentionVerifiesClean:
    def test_hot_and_cold(self, tmp_path, mode):
        trail = Trail(tmp_path / "trail", mode)
        plan = trail.retention()
        assert len(plan.partitions) == 3 and len(plan.hot_files) == 3
        report = trail.verify()
        assert report.ok, report.to_text()
        assert len(report.retired) == 1
        assert trail.verify_cold().ok
        trail.emit(48, start_ns=int(JAN_7.timestamp()) * 10**9)  # the trail goes on after a purge
        trail.retention(now=JAN_7 + dt.timedelta(days=2))
        assert trail.verify().ok and trail.verify_cold().ok

    def test_legal_holds(self, tmp_path, mode):
        trail = Trail(tmp_path / "trail", mode)
        (trail.cold / HOLDS_FILE).write_text(json.dumps([{"start": "2026-01-02", "end": "2026-01-02", "reason": "x"}]))
        trail.accept_legal_holds()
        trail.retention(days=1, now=dt.datetime(2026, 1, 20, tzinfo=dt.UTC))
        assert trail.partitions() == ["year=2026/month=01/day=02"]
        assert trail.verify().ok and trail.verify_cold().ok

    @pytest.mark.parametrize("crash", ["before the record", "after the record", "during removal", "before done"])
    def test_a_crash_in_each_step_is_finished_cleanly(self, tmp_path, monkeypatch, mode, crash):
        trail = Trail(tmp_path / "trail", mode)
        if crash == "during removal":
            crash_during_removal(trail, monkeypatch)
        else:
            if crash == "before the record":
                monkeypatch.setattr(retention_module, "_record", _power_cut)
            else:
                status = "recorded" if crash == "after the record" else "done"
                real_write = retention_module._write_json

                def write_then_die(target: Path, data: dict[str, Any]) -> None:
                    if data.get("status") == status:
                        raise KeyboardInterrupt("power cut")
                    real_write(target, data)

                monkeypatch.setattr(retention_module, "_write_json", write_then_die)
            with pytest.raises(KeyboardInterrupt):
                trail.retention()
            monkeypatch.undo()
        trail.retention()
        assert trail.partitions() == ["year=2026/month=01/day=04", "year=2026/month=01/day=05"]
        assert len(trail.main_files()) == 2
        report = trail.verify()
        assert report.ok, report.to_text()
        assert trail.verify_cold().ok
        statuses = sorted(json.loads(j.read_text())["status"] for j in (trail.cold / JOURNAL_DIR).glob("*.json"))
        assert statuses == ["done"]


def _power_cut(*args: Any) -> int:
    raise KeyboardInterrupt("power cut")
