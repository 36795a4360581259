"""Test tools for evidence bundles: naive RFC 6962 trees, hand-built bundles, and bundle tampering.

Written from docs/format.md sections 3 and 7 (no audit_core), so that tests can build a bundle
without the exporter under test and tamper with any bundle at the byte level.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import warnings
import zipfile
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

T0 = 1_767_657_600_000_000_000  # 2026-01-06 00:00:00 UTC
STEP = 1_000_000
SEED = bytes(range(32))  # a test key, never a real one


def raw_public(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


PRIVATE = Ed25519PrivateKey.from_private_bytes(SEED)
PUBLIC = raw_public(PRIVATE)


def leaf(line: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + line).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class NaiveTree:
    """RFC 6962 MTH over a list of leaf hashes, straight from the definition (memoized per subtree)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = list(leaves)
        self.mth = lru_cache(maxsize=None)(self._mth)

    def _mth(self, start: int, stop: int) -> bytes:
        if stop == start:
            return hashlib.sha256(b"").digest()
        if stop - start == 1:
            return self.leaves[start]
        k = split_point(stop - start)
        return node(self.mth(start, start + k), self.mth(start + k, stop))

    def root(self, size: int | None = None) -> bytes:
        return self.mth(0, len(self.leaves) if size is None else size)

    def range_proof(self, first: int, end: int, size: int) -> list[bytes]:
        """The hashes of the subtrees disjoint from [first, end), in the order format.md's NODE consumes them."""
        proof: list[bytes] = []

        def walk(start: int, stop: int) -> None:
            if stop <= first or start >= end:
                proof.append(self.mth(start, stop))
            elif stop - start > 1:
                k = split_point(stop - start)
                walk(start, start + k)
                walk(start + k, stop)

        walk(0, size)
        return proof

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """SUBPROOF of RFC 9162 section 2.1.4.1."""
        if old in (0, new):
            return []

        def subproof(m: int, start: int, stop: int, whole: bool) -> list[bytes]:
            n = stop - start
            if m == n:
                return [] if whole else [self.mth(start, stop)]
            k = split_point(n)
            if m <= k:
                return [*subproof(m, start, start + k, whole), self.mth(start + k, stop)]
            return [*subproof(m - k, start + k, stop, False), self.mth(start, start + k)]

        return subproof(old, 0, new, True)


def stream_lines(hot: Path, trader: str, stream: str) -> list[bytes]:
    """A stream's lines in tree order (docs/format.md section 3): its files by (day, segment), line by line."""
    lines: list[bytes] = []
    for path in sorted(hot.glob(f"audit.{trader}.{stream}.*.jsonl")):
        data = path.read_bytes()
        pieces = data.split(b"\n")
        lines.extend(pieces[:-1])
        if pieces[-1]:
            lines.append(pieces[-1])
    return lines


def ts_recorded(line: bytes) -> int | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value.get("ts_recorded") if isinstance(value, dict) else None


def window_range(lines: Sequence[bytes], start_ns: int, end_ns: int, size: int) -> tuple[int, int]:
    """[first, end): from the last record before the window (or 0) to the first after it (or size)."""
    first, end = 0, size
    for p in range(size):
        ts = ts_recorded(lines[p])
        if ts is None:
            continue
        if ts < start_ns:
            first = p
        elif ts >= end_ns:
            end = p + 1
            break
    return first, end


def key_entry(public_key: bytes, roles: Sequence[str] = ("writer",), not_before_ns: int | None = None,
              not_after_ns: int | None = None) -> dict[str, Any]:
    return {"key_id": hashlib.sha256(public_key).digest()[:8].hex(),
            "public_key": base64.b64encode(public_key).decode(), "roles": list(roles),
            "not_before_ns": not_before_ns, "not_after_ns": not_after_ns}


def write_trusted_keys(path: Path, entries: Sequence[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"format": "ledgerline-trusted-keys/1", "keys": list(entries)}), encoding="utf-8")
    return path


def stream_entry(origin: str, checkpoint: str, lines: Sequence[bytes], first: int, end: int,
                 redact: Sequence[int] = (),
                 witness: tuple[str, list[bytes]] | None = None) -> tuple[dict[str, Any], bytes]:
    """One item of ``streams`` and its `.lines` bytes, with the range proof computed here."""
    size = int(checkpoint.split("\n")[1])
    tree = NaiveTree([leaf(line) for line in lines[:size]])
    _, trader, stream = origin.split("/")
    item = {
        "origin": origin, "checkpoint": checkpoint, "first": first, "end": end,
        "lines": f"streams/{trader}.{stream}.lines",
        "redacted": {str(p): tree.leaves[p].hex() for p in redact},
        "range_proof": [h.hex() for h in tree.range_proof(first, end, size)],
        "witness": None if witness is None else {"note": witness[0],
                                                 "consistency_proof": [h.hex() for h in witness[1]]},
    }
    data = b"".join(lines[p] + b"\n" for p in range(first, end) if p not in redact)
    return item, data


