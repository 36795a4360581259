"""Checking an evidence bundle offline: the ZIP as untrusted input, then every check of docs/format.md section 7.

Every check runs and every failure is recorded with its reason code, stream and position; nothing
in the bundle is believed before it is checked (entry names, sizes, JSON types, the keys it lists).
Signatures count only under keys the caller trusts (``TrustedKeys``); with none, the bundle's own
keys may show it is self-consistent, and the claim is ``unauthenticated``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from audit_core.errors import AuditConfigError, AuditFormatError, AuditIntegrityError, KeyTrustError
from audit_core.evidence.bundle_format import (
    BUNDLE_FORMAT,
    INDEX_ENTRY,
    MAX_ENTRY_BYTES,
    MAX_INDEX_BYTES,
    BundleRecord,
    Selection,
    is_hex64,
    is_position_key,
    line_leaf,
    lines_entry,
    read_record,
    root_from_range,
)
from audit_core.evidence.report import BundleReport, StreamResult, iso_ns
from audit_core.trust.checkpoint import DEFAULT_KEY_NAME, note_key_id, parse_checkpoint
from audit_core.trust.keyring import TrustedKeys
from audit_core.trust.record import compute_checksum
from audit_core.trust.signing import key_id
from audit_core.trust.stream_tree import HMAC_KEY_NAME, UNSIGNED_KEY_NAME, hmac_key_id, parse_origin, verify_consistency

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

_SIGNED_AT = "signed-at "
_STREAM_FIELDS = {"origin", "checkpoint", "first", "end", "lines", "redacted", "range_proof", "witness"}
_INDEX_FIELDS = {"format", "created_ns", "selection", "redacted", "keyed", "streams", "keys"}
_KEY_FIELDS = {"key_id", "public_key", "roles", "not_before_ns", "not_after_ns"}


class _Malformed(Exception):
    """The bundle breaks the container or index rules; the message says where."""


def verify_bundle(
    path: Path | str,
    *,
    trusted_keys: TrustedKeys | None = None,
    public_key: Ed25519PublicKey | None = None,
    hmac_key: bytes | None = None,
) -> BundleReport:
    """Check the evidence bundle at ``path`` (docs/format.md section 7) and say what it proves.

    Args:
        path: The bundle file.
        trusted_keys: The keys the auditor trusts (``TrustedKeys.load(file)``), with roles and windows.
        public_key: Instead, one trusted key (every role, unbounded window).
        hmac_key: The trail's HMAC key: checks keyed record checksums and HMAC checkpoint notes.

    Returns:
        The report: ``claim`` (``complete``, ``complete-redacted``, ``positions-only``,
        ``unauthenticated`` or ``invalid``), the failures, and per stream its range and counts.
        Never raises for a bad bundle: a malformed one is ``bundle_malformed``.
    """
    if trusted_keys is None and public_key is not None:
        trusted_keys = TrustedKeys.from_public_key(public_key)
    report = BundleReport(str(path))
    try:
        index, entries = _read_container(Path(path))
        selection = _selection(index["selection"])
        bundle_keys = _bundle_keys(index["keys"])
    except _Malformed as exc:
        report.fail("bundle_malformed", None, None, str(exc))
        return report
    report.selection = selection.to_json()
    report.keyed = index["keyed"]
    report.checksums_checked = not index["keyed"] or hmac_key is not None
    context = _Context(report, selection, index["redacted"], index["keyed"], trusted_keys, bundle_keys, hmac_key)
    for stream in index["streams"]:
        report.streams.append(_verify_stream(stream, entries[stream["lines"]], context))
    report.claim = _claim(report)
    return report


# --- the container ---------------------------------------------------------------------------------


def _read_container(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The checked index and the lines entries it references; every other entry is refused."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = [info.filename for info in infos]
            for info in infos:
                _check_entry_name(info.filename, names)
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 0x1:
                    raise _Malformed(f"entry {info.filename[:80]!r} is encrypted or compressed with method "
                                     f"{info.compress_type} (only stored or deflated)")
                if info.file_size > MAX_ENTRY_BYTES or info.file_size < 0:
                    raise _Malformed(f"entry {info.filename!r} declares {info.file_size} bytes (at most "
                                     f"{MAX_ENTRY_BYTES})")
            by_name = {info.filename: info for info in infos}
            if INDEX_ENTRY not in by_name:
                raise _Malformed(f"no {INDEX_ENTRY} entry")
            if by_name[INDEX_ENTRY].file_size > MAX_INDEX_BYTES:
                raise _Malformed(f"{INDEX_ENTRY} declares {by_name[INDEX_ENTRY].file_size} bytes (at most "
                                 f"{MAX_INDEX_BYTES})")
            index = _index(archive.read(by_name[INDEX_ENTRY]))
            referenced = {stream["lines"] for stream in index["streams"]}
            extra = sorted(set(names) - referenced - {INDEX_ENTRY})
            if extra:
                raise _Malformed(f"entries the index does not reference: {[name[:80] for name in extra[:5]]}")
            missing = sorted(referenced - set(names))
            if missing:
                raise _Malformed(f"lines entries the index references are missing: {missing[:5]}")
            return index, {name: archive.read(by_name[name]) for name in referenced}
    except _Malformed:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError,
            RuntimeError, KeyError) as exc:
        raise _Malformed(f"not a readable ZIP archive: {type(exc).__name__}: {str(exc)[:200]}") from None


def _check_entry_name(name: str, names: list[str]) -> None:
    if name.startswith("/") or ".." in name or "\\" in name or "\x00" in name or not name:
        raise _Malformed(f"entry name {name[:80]!r} is absolute or contains '..', a backslash or a NUL")
    if names.count(name) > 1:
        raise _Malformed(f"entry {name[:80]!r} is listed {names.count(name)} times")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Malformed(f"{INDEX_ENTRY} repeats a key among {sorted(result)[:10]}")
    return result


def _no_constant(name: str) -> None:
    raise _Malformed(f"{INDEX_ENTRY} holds {name}, which is not JSON")


def _index(data: bytes) -> dict[str, Any]:
    try:
        index = json.loads(data.decode("utf-8"), object_pairs_hook=_unique, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Malformed(f"{INDEX_ENTRY} is not UTF-8 JSON: {str(exc)[:200]}") from None
    _expect(isinstance(index, dict), INDEX_ENTRY, "a JSON object", index)
    _expect(set(index) == _INDEX_FIELDS, INDEX_ENTRY, f"exactly the fields {sorted(_INDEX_FIELDS)}", sorted(index))
    _expect(index["format"] == BUNDLE_FORMAT, "format", repr(BUNDLE_FORMAT), index["format"])
    _expect(_is_int(index["created_ns"]), "created_ns", "an integer", index["created_ns"])
    for name in ("redacted", "keyed"):
        _expect(isinstance(index[name], bool), name, "true or false", index[name])
    _expect(isinstance(index["keys"], list), "keys", "a list", index["keys"])
    streams = index["streams"]
    _expect(isinstance(streams, list) and streams, "streams", "a non-empty list", streams)
    origins = set()
    for number, stream in enumerate(streams):
        where = f"streams[{number}]"
        _expect(isinstance(stream, dict) and set(stream) == _STREAM_FIELDS, where,
                f"an object with exactly {sorted(_STREAM_FIELDS)}", stream if not isinstance(stream, dict)
                else sorted(stream))
        names = parse_origin(stream["origin"]) if isinstance(stream["origin"], str) else None
        _expect(names is not None, f"{where}.origin", "ledgerline/<trader>/<stream>", stream["origin"])
        assert names is not None
        _expect(stream["origin"] not in origins, f"{where}.origin", "a stream listed once", stream["origin"])
        origins.add(stream["origin"])
        _expect(stream["lines"] == lines_entry(*names), f"{where}.lines", repr(lines_entry(*names)), stream["lines"])
        _expect(isinstance(stream["checkpoint"], str), f"{where}.checkpoint", "a string", stream["checkpoint"])
        for name in ("first", "end"):
            _expect(_is_int(stream[name]), f"{where}.{name}", "an integer", stream[name])
        _expect(isinstance(stream["range_proof"], list) and all(map(is_hex64, stream["range_proof"])),
                f"{where}.range_proof", "a list of 64 lower-case hex", stream["range_proof"])
        redacted = stream["redacted"]
        _expect(isinstance(redacted, dict) and all(is_position_key(k) and is_hex64(v) for k, v in redacted.items()),
                f"{where}.redacted", "an object of decimal positions to 64 lower-case hex", redacted)
        witness = stream["witness"]
        _expect(witness is None or (isinstance(witness, dict) and set(witness) == {"note", "consistency_proof"}
                                    and isinstance(witness["note"], str)
                                    and isinstance(witness["consistency_proof"], list)
                                    and all(map(is_hex64, witness["consistency_proof"]))),
                f"{where}.witness", "null or {note: string, consistency_proof: [64 hex]}", witness)
    return cast("dict[str, Any]", index)


def _selection(value: object) -> Selection:
    _expect(isinstance(value, dict) and set(value) == {"start_ns", "end_ns", "event_types", "sources", "params"},
            "selection", "an object with start_ns, end_ns, event_types, sources, params", value)
    assert isinstance(value, dict)
    for name in ("event_types", "sources", "params"):
        given = value[name]
        _expect(given is None or (isinstance(given, list) and given and all(isinstance(v, str) for v in given)),
                f"selection.{name}", "null or a non-empty list of strings", given)
    try:
        return Selection.of(value["start_ns"], value["end_ns"], value["event_types"], value["sources"],
                            value["params"])
    except ValueError as exc:
        raise _Malformed(f"selection: {exc}") from None


class _BundleKey(NamedTuple):
    key_id: str
    public_key: Ed25519PublicKey


def _bundle_keys(value: list[Any]) -> list[_BundleKey]:
    """The keys the bundle lists (for information only), checked as trusted-keys file entries are."""
    if not value:
        return []
    for number, entry in enumerate(value):
        _expect(isinstance(entry, dict) and set(entry) == _KEY_FIELDS, f"keys[{number}]",
                f"an object with exactly {sorted(_KEY_FIELDS)}", entry)
    try:
        listed = TrustedKeys.from_entries(value, f"{INDEX_ENTRY} keys")
    except (AuditFormatError, AuditConfigError, ValueError) as exc:
        raise _Malformed(str(exc)) from None
    return [_BundleKey(key.key_id, key.public_key) for key in listed.keys]


def _expect(ok: object, field: str, expected: str, got: object) -> None:
    if not ok:
        raise _Malformed(f"{field}: expected {expected}, got {str(got)[:120]}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- one stream ------------------------------------------------------------------------------------


class _Context(NamedTuple):
    report: BundleReport
    selection: Selection
    redacted_allowed: bool
    keyed: bool
    trusted: TrustedKeys | None
    bundle_keys: list[_BundleKey]
    hmac_key: bytes | None


class _Note(NamedTuple):
    size: int
    root: bytes
    trusted: bool
    key_id: str | None
    signer: str


def _verify_stream(stream: dict[str, Any], data: bytes, context: _Context) -> StreamResult:
    origin: str = stream["origin"]
    result = StreamResult(origin)
    note = _check_note(stream["checkpoint"], origin, context, "checkpoint")
    if note is None:
        return result
    result.N, result.first, result.end = note.size, stream["first"], stream["end"]
    result.trusted, result.key_id, result.signer = note.trusted, note.key_id, note.signer
    if stream["witness"] is not None:
        result.witnessed_size = _check_witness(stream["witness"], note, origin, context)
    first, end, size = stream["first"], stream["end"], note.size
    report = context.report
    if not 0 <= first < end <= size:
        report.fail("range_proof_invalid", origin, None,
                    f"range [{first}, {end}) is not a non-empty range of the checkpoint's {size} line(s)")
        return result
    redacted = {int(position): bytes.fromhex(leaf) for position, leaf in stream["redacted"].items()}
    outside = sorted(p for p in redacted if not first <= p < end)
    if outside:
        report.fail("range_proof_invalid", origin, outside[0], f"redacted position {outside[0]} is outside "
                                                               f"[{first}, {end})")
        return result
    if data and not data.endswith(b"\n"):
        report.fail("bundle_malformed", origin, None, f"{stream['lines']} does not end with a newline")
        return result
    lines = data.split(b"\n")[:-1] if data else []
    if len(lines) != end - first - len(redacted):
        report.fail("range_proof_invalid", origin, None,
                    f"{stream['lines']} holds {len(lines)} line(s); the range [{first}, {end}) with "
                    f"{len(redacted)} redacted position(s) needs {end - first - len(redacted)}")
        return result
    full: dict[int, bytes] = {}
    given = iter(lines)
    for position in range(first, end):
        if position not in redacted:
            full[position] = next(given)
    proof = [bytes.fromhex(node) for node in stream["range_proof"]]
    root = root_from_range(size, first, end, lambda p: redacted[p] if p in redacted else line_leaf(full[p]), proof)
    if root is None or not hmac.compare_digest(root, note.root):
        report.fail("range_proof_invalid", origin, None,
                    f"the lines of [{first}, {end}) and the range proof do not rebuild the checkpoint's root "
                    f"{note.root.hex()} (a line was edited, removed, inserted or moved, or the proof was changed)")
    _check_records(result, full, redacted, context)
    return result


def _check_records(result: StreamResult, full: dict[int, bytes], redacted: dict[int, bytes], context: _Context) -> None:
    """Redaction, window boundaries, chain, ts_recorded order, checksums and the counts of one stream."""
    report, selection, origin = context.report, context.selection, result.origin
    assert result.first is not None and result.end is not None and result.N is not None
    first, end = result.first, result.end
    for position in sorted(redacted):
        if not context.redacted_allowed:
            report.fail("redaction_not_allowed", origin, position, "a redacted position in a bundle that is not "
                                                                   "redacted (a record was withheld)")
        elif position in (first, end - 1):
            report.fail("redaction_not_allowed", origin, position, "an edge position of the range is redacted")
    records = {position: read_record(line) for position, line in full.items()}
    # A redacted position must lie inside the window: ts_recorded never goes backwards, so one before a record
    # recorded before start_ns, or after one recorded at or after end_ns, is outside it (format.md section 7).
    stamped = [(p, r.ts_recorded) for p, r in records.items() if r is not None and r.ts_recorded is not None]
    low = max((p for p, ts in stamped if ts < selection.start_ns), default=first - 1)
    high = min((p for p, ts in stamped if ts >= selection.end_ns), default=end)
    for position in sorted(redacted):
        if context.redacted_allowed and position not in (first, end - 1) and not low < position < high:
            report.fail("redaction_not_allowed", origin, position, "a redacted position outside the window")
    left = records.get(first)
    if first not in redacted and first != 0 and (left is None or left.ts_recorded is None
                                                  or left.ts_recorded >= selection.start_ns):
        report.fail("boundary_unproven", origin, first, f"position {first} is not a record recorded before the "
                                                        "window: records before it could be in the window")
    right = records.get(end - 1)
    right_proven = right is not None and right.ts_recorded is not None and right.ts_recorded >= selection.end_ns
    if end - 1 not in redacted and not right_proven:
        if end == result.N:
            result.covered_up_to = True
        else:
            report.fail("boundary_unproven", origin, end - 1, f"position {end - 1} is not a record recorded after "
                                                              "the window, and the range stops before the checkpoint")
    previous: tuple[int, BundleRecord] | None = None
    latest_ts: int | None = None
    for position in range(first, end):
        if position in redacted:
            result.redacted += 1
            result.in_window += 1
            previous = None
            continue
        record = records[position]
        if record is None:
            result.torn += 1
            previous = None
            continue
        _check_record(position, record, previous, latest_ts, context, origin)
        if record.ts_recorded is None:
            result.time_complete = False
        else:
            latest_ts = record.ts_recorded if latest_ts is None else max(latest_ts, record.ts_recorded)
        if selection.in_window(record.ts_recorded):
            result.in_window += 1
        if selection.matches(record):
            result.matching += 1
            result.matching_records.append(full[position])
        previous = (position, record)


def _check_record(
    position: int, record: BundleRecord, previous: tuple[int, BundleRecord] | None, latest_ts: int | None,
    context: _Context, origin: str,
) -> None:
    report = context.report
    if previous is not None and previous[0] == position - 1:
        before = previous[1]
        if record.sequence != before.sequence + 1 or record.prev_hash != before.checksum:
            report.fail("chain_broken", origin, position,
                        f"sequence {record.sequence} / prev_hash {record.prev_hash[:16]}... does not follow sequence "
                        f"{before.sequence} / checksum {before.checksum[:16]}...")
    if record.ts_recorded is not None and latest_ts is not None and record.ts_recorded < latest_ts:
        report.fail("ts_recorded_backwards", origin, position,
                    f"ts_recorded {record.ts_recorded} is before {latest_ts}, recorded earlier in the stream")
    key = context.hmac_key if context.keyed else None
    if (not context.keyed or key is not None) and not hmac.compare_digest(compute_checksum(record.body, key),
                                                                         record.checksum):
        kind = "HMAC-SHA256" if key is not None else "SHA-256"
        report.fail("checksum_mismatch", origin, position, f"the record's {kind} checksum does not match its bytes")


# --- notes, signatures and the witness -------------------------------------------------------------


def _check_note(note: str, origin: str, context: _Context, what: str) -> _Note | None:
    """The note's size and root and who vouches for it; None (after recording why) if it cannot be used."""
    report = context.report
    try:
        checkpoint, text, signatures = parse_checkpoint(note, what)
    except AuditFormatError as exc:
        report.fail("checkpoint_malformed", origin, None, f"{what}: {exc.detail}")
        return None
    extension = text[:-1].split("\n")[3:]
    signed_at = None
    if len(extension) == 1 and extension[0].startswith(_SIGNED_AT) and _decimal(extension[0][len(_SIGNED_AT):]):
        signed_at = int(extension[0][len(_SIGNED_AT):])
    elif extension:
        report.fail("checkpoint_malformed", origin, None, f"{what}: unexpected line(s) after the root: "
                                                          f"{[line[:40] for line in extension]}")
        return None
    if checkpoint.origin != origin or len(checkpoint.root_hash) != 32:
        report.fail("checkpoint_malformed", origin, None,
                    f"{what} is of {checkpoint.origin[:80]!r} with a {len(checkpoint.root_hash)}-byte root; expected "
                    f"{origin} and 32 bytes (a checkpoint of another stream)")
        return None
    known = [(name, kid, sig) for name, kid, sig in signatures
             if name in (DEFAULT_KEY_NAME, HMAC_KEY_NAME, UNSIGNED_KEY_NAME)]
    if len(known) != 1:
        report.fail("checkpoint_malformed", origin, None,
                    f"{what} has {len(known)} ledgerline signature lines; expected exactly one")
        return None
    name, kid, sig = known[0]
    trusted, shown_id, signer = _check_signature(name, kid, sig, text.encode(), signed_at, context, origin, what)
    return _Note(checkpoint.tree_size, checkpoint.root_hash, trusted, shown_id, signer)


