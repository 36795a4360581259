"""Inclusion proofs of single records in sealed files, as self-contained JSON documents.

``prove`` reads a sealed hot file once and returns a proof that one record (by sequence number) is
a leaf of the RFC 6962 tree whose root the file's seal states. ``check_proof`` needs nothing but
that document: the record line, its leaf index, the tree size, the audit path and the seal travel
in it. With the trusted public key it also checks the seal's Ed25519 signature; without one it
shows only that the record is in the tree the enclosed seal names, not who sealed it.

A proof document::

    {"format": "ledgerline-inclusion-proof/1", "file": "...jsonl", "sequence": 17, "index": 17,
     "tree_size": 31, "leaf": "<the record line, no newline>", "audit_path": ["<hex>", ...],
     "root": "<hex merkle_root>", "seal": {...the seal, signature included...}}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit_core import _jsonfile
from audit_core.errors import AuditError, AuditFormatError, AuditIntegrityError
from audit_core.trust import signing
from audit_core.trust.keyring import as_trusted, trusted_key_ids
from audit_core.trust.merkle import HASH_SIZE, MerkleTree, audit_path, merkle_leaf_hash, verify_inclusion
from audit_core.trust.record import split_record
from audit_core.trust.seals import SEAL_FORMAT, read_seal, seal_signed_bytes

if TYPE_CHECKING:
    from audit_core.trust.keyring import VerifyingKeys

PROOF_FORMAT = "ledgerline-inclusion-proof/1"


@dataclass(frozen=True)
class CheckedProof:
    """What ``check_proof`` established. ``signing_key_id`` is None when no public key was given."""

    file: str
    sequence: int
    index: int
    tree_size: int
    root: str
    signing_key_id: str | None


def prove(path: Path | str, sequence: int) -> dict[str, Any]:
    """An inclusion proof of the record with ``sequence`` in sealed hot file ``path``.

    Raises:
        FileNotFoundError: no file at ``path``.
        AuditError: the file has no seal, or no record with that sequence.
        AuditIntegrityError: the file no longer matches its seal's Merkle root.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no hot file at {path}")
    seal = read_seal(path)
    if seal is None:
        raise AuditError(
            f"{path.name} has no seal; proofs are made against a sealed file's merkle_root (close or rotate it first)"
        )
    leaf_hashes: list[bytes] = []
    tree = MerkleTree()
    index, leaf, held = None, b"", [2**63, -1]  # the lowest and highest sequence seen
    with path.open("rb") as handle:
        for line_index, line in enumerate(handle):
            record = line[:-1] if line.endswith(b"\n") else line
            leaf_hashes.append(merkle_leaf_hash(record))
            tree.add(record)
            try:
                found = split_record(line).sequence if line.endswith(b"\n") else None
            except ValueError:
                found = None
            if found is not None:
                held = [min(held[0], found), max(held[1], found)]
            if index is None and found == sequence:
                index, leaf = line_index, record
    if index is None:
        holds = f"sequences {held[0]}..{held[1]}" if held[1] >= 0 else "no records"
        raise AuditError(f"sequence {sequence} is not in {path.name}, which holds {holds}")
    if tree.root() != seal.get("merkle_root"):
        raise AuditIntegrityError(
            f"{path.name} does not match its seal: merkle_root expected {seal.get('merkle_root')}, "
            f"got {tree.root()}; run `ledgerline verify`"
        )
    return {
        "format": PROOF_FORMAT,
        "file": path.name,
        "sequence": sequence,
        "index": index,
        "tree_size": tree.size,
        "leaf": leaf.decode("utf-8"),
        "audit_path": [node.hex() for node in audit_path(leaf_hashes, index)],
        "root": tree.root(),
        "seal": seal,
    }


def check_proof(proof: dict[str, Any] | Path | str, public_key: VerifyingKeys | None = None) -> CheckedProof:
    """Check an inclusion proof from its own contents: no other file is read.

    Args:
        proof: The proof document, or the path of a JSON file holding it.
        public_key: The trusted keys (or one key) the seal must be signed by, as a ``writer`` at its
            ``sealed_at_ns``. Without them the seal's signature is not checked.

    Raises:
        AuditIntegrityError: anything in the proof does not hold; the message says expected vs got
            (``KeyTrustError`` when the seal's key is not trusted, or not at its signing time).
        OSError, ValueError: ``proof`` is a path that cannot be read or is not JSON.
    """
    if not isinstance(proof, dict):
        try:
            proof = _jsonfile.loads(Path(proof).read_bytes(), proof, "proof")
        except AuditFormatError as exc:  # a file given by the user: a usage mistake, not a damaged trail
            raise ValueError(f"{proof} is not a JSON proof file: {exc.detail}") from None
        if not isinstance(proof, dict):
            raise ValueError("not an inclusion proof: expected a JSON object")
    if proof.get("format") != PROOF_FORMAT:
        raise AuditIntegrityError(f"proof format: expected {PROOF_FORMAT!r}, got {proof.get('format')!r}")
    file, root, leaf = _field(proof, "file", str), _field(proof, "root", str), _field(proof, "leaf", str).encode()
    sequence, index = _field(proof, "sequence", int), _field(proof, "index", int)
    tree_size, seal = _field(proof, "tree_size", int), _field(proof, "seal", dict)
    if seal.get("format") != SEAL_FORMAT:
        raise AuditIntegrityError(f"proof's seal format: expected {SEAL_FORMAT!r}, got {seal.get('format')!r}")
    for name, claimed, sealed in (
        ("file", file, seal.get("file")),
        ("tree_size", tree_size, seal.get("records")),
        ("root", root, seal.get("merkle_root")),
    ):
        if claimed != sealed:
            raise AuditIntegrityError(f"proof {name}: the seal says {sealed!r}, the proof {claimed!r}")
    try:
        record_sequence = split_record(leaf).sequence
    except ValueError as exc:
        raise AuditIntegrityError(f"proof leaf is not a record line: {exc}") from None
    if record_sequence != sequence:
        raise AuditIntegrityError(f"proof sequence: expected {sequence}, the leaf record has {record_sequence}")
    path = [_hash(element, position) for position, element in enumerate(_field(proof, "audit_path", list))]
    verify_inclusion(leaf, index, tree_size, path, root)
    key_id = None
    trusted = as_trusted(public_key)
    if trusted is not None:
        signature = seal.get("signature")
        if not isinstance(signature, dict):
            raise AuditIntegrityError(
                f"the proof's seal is unsigned: expected a signature of key {trusted_key_ids(trusted)}")
        sealed_at = seal.get("sealed_at_ns")
        signer = trusted.check(str(signature.get("key_id")), "writer", sealed_at if type(sealed_at) is int else None)
        signing.verify_signature(signature, seal_signed_bytes(seal), signer)
        key_id = signing.key_id(signer)
    return CheckedProof(file, sequence, index, tree_size, root, key_id)


def _field(proof: dict[str, Any], name: str, kind: type) -> Any:
    value = proof.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise AuditIntegrityError(f"proof field {name!r}: expected {kind.__name__}, got {value!r}")
    return value


def _hash(element: object, position: int) -> bytes:
    try:
        node = bytes.fromhex(element) if isinstance(element, str) else None
    except ValueError:
        node = None
    if node is None or len(node) != HASH_SIZE:
        raise AuditIntegrityError(
            f"proof audit_path[{position}]: expected {HASH_SIZE * 2} hex digits, got {element!r}"
        )
    return node
