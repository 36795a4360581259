"""The stream tree: RFC 9162 consistency proofs, against published vectors and a naive implementation."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest

from audit_core.errors import AuditFormatError, AuditIntegrityError
from audit_core.trust.merkle import merkle_leaf_hash, merkle_node_hash
from audit_core.trust.stream_tree import (
    MemoryLeaves,
    StreamTree,
    make_note,
    read_note,
    verify_consistency,
)

# transparency-dev/merkle proof/verify_test.go: leaf inputs, the roots of the trees of 1..8 of them,
# and consistency proofs between some of those sizes.
VECTOR_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
VECTOR_ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
VECTOR_PROOFS = {
    (1, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (6, 8): ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
    (2, 5): ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"],
    (6, 7): ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
}


def naive_mth(leaves: Sequence[bytes]) -> bytes:
    """MTH of RFC 6962 section 2.1, written straight from the definition."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return merkle_node_hash(naive_mth(leaves[:k]), naive_mth(leaves[k:]))


def naive_proof(m: int, leaves: Sequence[bytes], whole: bool = True) -> list[bytes]:
    """SUBPROOF of RFC 9162 section 2.1.4.1, straight from the definition."""
    n = len(leaves)
    if m == n:
        return [] if whole else [naive_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*naive_proof(m, leaves[:k], whole), naive_mth(leaves[k:])]
    return [*naive_proof(m - k, leaves[k:], False), naive_mth(leaves[:k])]


