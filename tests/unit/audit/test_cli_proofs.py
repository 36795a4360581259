"""``ledgerline keygen``, ``prove``, ``check-proof`` and ``verify --public-key``: exit codes and output.

Exit 0 when all holds, 1 when verification fails, 2 (one line, no traceback) for a usage mistake.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from audit_core import AuditConfig, AuditEventEmitter
from audit_core.cli import build_parser, main
from audit_core.trust.proofs import check_proof
from audit_core.trust.seals import read_seal
from audit_core.trust.signing import key_id, load_public_key


@pytest.fixture
def keys(tmp_path, capsys):
    private, public = tmp_path / "ledgerline.key", tmp_path / "ledgerline.pub"
    assert main(["keygen", str(private), str(public)]) == 0
    out = capsys.readouterr().out
    assert f"key id {key_id(load_public_key(public))}" in out
    assert "signed-note verifier key ledgerline+" in out
    return private, public


def emit_trail(base: Path, **overrides) -> Path:
    config = AuditConfig(base_path=base, trader_id="T-CLI", sync_writes=False, **overrides)
    with AuditEventEmitter(config) as emitter:
        for index in range(12):
            emitter.emit_param_change("controller", "risk", index, index + 1, "drawdown")
        emitter.emit_trade("trade.fill", "obs", "EURUSD.SIM", order_id="O-1", side="BUY", size="1", price="1.1")
    (path,) = config.hot_path.glob("*.jsonl")
    return path


@pytest.fixture
def signed(tmp_path, keys):
    private, public = keys
    return emit_trail(tmp_path / "trail", signing_key_path=private), public


def run_prove(capsys, path: Path, sequence: int, target: Path) -> dict:
    assert main(["prove", "--sequence", str(sequence), str(path)]) == 0
    proof = json.loads(capsys.readouterr().out)
    target.write_text(json.dumps(proof, indent=2))
    return proof


def one_line_error(capsys, verb: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"ledgerline {verb}: ")
    return err


class TestRoundTrip:
    def test_keygen_emit_close_prove_check(self, tmp_path, signed, capsys):
        path, public = signed
        assert main(["verify", str(tmp_path / "trail"), "--public-key", str(public)]) == 0
        assert "seal signatures checked against key" in capsys.readouterr().out

        proof = run_prove(capsys, path, 7, tmp_path / "proof.json")
        seal = read_seal(path)
        assert proof["file"] == path.name and proof["sequence"] == 7 and proof["index"] == 7
        assert proof["tree_size"] == 13 == seal["records"]
        assert proof["leaf"].encode() == path.read_bytes().splitlines()[7]
        assert proof["root"] == seal["merkle_root"] and proof["seal"] == seal
        assert all(len(bytes.fromhex(node)) == 32 for node in proof["audit_path"])

        assert main(["check-proof", str(tmp_path / "proof.json"), "--public-key", str(public)]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"OK: sequence 7 is leaf 7 of 13 in {path.name}")
        assert f"seal signed by key {key_id(load_public_key(public))}" in out

    def test_check_proof_reads_nothing_but_the_proof(self, tmp_path, signed, capsys):
        path, public = signed
        run_prove(capsys, path, 12, tmp_path / "proof.json")
        path.chmod(0o640)
        path.unlink()
        assert main(["check-proof", str(tmp_path / "proof.json"), "--public-key", str(public)]) == 0

    def test_without_a_public_key_the_signature_is_not_checked_and_says_so(self, tmp_path, signed, capsys):
        path, _ = signed
        run_prove(capsys, path, 0, tmp_path / "proof.json")
        assert main(["check-proof", str(tmp_path / "proof.json")]) == 0
        assert "seal signature not checked (no --public-key)" in capsys.readouterr().out


class TestTamperedProofs:
    @pytest.mark.parametrize(
        ("what", "tamper", "message"),
        [
            ("leaf", lambda p: p.update(leaf=p["leaf"].replace('"new_value":4', '"new_value":5')), "does not lead"),
            ("index", lambda p: p.update(index=p["index"] + 1), "does not lead"),
            ("path", lambda p: p["audit_path"].__setitem__(0, "00" * 32), "does not lead"),
            ("short path", lambda p: p["audit_path"].pop(), "wrong size"),
            ("tree size", lambda p: p.update(tree_size=p["tree_size"] + 1), "tree_size: the seal says 13"),
            ("root", lambda p: p.update(root="11" * 32), "root: the seal says"),
            ("sequence", lambda p: p.update(sequence=4), "expected 4, the leaf record has 3"),
            ("seal root", lambda p: p["seal"].update(merkle_root="11" * 32), "root: the seal says"),
            ("seal size", lambda p: p["seal"].update(records=12), "tree_size: the seal says 12"),
            ("seal field", lambda p: p["seal"].update(sealed_at_ns=1), "does not match its contents"),
            ("unsigned seal", lambda p: p["seal"].pop("signature"), "seal is unsigned"),
            ("not hex", lambda p: p["audit_path"].__setitem__(0, "zz"), "expected 64 hex digits"),
        ],
    )
    def test_tampered_proof_exits_one(self, tmp_path, signed, capsys, what, tamper, message):
        path, public = signed
        proof = run_prove(capsys, path, 3, tmp_path / "proof.json")
        tamper(proof)
        (tmp_path / "proof.json").write_text(json.dumps(proof))
        assert main(["check-proof", str(tmp_path / "proof.json"), "--public-key", str(public)]) == 1, what
        err = one_line_error(capsys, "check-proof")
        assert "FAILED" in err and message in err, err

    def test_seal_signed_by_another_key_exits_one(self, tmp_path, signed, capsys):
        path, _ = signed
        run_prove(capsys, path, 3, tmp_path / "proof.json")
        assert main(["keygen", str(tmp_path / "other.key"), str(tmp_path / "other.pub")]) == 0
        capsys.readouterr()
        assert main(["check-proof", str(tmp_path / "proof.json"), "--public-key", str(tmp_path / "other.pub")]) == 1
        assert "is not listed as a trusted writer key" in one_line_error(capsys, "check-proof")  # key_untrusted

    def test_proof_of_an_unsigned_trail_checks_without_a_key_only(self, tmp_path, keys, capsys):
        _, public = keys
        path = emit_trail(tmp_path / "plain")
        proof = run_prove(capsys, path, 5, tmp_path / "proof.json")
        assert check_proof(proof).signing_key_id is None
        assert main(["check-proof", str(tmp_path / "proof.json"), "--public-key", str(public)]) == 1
        assert main(["verify", str(tmp_path / "plain"), "--public-key", str(public)]) == 1
        assert "signature_missing" in capsys.readouterr().out


class TestUsageMistakes:
    def test_sequence_not_in_the_file(self, signed, capsys):
        path, _ = signed
        assert main(["prove", "--sequence", "99", str(path)]) == 2
        err = one_line_error(capsys, "prove")
        assert f"sequence 99 is not in {path.name}, which holds sequences 0..12" in err

    def test_missing_paths(self, tmp_path, capsys):
        for argv, verb, message in [
            (["prove", "--sequence", "0", str(tmp_path / "nope.jsonl")], "prove", "no hot file at"),
            (["check-proof", str(tmp_path / "nope.json")], "check-proof", "No such file"),
            (["verify", str(tmp_path), "--public-key", str(tmp_path / "nope.pub")], "verify", "does not exist"),
            (["check-proof", str(tmp_path / "x.json"), "--public-key", str(tmp_path / "nope.pub")],
             "check-proof", "does not exist"),
        ]:
            assert main(argv) == 2, argv
            assert message in one_line_error(capsys, verb)

    def test_wrong_key_file(self, tmp_path, signed, keys, capsys):
        path, _ = signed
        private, _ = keys
        run_prove(capsys, path, 1, tmp_path / "proof.json")
        assert main(["check-proof", str(tmp_path / "proof.json"), "--public-key", str(private)]) == 2
        assert "holds a private key; pass the public key" in one_line_error(capsys, "check-proof")
        (tmp_path / "garbage.pub").write_text("hello")
        assert main(["verify", str(tmp_path / "trail"), "--public-key", str(tmp_path / "garbage.pub")]) == 2
        assert "expected a PEM Ed25519 public key" in one_line_error(capsys, "verify")

    def test_unsealed_file(self, tmp_path, capsys):
        emitter = AuditEventEmitter(AuditConfig(base_path=tmp_path, sync_writes=False))
        try:
            emitter.emit_param_change("c", "k", 0, 1)
            assert main(["prove", "--sequence", "0", str(emitter.writer.path)]) == 2
            assert "has no seal" in one_line_error(capsys, "prove")
        finally:
            emitter.close()

    def test_not_a_proof_file(self, tmp_path, capsys):
        (tmp_path / "proof.json").write_text("{not json")
        assert main(["check-proof", str(tmp_path / "proof.json")]) == 2
        assert "is not a JSON proof file" in one_line_error(capsys, "check-proof")

    def test_keygen_never_overwrites(self, keys, capsys):
        private, public = keys
        before = private.read_bytes()
        assert main(["keygen", str(private), str(public.with_name("new.pub"))]) == 2
        assert "never overwritten" in one_line_error(capsys, "keygen")
        assert private.read_bytes() == before


class TestHelp:
    @pytest.mark.parametrize("verb", ["keygen", "prove", "check-proof", "verify"])
    def test_help_shows_an_example(self, verb):
        subparsers = next(a for a in build_parser()._actions if a.dest == "verb")
        description = subparsers.choices[verb].format_help()
        assert "example:" in description and f"ledgerline {verb} " in description

    def test_installed_entry_point_checks_a_proof(self, tmp_path, signed, capsys):
        path, public = signed
        run_prove(capsys, path, 2, tmp_path / "proof.json")
        exe = Path(sys.executable).with_name("ledgerline")
        argv = [str(exe), "check-proof", str(tmp_path / "proof.json"), "--public-key", str(public)]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
