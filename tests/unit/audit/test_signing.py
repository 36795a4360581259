"""Signed seals and their C2SP checkpoints: right key verifies; another key, an edit or no signature fails.

The checkpoint format is checked by an independent reading of the C2SP signed-note and
tlog-checkpoint rules written in this file (parse the note, recompute the key id, verify the
Ed25519 signature with ``cryptography`` directly), not with ``audit_core.trust.checkpoint``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from audit_core import AuditConfig, AuditConfigError, AuditEventEmitter, FailureKind, VerificationReport, verify
from audit_core._layout import checkpoint_path, seal_path
from audit_core.errors import AuditIntegrityError
from audit_core.trust.checkpoint import DEFAULT_KEY_NAME, sign_checkpoint, verify_checkpoint
from audit_core.trust.documents import canonical_bytes
from audit_core.trust.record import compute_checksum
from audit_core.trust.seals import read_seal, seal_signed_bytes
from audit_core.trust.signing import generate_keypair, key_id, load_private_key, load_public_key

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
DAY_1 = (dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC) - _EPOCH) // dt.timedelta(microseconds=1) * 1000
TRADER, STREAM = "T-SIGN", "alpha"


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "keys" / "ledgerline.key", tmp_path / "keys" / "ledgerline.pub"
    private.parent.mkdir()
    generate_keypair(private, public)
    return private, public


@pytest.fixture
def other_public(tmp_path: Path) -> Ed25519PublicKey:
    generate_keypair(tmp_path / "other.key", tmp_path / "other.pub")
    return load_public_key(tmp_path / "other.pub")


def write_trail(base: Path, days: int = 1, per_day: int = 5, **overrides: Any) -> list[Path]:
    """A closed trail over ``days`` UTC days, one file each; its files."""
    clock = FakeClock(DAY_1)
    config = AuditConfig(base_path=base, trader_id=TRADER, stream_id=STREAM, sync_writes=False, **overrides)
    with AuditEventEmitter(config, clock=clock) as emitter:
        for day in range(days):
            clock.now = DAY_1 + day * 86_400 * 1_000_000_000
            for index in range(per_day):
                clock.now += 1_000
                emitter.emit_param_change("sign-test", f"p{index}", index, index + 1)
    return sorted(config.hot_path.glob("*.jsonl"))


def rewrite_seal(path: Path, edit: Any, hmac_key: bytes | None = None) -> None:
    """Edit a seal as an attacker would, recomputing its seal_checksum (possible without an HMAC key)."""
    target = seal_path(path)
    seal = json.loads(target.read_bytes())
    edit(seal)
    seal["seal_checksum"] = compute_checksum(canonical_bytes(seal, ["seal_checksum"]), hmac_key)
    os.chmod(target, 0o640)
    target.write_text(json.dumps(seal, indent=1) + "\n")


def failures(report: VerificationReport, kind: FailureKind) -> list[str]:
    return [failure.detail for failure in report.failures if failure.kind is kind]


class TestKeys:
    def test_cryptography_is_imported_only_when_a_key_is_used(self):
        code = "import sys, audit_core, audit_core.cli, audit_core.trust.proofs; print('cryptography' in sys.modules)"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert result.stdout.strip() == "False"

    def test_keygen_writes_pem_files_and_a_secret_private_key(self, keys):
        private, public = keys
        assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
        assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
        loaded = load_private_key(private)
        assert loaded.public_key() == load_public_key(public)

    def test_keygen_returns_the_key_id_and_never_overwrites(self, tmp_path):
        kid = generate_keypair(tmp_path / "a.key", tmp_path / "a.pub")
        public = load_public_key(tmp_path / "a.pub")
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert kid == hashlib.sha256(raw).hexdigest()[:16] == key_id(load_public_key(tmp_path / "a.pub"))
        with pytest.raises(FileExistsError, match="never overwritten"):
            generate_keypair(tmp_path / "a.key", tmp_path / "b.pub")
        assert not (tmp_path / "b.pub").exists()

    def test_private_key_from_an_environment_variable(self, keys, monkeypatch):
        private, _ = keys
        monkeypatch.setenv("LL_SIGNING_PEM", private.read_text())
        raw = load_private_key(private).private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        monkeypatch.setenv("LL_SIGNING_RAW", base64.b64encode(raw).decode())
        assert load_private_key(env_var="LL_SIGNING_PEM").public_key() == load_private_key(private).public_key()
        assert load_private_key(env_var="LL_SIGNING_RAW").public_key() == load_private_key(private).public_key()

    def test_unusable_keys_are_config_errors_naming_the_source(self, keys, tmp_path, monkeypatch):
        private, public = keys
        (tmp_path / "junk").write_text("not a key")
        monkeypatch.delenv("LL_UNSET", raising=False)
        cases = [
            (lambda: load_private_key(tmp_path / "missing.key"), "private key file .*missing.key does not exist"),
            (lambda: load_private_key(public), "holds a public key; the signing key is the private one"),
            (lambda: load_public_key(private), "holds a private key; pass the public key"),
            (lambda: load_public_key(tmp_path / "junk"), "junk: expected a PEM Ed25519 public key or base64"),
            (lambda: load_private_key(env_var="LL_UNSET"), "LL_UNSET is unset or empty"),
            (lambda: load_private_key(), "not both or neither"),
        ]
        for load, message in cases:
            with pytest.raises(AuditConfigError, match=message):
                load()

    def test_config_takes_one_key_source(self, tmp_path):
        with pytest.raises(ValidationError, match=r"set one of signing_key_path, signing_key_env, "
                           r"signing_key_command, not \[.signing_key_path., .signing_key_env.\]"):
            AuditConfig(base_path=tmp_path, signing_key_path=tmp_path / "k", signing_key_env="K")

    def test_a_missing_key_fails_at_start_up_and_writes_nothing(self, tmp_path):
        config = AuditConfig(base_path=tmp_path, signing_key_path=tmp_path / "missing.key", sync_writes=False)
        with pytest.raises(AuditConfigError, match=r"missing\.key does not exist"):
            AuditEventEmitter(config)
        assert not config.hot_path.exists()


class TestSignedSeals:
    def test_signed_seals_verify_with_the_right_key(self, tmp_path, keys):
        private, public = keys
        files = write_trail(tmp_path, days=3, per_day=4, signing_key_path=private)
        for path in files:
            seal = read_seal(path)
            assert seal is not None
            assert seal["signature"]["alg"] == "ed25519"
            assert seal["signature"]["key_id"] == key_id(load_public_key(public))
            load_public_key(public).verify(base64.b64decode(seal["signature"]["sig"]), seal_signed_bytes(seal))
            assert private.read_text() not in path.read_text() + seal_path(path).read_text()
        report = verify(tmp_path, public_key=load_public_key(public))
        assert report.ok, report.to_text()
        assert report.sealed_files == 3
        assert f"seal signatures checked against key {key_id(load_public_key(public))}" in report.to_text()

    def test_signing_key_from_the_environment(self, tmp_path, keys, monkeypatch):
        private, public = keys
        monkeypatch.setenv("LL_SIGNING_KEY", private.read_text())
        write_trail(tmp_path, signing_key_env="LL_SIGNING_KEY")
        assert verify(tmp_path, public_key=load_public_key(public)).ok

    def test_another_key_fails(self, tmp_path, keys, other_public):
        private, public = keys
        write_trail(tmp_path, signing_key_path=private)
        report = verify(tmp_path, public_key=other_public)
        assert not report.ok
        # format.md section 6: a signature by a key that is not trusted is key_untrusted, named by its id
        (detail,) = failures(report, FailureKind.KEY_UNTRUSTED)
        assert f"key {key_id(load_public_key(public))} is not listed as a trusted writer key" in detail

    def test_edited_seal_fails_even_with_a_recomputed_seal_checksum(self, tmp_path, keys):
        private, public = keys
        (path,) = write_trail(tmp_path, signing_key_path=private)
        rewrite_seal(path, lambda seal: seal.update(sealed_at_ns=seal["sealed_at_ns"] + 1))
        assert verify(tmp_path).ok, "without a key the edit is invisible: the checksum was recomputed"
        report = verify(tmp_path, public_key=load_public_key(public))
        (detail,) = failures(report, FailureKind.SIGNATURE_INVALID)
        assert "does not match its contents" in detail

    def test_reforged_seal_of_a_truncated_file_fails(self, tmp_path, keys):
        # The forger drops the last record and re-seals the file consistently (plain SHA-256 trail).
        private, public = keys
        (path,) = write_trail(tmp_path, signing_key_path=private)
        os.chmod(path, 0o640)
        path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-1]))
        from audit_core.trust.seals import digest_file

        rewrite_seal(path, lambda seal: seal.update(digest_file(path).seal_fields()))
        assert verify(tmp_path).ok, "a plain SHA-256 trail re-sealed by a forger passes without a key"
        report = verify(tmp_path, public_key=load_public_key(public))
        assert failures(report, FailureKind.SIGNATURE_INVALID)

    def test_swapped_signature_fails(self, tmp_path, keys):
        private, public = keys
        files = write_trail(tmp_path, days=2, signing_key_path=private)
        other_signature = read_seal(files[1])["signature"]  # type: ignore[index]
        rewrite_seal(files[0], lambda seal: seal.update(signature=other_signature))
        report = verify(tmp_path, public_key=load_public_key(public))
        assert [f.file for f in report.failures if f.kind is FailureKind.SIGNATURE_INVALID] == [str(files[0])]

    def test_unsigned_seal_fails_when_a_public_key_is_given(self, tmp_path, keys):
        _, public = keys
        (path,) = write_trail(tmp_path)
        assert "signature" not in read_seal(path)  # type: ignore[operator]
        assert not checkpoint_path(path).exists()
        report = verify(tmp_path, public_key=load_public_key(public))
        (detail,) = failures(report, FailureKind.SIGNATURE_MISSING)
        assert "unsigned, but a public key was given" in detail
        assert verify(tmp_path).ok

    def test_without_a_public_key_signatures_are_not_checked(self, tmp_path, keys, other_public):
        private, _ = keys
        write_trail(tmp_path, signing_key_path=private)
        report = verify(tmp_path)
        assert report.ok and report.signing_key_id is None
        assert "seal signatures not checked (no public key)" in report.to_text()
        assert report.to_dict()["signing_key_id"] is None

    def test_signed_and_keyed_trail(self, tmp_path, keys):
        private, public = keys
        write_trail(tmp_path, signing_key_path=private, hmac_key="k")
        assert verify(tmp_path, hmac_key=b"k", public_key=load_public_key(public)).ok

    def test_checkpoint_that_disagrees_with_its_seal_fails(self, tmp_path, keys):
        # Even a checkpoint validly signed by the key must state the seal's tree.
        private, public = keys
        (path,) = write_trail(tmp_path, signing_key_path=private)
        seal = read_seal(path)
        assert seal is not None
        note = checkpoint_path(path)
        os.chmod(note, 0o640)
        note.write_text(sign_checkpoint({**seal, "records": seal["records"] - 1}, load_private_key(private)))
        report = verify(tmp_path, public_key=load_public_key(public))
        (detail,) = failures(report, FailureKind.SIGNATURE_INVALID)
        assert f"checkpoint tree_size: the seal says {seal['records']}, the checkpoint {seal['records'] - 1}" in detail


# --- C2SP signed-note / tlog-checkpoint, read independently ----------------------------------------

EM_DASH = "\u2014"


def read_signed_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """signed-note: text ending in newline, a blank line, then '— <name> <base64>' lines."""
    assert note.encode("utf-8").decode("utf-8") == note
    assert all(char == "\n" or ord(char) >= 0x20 for char in note)
    cut = note.rindex("\n\n")
    text, block = note[: cut + 1], note[cut + 2 :]
    assert text.endswith("\n") and block.endswith("\n")
    signatures = []
    for line in block[:-1].split("\n"):
        dash, name, encoded = line.split(" ")
        assert dash == EM_DASH and name and "+" not in name
        signatures.append((name, base64.b64decode(encoded, validate=True)))
    return text, signatures


class TestCheckpointFormat:
    def test_checkpoint_is_a_c2sp_signed_note_over_the_seal(self, tmp_path, keys):
        private, public = keys
        (path,) = write_trail(tmp_path, per_day=7, signing_key_path=private)
        seal = read_seal(path)
        assert seal is not None
        note = checkpoint_path(path).read_text(encoding="utf-8")
        assert stat.S_IMODE(checkpoint_path(path).stat().st_mode) == 0o440

        text, signatures = read_signed_note(note)
        origin, size, root = text[:-1].split("\n")
        assert origin == f"ledgerline/{TRADER}.{STREAM}/{path.name}"
        assert size == "7" == str(seal["records"])
        assert base64.b64decode(root, validate=True) == bytes.fromhex(seal["merkle_root"])
        assert len(base64.b64decode(root)) == 32

        pem = serialization.load_pem_public_key(public.read_bytes())
        assert isinstance(pem, Ed25519PublicKey)
        raw = pem.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        (name, blob), = signatures
        assert name == "ledgerline"
        expected_id = hashlib.sha256(name.encode() + b"\x0a" + b"\x01" + raw).digest()[:4]
        assert blob[:4] == expected_id and len(blob) == 4 + 64
        Ed25519PublicKey.from_public_bytes(raw).verify(blob[4:], text.encode("utf-8"))

    def test_empty_file_checkpoint(self, tmp_path, keys):
        private, public = keys
        config = AuditConfig(base_path=tmp_path, sync_writes=False, signing_key_path=private)
        AuditEventEmitter(config).close()
        (path,) = config.hot_path.glob("*.jsonl")
        text, _ = read_signed_note(checkpoint_path(path).read_text())
        assert text.split("\n")[1:3] == ["0", base64.b64encode(hashlib.sha256(b"").digest()).decode()]
        assert verify(tmp_path, public_key=load_public_key(public)).ok

    def test_unknown_signatures_are_ignored_and_the_known_one_must_verify(self, tmp_path, keys):
        private, public = keys
        (path,) = write_trail(tmp_path, signing_key_path=private)
        note = checkpoint_path(path).read_text()
        stranger = Ed25519PrivateKey.generate()
        text, _ = read_signed_note(note)
        foreign = f"{EM_DASH} witness.example/w {base64.b64encode(b'abcd' + stranger.sign(text.encode())).decode()}\n"
        checked = verify_checkpoint(note + foreign, load_public_key(public), read_seal(path))
        assert checked.tree_size == 5

        (name, blob), = read_signed_note(note)[1]
        forged = f"{EM_DASH} {name} {base64.b64encode(blob[:4] + stranger.sign(text.encode())).decode()}\n"
        with pytest.raises(AuditIntegrityError, match="does not match its text"):
            verify_checkpoint(text + "\n" + forged, load_public_key(public))
        with pytest.raises(AuditIntegrityError, match="no signature of key ledgerline\\+"):
            verify_checkpoint(text + "\n" + foreign, load_public_key(public))

    def test_edited_checkpoint_text_fails(self, tmp_path, keys):
        private, public = keys
        (path,) = write_trail(tmp_path, signing_key_path=private)
        note = checkpoint_path(path).read_text()
        lines = note.split("\n")
        lines[1] = str(int(lines[1]) + 1)
        with pytest.raises(AuditIntegrityError, match="does not match its text"):
            verify_checkpoint("\n".join(lines), load_public_key(public))
        assert DEFAULT_KEY_NAME == "ledgerline"
