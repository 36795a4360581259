"""RFC 6962 Merkle tree hashes of a file's records, inclusion proofs and their verification.

A sealed file's ``merkle_root`` is the Merkle Tree Hash (RFC 6962 section 2.1) over its lines
without their newlines, one leaf per line. An inclusion proof (the audit path of RFC 6962 section
2.1.1) lets anyone holding one record, its index, the tree size and the signed root check that the
record is in the file, without the rest of the file. Verification follows RFC 9162 section 2.1.3.2.

References:
    RFC 6962, Certificate Transparency, section 2.1: https://www.rfc-editor.org/rfc/rfc6962#section-2.1
    RFC 9162, Certificate Transparency Version 2.0, section 2.1.3: https://www.rfc-editor.org/rfc/rfc9162
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from itertools import repeat
from operator import add

from audit_core.errors import AuditIntegrityError

#: RFC 6962 section 2.1: leaves are hashed as SHA-256(0x00 || d) ...
RFC6962_LEAF_PREFIX = b"\x00"
#: ... and interior nodes as SHA-256(0x01 || left || right), so a leaf can never pass for a node.
RFC6962_NODE_PREFIX = b"\x01"
#: Size of a SHA-256 digest, and so of every leaf hash, node hash, root and audit path element.
HASH_SIZE = 32


def merkle_leaf_hash(record: bytes) -> bytes:
    """SHA-256(0x00 || record): the leaf of one record (its line without the newline)."""
    return hashlib.sha256(RFC6962_LEAF_PREFIX + record).digest()


def merkle_node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(RFC6962_NODE_PREFIX + left + right).digest()


_DIGEST = type(hashlib.sha256()).digest


def leaf_hashes(records: Iterable[bytes]) -> list[bytes]:
    """``merkle_leaf_hash`` of each of ``records``, with no Python call per record."""
    return list(map(_DIGEST, map(hashlib.sha256, map(add, repeat(RFC6962_LEAF_PREFIX), records))))


def _node_level(level: list[bytes]) -> list[bytes]:
    """``merkle_node_hash`` of each pair of an even-length level, in order."""
    pairs = map(add, map(add, repeat(RFC6962_NODE_PREFIX), level[0::2]), level[1::2])
    return list(map(_DIGEST, map(hashlib.sha256, pairs)))


class MerkleTree:
    """RFC 6962 Merkle tree hash, built one leaf at a time in O(log n) memory.

    The stack holds the roots of the perfect subtrees the leaves so far decompose into, largest
    first; folding it from the right gives MTH(D[n]) with the RFC's split at the largest power of two.
    ``add`` takes one record; ``add_leaf_hashes`` takes leaves already hashed (the converter's fast
    path hashes a chunk's lines in one go) and reduces full blocks of them level by level before
    they join the stack, which gives the same root with fewer stack operations.
    """

    def __init__(self, block: int = 4096) -> None:
        if block < 1 or block & (block - 1):
            raise ValueError(f"block={block}: expected a power of two")
        self.size = 0
        self._block = block  # leaves reduced into one perfect subtree before joining the stack
        self._stack: list[tuple[int, bytes]] = []
        self._pending: list[bytes] = []  # hashed leaves waiting for a full block

    def add(self, record: bytes) -> None:
        self._flush_pending()
        self._push(1, merkle_leaf_hash(record))
        self.size += 1

    def add_leaf_hashes(self, leaves: list[bytes]) -> None:
        """Append leaves given as their hashes (``merkle_leaf_hash`` of each record), in order."""
        self._pending += leaves
        self.size += len(leaves)
        block = self._block
        # A block may join as one perfect subtree only where it starts at a multiple of its size.
        while self._pending and (self.size - len(self._pending)) % block:
            self._push(1, self._pending.pop(0))
        full = len(self._pending) - len(self._pending) % block
        for start in range(0, full, block):
            level = self._pending[start : start + block]
            while len(level) > 1:
                level = _node_level(level)
            self._push(block, level[0])
        del self._pending[:full]

    def _flush_pending(self) -> None:
        # The pending leaves start where a block starts, so they split into perfect subtrees, largest first.
        pending, start = self._pending, 0
        while start < len(pending):
            size = 1 << ((len(pending) - start).bit_length() - 1)
            level = pending[start : start + size]
            while len(level) > 1:
                level = _node_level(level)
            self._push(size, level[0])
            start += size
        self._pending = []

    def _push(self, size: int, node: bytes) -> None:
        while self._stack and self._stack[-1][0] == size:
            _, left = self._stack.pop()
            node, size = merkle_node_hash(left, node), size * 2
        self._stack.append((size, node))

    def root(self) -> str:
        """Hex root; the root of an empty tree is SHA-256 of the empty string."""
        self._flush_pending()
        if not self._stack:
            return hashlib.sha256(b"").hexdigest()
        root = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            root = merkle_node_hash(left, root)
        return root.hex()


def merkle_root(records: Iterable[bytes]) -> str:
    """Hex MTH of ``records`` (each a line without its newline)."""
    tree = MerkleTree()
    for record in records:
        tree.add(record)
    return tree.root()


def largest_power_of_two_below(n: int) -> int:
    """k of RFC 6962 section 2.1: the largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes (RFC 6962 section 2.1, with the leaves already hashed)."""
    if len(leaves) == 1:
        return leaves[0]
    k = largest_power_of_two_below(len(leaves))
    return merkle_node_hash(_subtree_hash(leaves[:k]), _subtree_hash(leaves[k:]))


def audit_path(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 section 2.1.1 over already hashed leaves, leaf-side element first.

    Raises:
        ValueError: ``index`` is not a leaf of the tree.
    """
    if not 0 <= index < len(leaf_hashes):
        raise ValueError(f"leaf index {index} is outside a tree of {len(leaf_hashes)} leaves")
    return _audit_path(index, leaf_hashes)


def _audit_path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = largest_power_of_two_below(len(leaves))
    if index < k:
        return [*_audit_path(index, leaves[:k]), _subtree_hash(leaves[k:])]
    return [*_audit_path(index - k, leaves[k:]), _subtree_hash(leaves[:k])]


def inclusion_proof(records: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path that proves ``records[index]`` is in the tree of ``records``.

    Args:
        records: The leaf inputs: every line of the file, without newlines, in order.
        index: 0-based leaf index (line number - 1).

    Returns:
        The RFC 6962 audit path: 32-byte node hashes, from the leaf's sibling up to the root's child.

    Raises:
        ValueError: ``index`` is not a leaf of the tree.
    """
    return audit_path([merkle_leaf_hash(record) for record in records], index)


def root_from_inclusion_proof(leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` leads to from ``leaf_hash``: RFC 9162 section 2.1.3.2, steps 1-4.

    Raises:
        AuditIntegrityError: the index is not in the tree or the path has the wrong length.
    """
    if tree_size < 1 or not 0 <= index < tree_size:
        raise AuditIntegrityError(
            f"inclusion proof names leaf {index}, which is not in a tree of size {tree_size}"
        )
    for position, node in enumerate(proof):
        if len(node) != HASH_SIZE:
            raise AuditIntegrityError(
                f"inclusion proof element {position} has wrong size: expected {HASH_SIZE} bytes, got {len(node)}"
            )
    fn, sn = index, tree_size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise AuditIntegrityError(
                f"inclusion proof has wrong size: expected {_path_length(index, tree_size)} element(s), "
                f"got {len(proof)}"
            )
        if fn & 1 or fn == sn:
            r = merkle_node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = merkle_node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise AuditIntegrityError(
            f"inclusion proof has wrong size: expected {_path_length(index, tree_size)} element(s), got {len(proof)}"
        )
    return r


def verify_inclusion(leaf_record: bytes, index: int, tree_size: int, proof: Sequence[bytes], root_hex: str) -> None:
    """Check that ``leaf_record`` is leaf ``index`` of the tree of ``tree_size`` leaves with root ``root_hex``.

    Args:
        leaf_record: The record line, without its newline.
        index: Its 0-based leaf index.
        tree_size: Leaves in the tree (a seal's ``records``).
        proof: The audit path from ``inclusion_proof``.
        root_hex: The expected root (a seal's ``merkle_root``).

    Raises:
        AuditIntegrityError: the proof does not lead to ``root_hex``; the message says expected vs got.
    """
    computed = root_from_inclusion_proof(merkle_leaf_hash(leaf_record), index, tree_size, proof)
    if not hmac.compare_digest(computed.hex(), root_hex.lower()):
        raise AuditIntegrityError(
            f"inclusion proof of leaf {index} in a tree of size {tree_size} does not lead to the root: "
            f"expected {root_hex}, got {computed.hex()}"
        )


def _path_length(index: int, tree_size: int) -> int:
    """How many elements the audit path of leaf ``index`` in a tree of ``tree_size`` has."""
    length, lo, size = 0, index, tree_size
    while size > 1:
        k = largest_power_of_two_below(size)
        if lo >= k:
            lo -= k
            size -= k
        else:
            size = k
        length += 1
    return length
