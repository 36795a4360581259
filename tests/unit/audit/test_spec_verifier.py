"""spec_verifier, the independent bundle verifier written from docs/format.md alone.

Its primitives are checked against published vectors (RFC 8032 section 7.1, transparency-dev's
consistency proofs), against the ``cryptography`` package and against naive definitions; its
bundle checks against bundles built here by hand from real trails (audit_core's emitter writes the
trail; the range proofs are computed by this file's own code) and against each tampering.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from _bundle_tools import (
    PRIVATE,
    PUBLIC,
    SEED,
    STEP,
    T0,
    NaiveTree,
    bundle_index,
    chain,
    flip_signature,
    hand_bundle,
    hmac_note,
    key_entry,
    leaf,
    raw_public,
    read_zip,
    record,
    sign_note,
    stream_entry,
    stream_lines,
    tampered,
    unsigned_note,
    window_range,
    write_bundle,
    write_trusted_keys,
    write_zip,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from test_stream_tree import VECTOR_LEAVES, VECTOR_PROOFS, VECTOR_ROOTS

import spec_verifier
from audit_core import AuditConfig, AuditEventEmitter
from spec_verifier import container, ed25519, merkle
from spec_verifier.__main__ import main as cli_main

ROOT = Path(__file__).resolve().parents[3]
ENV = "SPEC_VERIFIER_TEST_KEY"


# --- Ed25519 (RFC 8032) -------------------------------------------------------------------------------

#: RFC 8032 section 7.1: TEST 1, 2, 3 and SHA(abc) (public key, message, signature).
RFC8032_VECTORS = [
    ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", b"",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", bytes.fromhex("72"),
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", bytes.fromhex("af82"),
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf", hashlib.sha512(b"abc").digest(),
     "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"),
]


class TestEd25519:
    @pytest.mark.parametrize(("public", "message", "signature"), RFC8032_VECTORS)
    def test_rfc8032_vectors_verify_and_any_changed_bit_fails(self, public: str, message: bytes,
                                                              signature: str) -> None:
        key, sig = bytes.fromhex(public), bytes.fromhex(signature)
        assert ed25519.verify(key, message, sig)
        assert not ed25519.verify(key, message + b"x", sig)
        for index in (0, 31, 32, 63):
            flipped = bytearray(sig)
            flipped[index] ^= 1
            assert not ed25519.verify(key, message, bytes(flipped))
        assert not ed25519.verify(bytes([key[0] ^ 1]) + key[1:], message, sig)

    def test_agrees_with_the_cryptography_package_on_random_keys(self) -> None:
        for i in range(25):
            private = Ed25519PrivateKey.generate()
            message = os.urandom(i * 7)
            signature = private.sign(message)
            assert ed25519.verify(raw_public(private), message, signature)
            other = raw_public(Ed25519PrivateKey.generate())
            assert not ed25519.verify(other, message, signature)

    def test_malformed_keys_and_signatures_are_false_not_errors(self) -> None:
        public, message, signature = RFC8032_VECTORS[0]
        key, sig = bytes.fromhex(public), bytes.fromhex(signature)
        assert not ed25519.verify(key[:31], message, sig)
        assert not ed25519.verify(key, message, sig[:63])
        # S >= L is refused (malleability), even though S - L would verify.
        s = int.from_bytes(sig[32:], "little") + ed25519.L
        assert not ed25519.verify(key, message, sig[:32] + s.to_bytes(32, "little"))
        # A y >= p is a non-canonical encoding, refused.
        assert not ed25519.verify((2**255 - 1).to_bytes(32, "little"), message, sig)


# --- Merkle trees ---------------------------------------------------------------------------------------

class TestConsistency:
    @pytest.mark.parametrize(("old", "new"), sorted(VECTOR_PROOFS))
    def test_transparency_dev_vectors_verify(self, old: int, new: int) -> None:
        proof = [bytes.fromhex(h) for h in VECTOR_PROOFS[(old, new)]]
        assert merkle.consistent(old, new, VECTOR_ROOTS[old - 1], VECTOR_ROOTS[new - 1], proof)
        tree = NaiveTree([leaf(item) for item in VECTOR_LEAVES])
        assert tree.consistency_proof(old, new) == proof
        assert [tree.root(size) for size in range(1, 9)] == VECTOR_ROOTS

    @pytest.mark.parametrize(("old", "new"), sorted(VECTOR_PROOFS))
    def test_every_corruption_of_a_vector_proof_is_refused(self, old: int, new: int) -> None:
        proof = [bytes.fromhex(h) for h in VECTOR_PROOFS[(old, new)]]
        r1, r2 = VECTOR_ROOTS[old - 1], VECTOR_ROOTS[new - 1]
        probes = [(old - 1, new, r1, r2, proof), (old + 1, new, r1, r2, proof), (old, new * 2, r1, r2, proof),
                  (old, new, r2, r2, proof), (old, new, r1, r1, proof), (old, new, r1, r2, proof[:-1]),
                  (old, new, r1, r2, [*proof, r1]), (old, new, r1, r2, []), (new, old, r2, r1, proof)]
        for index in range(len(proof)):
            flipped = list(proof)
            flipped[index] = bytes([flipped[index][0] ^ 1]) + flipped[index][1:]
            probes.append((old, new, r1, r2, flipped))
        for probe in probes:
            assert not merkle.consistent(*probe), probe[:2]

    def test_every_pair_up_to_40_leaves_against_the_naive_definition(self) -> None:
        tree = NaiveTree([leaf(str(i).encode()) for i in range(40)])
        for new in range(1, 41):
            for old in range(0, new + 1):
                proof = tree.consistency_proof(old, new)
                assert merkle.consistent(old, new, tree.root(old), tree.root(new), proof), (old, new)
                if 0 < old < new:
                    assert not merkle.consistent(old, new, tree.root(old), tree.root(new - 1), proof)

    def test_edge_sizes(self) -> None:
        r3, r4 = VECTOR_ROOTS[2], VECTOR_ROOTS[3]
        assert merkle.consistent(0, 5, b"x" * 32, VECTOR_ROOTS[4], [])
        assert not merkle.consistent(0, 5, b"x" * 32, VECTOR_ROOTS[4], [r3])
        assert merkle.consistent(3, 3, r3, r3, [])
        assert not merkle.consistent(3, 3, r3, r4, [])
        assert not merkle.consistent(4, 3, r4, r3, [])


def test_range_proofs_for_every_range_of_every_tree_up_to_40_leaves() -> None:
    leaves = [leaf(f"line {i}".encode()) for i in range(40)]
    for size in range(1, 41):
        tree = NaiveTree(leaves[:size])
        root = tree.root()
        for first in range(size):
            for end in range(first + 1, size + 1):
                proof = tree.range_proof(first, end, size)
                assert merkle.range_root(first, end, size, leaves.__getitem__, proof) == root
                if proof:
                    assert merkle.range_root(first, end, size, leaves.__getitem__, proof[:-1]) is None
                    assert merkle.range_root(first, end, size, leaves.__getitem__, [*proof, root]) is None
                    if proof != proof[::-1]:
                        assert merkle.range_root(first, end, size, leaves.__getitem__, proof[::-1]) != root
                    edited = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
                    assert merkle.range_root(first, end, size, leaves.__getitem__, edited) != root
    # A single position's proof holds the audit path's hashes (RFC 6962), in left-to-right order.
    tree = NaiveTree(leaves[:7])
    assert tree.range_proof(2, 3, 7) == [tree.mth(0, 2), tree.mth(3, 4), tree.mth(4, 7)]


# --- the package stands alone ------------------------------------------------------------------------

def test_spec_verifier_imports_only_the_standard_library_and_itself() -> None:
    package = Path(spec_verifier.__file__).parent
    imported: set[str] = set()
    for path in package.glob("*.py"):
        for item in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(item, ast.ImportFrom) and item.module:
                imported.add(item.module.split(".")[0])
            elif isinstance(item, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in item.names)
    assert "audit_core" not in imported
    assert imported - {"spec_verifier"} <= set(sys.stdlib_module_names), imported


# --- bundles from real trails ------------------------------------------------------------------------

def write_trail(base: Path, records: int = 30, *, witness: bool = True, start: int = T0) -> Path:
    """A signed trail of ``records`` records, one every STEP ns of ts_recorded from ``start``."""
    now = [start]
    os.environ[ENV] = base64.b64encode(SEED).decode()
    config = AuditConfig(base_path=base / "trail", trader_id="T1", stream_id="main", sync_writes=False,
                         signing_key_env=ENV, witness_path=(base / "witness") if witness else None)
    try:
        emitter = AuditEventEmitter(config, clock=lambda: now[0])
    finally:
        os.environ.pop(ENV, None)
    with emitter:
        for i in range(records):
            now[0] = start + i * STEP
            if i % 3 == 0:
                emitter.emit_param_change("risk", "max_position" if i % 2 else "risk_multiplier", i, i + 1,
                                          "review", ts_event=now[0])
            else:
                emitter.emit_signal("particles", "momentum", 0.5, 0.9, instrument_id="EURUSD.SIM", ts_event=now[0])
    return base / "trail"


def checkpoint_of(trail: Path) -> str:
    return (trail / "hot" / "audit.T1.main.stream-checkpoint").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_trail(tmp_path_factory.mktemp("trail"))


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return write_trusted_keys(tmp_path / "keys.json", [key_entry(PUBLIC)])


def make_bundle(trail: Path, out: Path, start_ns: int, end_ns: int, *, redact: tuple[int, ...] = (),
                redacted: bool | None = None, witness: tuple[str, list[bytes]] | None = None,
                bounds: tuple[int, int] | None = None, **filters: Any) -> Path:
    lines = stream_lines(trail / "hot", "T1", "main")
    note = checkpoint_of(trail)
    size = int(note.split("\n")[1])
    first, end = bounds or window_range(lines, start_ns, end_ns, size)
    item, data = stream_entry("ledgerline/T1/main", note, lines, first, end, redact=redact, witness=witness)
    index = bundle_index([item], start_ns, end_ns, redacted=bool(redact) if redacted is None else redacted,
                         keys=[key_entry(PUBLIC)], **filters)
    return write_bundle(out, index, {item["lines"]: data})


def window(i: int, j: int) -> tuple[int, int]:
    """The window holding records i..j-1 of a trail written by write_trail."""
    return T0 + i * STEP, T0 + j * STEP


def reasons(report: dict[str, Any]) -> set[str]:
    return {failure["reason"] for failure in report["failures"]}


class TestValidBundles:
    def test_a_complete_bundle_verifies_with_its_counts(self, trail: Path, tmp_path: Path, keys_file: Path) -> None:
        bundle = make_bundle(trail, tmp_path / "b.bundle", *window(10, 20))
        report = spec_verifier.verify_bundle(bundle, trusted_keys_path=keys_file)
        assert report["failures"] == []
        assert report["claim"] == "complete"
        (stream,) = report["streams"]
        assert stream == {"origin": "ledgerline/T1/main", "N": 30, "first": 9, "end": 21, "in_window": 10,
                          "matching": 10, "redacted": 0, "torn": 0, "key_id": key_entry(PUBLIC)["key_id"],
                          "trusted": True, "witnessed_size": None}

    def test_filters_count_matching_records(self, trail: Path, tmp_path: Path, keys_file: Path) -> None:
        bundle = make_bundle(trail, tmp_path / "b.bundle", *window(0, 30), event_types=["param.*"],
                             params=["max_position"])
        report = spec_verifier.verify_bundle(bundle, trusted_keys_path=keys_file)
        assert report["claim"] == "complete"
        expected = sum(1 for i in range(30) if i % 3 == 0 and i % 2)  # param changes of max_position
        assert report["streams"][0]["matching"] == expected
        assert report["streams"][0]["in_window"] == 30
        assert report["streams"][0]["first"] == 0

    def test_a_window_past_the_checkpoint_is_covered_up_to_it(self, trail: Path, tmp_path: Path,
                                                              keys_file: Path) -> None:
        bundle = make_bundle(trail, tmp_path / "b.bundle", *window(25, 40))
        report = spec_verifier.check_bundle(bundle, trusted_keys_path=keys_file)
        assert report.claim == "complete"
        assert report.to_dict()["streams"][0]["end"] == 30
        assert any("covered only up to position 29" in note for note in report.notes)

    def test_one_public_key_or_none(self, trail: Path, tmp_path: Path) -> None:
        bundle = make_bundle(trail, tmp_path / "b.bundle", *window(10, 20))
        pem = PRIVATE.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
        for given in (base64.b64encode(PUBLIC).decode(), pem):
            assert spec_verifier.verify_bundle(bundle, public_key_b64=given)["claim"] == "complete"
        unauthenticated = spec_verifier.verify_bundle(bundle)
        assert unauthenticated["claim"] == "unauthenticated"
        assert unauthenticated["streams"][0]["trusted"] is False

    def test_redacted_positions_inside_the_window(self, trail: Path, tmp_path: Path, keys_file: Path) -> None:
        bundle = make_bundle(trail, tmp_path / "b.bundle", *window(10, 20), redact=(12, 15))
        report = spec_verifier.verify_bundle(bundle, trusted_keys_path=keys_file)
        assert report["claim"] == "complete-redacted"
        assert report["streams"][0]["redacted"] == 2
        assert report["streams"][0]["in_window"] == 10  # records in the window plus redacted positions
        assert report["streams"][0]["matching"] == 8

    def test_a_witness_that_saw_the_stream_grow(self, tmp_path: Path, keys_file: Path) -> None:
        trail = write_trail(tmp_path, 20)
        old_note, old_lines = checkpoint_of(trail), stream_lines(trail / "hot", "T1", "main")
        write_trail(tmp_path, 13, start=T0 + 20 * STEP)  # reopens the stream and appends
        lines = stream_lines(trail / "hot", "T1", "main")
        assert lines[:len(old_lines)] == old_lines
        witness_note = (tmp_path / "witness" / "T1.main.checkpoint").read_text(encoding="utf-8")
        size = int(witness_note.split("\n")[1])
        assert size > 20
        proof = NaiveTree([leaf(line) for line in lines[:size]]).consistency_proof(20, size)
        item, data = stream_entry("ledgerline/T1/main", old_note, lines, 4, 12, witness=(witness_note, proof))
        index = bundle_index([item], *window(5, 11), keys=[key_entry(PUBLIC)])
        bundle = write_bundle(tmp_path / "b.bundle", index, {item["lines"]: data})
        report = spec_verifier.verify_bundle(bundle, trusted_keys_path=keys_file)
        assert report["claim"] == "complete", report["failures"]
        assert report["streams"][0]["witnessed_size"] == size
        # A proof that does not link the two trees.
        broken = tampered(bundle, tmp_path / "c.bundle",
                          lambda index, _: index["streams"][0]["witness"]["consistency_proof"].reverse())
        assert reasons(spec_verifier.verify_bundle(broken, trusted_keys_path=keys_file)) == {"consistency_invalid"}


def _edit_line(entries: dict[str, bytes], index: int, old: bytes, new: bytes) -> None:
    (name,) = entries
    lines = entries[name].split(b"\n")
    assert old in lines[index]
    lines[index] = lines[index].replace(old, new, 1)
    entries[name] = b"\n".join(lines)


def _drop_line(index: dict[str, Any], entries: dict[str, bytes], at: int) -> None:
    (name,) = entries
    lines = entries[name].split(b"\n")
    del lines[at]
    entries[name] = b"\n".join(lines)
    index["streams"][0]["end"] -= 1


def _redact(index: dict[str, Any], entries: dict[str, bytes], at: int) -> None:
    """Give the ``at``-th line of the range as its (true) leaf hash, leaving the bundle's ``redacted`` flag alone."""
    (name,) = entries
    lines = entries[name].split(b"\n")
    stream = index["streams"][0]
    stream["redacted"][str(stream["first"] + at)] = leaf(lines.pop(at)).hex()
    entries[name] = b"\n".join(lines)


