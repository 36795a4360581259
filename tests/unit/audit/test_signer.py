"""Signing through a command: the KMS/HSM path, where the private key never enters the writing process.

The "KMS" here is a stand-in: a small real Python script run as a separate process that reads the
message on stdin, signs it with a key file only it opens, and prints the base64 signature. A mode
file next to it makes it fail, hang, answer garbage or sign with another key, so every failure of a
real KMS client is exercised through the same subprocess boundary.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from audit_core import (
    AuditConfig,
    AuditEventEmitter,
    AuditSigningError,
    Signer,
    parse_record,
    verify_trail,
)
from audit_core.trust.signer import PROBE_MESSAGE
from audit_core.trust.signing import generate_keypair, key_id, load_public_key

KMS_STAND_IN = textwrap.dedent("""
    import base64, sys, time
    from pathlib import Path
    from cryptography.hazmat.primitives import serialization

    key_file, mode_file = sys.argv[1], Path(sys.argv[2])
    mode = mode_file.read_text().strip() if mode_file.exists() else "ok"
    message = sys.stdin.buffer.read()
    if mode == "fail":
        print("kms: access denied for this key", file=sys.stderr)
        sys.exit(3)
    if mode == "slow":
        time.sleep(30)
    if mode == "garbage":
        print("not a signature")
        sys.exit(0)
    if mode == "other-key":
        key_file = sys.argv[3]
    key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
    print(base64.b64encode(key.sign(message)).decode())