def bundle_index(streams: Sequence[dict[str, Any]], start_ns: int, end_ns: int, *, redacted: bool = False,
                 keyed: bool = False, keys: Sequence[dict[str, Any]] = (), **filters: Any) -> dict[str, Any]:
    return {"format": "ledgerline-bundle/1", "created_ns": end_ns,
            "selection": {"start_ns": start_ns, "end_ns": end_ns, "event_types": filters.get("event_types"),
                          "sources": filters.get("sources"), "params": filters.get("params")},
            "redacted": redacted, "keyed": keyed, "streams": list(streams), "keys": list(keys)}


def write_zip(path: Path, entries: Sequence[tuple[str, bytes]]) -> Path:
    """A ZIP with exactly these entries in this order (duplicates and odd names allowed: tests need them)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": wanted here
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    path.write_bytes(buffer.getvalue())
    return path


def write_bundle(path: Path, index: dict[str, Any], lines: dict[str, bytes]) -> Path:
    return write_zip(path, [("bundle.json", json.dumps(index).encode()), *sorted(lines.items())])


def read_zip(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A bundle's index and its other entries (for tampering)."""
    with zipfile.ZipFile(path) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    return json.loads(entries.pop("bundle.json")), entries


def tampered(source: Path, out: Path, change: Callable[[dict[str, Any], dict[str, bytes]], None]) -> Path:
    """A copy of the bundle at ``source`` with ``change(index, entries)`` applied in place."""
    index, entries = read_zip(source)
    change(index, entries)
    return write_bundle(out, index, entries)


# --- hand-made streams: records, notes and bundles built here, signed with the test key -----------------

def record(sequence: int, prev: str, ts: int | None, **extra: Any) -> bytes:
    """A record line of section 1 (format 3 with ``ts``, else format 2 without ``ts_recorded``)."""
    fields: dict[str, Any] = {"ts_event": T0, "event_type": "param.risk_change", "source": "risk",
                              "trader_id": "T9", "sequence": sequence, "correlation_id": None, "prev_hash": prev}
    fields["format"] = 2
    if ts is not None:
        fields.update({"format": 3, "ts_recorded": ts})
    fields.update({"param_name": "max_position", "old_value": 1, "new_value": 2, "trigger_reason": "x"}, **extra)
    body = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    return body[:-1] + b',"checksum":"' + hashlib.sha256(body).hexdigest().encode() + b'"}'


def chain(count: int, ts: Sequence[int | None] | None = None) -> list[bytes]:
    lines, prev = [], "0" * 64
    for i in range(count):
        line = record(i, prev, T0 + i * STEP if ts is None else ts[i])
        prev = json.loads(line)["checksum"]
        lines.append(line)
    return lines


def sign_note(text: str, private: Ed25519PrivateKey = PRIVATE) -> str:
    key_id = hashlib.sha256(b"ledgerline\n\x01" + raw_public(private)).digest()[:4]
    signature = private.sign(text.encode())
    return f"{text}\n\u2014 ledgerline {base64.b64encode(key_id + signature).decode()}\n"


def hmac_note(text: str, key: bytes = b"trail-key") -> str:
    key_id = hmac.new(key, b"ledgerline stream checkpoint key id", hashlib.sha256).digest()[:4]
    signature = hmac.new(key, text.encode(), hashlib.sha256).digest()
    return f"{text}\n\u2014 ledgerline-hmac {base64.b64encode(key_id + signature).decode()}\n"


def unsigned_note(text: str) -> str:
    blob = b"\0\0\0\0" + hashlib.sha256(text.encode()).digest()
    return f"{text}\n\u2014 ledgerline-unsigned {base64.b64encode(blob).decode()}\n"


def flip_signature(note: str) -> str:
    """The note with one bit of its signature (not of its key id) flipped."""
    text, line = note.rstrip("\n").rsplit("\n", 1)
    prefix, encoded = line.rsplit(" ", 1)
    blob = bytearray(base64.b64decode(encoded))
    blob[20] ^= 1
    return f"{text}\n{prefix} {base64.b64encode(bytes(blob)).decode()}\n"


def hand_bundle(path: Path, lines: list[bytes], first: int, end: int, start_ns: int, end_ns: int,
                signed_at: int | None = T0, note: Callable[[str], str] = sign_note, redact: Sequence[int] = (),
                **index: Any) -> Path:
    """A one-stream bundle (origin ledgerline/T9/s) over ``lines``, its checkpoint made by ``note``."""
    root = NaiveTree([leaf(line) for line in lines]).root()
    text = f"ledgerline/T9/s\n{len(lines)}\n{base64.b64encode(root).decode()}\n"
    if signed_at is not None:
        text += f"signed-at {signed_at}\n"
    item, data = stream_entry("ledgerline/T9/s", note(text), lines, first, end, redact=redact)
    index.setdefault("redacted", bool(redact))
    return write_bundle(path, bundle_index([item], start_ns, end_ns, keys=[key_entry(PUBLIC)], **index),
                        {item["lines"]: data})