class TestTampering:
    """Every tampering fails with its reason code (and the bundle is never accepted)."""

    @pytest.fixture
    def bundle(self, trail: Path, tmp_path: Path) -> Path:
        return make_bundle(trail, tmp_path / "good.bundle", *window(10, 20))

    CASES = {
        "record edit": (lambda i, e: _edit_line(e, 4, b'"momentum"', b'"reversal"'),
                        {"range_proof_invalid", "checksum_mismatch"}),
        "dropped record": (lambda i, e: _drop_line(i, e, 4), {"range_proof_invalid", "chain_broken"}),
        "proof edit": (lambda i, e: i["streams"][0]["range_proof"].__setitem__(0, "0" * 64),
                       {"range_proof_invalid"}),
        "proof hash removed": (lambda i, e: i["streams"][0]["range_proof"].pop(), {"range_proof_invalid"}),
        "redaction in a non-redacted bundle": (lambda i, e: _redact(i, e, 5), {"redaction_not_allowed"}),
        "signature flipped": (lambda i, e: i["streams"][0].__setitem__(
            "checkpoint", flip_signature(i["streams"][0]["checkpoint"])), {"signature_invalid"}),
        "garbage checkpoint": (lambda i, e: i["streams"][0].__setitem__("checkpoint", "hello\n"),
                               {"checkpoint_malformed"}),
        "checkpoint of another origin": (lambda i, e: i["streams"][0].__setitem__(
            "checkpoint", i["streams"][0]["checkpoint"].replace("ledgerline/T1/main", "ledgerline/T2/main")),
            {"checkpoint_malformed"}),
    }

    @pytest.mark.parametrize("case", sorted(CASES))
    def test_tampering_is_named(self, bundle: Path, tmp_path: Path, keys_file: Path, case: str) -> None:
        change, expected = self.CASES[case]
        bad = tampered(bundle, tmp_path / "bad.bundle", change)
        report = spec_verifier.verify_bundle(bad, trusted_keys_path=keys_file)
        assert report["claim"] == "invalid"
        assert reasons(report) <= expected and reasons(report), (reasons(report), expected)

    def test_checkpoint_swapped_for_one_signed_by_another_key(self, bundle: Path, tmp_path: Path,
                                                              keys_file: Path) -> None:
        other = Ed25519PrivateKey.generate()
        index, _ = read_zip(bundle)
        note = index["streams"][0]["checkpoint"]
        forged = sign_note(note.split("\n\n")[0] + "\n", other)
        bad = tampered(bundle, tmp_path / "bad.bundle",
                       lambda i, e: i["streams"][0].__setitem__("checkpoint", forged))
        assert reasons(spec_verifier.verify_bundle(bad, trusted_keys_path=keys_file)) == {"key_untrusted"}
        # Re-signed with the bundle's key list changed too: still only "unauthenticated" without trusted keys.
        both = tampered(bad, tmp_path / "both.bundle",
                        lambda i, e: i.__setitem__("keys", [key_entry(raw_public(other))]))
        assert spec_verifier.verify_bundle(both)["claim"] == "unauthenticated"

    def test_checkpoint_swapped_for_an_older_one_of_the_same_stream(self, tmp_path: Path, keys_file: Path) -> None:
        trail = write_trail(tmp_path, 20)
        old_note = checkpoint_of(trail)
        write_trail(tmp_path, 10, start=T0 + 20 * STEP)
        bundle = make_bundle(trail, tmp_path / "b.bundle", *window(5, 10))
        bad = tampered(bundle, tmp_path / "bad.bundle",
                       lambda i, e: i["streams"][0].__setitem__("checkpoint", old_note))
        assert reasons(spec_verifier.verify_bundle(bad, trusted_keys_path=keys_file)) == {"range_proof_invalid"}

    def test_boundary_removed(self, trail: Path, tmp_path: Path, keys_file: Path) -> None:
        # A consistent range proof for 10..20 that leaves out the record before the window (9).
        bundle = make_bundle(trail, tmp_path / "b.bundle", *window(10, 20), bounds=(10, 21))
        report = spec_verifier.verify_bundle(bundle, trusted_keys_path=keys_file)
        assert {(f["reason"], f["position"]) for f in report["failures"]} == {("boundary_unproven", 10)}
        right = make_bundle(trail, tmp_path / "r.bundle", *window(10, 20), bounds=(9, 20))
        report = spec_verifier.verify_bundle(right, trusted_keys_path=keys_file)
        assert {(f["reason"], f["position"]) for f in report["failures"]} == {("boundary_unproven", 19)}

    def test_redacted_edges_and_positions_outside_the_window(self, trail: Path, tmp_path: Path,
                                                            keys_file: Path) -> None:
        edge = make_bundle(trail, tmp_path / "e.bundle", *window(10, 20), redact=(9,))
        assert {(f["reason"], f["position"]) for f in spec_verifier.verify_bundle(
            edge, trusted_keys_path=keys_file)["failures"]} == {("redaction_not_allowed", 9)}
        # The range 5..21 with a window 10..20: position 7 is a record before the window.
        outside = make_bundle(trail, tmp_path / "o.bundle", *window(10, 20), redact=(7,), bounds=(5, 21))
        assert {(f["reason"], f["position"]) for f in spec_verifier.verify_bundle(
            outside, trusted_keys_path=keys_file)["failures"]} == {("redaction_not_allowed", 7)}

    def test_keys_outside_their_window_or_role(self, bundle: Path, tmp_path: Path) -> None:
        past = write_trusted_keys(tmp_path / "past.json", [key_entry(PUBLIC, not_before_ns=1, not_after_ns=2)])
        assert reasons(spec_verifier.verify_bundle(bundle, trusted_keys_path=past)) == {"key_outside_window"}
        converter = write_trusted_keys(tmp_path / "conv.json", [key_entry(PUBLIC, roles=["converter"])])
        assert reasons(spec_verifier.verify_bundle(bundle, trusted_keys_path=converter)) == {"key_untrusted"}
        other = write_trusted_keys(tmp_path / "other.json",
                                   [key_entry(raw_public(Ed25519PrivateKey.generate()))])
        assert reasons(spec_verifier.verify_bundle(bundle, trusted_keys_path=other)) == {"key_untrusted"}


