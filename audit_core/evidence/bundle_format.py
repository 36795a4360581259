"""The evidence bundle format (docs/format.md section 7): names, the selection rule, records and range proofs.

Everything both ends of a bundle must agree on is here, once: the exporter builds with it and the
verifier checks with it. A range proof is the list of subtree hashes the recursion ``NODE`` of
section 7 consumes, left to right, to rebuild the root of a stream's RFC 6962 tree from the leaves
of positions ``[first, end)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from audit_core.errors import AuditConfigError
from audit_core.trust.merkle import largest_power_of_two_below, merkle_leaf_hash, merkle_node_hash
from audit_core.trust.record import parse_object, split_record

BUNDLE_FORMAT = "ledgerline-bundle/1"
INDEX_ENTRY = "bundle.json"
LINES_DIR = "streams/"
LINES_SUFFIX = ".lines"
#: Limits a reader enforces before it believes anything (format.md section 7, "Container").
MAX_INDEX_BYTES = 64 * 1024**2
MAX_ENTRY_BYTES = 4 * 1024**3
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_POSITION = re.compile(r"^(0|[1-9][0-9]{0,18})$")


def lines_entry(trader_id: str, stream_id: str) -> str:
    """The ZIP entry holding a stream's full lines: ``streams/<trader_id>.<stream_id>.lines``."""
    return f"{LINES_DIR}{trader_id}.{stream_id}{LINES_SUFFIX}"


def is_hex64(value: object) -> bool:
    return isinstance(value, str) and _HEX64.match(value) is not None


def is_position_key(value: str) -> bool:
    """A ``redacted`` key: a canonical decimal position (no sign, no leading zero)."""
    return _POSITION.match(value) is not None