def _check_signature(
    name: str, kid: bytes, sig: bytes, text: bytes, signed_at: int | None, context: _Context, origin: str, what: str,
) -> tuple[bool, str | None, str]:
    """(trusted, key id of the trusted key, who signed) of one signature line; failures are recorded."""
    report = context.report
    if name == UNSIGNED_KEY_NAME:
        if kid != b"\x00" * 4 or not hmac.compare_digest(sig, hashlib.sha256(text).digest()):
            report.fail("signature_invalid", origin, None, f"{what}: its SHA-256 line does not match its text")
        return False, None, "nobody (an unsigned note: SHA-256 of its text, integrity only)"
    if name == HMAC_KEY_NAME:
        if context.hmac_key is None:
            return False, None, "an HMAC key (not checked: no --hmac-key-env)"
        expected = hmac.new(context.hmac_key, text, hashlib.sha256).digest()
        if kid != hmac_key_id(context.hmac_key) or not hmac.compare_digest(sig, expected):
            report.fail("signature_invalid", origin, None, f"{what}: its HMAC does not verify under the trail key")
            return False, None, "an HMAC key that does not verify"
        return True, None, "the trail's HMAC key"
    if context.trusted is not None:
        try:
            public_key = context.trusted.for_note_key_id(kid, "writer", signed_at)
        except KeyTrustError as exc:
            report.fail(exc.reason, origin, None, f"{what}: {exc}")
            return False, None, f"note key id {kid.hex()} (not accepted)"
        if not _ed25519_ok(public_key, sig, text):
            report.fail("signature_invalid", origin, None, f"{what}: the Ed25519 signature of key "
                                                           f"{key_id(public_key)} does not match its text")
            return False, None, f"key {key_id(public_key)} (signature invalid)"
        when = "signing time unknown" if signed_at is None else f"signed at {iso_ns(signed_at)}"
        return True, key_id(public_key), f"trusted writer key {key_id(public_key)} ({when})"
    for listed in context.bundle_keys:
        if note_key_id(DEFAULT_KEY_NAME, listed.public_key) == kid:
            if not _ed25519_ok(listed.public_key, sig, text):
                report.fail("signature_invalid", origin, None, f"{what}: the Ed25519 signature of key "
                                                               f"{listed.key_id} (listed in the bundle) does not match")
            return False, None, f"key {listed.key_id}, listed in the bundle (its own word: not trusted)"
    return False, None, f"an Ed25519 key with note key id {kid.hex()} (not checked: no trusted key given)"


def _ed25519_ok(public_key: Ed25519PublicKey, sig: bytes, text: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        public_key.verify(sig, text)
    except InvalidSignature:
        return False
    return len(sig) == 64


def _check_witness(witness: dict[str, Any], note: _Note, origin: str, context: _Context) -> int | None:
    held = _check_note(witness["note"], origin, context, "witness note")
    if held is None:
        return None
    proof = [bytes.fromhex(node) for node in witness["consistency_proof"]]
    try:
        verify_consistency(note.size, held.size, note.root, held.root, proof)
    except AuditIntegrityError as exc:
        context.report.fail("consistency_invalid", origin, None,
                            f"the witness's note of {held.size} line(s) is not shown to extend the checkpoint of "
                            f"{note.size}: {exc}")
        return None
    return held.size


def _decimal(text: str) -> bool:
    return text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0")) and len(text) <= 19


def _claim(report: BundleReport) -> str:
    if report.failures:
        return "invalid"
    if not all(stream.trusted for stream in report.streams):
        return "unauthenticated"
    if not all(stream.time_complete for stream in report.streams):
        return "positions-only"
    return "complete-redacted" if any(stream.redacted for stream in report.streams) else "complete"
