"""One RFC 6962 tree per stream, its consistency proofs (RFC 9162 section 2.1.4) and its checkpoints.

A stream's tree has one leaf per line of the stream's hot files, in file order (day, segment),
from the stream's first line across every file: leaf i is ``merkle_leaf_hash`` of line i without
its newline, the same leaf hash as in the per-file trees of the seals. Files only grow and new
files only come after old ones, so every later tree extends every earlier one, and a consistency
proof (RFC 9162 section 2.1.4) between any two checkpoints of a stream exists.

The leaf hashes are also kept in a sidecar per stream, ``audit.<trader>.<stream>.leaves`` next to
the hot files: raw 32-byte leaf hashes, concatenated, nothing else. Retention removes hot files but
never this sidecar, so the tree of a stream whose first files are gone can still be rebuilt (the
removed leaves from the sidecar, the others from the files). The sidecar is untrusted: every leaf of
a present file is hashed again and compared, and the root over it must equal a witnessed checkpoint.

A stream checkpoint is a note in the C2SP ``tlog-checkpoint`` layout, origin
``ledgerline/<trader>/<stream>``, signed (C2SP ``signed-note``, Ed25519) when a signing key is
configured. Unkeyed and HMAC-only trails get a ledgerline-specific, non-C2SP signature line instead
(``ledgerline-hmac``: HMAC-SHA256 of the text under the trail's HMAC key; ``ledgerline-unsigned``:
SHA-256 of the text, an integrity check only): such a note is only as trustworthy as the place the
witness keeps it. See docs/format.md.

References:
    RFC 9162 section 2.1.4 (consistency proofs): https://www.rfc-editor.org/rfc/rfc9162#section-2.1.4
    https://c2sp.org/tlog-checkpoint, https://c2sp.org/signed-note
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from audit_core.errors import AuditFormatError, AuditIntegrityError, KeyTrustError
from audit_core.trust.checkpoint import (
    DEFAULT_KEY_NAME,
    SIGNATURE_LINE_PREFIX,
    Checkpoint,
    note_key_id,
    parse_checkpoint,
    verify_checkpoint,
)
from audit_core.trust.keyring import TrustedKeys, as_trusted
from audit_core.trust.merkle import HASH_SIZE, largest_power_of_two_below, merkle_leaf_hash, merkle_node_hash

if TYPE_CHECKING:
    from audit_core.trust.keyring import VerifyingKeys
    from audit_core.trust.signing import SigningKey

#: Signature-line key names of the two non-C2SP note kinds.
HMAC_KEY_NAME = "ledgerline-hmac"
UNSIGNED_KEY_NAME = "ledgerline-unsigned"
_UNSIGNED_KEY_ID = b"\x00\x00\x00\x00"
#: The extension line (C2SP tlog-checkpoint) that states when a note was signed (format.md section 6).
SIGNED_AT_PREFIX = "signed-at "
_SIGNED_AT = re.compile(r"^signed-at (0|[1-9][0-9]{0,18})$")
_NAME = r"[A-Za-z0-9][A-Za-z0-9_\-]{0,63}"
_ORIGIN = re.compile(rf"^ledgerline/(?P<trader>{_NAME})/(?P<stream>{_NAME})$")
#: Perfect subtrees of 2**_CACHE_LEVEL leaves and larger are cached; smaller ones are hashed again
#: from their leaves when a proof needs them (at most 255 hashes), so memory is ~1/4 byte per leaf.
_CACHE_LEVEL = 8
EMPTY_ROOT = hashlib.sha256(b"").digest()


def stream_origin(trader_id: str, stream_id: str) -> str:
    """The origin line of a stream's checkpoints: ``ledgerline/<trader>/<stream>``."""
    return f"ledgerline/{trader_id}/{stream_id}"


def parse_origin(origin: str) -> tuple[str, str] | None:
    """(trader, stream) of a stream origin, or None when ``origin`` is not one (never a path to trust)."""
    match = _ORIGIN.match(origin)
    return None if match is None else (match["trader"], match["stream"])


class LeafSource:
    """Leaf hashes by index: ``leaves(start, end)``; subclasses hold them in memory or a file."""

    def leaves(self, start: int, end: int) -> list[bytes]:
        raise NotImplementedError


class MemoryLeaves(LeafSource):
    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self.items = list(leaves)

    def leaves(self, start: int, end: int) -> list[bytes]:
        return self.items[start:end]


