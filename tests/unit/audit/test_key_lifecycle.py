"""Key rotation and revocation (docs/format.md section 6.1) on real files with real fsync.

One trail is signed by three successive keys across a midnight file rotation and a restart; it
verifies with the trusted-keys file drafted from its own rotation records and fails with only the
first public key. A signature made after its key's window closed is ``key_outside_window``; a
rotation whose endorsement was not made by the old key is ``key_rotation_invalid`` and introduces
nothing; a configuration that still names a rotated-out key is refused at start-up.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

import audit_core.trust.chain as chain
import audit_core.verification as verification
from audit_core import (
    AuditConfig,
    AuditConfigError,
    AuditEventEmitter,
    FailureKind,
    Signer,
    TrustedKeys,
    draft_trusted_keys,
    read_key_history,
    verify_trail,
)
from audit_core.cli import main
from audit_core.hot.verifier import trail_files, verify
from audit_core.trust import jobs as jobs_module
from audit_core.trust.key_history import KEY_RECORD_SOURCE, ROTATION_EVENT, rotation_message
from audit_core.trust.record import KEY_RECORD_MARKER
from audit_core.trust.signing import generate_keypair, key_id, load_public_key, raw_public_key
from audit_core.trust.stream_tree import read_note

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
TRADER, STREAM = "T-KEYS", "main"


def utc_ns(*args: int) -> int:
    return (dt.datetime(*args, tzinfo=dt.UTC) - _EPOCH) // dt.timedelta(microseconds=1) * 1000


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@dataclass
class Keys:
    private: list[Path]
    public: list[Path]

    def signer(self, index: int) -> Signer:
        return Signer.from_file(self.private[index])

    def id(self, index: int) -> str:
        return key_id(load_public_key(self.public[index]))


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    (tmp_path / "keys").mkdir()
    private = [tmp_path / "keys" / f"k{i}.key" for i in range(3)]
    public = [tmp_path / "keys" / f"k{i}.pub" for i in range(3)]
    for pair in zip(private, public, strict=True):
        generate_keypair(*pair)
    return Keys(private, public)


def config(base: Path, key: Path) -> AuditConfig:
    # sync_writes: every record is written and fdatasync'ed as it would be in production
    return AuditConfig(base_path=base, trader_id=TRADER, stream_id=STREAM, sync_writes=True, signing_key_path=key,
                       checkpoint_interval_s=3600, witness_path=base / "witness")


DAY4_22 = utc_ns(2026, 1, 4, 22)
DAY5_01 = utc_ns(2026, 1, 5, 1)  # after midnight: the sealer signs day 4's file with key 0
DAY5_22 = utc_ns(2026, 1, 5, 22)
ROTATE_1 = utc_ns(2026, 1, 5, 23, 30)
DAY6_00_10 = utc_ns(2026, 1, 6, 0, 10)  # after midnight: the writer rotates files, the sealer signs with key 1
RESTART = utc_ns(2026, 1, 6, 9)
ROTATE_2 = utc_ns(2026, 1, 6, 10)


def write_three_key_trail(base: Path, keys: Keys) -> dict[str, int]:
    """Key 0 until day 5 23:30, key 1 (across midnight and a restart) until 10:00 on day 6, then key 2."""
    clock = Clock(DAY4_22)
    with AuditEventEmitter(config(base, keys.private[0]), clock=clock) as emitter:
        emitter.emit_param_change("risk", "day4", 0, 1)
        clock.now = DAY5_01
        for i in range(3):
            clock.now += 1_000_000
            emitter.emit_param_change("risk", f"p{i}", i, i + 1)
        clock.now = ROTATE_1
        emitter.rotate_signing_key(keys.signer(1))
        for i in range(3):
            clock.now += 1_000_000
            emitter.emit_param_change("risk", f"q{i}", i, i + 1)
        clock.now = DAY6_00_10
        emitter.emit_param_change("risk", "after_midnight", 0, 1)
    clock.now = RESTART
    with AuditEventEmitter(config(base, keys.private[1]), clock=clock) as emitter:
        emitter.emit_param_change("risk", "restarted", 0, 1)
        clock.now = ROTATE_2
        emitter.rotate_signing_key(keys.signer(2))
        clock.now += 1_000_000
        emitter.emit_param_change("risk", "third_key", 0, 1)
        # key 0 was retired at the first rotation; state it in the chain too
        emitter.revoke_signing_key(keys.id(0), ROTATE_1, "retired after rotation")
        clock.now += 1_000_000
    return {"rotate_1": ROTATE_1, "rotate_2": ROTATE_2}


def kinds(report: object) -> set[str]:
    return {failure.kind.value for failure in report.failures}  # type: ignore[attr-defined]


class TestThreeKeys:
    def test_seals_and_checkpoints_name_the_key_of_their_time(self, tmp_path, keys):
        write_three_key_trail(tmp_path, keys)
        seals = {path.name: json.loads(path.read_text()) for path in sorted((tmp_path / "hot").glob("*.seal"))}
        signers = [seal["signature"]["key_id"] for seal in seals.values()]
        # day 4's file is sealed after midnight by key 0; day 5's at midnight after rotation 1, by key 1;
        # day 6's first file at close, by key 1; the next one (after the restart) after rotation 2, by key 2.
        assert signers == [keys.id(0), keys.id(1), keys.id(1), keys.id(2)], list(seals)
        note = (tmp_path / "witness" / f"{TRADER}.{STREAM}.checkpoint").read_text()
        held = read_note(note, trusted_keys=TrustedKeys.from_public_key(load_public_key(keys.public[2])))
        assert held.key_id == keys.id(2) and held.signed_at_ns is not None and held.signed_at_ns >= ROTATE_2

    def test_verifies_with_the_drafted_trusted_keys_and_fails_with_only_the_first_key(self, tmp_path, keys):
        write_three_key_trail(tmp_path, keys)
        history = read_key_history(trail_files(tmp_path)[0])
        assert [event.kind for event in history.events] == ["rotation", "rotation", "revocation"]
        assert not history.problems
        trusted = draft_trusted_keys(history, load_public_key(keys.public[0]))
        windows = {key.key_id: (key.not_before_ns, key.not_after_ns) for key in trusted.keys}
        assert windows == {keys.id(0): (None, ROTATE_1), keys.id(1): (ROTATE_1, ROTATE_2), keys.id(2): (ROTATE_2, None)}

        report = verify_trail(tmp_path, trusted_keys=trusted, witness=tmp_path / "witness")
        assert report.ok, report.to_text()
        keys_part = dict(report.parts)[f"keys {tmp_path}"]
        assert len(keys_part.key_history) == 3 and "revoked" in keys_part.key_history[2]

        only_first = verify_trail(tmp_path, public_key=load_public_key(keys.public[0]), witness=tmp_path / "witness")
        untrusted = [f for f in only_first.failures if f.kind is FailureKind.KEY_UNTRUSTED]
        # the three seals keys 1 and 2 made, and the witness's note (key 2); day 4's seal (key 0) verifies
        assert len(untrusted) == 4 and kinds(only_first) == {"key_untrusted"}, only_first.to_text()
        assert sum(keys.id(1) in f.detail for f in untrusted) == 2
        assert sum(keys.id(2) in f.detail for f in untrusted) == 1  # the note names its 4-byte signed-note id

    def test_the_hot_pass_finds_the_files_with_key_records_and_the_history_reads_only_those(
        self, tmp_path, keys, monkeypatch
    ):
        write_three_key_trail(tmp_path, keys)
        files = trail_files(tmp_path)[0]
        holding = [path for path in files if KEY_RECORD_MARKER in path.read_bytes()]
        assert 0 < len(holding) < len(files)
        monkeypatch.setattr(jobs_module, "PARALLEL_MIN_BYTES", 0)
        for jobs in (1, 2):  # in this process (fast path), and in workers
            found: list[Path] = []
            verify(tmp_path, jobs=jobs, key_record_files=found)
            assert found == holding, jobs
        with monkeypatch.context() as patch:  # the line-by-line pass finds them too
            patch.setattr(chain, "clean_file", lambda path, state, hmac_key, hashed=True: None)
            found = []
            verify(tmp_path, jobs=1, key_record_files=found)
            assert found == holding
        read: list[list[Path]] = []
        original = verification.read_key_history
        monkeypatch.setattr(verification, "read_key_history", lambda given: read.append(list(given)) or original(given))
        report = verify_trail(tmp_path)
        assert read == [holding]  # no file read again to find them
        (history,) = [part.key_history for label, part in report.parts if label.startswith("keys ")]
        assert history == original(files).lines() and history

    def test_the_cli_drafts_the_file_and_verifies_with_it(self, tmp_path, keys, capsys):
        trail = tmp_path / "trail"
        write_three_key_trail(trail, keys)
        out = tmp_path / "trusted.json"
        assert main(["keys", "trusted", str(trail), "--initial-key", str(keys.public[0]), "-o", str(out)]) == 0
        assert len(TrustedKeys.load(out).keys) == 3
        assert main(["keys", "trusted", str(trail), "--initial-key", str(keys.public[0]), "-o", str(out)]) == 2
        capsys.readouterr()
        assert main(["verify", str(trail), "--trusted-keys", str(out)]) == 0
        assert "key history" in capsys.readouterr().out
        assert main(["verify", str(trail), "--public-key", str(keys.public[0])]) == 1
        assert "key_untrusted" in capsys.readouterr().out

    def test_a_trusted_keys_file_naming_a_wrong_key_id_is_refused(self, tmp_path, keys, capsys):
        write_three_key_trail(tmp_path / "trail", keys)
        document = draft_trusted_keys(read_key_history(trail_files(tmp_path / "trail")[0]),
                                      load_public_key(keys.public[0])).to_document()
        document["keys"][1]["key_id"] = keys.id(2)  # key 1's public key under key 2's id
        (tmp_path / "bad.json").write_text(json.dumps(document))
        assert main(["verify", str(tmp_path / "trail"), "--trusted-keys", str(tmp_path / "bad.json")]) == 2
        error = capsys.readouterr().err
        assert f"keys[1].key_id: '{keys.id(2)}' is not the id of its public_key" in error

    def test_a_restart_with_the_rotated_out_key_is_refused(self, tmp_path, keys):
        write_three_key_trail(tmp_path, keys)
        before = sorted(p.name for p in (tmp_path / "hot").iterdir())
        for stale in (0, 1):
            with pytest.raises(AuditConfigError, match=f"signing key {keys.id(stale)} is not the stream's current key"):
                AuditEventEmitter(config(tmp_path, keys.private[stale]), clock=Clock(ROTATE_2 + 10**12))
        assert sorted(p.name for p in (tmp_path / "hot").iterdir()) == before  # nothing sealed or written
        with AuditEventEmitter(config(tmp_path, keys.private[2]), clock=Clock(ROTATE_2 + 10**12)) as emitter:
            emitter.emit_param_change("risk", "current_key", 0, 1)


class TestRevokingTheCurrentKey:
    """A scheduled revocation of the key in use would leave the writer signing past its window."""

    def test_the_key_signing_now_cannot_be_revoked_even_from_a_later_time(self, tmp_path, keys):
        clock = Clock(DAY4_22)
        with AuditEventEmitter(config(tmp_path, keys.private[0]), clock=clock) as emitter:
            emitter.emit_param_change("risk", "before", 0, 1)
            for not_after in (DAY4_22 - 1, DAY4_22 + 10**15):  # past and future
                with pytest.raises(AuditConfigError, match=f"key {keys.id(0)} signs this stream now"):
                    emitter.revoke_signing_key(keys.id(0), not_after, "leaked")
            emitter.rotate_signing_key(keys.signer(1))
            emitter.revoke_signing_key(keys.id(0), DAY4_22 + 1, "leaked")  # once rotated away, it can be
        history = read_key_history(trail_files(tmp_path)[0])
        assert [(event.kind, event.problem) for event in history.events] == [
            ("rotation", None), ("revocation", None)]

    def test_a_revoked_key_cannot_be_rotated_in(self, tmp_path, keys):
        clock = Clock(DAY4_22)
        with AuditEventEmitter(config(tmp_path, keys.private[0]), clock=clock) as emitter:
            emitter.revoke_signing_key(keys.id(1), DAY4_22 + 10**15, "never to be used")
            lines_before = sum(path.read_bytes().count(b"\n") for path in (tmp_path / "hot").glob("*.jsonl"))
            with pytest.raises(AuditConfigError, match=f"key {keys.id(1)} cannot be rotated in: .*revoked"):
                emitter.rotate_signing_key(keys.signer(1))
            assert sum(path.read_bytes().count(b"\n") for path in (tmp_path / "hot").glob("*.jsonl")) == lines_before
            emitter.rotate_signing_key(keys.signer(2))  # another key still can

    def test_a_writer_refuses_to_start_with_a_key_revoked_from_a_later_time(self, tmp_path, keys):
        with AuditEventEmitter(config(tmp_path, keys.private[0]), clock=Clock(DAY4_22)) as emitter:
            emitter.revoke_signing_key(keys.id(1), DAY4_22 + 10**15, "retire at year end")
        with pytest.raises(AuditConfigError, match=f"signing key {keys.id(1)} is revoked"):
            AuditEventEmitter(config(tmp_path, keys.private[1]), clock=Clock(DAY4_22 + 1))


class TestWindows:
    def test_a_seal_signed_after_its_key_was_revoked_is_outside_the_window(self, tmp_path, keys):
        write_three_key_trail(tmp_path, keys)
        history = read_key_history(trail_files(tmp_path)[0])
        drafted = draft_trusted_keys(history, load_public_key(keys.public[0]))
        entries = drafted.to_document()["keys"]
        entries[1]["not_after_ns"] = utc_ns(2026, 1, 5, 23, 45)  # key 1 compromised: revoked before midnight
        report = verify_trail(tmp_path, trusted_keys=TrustedKeys.from_entries(entries))
        outside = [f for f in report.failures if f.kind is FailureKind.KEY_OUTSIDE_WINDOW]
        # both seals key 1 made after midnight are outside its window; key 0's and key 2's are inside theirs
        assert len(outside) == 2 and all(keys.id(1) in f.detail for f in outside), report.to_text()
        assert kinds(report) == {"key_outside_window"}

    def test_a_checkpoint_signed_after_its_window_is_outside_it(self, tmp_path, keys):
        write_three_key_trail(tmp_path, keys)
        entries = draft_trusted_keys(read_key_history(trail_files(tmp_path)[0]),
                                     load_public_key(keys.public[0])).to_document()["keys"]
        entries[2]["not_after_ns"] = ROTATE_2 + 1  # the witness's note was signed later than this
        report = verify_trail(tmp_path, trusted_keys=TrustedKeys.from_entries(entries), witness=tmp_path / "witness")
        anchors = dict(report.parts)[f"anchors {tmp_path / 'witness'}"]
        assert any("key_outside_window" in f.detail or f.kind is FailureKind.KEY_OUTSIDE_WINDOW
                   for f in anchors.failures), anchors.to_text()


class TestForgery:
    def test_a_rotation_not_endorsed_by_the_old_key_fails_and_introduces_nothing(self, tmp_path, keys):
        clock = Clock(DAY5_22)
        with AuditEventEmitter(config(tmp_path, keys.private[0]), clock=clock) as emitter:
            emitter.emit_param_change("risk", "p", 0, 1)
            # someone who can emit but lacks key 0 "endorses" key 2 with key 2 itself
            thief = keys.signer(2)
            origin = f"ledgerline/{TRADER}/{STREAM}"
            new_public = base64.b64encode(raw_public_key(thief.public_key())).decode()
            payload = {
                "origin": origin, "old_key_id": keys.id(0),
                "old_public_key": base64.b64encode(raw_public_key(load_public_key(keys.public[0]))).decode(),
                "new_key_id": keys.id(2), "new_public_key": new_public, "rotated_at_ns": clock.now,
                "endorsement": base64.b64encode(thief.sign(rotation_message(
                    origin, keys.id(0), keys.id(2), new_public, clock.now))).decode(),
            }
            emitter.emit_system(ROTATION_EVENT, KEY_RECORD_SOURCE, payload)
        history = read_key_history(trail_files(tmp_path)[0])
        (forged,) = history.problems
        assert "does not verify under the old key" in str(forged.problem)
        report = verify_trail(tmp_path, public_key=load_public_key(keys.public[0]))
        assert kinds(report) == {"key_rotation_invalid"}
        drafted = draft_trusted_keys(history, load_public_key(keys.public[0]))
        assert [key.key_id for key in drafted.keys] == [keys.id(0)]


class TestColdWithRotatedKeys:
    def test_a_rotated_trail_converts_and_verifies_hot_and_cold_with_one_file(self, tmp_path, keys, capsys):
        trail = tmp_path / "trail"
        write_three_key_trail(trail, keys)
        generate_keypair(tmp_path / "converter.key", tmp_path / "converter.pub")
        trusted = tmp_path / "trusted.json"
        assert main(["keys", "trusted", str(trail), "--initial-key", str(keys.public[0]),
                     "--converter-key", str(tmp_path / "converter.pub"), "-o", str(trusted)]) == 0
        assert main(["convert", str(trail / "hot"), str(trail / "cold"), "--trusted-keys", str(trusted),
                     "--signing-key", str(tmp_path / "converter.key"), "-q"]) == 0
        report = verify_trail(trail, trusted_keys=TrustedKeys.load(trusted))
        assert report.ok and any(label.startswith("cold") for label, _ in report.parts), report.to_text()
        # the converter key is trusted as converter only: manifests signed by a writer key would not do
        entries = TrustedKeys.load(trusted).to_document()["keys"]
        assert [entry["roles"] for entry in entries] == [["writer"]] * 3 + [["converter"]]
        capsys.readouterr()
        # with only the newest writer key, the cold side's seal copies of older files are untrusted too
        assert main(["verify", str(trail), "--public-key", str(keys.public[2]),
                     "--cold-public-key", str(tmp_path / "converter.pub")]) == 1
        assert "key_untrusted" in capsys.readouterr().out