class TestTrustedKeysFile:
    """Section 6: every malformation of the auditor's file is a KeyFileError naming the field and value."""

    GOOD = key_entry(PUBLIC)

    @pytest.mark.parametrize(("document", "field"), [
        ({"format": "ledgerline-trusted-keys/2", "keys": [GOOD]}, "format"),
        ({"format": "ledgerline-trusted-keys/1", "keys": []}, "empty"),
        ({"format": "ledgerline-trusted-keys/1", "keys": [GOOD], "extra": 1}, "fields"),
        ({"format": "ledgerline-trusted-keys/1", "keys": [GOOD, GOOD]}, "twice"),
        ({"format": "ledgerline-trusted-keys/1", "keys": [{**GOOD, "not_after": 5}]}, "not_after"),
        ({"format": "ledgerline-trusted-keys/1", "keys": [{**GOOD, "comment": 5}]}, "comment"),
        ({"format": "ledgerline-trusted-keys/1", "keys": [{**GOOD, "not_before_ns": 5, "not_after_ns": 5}]},
         "not_after_ns 5"),
        ({"format": "ledgerline-trusted-keys/1", "keys": [{**GOOD, "not_after_ns": 2**63}]}, "not_after_ns"),
        ({"format": "ledgerline-trusted-keys/1", "keys": [{**GOOD, "not_before_ns": "1"}]}, "not_before_ns"),
        ({"format": "ledgerline-trusted-keys/1", "keys": [{**GOOD, "not_before_ns": True}]}, "not_before_ns"),
        ({"format": "ledgerline-trusted-keys/1", "keys": [{**GOOD, "roles": []}]}, "roles"),
        ({"format": "ledgerline-trusted-keys/1", "keys": [{**GOOD, "roles": ["auditor"]}]}, "roles"),
        ({"format": "ledgerline-trusted-keys/1", "keys": [{**GOOD, "key_id": "0" * 16}]}, "key_id"),
        ({"format": "ledgerline-trusted-keys/1", "keys": [{**GOOD, "public_key": "AAAA"}]}, "public_key"),
        ([], "format"),
    ])
    def test_malformed_files_are_refused_naming_the_field(self, tmp_path: Path, document: Any, field: str) -> None:
        path = tmp_path / "keys.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        with pytest.raises(spec_verifier.KeyFileError, match=field):
            spec_verifier.verify_bundle(tmp_path / "absent.bundle", trusted_keys_path=path)

    def test_a_comment_is_allowed_and_size_and_kind_of_file_are_bounded(self, tmp_path: Path) -> None:
        from spec_verifier.keys import load_trusted_keys

        good = write_trusted_keys(tmp_path / "k.json", [{**self.GOOD, "comment": "writer, 2026"}])
        assert [key.key_id for key in load_trusted_keys(good)] == [self.GOOD["key_id"]]
        big = tmp_path / "big.json"
        big.write_bytes(good.read_bytes()[:-1] + b" " * 2**20 + b"}")
        with pytest.raises(spec_verifier.KeyFileError, match="larger than"):
            load_trusted_keys(big)
        with pytest.raises(spec_verifier.KeyFileError, match="not a regular file"):
            load_trusted_keys(tmp_path)
        (tmp_path / "bad.json").write_bytes(b"\xff")
        with pytest.raises(spec_verifier.KeyFileError, match="UTF-8"):
            load_trusted_keys(tmp_path / "bad.json")