""")


class Kms:
    """The stand-in: its argv, its key pair, and the mode file that steers it."""

    def __init__(self, tmp_path: Path) -> None:
        (tmp_path / "kms").mkdir()
        self.script = tmp_path / "kms" / "sign.py"
        self.script.write_text(KMS_STAND_IN)
        self.private, self.public = tmp_path / "kms" / "k.key", tmp_path / "k.pub"
        generate_keypair(self.private, self.public)
        self.other_private, self.other_public = tmp_path / "kms" / "o.key", tmp_path / "o.pub"
        generate_keypair(self.other_private, self.other_public)
        self.mode_file = tmp_path / "kms" / "mode"

    @property
    def argv(self) -> list[str]:
        return [sys.executable, str(self.script), str(self.private), str(self.mode_file), str(self.other_private)]

    def mode(self, mode: str) -> None:
        self.mode_file.write_text(mode)

    def config(self, base: Path, **extra: object) -> AuditConfig:
        return AuditConfig(base_path=base, trader_id="T-KMS", signing_key_command=tuple(self.argv),
                           signing_public_key_path=self.public, checkpoint_interval_s=3600, **extra)


@pytest.fixture
def kms(tmp_path: Path) -> Kms:
    return Kms(tmp_path)


class TestCommandSigner:
    def test_a_trail_signed_through_the_command_verifies_under_its_public_key(self, tmp_path, kms):
        with AuditEventEmitter(kms.config(tmp_path / "trail")) as emitter:
            for index in range(5):
                emitter.emit_param_change("kms", f"p{index}", index, index + 1)
        report = verify_trail(tmp_path / "trail", public_key=load_public_key(kms.public))
        assert report.ok and report.sealed_files == 1, report.to_text()
        assert report.signing_key_id == key_id(load_public_key(kms.public))

    def test_the_probe_proves_the_command_holds_the_configured_key(self, kms):
        signer = Signer.from_command(kms.argv, kms.public)
        assert signer.key_id == key_id(load_public_key(kms.public))
        load_public_key(kms.public).verify(signer.sign(PROBE_MESSAGE), PROBE_MESSAGE)

    @pytest.mark.parametrize(("mode", "match"), [
        ("fail", r"exited with status 3: 'kms: access denied for this key'"),
        ("garbage", r"expected the base64 of a 64-byte Ed25519 signature on stdout, got b'not a signature'"),
        ("other-key", r"does not verify under key [0-9a-f]{16} \(signing_public_key_path\): the command signs "
                      r"with another key"),
    ])
    def test_a_command_that_cannot_sign_fails_at_start_up_naming_why(self, tmp_path, kms, mode, match):
        kms.mode(mode)
        with pytest.raises(AuditSigningError, match=match):
            AuditEventEmitter(kms.config(tmp_path / "trail"))
        assert not list((tmp_path / "trail" / "hot").glob("*.jsonl"))  # refused before anything was written

    def test_a_slow_command_is_killed_at_its_timeout_not_waited_for(self, kms):
        kms.mode("slow")
        with pytest.raises(AuditSigningError, match=r"did not answer within 0.5 s \(it was killed\)"):
            Signer.from_command(kms.argv, kms.public, timeout_s=0.5)

    def test_a_missing_command_is_a_signing_error(self, tmp_path, kms):
        with pytest.raises(AuditSigningError, match="could not be started"):
            Signer.from_command([str(tmp_path / "no-such-kms")], kms.public)

    def test_the_config_needs_the_public_key_with_a_command_and_one_key_source(self, tmp_path, kms):
        with pytest.raises(ValidationError, match="signing_key_command and signing_public_key_path go together"):
            AuditConfig(base_path=tmp_path, signing_key_command=tuple(kms.argv))
        with pytest.raises(ValidationError, match="set one of signing_key_path, signing_key_env, signing_key_command"):
            AuditConfig(base_path=tmp_path, signing_key_command=tuple(kms.argv), signing_public_key_path=kms.public,
                        signing_key_path=kms.private)
        with pytest.raises(ValidationError, match="expected a command and its arguments"):
            AuditConfig(base_path=tmp_path, signing_key_command=("",), signing_public_key_path=kms.public)

    def test_a_kms_outage_after_start_up_never_reaches_emit(self, tmp_path, kms):
        """Sealing and checkpointing fail (counted, logged, chained as sys.checkpoint_failed); emit goes on."""
        with AuditEventEmitter(kms.config(tmp_path / "trail", sync_writes=True)) as emitter:
            emitter.emit_param_change("kms", "before", 0, 1)
            kms.mode("fail")
            emitter.writer.checkpointer.checkpoint()  # the KMS refuses: no note, a failure
            for index in range(3):
                emitter.emit_param_change("kms", f"during{index}", index, index + 1)  # never raises
            assert emitter.writer.checkpointer.failures == 1
            assert "access denied" in str(emitter.writer.checkpointer.last_error)
            kms.mode("ok")
            emitter.writer.checkpointer.checkpoint()
            emitter.emit_param_change("kms", "after", 0, 1)
        hot = tmp_path / "trail" / "hot"
        (path,) = hot.glob("*.jsonl")
        types = [parse_record(line).event_type for line in path.read_bytes().splitlines()]
        assert [t for t in types if t.startswith("sys.")] == ["sys.checkpoint_failed", "sys.checkpoint_recovered"]
        assert verify_trail(tmp_path / "trail", public_key=load_public_key(kms.public)).ok

    def test_a_seal_the_kms_refuses_is_counted_and_sealed_on_the_next_open(self, tmp_path, kms):
        emitter = AuditEventEmitter(kms.config(tmp_path / "trail"))
        emitter.emit_param_change("kms", "p", 0, 1)
        kms.mode("fail")
        emitter.close()  # the close seal needs the KMS: it fails, counted, never raised
        assert emitter.writer.stats.seal_errors == 1
        hot = tmp_path / "trail" / "hot"
        assert not list(hot.glob("*.seal"))
        kms.mode("ok")
        with AuditEventEmitter(kms.config(tmp_path / "trail")) as again:  # the reopen seals what was left
            again.emit_param_change("kms", "q", 0, 1)
        assert verify_trail(tmp_path / "trail", public_key=load_public_key(kms.public)).ok


class TestCommandSignerOnTheCommandLine:
    """``convert``, ``retention`` and ``update-root`` sign through the same command as the writer."""

    def command(self, kms: Kms) -> list[str]:
        import shlex

        return ["--signing-key-command", shlex.join(kms.argv), "--signing-public-key", str(kms.public)]

    def test_convert_and_update_root_sign_the_cold_store_through_the_command(self, tmp_path, kms, capsys):
        from audit_core.cli import main
        from audit_core.cold.cold_verify import verify_cold
        from audit_core.cold.manifest import read_root

        trail = tmp_path / "trail"
        with AuditEventEmitter(kms.config(trail)) as emitter:
            emitter.emit_param_change("kms", "p", 0, 1)
        public = ["--public-key", str(kms.public)]
        assert main(["convert", str(trail / "hot"), str(trail / "cold"), "-q", *public, *self.command(kms)]) == 0
        assert main(["update-root", str(trail / "cold"), *self.command(kms)]) == 0
        root = read_root(trail / "cold")
        assert root is not None and root["signature"]["key_id"] == key_id(load_public_key(kms.public))
        report = verify_cold(trail / "cold", None, load_public_key(kms.public))
        assert report.ok, report.to_text()
        kms.mode("fail")  # a KMS that refuses: a one-line usage error, nothing signed by anything else
        capsys.readouterr()
        assert main(["update-root", str(trail / "cold"), *self.command(kms)]) == 2
        assert "kms: access denied for this key" in capsys.readouterr().err

    def test_retention_signs_its_journal_and_record_through_the_command(self, tmp_path, kms):
        from audit_core.cli import main

        trail = tmp_path / "trail"
        with AuditEventEmitter(kms.config(trail)) as emitter:
            emitter.emit_param_change("kms", "p", 0, 1)
        assert main(["convert", str(trail / "hot"), str(trail / "cold"), "-q", *self.command(kms)]) == 0
        args = ["retention", str(trail / "cold"), "--days", "1", "--now", "2100-01-01", "--trader-id", "T-KMS"]
        assert main([*args, *self.command(kms)]) == 0
        (journal,) = (trail / "cold" / "_retention").glob("*.json")
        signer = key_id(load_public_key(kms.public))
        assert json.loads(journal.read_text())["signature"]["key_id"] == signer
        (seal,) = (trail / "hot").glob("audit.T-KMS.retention.*.seal")  # the sys.retention record's file
        assert json.loads(seal.read_text())["signature"]["key_id"] == signer
        report = verify_trail(trail, public_key=load_public_key(kms.public))
        assert report.ok, report.to_text()

    @pytest.mark.parametrize(("extra", "message"), [
        (["--signing-key", "k.key"], "give one of --signing-key, --signing-key-env, --signing-key-command"),
        ([], "--signing-key-command needs --signing-public-key"),
        (["--signing-public-key", "k.pub", "--signing-key-command", "'unclosed"], "No closing quotation"),
    ])
    def test_signing_options_that_do_not_fit_are_usage_errors(self, tmp_path, kms, capsys, extra, message):
        from audit_core.cli import main

        (tmp_path / "cold").mkdir()
        command = [] if "--signing-key-command" in extra else ["--signing-key-command", "kms-sign"]
        assert main(["update-root", str(tmp_path / "cold"), *command, *extra]) == 2
        assert message in capsys.readouterr().err