class StreamTree:
    """An append-only RFC 6962 tree: roots and consistency proofs at any size, O(log n) hashes each.

    Leaves live in ``source`` (the sidecar, or a list); perfect subtrees of 256 leaves and more are
    cached in memory as they complete.
    """

    def __init__(self, source: LeafSource, size: int = 0) -> None:
        self.source = source
        self.size = 0
        self._levels: list[bytearray] = []  # _levels[i]: nodes of 2**(_CACHE_LEVEL + i) leaves
        self.extend_to(size)

    def extend_to(self, size: int) -> None:
        """Take the source's leaves up to ``size`` into the tree (they must already be in the source)."""
        block = 1 << _CACHE_LEVEL
        while (self.size // block + 1) * block <= size:
            start = self.size // block * block
            self._add_node(0, _reduce(self.source.leaves(start, start + block)))
            self.size = start + block
        self.size = max(self.size, size)

    def _add_node(self, level: int, node: bytes) -> None:
        while True:
            if len(self._levels) <= level:
                self._levels.append(bytearray())
            self._levels[level] += node
            count = len(self._levels[level]) // HASH_SIZE
            if count % 2:
                return
            pair = self._levels[level][-2 * HASH_SIZE :]
            node, level = merkle_node_hash(bytes(pair[:HASH_SIZE]), bytes(pair[HASH_SIZE:])), level + 1

    def _perfect(self, start: int, width: int) -> bytes:
        """Hash of the perfect subtree of ``width`` (a power of two) leaves from ``start`` (aligned)."""
        level = width.bit_length() - 1 - _CACHE_LEVEL
        if level >= 0:
            nodes = self._levels[level]
            index = start // width
            if (index + 1) * HASH_SIZE <= len(nodes):
                return bytes(nodes[index * HASH_SIZE : (index + 1) * HASH_SIZE])
        return _reduce(self.source.leaves(start, start + width))

    def subtree_hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) (RFC 6962 section 2.1) for a range RFC 6962's splits produce."""
        size = end - start
        if size == 0:
            return EMPTY_ROOT
        if size & (size - 1) == 0 and start % size == 0:
            return self._perfect(start, size)
        k = largest_power_of_two_below(size)
        return merkle_node_hash(self.subtree_hash(start, start + k), self.subtree_hash(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all)."""
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size}: the tree has {self.size} leaves")
        return self.subtree_hash(0, size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(m, D[n]) of RFC 9162 section 2.1.4.1; empty when ``old_size`` is 0 or equals ``new_size``."""
        new_size = self.size if new_size is None else new_size
        if not 0 <= old_size <= new_size <= self.size:
            raise ValueError(f"consistency proof from {old_size} to {new_size}: the tree has {self.size} leaves")
        if old_size in (0, new_size):
            return []
        return self._subproof(old_size, 0, new_size, True)

    def _subproof(self, m: int, start: int, end: int, whole: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if whole else [self.subtree_hash(start, end)]
        k = largest_power_of_two_below(n)
        if m <= k:
            return [*self._subproof(m, start, start + k, whole), self.subtree_hash(start + k, end)]
        return [*self._subproof(m - k, start + k, end, False), self.subtree_hash(start, start + k)]


def _reduce(leaves: list[bytes]) -> bytes:
    """Root of a perfect subtree given all its leaves."""
    level = leaves
    while len(level) > 1:
        level = [merkle_node_hash(left, right) for left, right in zip(level[0::2], level[1::2], strict=True)]
    return level[0]


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (new_size, new_root) extends (old_size, old_root): RFC 9162 section 2.1.4.2.

    Sizes 0 and equal sizes are handled before the RFC's algorithm (which requires 0 < m < n): from
    an empty tree anything is consistent; equal sizes need equal roots and an empty proof.

    Raises:
        AuditIntegrityError: the proof does not hold (a rollback, a truncation or a split view);
            the message says expected vs got.
    """
    if not 0 <= old_size <= new_size:
        raise AuditIntegrityError(f"consistency: tree size went from {old_size} to {new_size}: a log only grows")
    for position, node in enumerate(proof):
        if len(node) != HASH_SIZE:
            raise AuditIntegrityError(
                f"consistency proof element {position} has wrong size: expected {HASH_SIZE} bytes, got {len(node)}")
    if old_size == 0 or old_size == new_size:
        if proof:
            raise AuditIntegrityError(f"consistency proof from {old_size} to {new_size}: expected no element, "
                                      f"got {len(proof)}")
        if old_size == new_size and not hmac.compare_digest(old_root, new_root):
            raise AuditIntegrityError(f"two roots for tree size {new_size}: {old_root.hex()} vs {new_root.hex()} "
                                      "(a split view or a rewritten log)")
        return
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # step 1: a power of two is its own subtree
        path.insert(0, old_root)
    if not path:
        raise AuditIntegrityError(f"consistency proof from {old_size} to {new_size} is empty")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:  # step 3
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise AuditIntegrityError(f"consistency proof from {old_size} to {new_size} has too many elements")
        if fn & 1 or fn == sn:
            fr, sr = merkle_node_hash(c, fr), merkle_node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = merkle_node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise AuditIntegrityError(f"consistency proof from {old_size} to {new_size} has too few elements")
    if not hmac.compare_digest(fr, old_root) or not hmac.compare_digest(sr, new_root):
        raise AuditIntegrityError(
            f"consistency proof from {old_size} to {new_size} does not hold: old root expected {old_root.hex()}, "
            f"got {fr.hex()}; new root expected {new_root.hex()}, got {sr.hex()} (the log was rewritten or truncated)")


def line_leaves(data: bytes, pause: Callable[[], object] | None = None, batch: int = 256) -> list[bytes]:
    """Leaf hashes of the complete lines of ``data`` (a trailing piece without newline is not a leaf).

    ``pause`` is called after every ``batch`` lines (a background thread gives up the GIL there).
    """
    lines = data.split(b"\n")[:-1]
    if pause is None:
        return [merkle_leaf_hash(line) for line in lines]
    leaves: list[bytes] = []
    for start in range(0, len(lines), batch):
        leaves += [merkle_leaf_hash(line) for line in lines[start : start + batch]]
        pause()
    return leaves


# --- notes ---------------------------------------------------------------------------------------


def checkpoint_note_text(origin: str, size: int, root: bytes, signed_at_ns: int | None = None) -> str:
    """The note text: origin, size, root, and (when known) the ``signed-at`` extension line."""
    text = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"
    return text if signed_at_ns is None else f"{text}{SIGNED_AT_PREFIX}{int(signed_at_ns)}\n"


def hmac_key_id(hmac_key: bytes) -> bytes:
    return hmac.new(hmac_key, b"ledgerline stream checkpoint key id", hashlib.sha256).digest()[:4]


def make_note(
    origin: str,
    size: int,
    root: bytes,
    *,
    signing_key: SigningKey | None = None,
    hmac_key: bytes | None = None,
    signed_at_ns: int | None = None,
) -> str:
    """A stream checkpoint: C2SP signed note with Ed25519 if ``signing_key``, else a ledgerline note.

    ``signed_at_ns`` adds the ``signed-at`` line (the signing time a trusted-keys window is checked
    against); without it the note has the three lines of notes written before that line existed.
    """
    text = checkpoint_note_text(origin, size, root, signed_at_ns)
    if signing_key is not None:
        signature = note_key_id(DEFAULT_KEY_NAME, signing_key.public_key()) + signing_key.sign(text.encode())
        name = DEFAULT_KEY_NAME
    elif hmac_key is not None:
        signature = hmac_key_id(hmac_key) + hmac.new(hmac_key, text.encode(), hashlib.sha256).digest()
        name = HMAC_KEY_NAME
    else:
        signature = _UNSIGNED_KEY_ID + hashlib.sha256(text.encode()).digest()
        name = UNSIGNED_KEY_NAME
    return f"{text}\n{SIGNATURE_LINE_PREFIX}{name} {base64.b64encode(signature).decode()}\n"


class StreamCheckpoint(NamedTuple):
    """A parsed stream checkpoint; ``trust`` says what vouches for it (``ed25519``, ``hmac``, ``none``).

    ``signed_at_ns`` is the ``signed-at`` line's time (None in notes without it); ``key_id`` the
    16-hex id of the trusted key whose Ed25519 signature verified (None when no key was checked).
    """

    trader_id: str
    stream_id: str
    size: int
    root: bytes
    trust: str
    note: str
    signed_at_ns: int | None = None
    key_id: str | None = None

    @property
    def origin(self) -> str:
        return stream_origin(self.trader_id, self.stream_id)


def read_note(
    note: str,
    source: str = "checkpoint",
    *,
    public_key: VerifyingKeys | None = None,
    hmac_key: bytes | None = None,
    trusted_keys: TrustedKeys | None = None,
) -> StreamCheckpoint:
    """Parse and check a stream checkpoint note (untrusted input).

    With ``trusted_keys`` (or one ``public_key``, every role, no window) an Ed25519 signature line
    of a key trusted as a ``writer`` at the note's ``signed-at`` time is required. Otherwise an HMAC
    line is checked when ``hmac_key`` is given (and required if the note has no Ed25519 line), and
    an unsigned note's SHA-256 line must match its text.

    Raises:
        AuditFormatError: not a note, or its origin is not a stream origin; names ``source``.
        KeyTrustError: the Ed25519 line's key is not trusted (``key_untrusted``) or not at the
            signing time (``key_outside_window``; a note without ``signed-at`` under a bounded key).
        AuditIntegrityError: a required signature is missing or does not verify.
    """
    if public_key is not None and trusted_keys is not None:
        raise ValueError("read_note: give public_key or trusted_keys, not both")
    checkpoint, text, signatures = parse_checkpoint(note, source)
    names = parse_origin(checkpoint.origin)
    lines = text.split("\n")[:-1]
    signed_at = _signed_at(lines[3]) if len(lines) == 4 else None
    if names is None or len(checkpoint.root_hash) != HASH_SIZE or not (len(lines) == 3 or signed_at is not None):
        raise AuditFormatError(source, f"not a stream checkpoint: origin {checkpoint.origin[:80]!r} "
                                       "(expected ledgerline/<trader>/<stream>), a 32-byte root, three lines "
                                       "and an optional 'signed-at <ns>' line")
    if public_key is not None:
        trusted_keys = as_trusted(public_key)
    if trusted_keys is not None:
        key_id = _check_trusted_signature(note, signatures, source, trusted_keys, signed_at)
        return StreamCheckpoint(names[0], names[1], checkpoint.tree_size, checkpoint.root_hash, "ed25519", note,
                                signed_at, key_id)
    trust = _check_signatures(checkpoint, text, signatures, source, hmac_key)
    return StreamCheckpoint(names[0], names[1], checkpoint.tree_size, checkpoint.root_hash, trust, note, signed_at)


def _signed_at(line: str) -> int | None:
    match = _SIGNED_AT.match(line)
    return None if match is None else int(match[1])


def _check_trusted_signature(
    note: str,
    signatures: list[tuple[str, bytes, bytes]],
    source: str,
    trusted_keys: TrustedKeys,
    signed_at_ns: int | None,
) -> str:
    """The key id of the trusted writer key whose Ed25519 line verifies (signed-note: other lines are ignored)."""
    from audit_core.trust.signing import key_id

    refused: KeyTrustError | None = None
    for name, note_id, _ in signatures:
        if name != DEFAULT_KEY_NAME:
            continue
        try:
            public_key = trusted_keys.for_note_key_id(note_id, "writer", signed_at_ns)
        except KeyTrustError as exc:
            refused = refused or exc
            continue
        verify_checkpoint(note, public_key, source=source)
        return key_id(public_key)
    if refused is not None:
        raise refused
    raise AuditIntegrityError(f"{source}: the checkpoint has no Ed25519 signature line ({DEFAULT_KEY_NAME}); "
                              "a trusted key was given, so one is required")


def _check_signatures(
    checkpoint: Checkpoint,
    text: str,
    signatures: list[tuple[str, bytes, bytes]],
    source: str,
    hmac_key: bytes | None,
) -> str:
    by_name = {name: (kid, sig) for name, kid, sig in signatures}
    if HMAC_KEY_NAME in by_name and hmac_key is not None:
        kid, sig = by_name[HMAC_KEY_NAME]
        expected = hmac.new(hmac_key, text.encode(), hashlib.sha256).digest()
        if kid != hmac_key_id(hmac_key) or not hmac.compare_digest(sig, expected):
            raise AuditIntegrityError(f"{source}: the checkpoint's HMAC does not match its text under this key")
        return "hmac"
    if hmac_key is not None and DEFAULT_KEY_NAME not in by_name:
        raise AuditIntegrityError(f"{source}: checkpoint of {checkpoint.origin} has no HMAC line of the trail's key")
    if UNSIGNED_KEY_NAME in by_name:
        kid, sig = by_name[UNSIGNED_KEY_NAME]
        if kid != _UNSIGNED_KEY_ID or not hmac.compare_digest(sig, hashlib.sha256(text.encode()).digest()):
            raise AuditIntegrityError(f"{source}: the checkpoint's SHA-256 line does not match its text")
    return "none"