class TestConsistencyVectors:
    def test_roots_match_the_published_roots(self) -> None:
        tree = StreamTree(MemoryLeaves([merkle_leaf_hash(leaf) for leaf in VECTOR_LEAVES]), 8)
        assert [tree.root(size) for size in range(1, 9)] == VECTOR_ROOTS

    @pytest.mark.parametrize(("old", "new"), sorted(VECTOR_PROOFS))
    def test_proofs_match_and_verify(self, old: int, new: int) -> None:
        tree = StreamTree(MemoryLeaves([merkle_leaf_hash(leaf) for leaf in VECTOR_LEAVES]), 8)
        proof = tree.consistency_proof(old, new)
        assert [node.hex() for node in proof] == VECTOR_PROOFS[(old, new)]
        verify_consistency(old, new, VECTOR_ROOTS[old - 1], VECTOR_ROOTS[new - 1], proof)

    @pytest.mark.parametrize(("old", "new"), sorted(VECTOR_PROOFS))
    def test_every_corruption_of_a_vector_proof_is_refused(self, old: int, new: int) -> None:
        proof = [bytes.fromhex(h) for h in VECTOR_PROOFS[(old, new)]]
        r1, r2 = VECTOR_ROOTS[old - 1], VECTOR_ROOTS[new - 1]
        probes = [
            (old - 1, new, r1, r2, proof), (old + 1, new, r1, r2, proof), (old ^ 2, new, r1, r2, proof),
            (old, new * 2, r1, r2, proof), (old, new // 2, r1, r2, proof),
            (old, new, b"x" * 32, r2, proof), (old, new, r1, b"x" * 32, proof), (old, new, r2, r1, proof),
            (old, new, r1, r2, []), (old, new, r1, r2, [*proof, r1]), (old, new, r1, r2, [r2, *proof]),
            (old, new, r1, r2, [proof[0], *proof]), (old, new, r1, r2, proof[:-1]), (old, new, r1, r2, [*proof, b""]),
        ]
        for index in range(len(proof)):
            flipped = list(proof)
            flipped[index] = bytes([flipped[index][0] ^ 16]) + flipped[index][1:]
            probes.append((old, new, r1, r2, flipped))
        for m, n, a, b, p in probes:
            if (m, n, a, b, p) == (old, new, r1, r2, proof):
                continue
            with pytest.raises(AuditIntegrityError):
                verify_consistency(m, n, a, b, p)

    def test_edge_sizes(self) -> None:
        verify_consistency(0, 5, b"a" * 32, VECTOR_ROOTS[4], [])  # anything extends the empty tree
        verify_consistency(3, 3, VECTOR_ROOTS[2], VECTOR_ROOTS[2], [])
        with pytest.raises(AuditIntegrityError, match="split view"):
            verify_consistency(3, 3, VECTOR_ROOTS[2], VECTOR_ROOTS[3], [])
        with pytest.raises(AuditIntegrityError, match="only grows"):
            verify_consistency(4, 3, VECTOR_ROOTS[3], VECTOR_ROOTS[2], [])


def test_every_proof_up_to_70_leaves_matches_the_naive_definition_and_verifies() -> None:
    leaves = [merkle_leaf_hash(str(i).encode()) for i in range(70)]
    tree = StreamTree(MemoryLeaves(leaves), 70)
    for new in range(1, 71):
        assert tree.root(new) == naive_mth(leaves[:new])
        for old in range(1, new):
            proof = tree.consistency_proof(old, new)
            assert proof == naive_proof(old, leaves[:new])
            verify_consistency(old, new, naive_mth(leaves[:old]), naive_mth(leaves[:new]), proof)


def test_the_cached_tree_agrees_with_the_naive_one_past_the_cache_block() -> None:
    # 256-leaf blocks are cached: sizes around and past 2 and 3 blocks exercise cache and leaves together.
    leaves = [merkle_leaf_hash(str(i).encode()) for i in range(1100)]
    source = MemoryLeaves(leaves[:300])
    tree = StreamTree(source, 300)
    source.items = leaves
    tree.extend_to(1100)
    for old, new in ((255, 256), (256, 513), (300, 1100), (1, 1100), (768, 1024), (1023, 1100)):
        assert tree.root(new) == naive_mth(leaves[:new])
        assert tree.consistency_proof(old, new) == naive_proof(old, leaves[:new])


class TestNotes:
    ROOT = VECTOR_ROOTS[7]

    def test_unsigned_note_round_trips_and_a_changed_size_is_caught(self) -> None:
        note = make_note("ledgerline/T1/main", 8, self.ROOT)
        checkpoint = read_note(note)
        assert checkpoint[:3] == ("T1", "main", 8)
        assert checkpoint.trust == "none"
        with pytest.raises(AuditIntegrityError, match="SHA-256"):
            read_note(note.replace("\n8\n", "\n9\n"))

    def test_hmac_note_needs_the_key(self) -> None:
        note = make_note("ledgerline/T1/main", 8, self.ROOT, hmac_key=b"k1")
        assert read_note(note, hmac_key=b"k1").trust == "hmac"
        with pytest.raises(AuditIntegrityError, match="HMAC"):
            read_note(note, hmac_key=b"other")
        with pytest.raises(AuditIntegrityError, match="HMAC"):
            read_note(make_note("ledgerline/T1/main", 8, self.ROOT), hmac_key=b"k1")  # an unsigned forgery

    def test_ed25519_note_is_a_c2sp_checkpoint(self) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from audit_core.trust.checkpoint import verify_checkpoint

        private = Ed25519PrivateKey.generate()
        public = private.public_key()
        note = make_note("ledgerline/T1/main", 8, self.ROOT, signing_key=private)
        assert verify_checkpoint(note, public).tree_size == 8
        assert read_note(note, public_key=public).trust == "ed25519"
        other = Ed25519PrivateKey.generate().public_key()
        with pytest.raises(AuditIntegrityError):
            read_note(note, public_key=other)

    @pytest.mark.parametrize("origin", ["ledgerline/../x/main", "ledgerline/T1", "other/T1/main", "ledgerline/T1/a/b"])
    def test_origins_that_are_not_streams_are_refused(self, origin: str) -> None:
        with pytest.raises(AuditFormatError, match="not a stream checkpoint"):
            read_note(make_note(origin, 8, self.ROOT))


class TestSignedAt:
    """The ``signed-at`` extension line (docs/format.md section 6) and trusted keys for notes."""

    ROOT = VECTOR_ROOTS[7]
    T0 = 1_767_225_600_000_000_000

    @staticmethod
    def trusted(private: object, **window: object) -> object:
        import base64

        from cryptography.hazmat.primitives import serialization

        from audit_core.trust.keyring import TrustedKeys

        raw = private.public_key().public_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return TrustedKeys.from_entries([{"key_id": hashlib.sha256(raw).hexdigest()[:16],
                                          "public_key": base64.b64encode(raw).decode(), "roles": ["writer"],
                                          "not_before_ns": None, "not_after_ns": None, **window}])

    def test_the_line_is_the_fourth_text_line_and_is_signed(self) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        private = Ed25519PrivateKey.generate()
        note = make_note("ledgerline/T1/main", 8, self.ROOT, signing_key=private, signed_at_ns=self.T0 + 5)
        assert note.split("\n")[3] == f"signed-at {self.T0 + 5}" and note.split("\n")[4] == ""
        checkpoint = read_note(note, public_key=private.public_key())
        assert checkpoint.signed_at_ns == self.T0 + 5 and checkpoint.trust == "ed25519"
        with pytest.raises(AuditIntegrityError, match="does not match its text"):
            read_note(note.replace(f"signed-at {self.T0 + 5}", f"signed-at {self.T0 + 6}"),
                      public_key=private.public_key())  # moving the time breaks the signature

    def test_old_three_line_notes_stay_valid_with_an_unknown_signing_time(self) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from audit_core.errors import KeyTrustError

        private = Ed25519PrivateKey.generate()
        note = make_note("ledgerline/T1/main", 8, self.ROOT, signing_key=private)
        assert len(note.split("\n\n")[0].split("\n")) == 3
        assert read_note(note, trusted_keys=self.trusted(private)).signed_at_ns is None  # unbounded key: fine
        with pytest.raises(KeyTrustError, match="signing time unknown") as caught:
            read_note(note, trusted_keys=self.trusted(private, not_before_ns=self.T0))
        assert caught.value.reason == "key_outside_window"

    def test_trusted_keys_check_role_and_window_and_name_the_key(self) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from audit_core.errors import KeyTrustError
        from audit_core.trust.signing import key_id

        private = Ed25519PrivateKey.generate()
        note = make_note("ledgerline/T1/main", 8, self.ROOT, signing_key=private, signed_at_ns=self.T0)
        inside = read_note(note, trusted_keys=self.trusted(private, not_before_ns=self.T0))
        assert inside.key_id == key_id(private.public_key())
        with pytest.raises(KeyTrustError) as caught:
            read_note(note, trusted_keys=self.trusted(private, not_after_ns=self.T0))
        assert caught.value.reason == "key_outside_window"
        with pytest.raises(KeyTrustError) as caught:
            read_note(note, trusted_keys=self.trusted(private, roles=["converter"]))
        assert caught.value.reason == "key_untrusted"
        with pytest.raises(KeyTrustError) as caught:
            read_note(note, trusted_keys=self.trusted(Ed25519PrivateKey.generate()))
        assert caught.value.reason == "key_untrusted"

    @pytest.mark.parametrize("line", ["signed-at", "signed-at -1", "signed-at 01", "signed-at 1e9", "other 5",
                                      "signed-at 99999999999999999999"])
    def test_a_malformed_fourth_line_is_refused(self, line: str) -> None:
        note = make_note("ledgerline/T1/main", 8, self.ROOT, signed_at_ns=self.T0)
        with pytest.raises(AuditFormatError, match="signed-at"):
            read_note(note.replace(f"signed-at {self.T0}", line))

    def test_unsigned_and_hmac_notes_carry_it_too(self) -> None:
        assert read_note(make_note("ledgerline/T1/main", 8, self.ROOT, signed_at_ns=7)).signed_at_ns == 7
        hmac_note = make_note("ledgerline/T1/main", 8, self.ROOT, hmac_key=b"k", signed_at_ns=7)
        assert read_note(hmac_note, hmac_key=b"k").signed_at_ns == 7