@dataclass(frozen=True)
class Selection:
    """The window ``[start_ns, end_ns)`` on ``ts_recorded`` and the filters of a bundle."""

    start_ns: int
    end_ns: int
    event_types: tuple[str, ...] | None = None
    sources: tuple[str, ...] | None = None
    params: tuple[str, ...] | None = None

    @classmethod
    def of(
        cls,
        start_ns: int,
        end_ns: int,
        event_types: Sequence[str] | None = None,
        sources: Sequence[str] | None = None,
        params: Sequence[str] | None = None,
    ) -> Selection:
        """A checked selection.

        Raises:
            AuditConfigError: a bound that is not an int64, an empty window, or an empty filter list.
        """
        for name, value in (("start_ns", start_ns), ("end_ns", end_ns)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
                raise AuditConfigError(f"{name}: expected nanoseconds since the epoch (0 .. 2**63-1), got {value!r}")
        if start_ns >= end_ns:
            raise AuditConfigError(f"the window is empty: start_ns {start_ns} is not before end_ns {end_ns}")
        lists: dict[str, tuple[str, ...] | None] = {}
        for name, given in (("event_types", event_types), ("sources", sources), ("params", params)):
            if given is None:
                lists[name] = None
                continue
            items = tuple(given)
            if not items or not all(isinstance(item, str) and item for item in items):
                raise AuditConfigError(f"{name}: expected None or a non-empty list of non-empty strings, got {given!r}")
            lists[name] = tuple(sorted(set(items)))
        return cls(start_ns, end_ns, lists["event_types"], lists["sources"], lists["params"])

    def in_window(self, ts_recorded: int | None) -> bool:
        return ts_recorded is not None and self.start_ns <= ts_recorded < self.end_ns

    def matches(self, record: BundleRecord) -> bool:
        """format.md section 7: in the window, and every filter given admits the record."""
        if not self.in_window(record.ts_recorded):
            return False
        if self.event_types is not None and not any(type_matches(p, record.event_type) for p in self.event_types):
            return False
        if self.sources is not None and record.source not in self.sources:
            return False
        return self.params is None or (record.event_type.startswith("param.") and record.param_name in self.params)

    def to_json(self) -> dict[str, Any]:
        return {"start_ns": self.start_ns, "end_ns": self.end_ns,
                "event_types": None if self.event_types is None else list(self.event_types),
                "sources": None if self.sources is None else list(self.sources),
                "params": None if self.params is None else list(self.params)}


def type_matches(pattern: str, event_type: str) -> bool:
    """``*`` matches everything; ``a.*`` matches ``a.`` followed by anything; any other pattern itself."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern


@dataclass(frozen=True)
class BundleRecord:
    """What a bundle needs of a full line that is a record (a JSON object with the common fields)."""

    body: bytes
    checksum: str
    sequence: int
    prev_hash: str
    ts_recorded: int | None
    event_type: str
    source: str
    param_name: object


def read_record(line: bytes) -> BundleRecord | None:
    """The record on ``line`` (without its newline), or None for a line that is not one (a torn line).

    A record is a JSON object whose ``checksum`` is its last field (section 1) and whose common
    fields have their types: ``ts_event`` and ``sequence`` integers, ``event_type``, ``source``,
    ``trader_id``, ``prev_hash``, ``checksum`` strings; ``ts_recorded`` an integer when present.
    """
    try:
        fields = split_record(line)
    except ValueError:
        return None
    parsed = parse_object(line)
    if parsed is None:
        return None
    ints = [parsed.get(name) for name in ("ts_event", "sequence")]
    strings = [parsed.get(name) for name in ("event_type", "source", "trader_id", "prev_hash", "checksum")]
    ts_recorded = parsed.get("ts_recorded")
    if (
        not all(isinstance(value, int) and not isinstance(value, bool) for value in ints)
        or not all(isinstance(value, str) for value in strings)
        or (ts_recorded is not None and (isinstance(ts_recorded, bool) or not isinstance(ts_recorded, int)))
    ):
        return None
    return BundleRecord(fields.body, parsed["checksum"], parsed["sequence"], parsed["prev_hash"], ts_recorded,
                        parsed["event_type"], parsed["source"], parsed.get("param_name"))


def range_proof(subtree_hash: Callable[[int, int], bytes], size: int, first: int, end: int) -> list[bytes]:
    """The hashes ``NODE(0, size)`` consumes for the range ``[first, end)``, in the order it consumes them.

    ``subtree_hash(start, stop)`` is MTH of leaves ``[start, stop)`` (``StreamTree.subtree_hash``).
    """
    if not 0 <= first < end <= size:
        raise ValueError(f"range [{first}, {end}) is not a non-empty range of a tree of {size} leaves")
    proof: list[bytes] = []

    def node(start: int, stop: int) -> None:
        if stop <= first or start >= end:
            proof.append(subtree_hash(start, stop))
        elif stop - start > 1:
            k = largest_power_of_two_below(stop - start)
            node(start, start + k)
            node(start + k, stop)

    node(0, size)
    return proof


def root_from_range(
    size: int, first: int, end: int, leaf: Callable[[int], bytes], proof: Sequence[bytes]
) -> bytes | None:
    """``NODE(0, size)`` of format.md section 7, or None when ``proof`` runs out or is not used up.

    ``leaf(p)`` is the leaf hash of position p in ``[first, end)``.
    """
    taken = 0

    def node(start: int, stop: int) -> bytes | None:
        nonlocal taken
        if stop <= first or start >= end:
            if taken >= len(proof):
                return None
            taken += 1
            return proof[taken - 1]
        if stop - start == 1:
            return leaf(start)
        k = largest_power_of_two_below(stop - start)
        left = node(start, start + k)
        right = None if left is None else node(start + k, stop)
        return None if right is None or left is None else merkle_node_hash(left, right)

    root = node(0, size)
    return root if root is not None and taken == len(proof) else None


def line_leaf(line: bytes) -> bytes:
    """The leaf of a full line: SHA-256(0x00 || line)."""
    return merkle_leaf_hash(line)
