"""trail.verification: the state of real trails (clean, tampered, keyed), the cache and its trust, the warning."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import T0, S

import audit_core
from audit_core import AuditConfig, AuditEventEmitter
from benchmarks.trail_gen import generate_trail
from workbench import (
    TrailNotVerifiedWarning,
    VerificationStatus,
    WorkbenchInputError,
    WorkbenchWarning,
    open_trail,
    pnl_reconciliation,
    reconstruct_incident,
    state_at,
)
from workbench import verification as verification_module

KEY = b"verification-status-test-key"
NOON = "2026-01-01 12:00"


@pytest.fixture(autouse=True)
def fresh_caches(tmp_path, monkeypatch):
    """Each test its own disk cache and an empty in-process cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    verification_module.clear_memory_cache()
    yield
    verification_module.clear_memory_cache()


@pytest.fixture
def calls(monkeypatch):
    """How many times verify_trail really ran."""
    counter = {"n": 0}
    real = audit_core.verify_trail

    def counting(*args, **kwargs):
        counter["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(audit_core, "verify_trail", counting)
    return counter


@pytest.fixture
def base(tmp_path) -> Path:
    """A generated trail: 2 days, 3 streams, hot files sealed and converted to cold Parquet."""
    generate_trail(tmp_path / "trail", events=300, days=2, seed=1)
    return tmp_path / "trail"


def writable(path: Path) -> None:
    path.chmod(0o644)  # sealed files lose their write bits


def tamper_hot_record(base: Path) -> Path:
    """Change one digit of a hot record's payload, keeping its length."""
    file = sorted((base / "hot").glob("*exec*.jsonl"))[0]
    writable(file)
    lines = file.read_bytes().split(b"\n")
    line = lines[3]
    at = line.index(b'"sequence":') + len(b'"sequence":')
    digit = line[at:at + 1]
    assert digit.isdigit()
    lines[3] = line[:at] + (b"7" if digit != b"7" else b"8") + line[at + 1:]
    file.write_bytes(b"\n".join(lines))
    return file


def tamper_parquet_column(base: Path) -> Path:
    """Rewrite one cold file with another ``source`` on one row, its mtime set back as it was."""
    file = sorted((base / "cold").glob("year=*/month=*/day=*/*exec*.parquet"))[0]
    before = file.stat()
    writable(file)
    table = pq.read_table(file)
    sources = table.column("source").to_pylist()
    sources[0] = "someone_else"
    table = table.set_column(table.schema.get_field_index("source"), "source", pa.array(sources, pa.string()))
    pq.write_table(table, file, compression="zstd")
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))
    return file


def keyed_trail(tmp_path: Path) -> Path:
    """Two days of a keyed stream, the first day converted with the key."""
    base = tmp_path / "trail"
    now = [T0]
    with AuditEventEmitter(AuditConfig(base_path=base, sync_writes=False, hmac_key=KEY.decode()),
                           clock=lambda: now[0]) as audit:
        for day in range(2):
            now[0] = T0 + day * 86_400 * S
            for value in range(3):
                audit.emit_param_change("meta", "k", value, value + 1, "test", ts_event=now[0] + value)
    from audit_core.cold.converter import ParquetConverter

    first = sorted((base / "hot").glob("*.jsonl"))[0]
    assert ParquetConverter(base / "hot", base / "cold", hmac_key=KEY).convert_file(first).converted
    return base


def signed_trail(tmp_path: Path) -> AuditConfig:
    """Two days of a keyed stream whose seals are signed with ``tmp_path/writer.key``; returns its config."""
    config = AuditConfig(base_path=tmp_path / "trail", sync_writes=False, hmac_key=KEY.decode(),
                         signing_key_path=tmp_path / "writer.key")
    now = [T0]
    with AuditEventEmitter(config, clock=lambda: now[0]) as audit:
        for day in range(2):
            now[0] = T0 + day * 86_400 * S
            audit.emit_param_change("meta", "k", day, day + 1, "test", ts_event=now[0])
    return config


def cache_files() -> list[Path]:
    return sorted(verification_module.cache_dir().glob("*.json"))


