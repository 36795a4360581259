"""RFC 6962 inclusion proofs: audit paths match the RFC's definition, verify for every record, fail when altered.

The reference ``rfc6962_path`` below is PATH(m, D[n]) of RFC 6962 section 2.1.1 written as the RFC
states it, independently of ``audit_core.trust.merkle``. Real files are written by the emitter, sealed on
close, and every record is proved against the seal's ``merkle_root``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit_core import AuditConfig, AuditEventEmitter, AuditIntegrityError
from audit_core.trust.merkle import (
    HASH_SIZE,
    RFC6962_LEAF_PREFIX,
    RFC6962_NODE_PREFIX,
    inclusion_proof,
    merkle_leaf_hash,
    merkle_root,
    verify_inclusion,
)
from audit_core.trust.proofs import check_proof, prove
from audit_core.trust.seals import read_seal

PROPERTY = settings(max_examples=60, deadline=None)


# --- reference (RFC 6962, section 2.1 and 2.1.1), written as the RFC states it -------------------


def rfc6962_mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + rfc6962_mth(leaves[:k]) + rfc6962_mth(leaves[k:])).digest()


def rfc6962_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*rfc6962_path(m, leaves[:k]), rfc6962_mth(leaves[k:])]
    return [*rfc6962_path(m - k, leaves[k:]), rfc6962_mth(leaves[:k])]


def leaves_of(size: int) -> list[bytes]:
    return [f"leaf {index}".encode() * (index % 3 + 1) for index in range(size)]


def flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


# --- the module ---------------------------------------------------------------------------------


class TestModule:
    def test_prefixes_are_the_rfc_constants(self):
        assert (RFC6962_LEAF_PREFIX, RFC6962_NODE_PREFIX, HASH_SIZE) == (b"\x00", b"\x01", 32)


class TestInclusionProof:
    @pytest.mark.parametrize("size", range(1, 71))
    def test_matches_the_rfc_definition_for_every_leaf(self, size):
        leaves = leaves_of(size)
        for index in range(size):
            assert inclusion_proof(leaves, index) == rfc6962_path(index, leaves)

    @pytest.mark.parametrize("index", [-1, 5])
    def test_index_outside_the_tree_is_refused(self, index):
        with pytest.raises(ValueError, match=f"leaf index {index} is outside a tree of 5 leaves"):
            inclusion_proof(leaves_of(5), index)

    @given(st.lists(st.binary(max_size=20), min_size=1, max_size=80), st.data())
    @PROPERTY
    def test_any_proof_verifies_against_the_root(self, leaves, data):
        index = data.draw(st.integers(0, len(leaves) - 1))
        verify_inclusion(leaves[index], index, len(leaves), inclusion_proof(leaves, index), merkle_root(leaves))


class TestVerifyInclusion:
    """RFC 9162 section 2.1.3.2: every leaf verifies; any change to leaf, index, path or root fails."""

    SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 70]

    @pytest.mark.parametrize("size", SIZES)
    def test_modified_record_fails(self, size):
        leaves = leaves_of(size)
        root = merkle_root(leaves)
        for index in range(size):
            proof = inclusion_proof(leaves, index)
            with pytest.raises(AuditIntegrityError, match=f"expected {root}, got "):
                verify_inclusion(leaves[index] + b"x", index, size, proof, root)

    @pytest.mark.parametrize("size", SIZES)
    def test_wrong_index_fails(self, size):
        leaves = leaves_of(size)
        root = merkle_root(leaves)
        for index in range(size):
            proof = inclusion_proof(leaves, index)
            for wrong in range(-1, size + 1):
                if wrong != index:
                    with pytest.raises(AuditIntegrityError):
                        verify_inclusion(leaves[index], wrong, size, proof, root)

    @pytest.mark.parametrize("size", SIZES)
    def test_modified_path_element_fails(self, size):
        leaves = leaves_of(size)
        root = merkle_root(leaves)
        for index in range(size):
            proof = inclusion_proof(leaves, index)
            for position in range(len(proof)):
                altered = [*proof[:position], flip(proof[position], position), *proof[position + 1 :]]
                with pytest.raises(AuditIntegrityError, match="does not lead to the root"):
                    verify_inclusion(leaves[index], index, size, altered, root)

    @pytest.mark.parametrize("size", SIZES)
    def test_modified_root_fails(self, size):
        leaves = leaves_of(size)
        root = merkle_root(leaves)
        wrong_root = flip(bytes.fromhex(root), 31).hex()
        for index in range(size):
            with pytest.raises(AuditIntegrityError, match=f"expected {wrong_root}, got {root}"):
                verify_inclusion(leaves[index], index, size, inclusion_proof(leaves, index), wrong_root)

    @pytest.mark.parametrize("size", SIZES)
    def test_wrong_tree_size_fails_when_it_changes_the_path(self, size):
        # A proof binds the tree size only through the shape of the path (RFC 9162 2.1.3.2); the
        # size itself is bound by the signed seal, which check_proof compares (see test_cli_proofs).
        leaves = leaves_of(size)
        root = merkle_root(leaves)
        for index in range(size):
            proof = inclusion_proof(leaves, index)
            for wrong in (size - 1, size + 1, 2 * size, 0):
                if wrong == size:
                    continue
                if index < wrong and len(rfc6962_path(index, leaves_of(wrong))) == len(proof):
                    continue  # same shape: only the seal's records field can tell
                with pytest.raises(AuditIntegrityError):
                    verify_inclusion(leaves[index], index, wrong, proof, root)

    def test_wrong_path_length_says_expected_and_got(self):
        leaves = leaves_of(5)
        proof = inclusion_proof(leaves, 0)
        with pytest.raises(AuditIntegrityError, match=r"wrong size: expected 3 element\(s\), got 4"):
            verify_inclusion(leaves[0], 0, 5, [*proof, proof[0]], merkle_root(leaves))
        with pytest.raises(AuditIntegrityError, match=r"wrong size: expected 3 element\(s\), got 2"):
            verify_inclusion(leaves[0], 0, 5, proof[:2], merkle_root(leaves))

    def test_path_element_of_wrong_size_is_refused(self):
        leaves = leaves_of(4)
        proof = inclusion_proof(leaves, 1)
        with pytest.raises(AuditIntegrityError, match="element 1 has wrong size: expected 32 bytes, got 31"):
            verify_inclusion(leaves[1], 1, 4, [proof[0], proof[1][:31]], merkle_root(leaves))

    def test_leaf_hash_is_domain_separated(self):
        # A node hash presented as a record must not verify as that subtree.
        leaves = leaves_of(4)
        inner = merkle_leaf_hash(leaves[0]) + merkle_leaf_hash(leaves[1])
        with pytest.raises(AuditIntegrityError):
            verify_inclusion(inner, 0, 2, inclusion_proof(leaves, 2)[1:], merkle_root(leaves))


# --- real files -----------------------------------------------------------------------------------


def write_file(base: Path, records: int) -> Path:
    config = AuditConfig(base_path=base, trader_id="T-PROOF", stream_id="s", sync_writes=False)
    with AuditEventEmitter(config) as emitter:
        for index in range(records):
            payload = {"value": index, "note": "é" * (index % 3)}
            emitter.emit_param_change("merkle-test", f"p{index % 4}", index, payload)
    (path,) = config.hot_path.glob("*.jsonl")
    return path


class TestProofsOfRealFiles:
    @pytest.mark.parametrize("records", range(1, 71))
    def test_every_record_of_a_sealed_file_is_proved_against_the_seal(self, tmp_path, records):
        path = write_file(tmp_path, records)
        seal = read_seal(path)
        assert seal is not None and seal["records"] == records
        lines = path.read_bytes().splitlines()
        assert rfc6962_mth(lines).hex() == seal["merkle_root"]
        for sequence in range(records):
            proof = prove(path, sequence)
            assert (proof["index"], proof["tree_size"], proof["root"]) == (sequence, records, seal["merkle_root"])
            assert proof["leaf"].encode() == lines[sequence]
            assert [bytes.fromhex(node) for node in proof["audit_path"]] == rfc6962_path(sequence, lines)
            path_bytes = [bytes.fromhex(node) for node in proof["audit_path"]]
            verify_inclusion(lines[sequence], sequence, seal["records"], path_bytes, seal["merkle_root"])
            checked = check_proof(json.loads(json.dumps(proof)))
            assert (checked.sequence, checked.index, checked.signing_key_id) == (sequence, sequence, None)