# --- hand-made streams: chain, checksums, torn lines, old formats ------------------------------------

class TestHandMadeStreams:
    def test_chain_checksum_and_clock_rules_are_each_named_at_their_position(self, tmp_path: Path,
                                                                             keys_file: Path) -> None:
        lines = chain(8)
        lines[3] = record(3, json.loads(lines[2])["checksum"], T0 + 3 * STEP, extra_field=1)  # fine by itself
        lines[4] = record(7, json.loads(lines[3])["checksum"], T0 + 4 * STEP)  # a sequence gap
        lines[5] = record(5, json.loads(lines[4])["checksum"], T0)  # recorded before the record before it
        lines[6] = lines[6].replace(b'"x"', b'"y"')  # checksum no longer matches
        bundle = hand_bundle(tmp_path / "b.bundle", lines, 0, 8, T0, T0 + 100 * STEP)
        report = spec_verifier.verify_bundle(bundle, trusted_keys_path=keys_file)
        assert {(f["reason"], f["position"]) for f in report["failures"]} == {
            ("chain_broken", 4), ("chain_broken", 5), ("ts_recorded_backwards", 5), ("chain_broken", 6),
            ("checksum_mismatch", 6)}

    def test_a_torn_line_is_counted_not_matched(self, tmp_path: Path, keys_file: Path) -> None:
        lines = chain(5)
        lines.insert(3, b'{"ts_event":1,"event_ty')
        bundle = hand_bundle(tmp_path / "b.bundle", lines, 0, 6, T0, T0 + 100 * STEP)
        report = spec_verifier.verify_bundle(bundle, trusted_keys_path=keys_file)
        assert report["claim"] == "complete"
        assert (report["streams"][0]["torn"], report["streams"][0]["matching"]) == (1, 5)

    def test_records_without_ts_recorded_give_positions_only(self, tmp_path: Path, keys_file: Path) -> None:
        lines = chain(5, [None, None, T0, T0, T0])
        bundle = hand_bundle(tmp_path / "b.bundle", lines, 0, 5, T0, T0 + 1)
        report = spec_verifier.check_bundle(bundle, trusted_keys_path=keys_file)
        assert report.claim == "positions-only"
        assert any("completeness by time not established" in note for note in report.notes)

    def test_signing_time_against_the_key_window(self, tmp_path: Path) -> None:
        lines = chain(3)
        inside = write_trusted_keys(tmp_path / "k.json", [key_entry(PUBLIC, not_before_ns=T0, not_after_ns=T0 + 1)])
        signed = hand_bundle(tmp_path / "a.bundle", lines, 0, 3, T0, T0 + STEP * 9, signed_at=T0)
        assert spec_verifier.verify_bundle(signed, trusted_keys_path=inside)["claim"] == "complete"
        late = hand_bundle(tmp_path / "b.bundle", lines, 0, 3, T0, T0 + STEP * 9, signed_at=T0 + 1)
        assert reasons(spec_verifier.verify_bundle(late, trusted_keys_path=inside)) == {"key_outside_window"}
        unknown = hand_bundle(tmp_path / "c.bundle", lines, 0, 3, T0, T0 + STEP * 9, signed_at=None)
        assert reasons(spec_verifier.verify_bundle(unknown, trusted_keys_path=inside)) == {"key_outside_window"}


    def test_ts_recorded_may_not_fall_below_any_earlier_record_of_the_range(self, tmp_path: Path,
                                                                             keys_file: Path) -> None:
        lines = chain(6, [T0, T0 + 5, None, T0 + 1, T0 + 6, T0 + 6])  # position 3 is below position 1
        report = spec_verifier.verify_bundle(hand_bundle(tmp_path / "b.bundle", lines, 0, 6, T0, T0 + 100),
                                             trusted_keys_path=keys_file)
        assert {(f["reason"], f["position"]) for f in report["failures"]} == {("ts_recorded_backwards", 3)}

    def test_what_makes_a_line_a_record(self, tmp_path: Path, keys_file: Path) -> None:
        lines = chain(3)
        not_records = [
            lines[1][:-1] + b',"zz":1}',  # checksum not the last field
            lines[1].replace(b'"sequence":1', b'"sequence":"1"'),
            lines[1].replace(b'"ts_recorded":', b'"ts_recorded":"').replace(b',"param_name"', b'","param_name"'),
            lines[1].replace(b'"source":"risk"', b'"source":"risk","source":"risk"'),
            b"[1, 2]", b"\xff\xfe",
            # valid JSON, right types, but not section 1's layout
            lines[1].replace(b'"ts_recorded":', b'"ts_recorded": '), lines[1].replace(b'"format":3', b'"format":2'),
            lines[1].replace(b'"checksum":"', b'"checksum": "'), lines[1].replace(b'"prev_hash":"', b'"prev_hash":"a'),
        ]
        for bad in not_records:
            bundle = hand_bundle(tmp_path / "b.bundle", [lines[0], bad, lines[2]], 0, 3, T0, T0 + 100 * STEP)
            report = spec_verifier.verify_bundle(bundle, trusted_keys_path=keys_file)
            assert report["streams"][0]["torn"] == 1, bad
            assert report["claim"] == "complete", (bad, report["failures"])
        # correlation_id is not needed (section 7 lists what a record needs).
        plain = record(0, "0" * 64, T0).replace(b',"correlation_id":null', b"")
        body = plain.rsplit(b',"checksum"', 1)[0] + b"}"
        plain = body[:-1] + b',"checksum":"' + hashlib.sha256(body).hexdigest().encode() + b'"}'
        report = spec_verifier.verify_bundle(hand_bundle(tmp_path / "p.bundle", [plain], 0, 1, T0, T0 + 1),
                                             trusted_keys_path=keys_file)
        assert (report["claim"], report["streams"][0]["torn"]) == ("complete", 0)


