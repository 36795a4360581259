"""Checking an evidence bundle and stating what it proves: docs/format.md section 7.

``verify_bundle`` runs every check of section 7 on every stream and returns the report dict
(``claim``, ``failures``, ``streams``); ``check_bundle`` returns the same as a :class:`Report` that
also carries the sentences saying what was not proved.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spec_verifier.container import Bundle, Malformed, Selection, StreamEntry, loads, read_bundle
from spec_verifier.keys import Key, key_from_public_key, load_trusted_keys, public_key_bytes
from spec_verifier.merkle import consistent, leaf_hash, range_root
from spec_verifier.notes import Note, NoteError, SignatureResult, check_signature, parse_note

#: Records a failure of the stream being checked: (reason, position, message).
Fail = Callable[[str, int | None, str], None]
#: A record line ends with its checksum field (section 1, "Checksum").
_CHECKSUM_SUFFIX = re.compile(rb',"checksum":"([0-9a-f]{64})"\}\Z')
#: Section 1's layout where the chain fields are read (section 7 requires it of a record).
_LAYOUT_SUFFIX = re.compile(rb',"checksum":".{64}"\}\Z', re.S)
_PREV_KEY = b'"prev_hash":'
_FORMAT_SLOT = re.compile(rb',"format":([0-9]+)(?=[,}])')
_TS_SLOT = re.compile(rb',"ts_recorded":(0|[1-9][0-9]*)(?=[,}])')
#: The fields a full line needs, with their JSON types, to be a record (section 7).
_RECORD_FIELDS: dict[str, type] = {
    "ts_event": int, "sequence": int, "event_type": str, "source": str, "trader_id": str, "prev_hash": str,
    "checksum": str,
}


@dataclass
class Failure:
    reason: str
    stream: str | None
    position: int | None
    message: str


@dataclass
class StreamReport:
    origin: str
    N: int | None = None
    first: int | None = None
    end: int | None = None
    in_window: int = 0
    matching: int = 0
    redacted: int = 0
    torn: int = 0
    key_id: str | None = None
    trusted: bool = False
    witnessed_size: int | None = None
    time_complete: bool = True


@dataclass
class Report:
    failures: list[Failure] = field(default_factory=list)
    streams: list[StreamReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def claim(self) -> str:
        if self.failures:
            return "invalid"
        if not all(stream.trusted for stream in self.streams):
            return "unauthenticated"
        if not all(stream.time_complete for stream in self.streams):
            return "positions-only"
        if any(stream.redacted for stream in self.streams):
            return "complete-redacted"
        return "complete"

    def to_dict(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "failures": [{"reason": f.reason, "stream": f.stream, "position": f.position, "message": f.message}
                         for f in self.failures],
            "streams": [{"origin": s.origin, "N": s.N, "first": s.first, "end": s.end, "in_window": s.in_window,
                         "matching": s.matching, "redacted": s.redacted, "torn": s.torn, "key_id": s.key_id,
                         "trusted": s.trusted, "witnessed_size": s.witnessed_size} for s in self.streams],
        }


def verify_bundle(path: str | Path, *, trusted_keys_path: str | Path | None = None,
                  public_key_b64: str | None = None, hmac_key: bytes | None = None) -> dict[str, Any]:
    """Check the bundle at ``path`` as docs/format.md section 7 says; return the report dict.

    Args:
        path: the bundle file (untrusted: anything wrong with it is a ``bundle_malformed`` failure).
        trusted_keys_path: the auditor's trusted-keys file (section 6).
        public_key_b64: or one public key (base64 of the raw 32 bytes, or PEM), trusted for every
            role with an unbounded window.
        hmac_key: the trail key, to check record checksums of a keyed trail and HMAC notes.

    Raises:
        KeyFileError: the trusted-keys file or public key is not valid (the auditor's input).
        FileNotFoundError: no file at ``path``.
    """
    return check_bundle(path, trusted_keys_path=trusted_keys_path, public_key_b64=public_key_b64,
                        hmac_key=hmac_key).to_dict()


def check_bundle(path: str | Path, *, trusted_keys_path: str | Path | None = None,
                 public_key_b64: str | None = None, hmac_key: bytes | None = None) -> Report:
    """As :func:`verify_bundle`, returning the :class:`Report` (with its notes)."""
    if trusted_keys_path is not None and public_key_b64 is not None:
        raise ValueError("give a trusted-keys file or a public key, not both")
    trusted: list[Key] | None = None
    if trusted_keys_path is not None:
        trusted = load_trusted_keys(trusted_keys_path)
    elif public_key_b64 is not None:
        trusted = [key_from_public_key(public_key_bytes(public_key_b64))]
    report = Report()
    try:
        bundle = read_bundle(path)
    except Malformed as exc:
        report.failures.append(Failure("bundle_malformed", None, None, str(exc)))
        return report
    if trusted is None:
        report.notes.append("no trusted keys given: Ed25519 signatures were checked only against the bundle's own "
                            "keys, which proves nothing about who wrote these records")
    if bundle.keyed and hmac_key is None:
        report.notes.append("keyed trail: record checksums (HMAC-SHA256) were not checked without the trail key")
    for entry in bundle.streams:
        report.streams.append(_check_stream(bundle, entry, trusted, hmac_key, report))
    report.notes.append("a bundle never proves that the trail had no other stream than those it lists")
    return report


@dataclass
class _Position:
    line: bytes | None  # None: redacted
    record: dict[str, Any] | None = None


def _keeps_layout(line: bytes) -> bool:
    """Section 1's layout where the chain fields are read (section 7: the checksum suffix, the prev_hash
    slot, and ``"format":F,"ts_recorded":N`` directly after it exactly when F >= 3)."""
    at = line.find(_PREV_KEY)
    if not _LAYOUT_SUFFIX.search(line) or at < 0:
        return False
    start = at + len(_PREV_KEY)
    if line[start:start + 1] != b'"' or line[start + 65:start + 66] != b'"':
        return False
    fmt = _FORMAT_SLOT.match(line, start + 66)
    if fmt is None:
        return True
    ts = _TS_SLOT.match(line, fmt.end())
    if int(fmt.group(1)) >= 3:
        return ts is not None and int(ts.group(1)) < 2**63
    return ts is None


def _parse_record(line: bytes) -> dict[str, Any] | None:
    """The record of a full line (section 7, "A record here is ..."), or None for a line that is not one."""
    if not _keeps_layout(line):
        return None
    try:
        value = loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or not value or list(value)[-1] != "checksum":
        return None
    for name, kind in _RECORD_FIELDS.items():
        item = value.get(name)
        if not isinstance(item, kind) or isinstance(item, bool):
            return None
    if "ts_recorded" in value and (not isinstance(value["ts_recorded"], int) or isinstance(value["ts_recorded"], bool)):
        return None
    return value


def _ts_recorded(record: dict[str, Any] | None) -> int | None:
    return None if record is None else record.get("ts_recorded")


def _matches(record: dict[str, Any], selection: Selection) -> bool:
    ts = _ts_recorded(record)
    if ts is None or not selection.start_ns <= ts < selection.end_ns:
        return False
    event_type = record["event_type"]
    if selection.event_types is not None and not any(
            _type_matches(event_type, pattern) for pattern in selection.event_types):
        return False
    if selection.sources is not None and record["source"] not in selection.sources:
        return False
    return selection.params is None or (
        event_type.startswith("param.") and record.get("param_name") in selection.params)


def _type_matches(event_type: str, pattern: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern


def _check_stream(bundle: Bundle, entry: StreamEntry, trusted: list[Key] | None, hmac_key: bytes | None,
                  report: Report) -> StreamReport:
    origin = entry.origin
    out = StreamReport(origin)

    def fail(reason: str, position: int | None, message: str) -> None:
        report.failures.append(Failure(reason, origin, position, message))

    # The checkpoint first: without it nothing else of the stream can be checked.
    note = _checkpoint(entry.checkpoint, origin, "checkpoint", fail)
    if note is None:
        return out
    out.N, out.first, out.end = note.size, entry.first, entry.end
    signature = _signature(note, bundle, trusted, hmac_key, "checkpoint", fail)
    out.trusted = signature.authenticated
    out.key_id = signature.key.key_id if signature.key is not None else None
    _witness(entry, note, bundle, trusted, hmac_key, out, fail)
    # The range and its positions (full lines from the `.lines` entry, redacted ones from the index): when
    # they do not fit, none of the stream's positions is checked and its counts stay 0.
    if not 0 <= entry.first < entry.end <= note.size:
        fail("range_proof_invalid", None, f"the range {entry.first}..{entry.end} is not 0 <= first < end <= N "
             f"(N = {note.size})")
        return out
    outside = sorted(p for p in entry.redacted if not entry.first <= p < entry.end)
    if outside:
        fail("range_proof_invalid", outside[0], f"redacted positions outside the range: {outside[:5]}")
        return out
    data = bundle.entries[entry.lines]
    if data and not data.endswith(b"\n"):
        fail("bundle_malformed", None, f"{entry.lines} does not end with a newline")
        return out
    lines = data.split(b"\n")[:-1]
    expected = entry.end - entry.first - len(entry.redacted)
    if len(lines) != expected:
        fail("range_proof_invalid", None, f"{entry.lines}: expected {expected} lines, got {len(lines)}")
        return out
    out.redacted = len(entry.redacted)
    given = iter(lines)
    positions = {p: _Position(None) if p in entry.redacted else _Position(next(given))
                 for p in range(entry.first, entry.end)}
    for position in positions.values():
        if position.line is not None:
            position.record = _parse_record(position.line)

    def leaf(p: int) -> bytes:
        line = positions[p].line
        return entry.redacted[p] if line is None else leaf_hash(line)

    root = range_root(entry.first, entry.end, note.size, leaf, entry.range_proof)
    if root != note.root:
        fail("range_proof_invalid", None, "the lines and the range proof do not give the checkpoint's root"
             if root is not None else "the range proof has too few or too many hashes")
    if entry.end == note.size:
        report.notes.append(f"{origin}: the window is covered only up to position {note.size - 1} (the "
                            "checkpoint); records recorded after it are not covered")
    _boundaries_and_redactions(bundle, entry, note.size, positions, fail)
    _chain(bundle, entry, positions, hmac_key, fail)

    # Counts and time completeness.
    selection = bundle.selection
    out.in_window = len(entry.redacted)
    for position in positions.values():
        if position.line is None:
            continue
        if position.record is None:
            out.torn += 1
            continue
        ts = _ts_recorded(position.record)
        if ts is None:
            out.time_complete = False
        elif selection.start_ns <= ts < selection.end_ns:
            out.in_window += 1
            out.matching += _matches(position.record, selection)
    if not out.time_complete:
        report.notes.append(f"{origin}: positions {entry.first}..{entry.end - 1} only; completeness by time "
                            "not established (a record without ts_recorded)")
    return out


def _checkpoint(text: str, origin: str, what: str, fail: Fail) -> Note | None:
    try:
        note = parse_note(text)
    except NoteError as exc:
        fail("checkpoint_malformed", None, f"{what}: {exc}")
        return None
    if note.origin != origin:
        fail("checkpoint_malformed", None, f"{what}: origin {note.origin!r}, expected {origin!r}")
        return None
    return note


def _signature(note: Note, bundle: Bundle, trusted: list[Key] | None, hmac_key: bytes | None, what: str,
               fail: Fail) -> SignatureResult:
    result = check_signature(note, trusted, bundle.keys, hmac_key=hmac_key)
    if result.failure is not None:
        fail(result.failure, None, f"{what}: {result.message}")
    return result


def _witness(entry: StreamEntry, note: Note, bundle: Bundle, trusted: list[Key] | None, hmac_key: bytes | None,
             out: StreamReport, fail: Fail) -> None:
    if entry.witness is None:
        return
    witnessed = _checkpoint(entry.witness.note, entry.origin, "witness note", fail)
    if witnessed is None:
        return
    _signature(witnessed, bundle, trusted, hmac_key, "witness note", fail)
    if witnessed.size < note.size or not consistent(note.size, witnessed.size, note.root, witnessed.root,
                                                    entry.witness.consistency_proof):
        fail("consistency_invalid", None, f"no valid RFC 9162 consistency proof from size {note.size} to the "
             f"witnessed size {witnessed.size}")
        return
    out.witnessed_size = witnessed.size


def _boundaries_and_redactions(bundle: Bundle, entry: StreamEntry, size: int, positions: dict[int, _Position],
                               fail: Fail) -> None:
    selection = bundle.selection
    first, last = entry.first, entry.end - 1
    # Edges are never redacted; a redacted edge is reported as that rather than as an unproven boundary.
    for edge in sorted({first, last} & set(entry.redacted)):
        fail("redaction_not_allowed", edge, f"position {edge} is an edge of the range and may not be redacted")
    # Left edge: position 0, or a record recorded before the window.
    left_ts = _ts_recorded(positions[first].record)
    if first != 0 and first not in entry.redacted and (left_ts is None or left_ts >= selection.start_ns):
        fail("boundary_unproven", first, f"position {first} is not a record recorded before the window "
             f"(start_ns {selection.start_ns})")
    # Right edge: a record recorded at or after the window's end, or the checkpoint's last position.
    right_ts = _ts_recorded(positions[last].record)
    if entry.end != size and last not in entry.redacted and (right_ts is None or right_ts < selection.end_ns):
        fail("boundary_unproven", last, f"position {last} is not a record recorded at or after the window's end "
             f"(end_ns {selection.end_ns}) and the range does not end at the checkpoint")
    # Other redacted positions: only in a redacted bundle, and only inside the window.
    before = [p for p, pos in positions.items() if (ts := _ts_recorded(pos.record)) is not None
              and ts < selection.start_ns]
    after = [p for p, pos in positions.items() if (ts := _ts_recorded(pos.record)) is not None
             and ts >= selection.end_ns]
    low, high = max(before, default=first - 1), min(after, default=entry.end)
    for p in sorted(set(entry.redacted) - {first, last}):
        if not bundle.redacted:
            fail("redaction_not_allowed", p, f"position {p} is redacted in a bundle with redacted: false")
        elif not low < p < high:
            fail("redaction_not_allowed", p, f"position {p} is outside the window (records at {low} and {high} "
                 "bound it)")


def _chain(bundle: Bundle, entry: StreamEntry, positions: dict[int, _Position], hmac_key: bytes | None,
           fail: Fail) -> None:
    check = not bundle.keyed or hmac_key is not None
    check_key = hmac_key if bundle.keyed else None
    previous: dict[str, Any] | None = None
    latest_ts: int | None = None
    for p in range(entry.first, entry.end):
        record = positions[p].record
        line = positions[p].line
        if record is not None and line is not None and check:
            match = _CHECKSUM_SUFFIX.search(line)
            if match is None:
                fail("checksum_mismatch", p, "the line does not end with its checksum field")
            else:
                body = line[:match.start()] + b"}"
                digest = (hmac.new(check_key, body, hashlib.sha256) if check_key is not None
                          else hashlib.sha256(body)).hexdigest()
                if digest != match.group(1).decode():
                    fail("checksum_mismatch", p, f"checksum {match.group(1).decode()}, computed {digest}")
        if record is not None and previous is not None and (
                record["sequence"] != previous["sequence"] + 1 or record["prev_hash"] != previous["checksum"]):
            fail("chain_broken", p, f"sequence {record['sequence']} after {previous['sequence']}, prev_hash "
                 f"{record['prev_hash'][:16]}... after checksum {previous['checksum'][:16]}...")
        ts = _ts_recorded(record)
        if ts is not None:
            if latest_ts is not None and ts < latest_ts:
                fail("ts_recorded_backwards", p, f"ts_recorded {ts} after {latest_ts}")
            latest_ts = ts if latest_ts is None else max(latest_ts, ts)
        previous = record