class TestStates:
    def test_a_clean_trail_is_verified_and_analyses_do_not_warn(self, base):
        trail = open_trail(base)
        status = trail.verification
        assert isinstance(status, VerificationStatus) and status.ok and status.state == "verified"
        assert status.mode == "unkeyed" and status.source == "verify_trail" and status.report.ok
        assert status.checked_at is not None and status.checked_at.tzinfo is not None
        assert status.summary.startswith("verified: 304 hot records in 6 files + 304 cold rows in 6 Parquet files; "
                                         "SHA-256 chains, unkeyed; checked ")
        assert str(status) == status.summary and status.summary in status.to_text()
        assert "VERIFIED" in status._repr_html_() and "verification='verified'" in repr(trail)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            frame = reconstruct_incident(trail, NOON, 60).to_pandas()
        assert frame.attrs == {"verification": status.summary, "verification_state": "verified"}

    def test_a_tampered_hot_record_fails_and_warns_once_across_analyses(self, base):
        tamper_hot_record(base)
        trail = open_trail(base)
        status = trail.verification
        assert status.state == "failed" and not status.ok
        assert status.summary.startswith("FAILED: ") and "hot/audit.TRADER-001.exec.2026-01-01" in status.summary
        assert {"checksum_mismatch", "seal_mismatch"} & {failure.kind.value for failure in status.failures}
        with pytest.warns(TrailNotVerifiedWarning, match=r"FAILED: .* failure\(s\)") as caught:
            incident = reconstruct_incident(trail, NOON, 60).to_pandas()
            state = state_at(trail, NOON).to_pandas()
            pnl = pnl_reconciliation(trail)
        assert len(caught) == 1 and caught[0].filename == __file__  # once, pointing at the caller
        assert issubclass(TrailNotVerifiedWarning, WorkbenchWarning)
        for frame in (incident, state, pnl.to_pandas()):  # analyses still answer, and say so
            assert frame.attrs["verification_state"] == "failed" and frame.attrs["verification"] == status.summary
        assert pnl.to_text().splitlines()[-1] == f"trail {status.summary}"
        assert "[trail failed]" in repr(pnl)
        assert "FAILED" in status._repr_html_() and "<details>" in status._repr_html_()

    def test_a_tampered_parquet_column_fails_after_a_cached_verified(self, base, calls):
        assert open_trail(base).verification.state == "verified"
        file = tamper_parquet_column(base)
        trail = open_trail(base)
        assert calls["n"] == 2 and trail.verification.source == "verify_trail"  # the cache missed
        assert trail.verification.state == "failed"
        assert any(failure.file == str(file.resolve()) for failure in trail.verification.failures)

    def test_a_same_size_edit_with_mtime_set_back_changes_the_fingerprint(self, base):
        """ctime cannot be set back: an in-place edit that keeps size and mtime still misses the cache."""
        file = sorted((base / "cold").glob("year=*/month=*/day=*/*.parquet"))[0]
        before = verification_module.fingerprint(base)
        stat = file.stat()
        writable(file)
        data = bytearray(file.read_bytes())
        data[len(data) // 2] ^= 0xFF
        file.write_bytes(bytes(data))
        os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        after = file.stat()
        assert (after.st_size, after.st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
        assert verification_module.fingerprint(base) != before

    def test_verify_false_is_unverified_and_warns_once(self, base, calls):
        trail = open_trail(base, verify=False)
        assert calls["n"] == 0
        assert trail.verification.state == "unverified" and trail.verification.report is None
        assert trail.verification.summary == "not verified: opened with verify=False"
        assert trail.verification.mode == "none" and trail.verification.checked_at is None
        with pytest.warns(TrailNotVerifiedWarning, match="opened with verify=False") as caught:
            reconstruct_incident(trail, NOON, 60)
            frame = state_at(trail, NOON).to_pandas()
        assert len(caught) == 1 and frame.attrs["verification_state"] == "unverified"
        assert trail.refresh().verification.state == "unverified"  # refresh keeps verify=False

    def test_verify_must_be_a_bool(self, base):
        with pytest.raises(WorkbenchInputError, match="verify='yes': expected True or False"):
            open_trail(base, verify="yes")

    def test_verify_reruns_and_refresh_sees_changed_files(self, base, calls):
        trail = open_trail(base)
        assert trail.verify().source == "verify_trail" and calls["n"] == 2  # always afresh
        tamper_hot_record(base)
        assert trail.verification.state == "verified"  # the status of the files as opened...
        assert trail.refresh().verification.state == "failed"  # ...until opened again
        assert trail.verify().state == "failed" and trail.verification.state == "failed"
        with pytest.warns(TrailNotVerifiedWarning, match="FAILED"):
            reconstruct_incident(trail, NOON, 60)


class TestKeys:
    def test_a_keyed_trail_opened_without_its_key_is_not_verified(self, tmp_path):
        base = keyed_trail(tmp_path)
        without = open_trail(base)
        assert without.verification.state == "unverified" and without.verification.mode == "unkeyed"
        assert "looks keyed: open it with hmac_key=" in without.verification.summary
        assert without.verification.failures  # what it checked is kept, every checksum differing
        keyed = open_trail(base, hmac_key=KEY)
        assert keyed.verification.state == "verified" and keyed.verification.mode == "hmac"
        assert "HMAC-SHA256" in keyed.verification.summary
        assert open_trail(base, hmac_key=b"another key").verification.state == "failed"
        with pytest.warns(TrailNotVerifiedWarning, match="looks keyed"):
            without.events  # noqa: B018 - the first read warns

    def test_a_result_checked_without_keys_never_answers_a_request_with_keys(self, tmp_path, calls):
        base = keyed_trail(tmp_path)
        open_trail(base)
        open_trail(base, hmac_key=KEY)
        open_trail(base, hmac_key=b"another key")
        assert calls["n"] == 3 and len(cache_files()) == 3
        verification_module.clear_memory_cache()
        assert open_trail(base, hmac_key=KEY).verification.source == "disk cache" and calls["n"] == 3

    def test_signed_seals_are_checked_with_the_public_key(self, tmp_path):
        from audit_core.trust.signing import generate_keypair, load_public_key

        key_id = generate_keypair(tmp_path / "writer.key", tmp_path / "writer.pub")
        signed_trail(tmp_path)
        public_key = load_public_key(tmp_path / "writer.pub")
        signed = open_trail(tmp_path / "trail", hmac_key=KEY, public_key=public_key).verification
        assert signed.state == "verified" and signed.mode == "hmac+signature" and signed.key_id == key_id
        assert f"HMAC-SHA256 + Ed25519 key id {key_id}" in signed.summary
        unchecked = open_trail(tmp_path / "trail", hmac_key=KEY).verification  # the chains verify, but...
        assert unchecked.state == "unverified" and unchecked.mode == "hmac" and unchecked.report.ok
        assert unchecked.summary.startswith("not verified: the seals or cold root are signed but no public_key was "
                                            "given, so signatures and checkpoints were not checked (pass public_key=)")

    def test_a_converter_with_its_own_key_is_checked_with_cold_public_key(self, tmp_path):
        from audit_core.cold import ParquetConverter
        from audit_core.trust.signing import generate_keypair, load_private_key, load_public_key

        generate_keypair(tmp_path / "writer.key", tmp_path / "writer.pub")
        converter_id = generate_keypair(tmp_path / "converter.key", tmp_path / "converter.pub")
        config = signed_trail(tmp_path)
        writer, converter = load_public_key(tmp_path / "writer.pub"), load_public_key(tmp_path / "converter.pub")
        assert all(r.converted for r in ParquetConverter(
            config.hot_path, tmp_path / "trail" / "cold", hmac_key=KEY, public_key=writer,
            signing_key=load_private_key(tmp_path / "converter.key")).convert_all())
        both = open_trail(tmp_path / "trail", hmac_key=KEY, public_key=writer, cold_public_key=converter)
        assert both.verification.state == "verified", both.verification.summary
        assert int(both.events.count().execute()) == 2
        # The writer's key alone cannot vouch for what the converter signed.
        writer_only = open_trail(tmp_path / "trail", hmac_key=KEY, public_key=writer).verification
        assert writer_only.state == "failed" and converter_id in writer_only.report.to_text()


class TestCache:
    def test_an_unchanged_trail_is_not_verified_again(self, base, calls):
        assert open_trail(base).verification.source == "verify_trail" and calls["n"] == 1
        assert open_trail(base).verification.source == "memory cache" and calls["n"] == 1
        verification_module.clear_memory_cache()  # a new process: the disk cache answers
        cached = open_trail(base).verification
        assert cached.source == "disk cache" and calls["n"] == 1 and cached.state == "verified"
        assert "(disk cache)" in cached.summary
        assert cached.report.to_dict() == audit_core.verify_trail(base).to_dict()

    def test_a_cache_entry_with_a_wrong_mac_is_ignored(self, base, calls):
        open_trail(base)
        (entry,) = cache_files()
        document = json.loads(entry.read_text())
        document["report"]["records"] += 1  # edited, its MAC left as it was
        entry.write_text(json.dumps(document))
        verification_module.clear_memory_cache()
        assert open_trail(base).verification.source == "verify_trail" and calls["n"] == 2

    def test_a_forged_verified_entry_for_tampered_files_is_ignored(self, base, calls):
        """Someone tampers with a record and writes the cache entry a clean check would have written."""
        open_trail(base)
        (entry,) = cache_files()
        tamper_hot_record(base)
        document = json.loads(entry.read_text())
        document["fingerprint"] = verification_module.fingerprint(base)  # for the tampered files; state "verified"
        entry.write_text(json.dumps(document))
        verification_module.clear_memory_cache()
        trail = open_trail(base)
        assert trail.verification.state == "failed" and calls["n"] == 2

    def test_a_keyed_entry_must_carry_the_hmac(self, tmp_path, calls):
        """Recomputing the plain SHA-256 an unkeyed entry carries does not forge a keyed one."""
        base = keyed_trail(tmp_path)
        open_trail(base, hmac_key=KEY)
        (entry,) = cache_files()
        document = json.loads(entry.read_text())
        assert document["mac"]["alg"] == "hmac-sha256" and KEY.decode() not in entry.read_text()
        document["mac"] = verification_module._mac(document, None)  # what anyone can compute
        entry.write_text(json.dumps(document))
        verification_module.clear_memory_cache()
        assert open_trail(base, hmac_key=KEY).verification.source == "verify_trail" and calls["n"] == 2

    def test_the_limit_of_an_unkeyed_cache_and_verify_ignores_it(self, base, calls):
        """Documented: an unkeyed entry is only as trustworthy as the cache directory; verify() re-checks."""
        open_trail(base)
        (entry,) = cache_files()
        tamper_hot_record(base)
        document = json.loads(entry.read_text())
        document["fingerprint"] = verification_module.fingerprint(base)
        document["mac"] = verification_module._mac(document, None)
        entry.write_text(json.dumps(document))
        verification_module.clear_memory_cache()
        trail = open_trail(base)
        assert trail.verification.source == "disk cache" and trail.verification.state == "verified"
        assert trail.verify().state == "failed"

    @pytest.mark.parametrize("content", ["", "{", "[]", '{"format": "ledgerline-verification-cache/1"}'])
    def test_an_unparseable_entry_is_ignored(self, base, calls, content):
        open_trail(base)
        (entry,) = cache_files()
        entry.write_text(content)
        verification_module.clear_memory_cache()
        assert open_trail(base).verification.state == "verified" and calls["n"] == 2

    def test_an_unwritable_cache_falls_back_to_memory(self, base, calls, tmp_path, monkeypatch):
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("")
        monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
        assert open_trail(base).verification.state == "verified"
        assert open_trail(base).verification.source == "memory cache" and calls["n"] == 1

    def test_files_that_change_while_verified_are_not_cached(self, base, monkeypatch):
        real = audit_core.verify_trail

        def verify_while_a_file_changes(*args, **kwargs):
            report = real(*args, **kwargs)
            (base / "hot" / "late.txt").write_text("appeared during verification")
            return report

        monkeypatch.setattr(audit_core, "verify_trail", verify_while_a_file_changes)
        open_trail(base)
        assert cache_files() == []


def test_a_verifier_that_raises_leaves_the_trail_open_and_unverified(base, monkeypatch):
    def broken(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(audit_core, "verify_trail", broken)
    trail = open_trail(base)
    assert trail.verification.state == "unverified" and cache_files() == []
    assert trail.verification.summary == (
        "not verified: verify_trail raised RecursionError: maximum recursion depth exceeded")
    with pytest.warns(TrailNotVerifiedWarning, match="verify_trail raised RecursionError"):
        reconstruct_incident(trail, NOON, 60)