class TestCheckpointNotes:
    def test_other_signature_lines_are_ignored_but_ours_must_be_exactly_one(self, tmp_path: Path,
                                                                            keys_file: Path) -> None:
        cosigned = lambda text: sign_note(text) + "\u2014 witness.example AAAAAAAAAAAA\n"  # noqa: E731
        report = spec_verifier.verify_bundle(hand_bundle(tmp_path / "a.bundle", chain(3), 0, 3, T0, T0 + 9 * STEP,
                                                         note=cosigned), trusted_keys_path=keys_file)
        assert report["claim"] == "complete"
        twice = lambda text: sign_note(text) + sign_note(text).split("\n\n")[1]  # noqa: E731
        for note in (twice, lambda text: text + "\n\u2014 other AAAAAAAA\n", lambda text: text + "\n"):
            report = spec_verifier.verify_bundle(hand_bundle(tmp_path / "b.bundle", chain(3), 0, 3, T0,
                                                             T0 + 9 * STEP, note=note), trusted_keys_path=keys_file)
            assert reasons(report) == {"checkpoint_malformed"}
            stream = report["streams"][0]
            assert (stream["N"], stream["first"], stream["end"], stream["in_window"]) == (None, None, None, 0)

    @pytest.mark.parametrize("text", [
        "ledgerline/T9/s\n3\n{root}\nsigned-at 01\n", "ledgerline/T9/s\n03\n{root}\n",
        "ledgerline/T9/s\n3\n{root}\nother extension\n", "ledgerline/T9/s\n3\n{root}=\n",
        "ledgerline/T9\n3\n{root}\n", "ledgerline/T9/s\n3\n"])
    def test_malformed_note_texts(self, tmp_path: Path, keys_file: Path, text: str) -> None:
        lines = chain(3)
        root = base64.b64encode(NaiveTree([leaf(line) for line in lines]).root()).decode()
        item, data = stream_entry("ledgerline/T9/s", sign_note(text.format(root=root)), lines, 0, 3)
        item["range_proof"] = []
        bundle = write_bundle(tmp_path / "b.bundle", bundle_index([item], T0, T0 + 1), {item["lines"]: data})
        assert reasons(spec_verifier.verify_bundle(bundle, trusted_keys_path=keys_file)) == {"checkpoint_malformed"}

    def test_hmac_and_unsigned_notes(self, tmp_path: Path, keys_file: Path) -> None:
        lines = chain(3)
        hmac_bundle = hand_bundle(tmp_path / "h.bundle", lines, 0, 3, T0, T0 + 9 * STEP, note=hmac_note)
        with_key = spec_verifier.verify_bundle(hmac_bundle, hmac_key=b"trail-key")
        assert (with_key["claim"], with_key["streams"][0]["key_id"]) == ("complete", None)
        assert spec_verifier.verify_bundle(hmac_bundle, trusted_keys_path=keys_file)["claim"] == "unauthenticated"
        assert reasons(spec_verifier.verify_bundle(hmac_bundle, hmac_key=b"other")) == {"signature_invalid"}
        unsigned = hand_bundle(tmp_path / "u.bundle", lines, 0, 3, T0, T0 + 9 * STEP, note=unsigned_note)
        assert spec_verifier.verify_bundle(unsigned, trusted_keys_path=keys_file)["claim"] == "unauthenticated"
        forged = tampered(unsigned, tmp_path / "f.bundle", lambda i, e: i["streams"][0].__setitem__(
            "checkpoint", i["streams"][0]["checkpoint"].replace("signed-at 1", "signed-at 2")))
        assert reasons(spec_verifier.verify_bundle(forged)) == {"signature_invalid"}

    def test_without_trusted_keys_only_a_bundle_key_with_the_same_id_is_tried(self, tmp_path: Path) -> None:
        bundle = hand_bundle(tmp_path / "a.bundle", chain(3), 0, 3, T0, T0 + 9 * STEP)
        report = spec_verifier.verify_bundle(bundle)
        assert (report["claim"], report["streams"][0]["key_id"], report["streams"][0]["trusted"]) == (
            "unauthenticated", None, False)
        flipped = tampered(bundle, tmp_path / "b.bundle", lambda i, e: i["streams"][0].__setitem__(
            "checkpoint", flip_signature(i["streams"][0]["checkpoint"])))
        assert reasons(spec_verifier.verify_bundle(flipped)) == {"signature_invalid"}
        no_keys = tampered(flipped, tmp_path / "c.bundle", lambda i, e: i.__setitem__("keys", []))
        assert spec_verifier.verify_bundle(no_keys)["claim"] == "unauthenticated"


