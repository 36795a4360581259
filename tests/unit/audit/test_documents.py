"""Authenticated JSON documents: one checksum and signature rule, with the seal bytes of before."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit_core.trust.documents import (
    ProblemKind,
    authenticate,
    canonical_bytes,
    check_document,
    keyed_digest,
    signed_bytes,
)
from audit_core.trust.seals import seal_signed_bytes

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
SEAL = {
    "format": "ledgerline-seal/1", "file": "audit.T1.main.2026-01-01.0000.jsonl", "stream": "T1.main",
    "records": 2, "file_size": 600, "first_sequence": 0, "last_sequence": 1, "first_hash": "a" * 64,
    "last_hash": "b" * 64, "file_sha256": "c" * 64, "merkle_root": "d" * 64, "next_file": None,
    "sealed_at_ns": 1767225600000000000, "note": "caf\u00e9",
}


class TestSealVectors:
    """Computed with integrity._canonical_seal and signing.sign_seal before they became documents.py:
    existing trails keep verifying only if these stay equal."""

    def test_unkeyed_checksum(self):
        doc = authenticate(SEAL, "seal_checksum")
        assert doc["seal_checksum"] == "a89a9fa8ce12fb6f3e69ac797a7d9a81cf5fc679986d03c7d5a9582952ee670f"

    def test_keyed_checksum(self):
        doc = authenticate(SEAL, "seal_checksum", b"k3y")
        assert doc["seal_checksum"] == "89b65ccce3226f323e1a9b2865f23af60107ab516ccda0d3e6272cca41cd5c04"

    def test_signed_and_keyed(self):
        doc = authenticate(SEAL, "seal_checksum", b"k3y", KEY)
        assert doc["signature"] == {
            "alg": "ed25519", "key_id": "56475aa75463474c",
            "sig": "MESotihv5qrxa0OXW7r1MQ/+8FpbB6M7wdPX7bylgjcE237yg6Z2rII80eC9dqcabFu2tdN6Uu30JNSTtoIkDA==",
        }
        assert doc["seal_checksum"] == "49eb1adbccba15d9f7302d5cd7849a658de2de47ee92eed845afa9b6d9dc1a75"
        assert list(doc)[-2:] == ["signature", "seal_checksum"]  # field order on disk is unchanged too
        assert seal_signed_bytes(doc) == signed_bytes(doc, "seal_checksum")


class TestCanonicalBytes:
    def test_compact_sorted_ascii_without_excluded_fields(self):
        assert canonical_bytes({"b": 1, "a": "\u00e9", "x": 0}, ["x"]) == b'{"a":"\\u00e9","b":1}'

    def test_keyed_digest_is_sha256_or_hmac(self):
        assert keyed_digest(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        assert keyed_digest(b"", b"k") != keyed_digest(b"")
        # RFC 4231 test case 2: HMAC-SHA-256 with key "Jefe".
        assert keyed_digest(b"what do ya want for nothing?", b"Jefe") == (
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


class TestCheckDocument:
    def test_an_authentic_document_has_no_problems(self):
        doc = authenticate({"plan_id": "p", "status": "done"}, "journal_checksum", b"k", KEY)
        assert check_document(doc, "journal_checksum", b"k", KEY.public_key()) == []

    @pytest.mark.parametrize("edit", [
        lambda d: d.update(status="planned"),
        lambda d: d.update(extra=["../precious"]),
        lambda d: d.pop("status"),
        lambda d: d.update(journal_checksum="0" * 64),
        lambda d: d.pop("journal_checksum"),
    ])
    def test_any_edit_breaks_the_keyed_checksum(self, edit):
        doc = authenticate({"plan_id": "p", "status": "done"}, "journal_checksum", b"k")
        edit(doc)
        [problem] = check_document(doc, "journal_checksum", b"k", what="retention journal")
        assert problem.kind is ProblemKind.CHECKSUM
        assert "journal_checksum does not match the retention journal's contents" in str(problem)

    def test_a_recomputed_checksum_does_not_fix_an_edited_signed_document(self):
        doc = authenticate({"status": "done"}, "c", None, KEY)
        doc["status"] = "planned"
        doc = {**doc, "c": keyed_digest(canonical_bytes(doc, ["c"]))}  # what an attacker without the key can do
        [problem] = check_document(doc, "c", None, KEY.public_key(), what="journal")
        assert problem.kind is ProblemKind.SIGNATURE_INVALID
        assert "journal's Ed25519 signature" in problem.detail

    def test_a_stripped_signature_is_missing_with_a_public_key(self):
        doc = authenticate({"status": "done"}, "c", None)
        [problem] = check_document(doc, "c", None, KEY.public_key())
        assert problem.kind is ProblemKind.SIGNATURE_MISSING

    def test_a_wrong_hmac_key_fails(self):
        doc = authenticate({"status": "done"}, "c", b"right")
        assert [p.kind for p in check_document(doc, "c", b"wrong")] == [ProblemKind.CHECKSUM]
        assert [p.kind for p in check_document(doc, "c", None)] == [ProblemKind.CHECKSUM]
