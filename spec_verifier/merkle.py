"""RFC 6962 / RFC 9162 Merkle trees: leaf and node hashes, the bundle range proof, consistency proofs.

docs/format.md section 3 (stream trees) and section 7 (range proof).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

LEAF_PREFIX = b"\x00"  # RFC 6962 section 2.1
NODE_PREFIX = b"\x01"


def leaf_hash(line: bytes) -> bytes:
    """SHA-256(0x00 || line): the leaf of a line (without its newline)."""
    return hashlib.sha256(LEAF_PREFIX + line).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2): the size of a left subtree."""
    return 1 << ((n - 1).bit_length() - 1)


def range_root(first: int, end: int, size: int, leaf: Callable[[int], bytes], proof: Sequence[bytes]) -> bytes | None:
    """The root of a tree of ``size`` leaves from the leaves ``first <= p < end`` and a range proof.

    Runs the recursion of docs/format.md section 7 ("Range proof"): a subtree disjoint from
    ``[first, end)`` takes the next proof hash. Returns None when the proof runs out or has hashes
    left over (so it cannot be consistent with any root).
    """
    if not 0 <= first < end <= size:
        return None
    remaining = iter(proof)
    exhausted = False

    def node(start: int, stop: int) -> bytes:
        nonlocal exhausted
        if stop <= first or start >= end:
            taken = next(remaining, None)
            if taken is None:
                exhausted = True
                return b""
            return taken
        if stop - start == 1:
            return leaf(start)
        k = largest_power_of_two_below(stop - start)
        left = node(start, start + k)
        right = node(start + k, stop)
        return node_hash(left, right)

    root = node(0, size)
    if exhausted or next(remaining, None) is not None:
        return None
    return root


def consistent(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2: is the tree (new_size, new_root) an extension of (old_size, old_root)?

    docs/format.md section 3 adds: from size 0 any tree is consistent (with an empty proof), and
    equal sizes need equal roots (and an empty proof).
    """
    if old_size < 0 or new_size < old_size:
        return False
    if old_size == 0:
        return not proof
    if old_size == new_size:
        return not proof and old_root == new_root
    # Step 1: an empty path fails.
    if not proof:
        return False
    path = list(proof)
    # Step 2: when the old size is a power of two, its root is the first node of the path.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # Steps 3-4.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5.
    fr = sr = path[0]
    # Step 6.
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # Step 7.
    return fr == old_root and sr == new_root and sn == 0