# --- the container as untrusted input -----------------------------------------------------------------

class TestContainer:
    @pytest.fixture
    def parts(self, trail: Path, tmp_path: Path) -> tuple[bytes, str, bytes]:
        index, entries = read_zip(make_bundle(trail, tmp_path / "b.bundle", *window(10, 20)))
        ((name, data),) = entries.items()
        return json.dumps(index).encode(), name, data

    def malformed(self, path: Path) -> str:
        report = spec_verifier.verify_bundle(path)
        assert report["claim"] == "invalid"
        assert [(f["reason"], f["stream"]) for f in report["failures"]] == [("bundle_malformed", None)]
        return report["failures"][0]["message"]

    @pytest.mark.parametrize("name", ["../evil", "/etc/passwd", "streams/..\\x", "streams/a\0b", "C:/x"])
    def test_zip_slip_names_are_refused(self, parts: tuple[bytes, str, bytes], tmp_path: Path, name: str) -> None:
        index, lines_name, data = parts
        path = write_zip(tmp_path / "z.bundle", [("bundle.json", index), (lines_name, data), (name, b"x")])
        message = self.malformed(path)
        # zipfile cuts a name at its NUL; what is left is still not an allowed name.
        assert ("absolute" if "\0" not in name else "neither") in message

    def test_duplicate_unknown_unreferenced_and_missing_entries(self, parts: tuple[bytes, str, bytes],
                                                               tmp_path: Path) -> None:
        index, name, data = parts
        for entries, message in [
            ([("bundle.json", index), (name, data), (name, data)], "twice"),
            ([("bundle.json", index), ("bundle.json", index), (name, data)], "twice"),
            ([("bundle.json", index), (name, data), ("notes.txt", b"x")], "neither"),
            ([("bundle.json", index), (name, data), ("streams/T2.main.lines", b"")], "not referenced"),
            ([("bundle.json", index)], "not in the archive"),
            ([(name, data)], "no bundle.json"),
        ]:
            assert message in self.malformed(write_zip(tmp_path / "z.bundle", entries))

    @pytest.mark.parametrize("change", [
        lambda i: i.__setitem__("format", "ledgerline-bundle/2"),
        lambda i: i["streams"][0].__setitem__("first", "9"),
        lambda i: i["streams"][0].__setitem__("first", True),
        lambda i: i["streams"][0].__setitem__("checkpoint", None),
        lambda i: i["streams"][0].pop("witness"),
        lambda i: i["streams"][0].__setitem__("comment", "x"),
        lambda i: i.__setitem__("extra", 1),
        lambda i: i["keys"][0].__setitem__("comment", "x"),
        lambda i: i["selection"].__setitem__("end_ns", i["selection"]["start_ns"]),
        lambda i: i["streams"][0].__setitem__("range_proof", ["XYZ"]),
        lambda i: i["streams"][0].__setitem__("redacted", {"x": "00" * 32}),
        lambda i: i["streams"][0].__setitem__("lines", "streams/T2.main.lines"),
        lambda i: i["streams"][0].__setitem__("origin", "ledgerline/../main"),
        lambda i: i["streams"][0].__setitem__("witness", []),
        lambda i: i["selection"].__setitem__("event_types", []),
        lambda i: i["selection"].pop("start_ns"),
        lambda i: i.__setitem__("redacted", "no"),
        lambda i: i.__setitem__("streams", []),
        lambda i: i["streams"].append(dict(i["streams"][0])),
        lambda i: i["keys"][0].__setitem__("key_id", "0" * 16),
    ])
    def test_fields_of_the_wrong_type(self, parts: tuple[bytes, str, bytes], tmp_path: Path, change: Any) -> None:
        raw, name, data = parts
        index = json.loads(raw)
        change(index)
        self.malformed(write_bundle(tmp_path / "z.bundle", index, {name: data}))

    @pytest.mark.parametrize("index", [b"{not json", b'{"format": NaN}', b"\xff\xfe", b"[" * 100_000, b"[]"])
    def test_malformed_json(self, parts: tuple[bytes, str, bytes], tmp_path: Path, index: bytes) -> None:
        _, name, data = parts
        self.malformed(write_zip(tmp_path / "z.bundle", [("bundle.json", index), (name, data)]))

    def test_ranges_and_line_counts_that_do_not_fit(self, parts: tuple[bytes, str, bytes], tmp_path: Path) -> None:
        raw, name, data = parts
        for lines, change in [(data + b"extra\n", None), (data.split(b"\n", 1)[1], None),
                              (data, lambda i: i["streams"][0].__setitem__("end", 9)),
                              (data, lambda i: i["streams"][0].__setitem__("end", 31)),
                              (data, lambda i: i["streams"][0].__setitem__("first", -1)),
                              (data, lambda i: i["streams"][0]["redacted"].__setitem__("40", "00" * 32))]:
            index = json.loads(raw)
            if change:
                change(index)
            report = spec_verifier.verify_bundle(write_bundle(tmp_path / "z.bundle", index, {name: lines}))
            assert [(f["reason"], f["stream"]) for f in report["failures"]] == [
                ("range_proof_invalid", "ledgerline/T1/main")]
            stream = report["streams"][0]
            assert (stream["in_window"], stream["matching"], stream["torn"], stream["redacted"]) == (0, 0, 0, 0)
        # A `.lines` entry whose last line has no newline: malformed, reported for its stream.
        report = spec_verifier.verify_bundle(write_zip(tmp_path / "z.bundle", [("bundle.json", raw),
                                                                                (name, data[:-1])]))
        assert [(f["reason"], f["stream"]) for f in report["failures"]] == [("bundle_malformed", "ledgerline/T1/main")]
        assert report["streams"][0]["in_window"] == 0

    def test_a_repeated_key_is_not_json(self, parts: tuple[bytes, str, bytes], tmp_path: Path) -> None:
        raw, name, data = parts
        doubled = raw.replace(b'"redacted": false', b'"redacted": false, "redacted": false', 1)
        assert doubled != raw
        assert "repeated" in self.malformed(write_zip(tmp_path / "z.bundle", [("bundle.json", doubled), (name, data)]))

    def test_size_limits_declared_and_actual(self, parts: tuple[bytes, str, bytes], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
        index, name, data = parts
        path = write_zip(tmp_path / "z.bundle", [("bundle.json", index), (name, data)])
        monkeypatch.setattr(container, "INDEX_LIMIT", len(index) - 1)
        assert "declares" in self.malformed(path)
        # A lying central directory (the lines entry declares 10 bytes): zipfile stops there and the
        # CRC no longer matches, so a reader never holds more than the declared size.
        monkeypatch.setattr(container, "INDEX_LIMIT", 64 * 2**20)
        raw = bytearray(path.read_bytes())
        at = raw.index(b"PK\x01\x02", raw.index(b"PK\x01\x02") + 4)  # the second central directory header
        raw[at + 24:at + 28] = (10).to_bytes(4, "little")
        path.write_bytes(bytes(raw))
        self.malformed(path)

    def test_other_compression_and_not_a_zip(self, parts: tuple[bytes, str, bytes], tmp_path: Path) -> None:
        index, name, data = parts
        path = tmp_path / "z.bundle"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_BZIP2) as archive:
            archive.writestr("bundle.json", index)
            archive.writestr(name, data)
        assert "compression" in self.malformed(path)
        (tmp_path / "junk.bundle").write_bytes(b"PK\x03\x04" + os.urandom(200))
        self.malformed(tmp_path / "junk.bundle")

    def test_random_corruption_never_raises(self, parts: tuple[bytes, str, bytes], tmp_path: Path,
                                            keys_file: Path) -> None:
        index, name, data = parts
        good = write_zip(tmp_path / "z.bundle", [("bundle.json", index), (name, data)]).read_bytes()
        rng = __import__("random").Random(17)
        for i in range(150):
            corrupt = bytearray(good)
            for _ in range(rng.randint(1, 4)):
                corrupt[rng.randrange(len(corrupt))] = rng.randrange(256)
            path = tmp_path / f"c{i}.bundle"
            path.write_bytes(bytes(corrupt))
            report = spec_verifier.verify_bundle(path, trusted_keys_path=keys_file)
            assert report["claim"] in ("complete", "invalid")


class TestCommandLine:
    def test_exit_codes_and_output(self, trail: Path, tmp_path: Path, keys_file: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
        bundle = make_bundle(trail, tmp_path / "b.bundle", *window(10, 20))
        assert cli_main([str(bundle), "--trusted-keys", str(keys_file)]) == 0
        assert "claim: complete" in capsys.readouterr().out
        assert cli_main([str(bundle), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["claim"] == "unauthenticated"
        bad = tampered(bundle, tmp_path / "bad.bundle", lambda i, e: i["streams"][0]["range_proof"].pop())
        assert cli_main([str(bad), "--trusted-keys", str(keys_file)]) == 1
        assert "FAILED range_proof_invalid" in capsys.readouterr().out
        (tmp_path / "bad-keys.json").write_text('{"format": "ledgerline-trusted-keys/1", "keys": [{"key_id": 1}]}')
        assert cli_main([str(bundle), "--trusted-keys", str(tmp_path / "bad-keys.json")]) == 2
        assert "key_id" in capsys.readouterr().err

    def test_runs_as_a_module_in_a_fresh_directory_without_audit_core(self, trail: Path, tmp_path: Path) -> None:
        bundle = make_bundle(trail, tmp_path / "case.bundle", *window(10, 20))
        pub = tmp_path / "writer.pub"
        pub.write_bytes(PRIVATE.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
        code = ("import sys; sys.path.insert(0, sys.argv[1]); from spec_verifier.__main__ import main;"
                "status = main(sys.argv[2:]); loaded = {'audit_core', 'cryptography'} & set(sys.modules);"
                "print('loaded', sorted(loaded)); sys.exit(status)")
        result = subprocess.run([sys.executable, "-I", "-c", code, str(ROOT), str(bundle), "--public-key", str(pub)],
                                capture_output=True, text=True, cwd=tmp_path, env={"PATH": os.environ["PATH"]})
        assert result.returncode == 0, result.stderr
        assert "claim: complete" in result.stdout
        assert "loaded []" in result.stdout
