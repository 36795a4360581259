"""Reading a bundle ZIP and its index as untrusted input: docs/format.md section 7 ("Container", "Index").

Everything the section says a reader refuses raises :class:`Malformed` (reason ``bundle_malformed``);
nothing here raises anything else on a hostile file.
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spec_verifier.keys import Key, KeyFileError, parse_key_list
from spec_verifier.notes import parse_origin

BUNDLE_FORMAT = "ledgerline-bundle/1"
INDEX_NAME = "bundle.json"
INDEX_LIMIT = 64 * 2**20
ENTRY_LIMIT = 4 * 2**30
_LINES_NAME = re.compile(r"streams/([A-Za-z0-9][A-Za-z0-9_-]{0,63})\.([A-Za-z0-9][A-Za-z0-9_-]{0,63})\.lines")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_CHUNK = 2**20


class Malformed(ValueError):
    """The bundle is not a well-formed bundle (``bundle_malformed``)."""


@dataclass(frozen=True)
class Selection:
    start_ns: int
    end_ns: int
    event_types: list[str] | None
    sources: list[str] | None
    params: list[str] | None


@dataclass(frozen=True)
class Witness:
    note: str
    consistency_proof: list[bytes]


@dataclass(frozen=True)
class StreamEntry:
    origin: str
    checkpoint: str
    first: int
    end: int
    lines: str
    redacted: dict[int, bytes]
    range_proof: list[bytes]
    witness: Witness | None


@dataclass(frozen=True)
class Bundle:
    selection: Selection
    redacted: bool
    keyed: bool
    streams: list[StreamEntry]
    keys: list[Key]
    entries: dict[str, bytes]  # the `.lines` entries by name


def read_bundle(path: str | Path) -> Bundle:
    """Open the ZIP at ``path`` and return its checked index and `.lines` entries."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = _check_names(infos)
            if INDEX_NAME not in names:
                raise Malformed("no bundle.json entry")
            index = _parse_index(_read_entry(archive, names[INDEX_NAME], INDEX_LIMIT))
            referenced = {stream.lines for stream in index[3]}
            for name in names:
                if name != INDEX_NAME and name not in referenced:
                    raise Malformed(f"entry {name!r} is not referenced by bundle.json")
            entries = {}
            for name in sorted(referenced):
                if name not in names:
                    raise Malformed(f"bundle.json names {name!r}, which is not in the archive")
                entries[name] = _read_entry(archive, names[name], ENTRY_LIMIT)
    except Malformed:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError, RuntimeError,
            zlib.error, struct.error, UnicodeDecodeError) as exc:
        raise Malformed(f"not a readable ZIP archive: {exc}") from None
    except OSError as exc:
        if not Path(path).is_file():
            raise
        raise Malformed(f"not a readable ZIP archive: {exc}") from None
    selection, redacted, keyed, streams, keys = index
    return Bundle(selection, redacted, keyed, streams, keys, entries)


def _check_names(infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
    names: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        # zipfile turns "\" into "/" on Windows only; check the raw name the archive stores too.
        raw = info.orig_filename
        for candidate in {name, raw}:
            if (candidate.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", candidate) or ".." in candidate
                    or "\\" in candidate or "\0" in candidate):
                raise Malformed(f"entry name {candidate!r} is absolute or contains '..', a backslash or a NUL")
        if name in names:
            raise Malformed(f"entry {name!r} is listed twice")
        if name != INDEX_NAME and not _LINES_NAME.fullmatch(name):
            raise Malformed(f"entry {name!r} is neither bundle.json nor streams/<trader>.<stream>.lines")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise Malformed(f"entry {name!r} uses compression method {info.compress_type} (only stored or deflated)")
        if info.flag_bits & 0x1:
            raise Malformed(f"entry {name!r} is encrypted")
        names[name] = info
    return names


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """The entry's bytes, refusing a declared or actual size above ``limit``."""
    if info.file_size > limit:
        raise Malformed(f"entry {info.filename!r} declares {info.file_size} bytes (at most {limit})")
    parts = []
    total = 0
    with archive.open(info) as stream:
        while chunk := stream.read(_CHUNK):
            total += len(chunk)
            if total > limit:
                raise Malformed(f"entry {info.filename!r} holds more than {limit} bytes")
            parts.append(chunk)
    return b"".join(parts)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("a key is repeated in an object")
    return obj


def loads(text: str) -> Any:
    """Strict JSON: no repeated key in an object, no NaN/Infinity (section 7, "Container")."""
    return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_object)


#: The fields of each object of the index, exactly as section 7 shows them.
_FIELDS = {
    "bundle.json": {"format", "created_ns", "selection", "redacted", "keyed", "streams", "keys"},
    "selection": {"start_ns", "end_ns", "event_types", "sources", "params"},
    "stream": {"origin", "checkpoint", "first", "end", "lines", "redacted", "range_proof", "witness"},
    "witness": {"note", "consistency_proof"},
    "key": {"key_id", "public_key", "roles", "not_before_ns", "not_after_ns"},
}


def _fields(obj: Any, kind: str, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise Malformed(f"{where}: expected an object, got {obj!r:.80}")
    if set(obj) != _FIELDS[kind]:
        raise Malformed(f"{where}: expected the fields {sorted(_FIELDS[kind])}, got {sorted(obj)}")
    return obj


def _parse_index(data: bytes) -> tuple[Selection, bool, bool, list[StreamEntry], list[Key]]:
    try:
        document = loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Malformed(f"bundle.json is not UTF-8 JSON: {str(exc)[:200]}") from None
    if isinstance(document, dict) and document.get("format") != BUNDLE_FORMAT:
        raise Malformed(f"bundle.json format: expected {BUNDLE_FORMAT!r}, got {document.get('format')!r:.80}")
    _fields(document, "bundle.json", "bundle.json")
    _int(document, "created_ns", "bundle.json")
    selection = _selection(document.get("selection"))
    redacted = _bool(document, "redacted", "bundle.json")
    keyed = _bool(document, "keyed", "bundle.json")
    raw_streams = document.get("streams")
    if not isinstance(raw_streams, list) or not raw_streams:
        raise Malformed(f"bundle.json streams: expected a non-empty list, got {raw_streams!r:.80}")
    streams = [_stream(item, i) for i, item in enumerate(raw_streams)]
    origins = [stream.origin for stream in streams]
    if len(set(origins)) != len(origins):
        raise Malformed("bundle.json streams: an origin is listed twice")
    raw_keys = document["keys"]
    if isinstance(raw_keys, list):
        for i, item in enumerate(raw_keys):
            _fields(item, "key", f"bundle.json keys[{i}]")
    try:
        keys = parse_key_list(raw_keys, "bundle.json keys")
    except KeyFileError as exc:
        raise Malformed(str(exc)) from None
    return selection, redacted, keyed, streams, keys


def _int(obj: dict[str, Any], field: str, where: str) -> int:
    value = obj.get(field)
    if not isinstance(value, int) or isinstance(value, bool):
        raise Malformed(f"{where} {field}: expected an integer, got {value!r:.80}")
    return value


def _bool(obj: dict[str, Any], field: str, where: str) -> bool:
    value = obj.get(field)
    if not isinstance(value, bool):
        raise Malformed(f"{where} {field}: expected true or false, got {value!r:.80}")
    return value


def _str(obj: dict[str, Any], field: str, where: str) -> str:
    value = obj.get(field)
    if not isinstance(value, str):
        raise Malformed(f"{where} {field}: expected a string, got {value!r:.80}")
    return value


def _hashes(value: Any, where: str) -> list[bytes]:
    if not isinstance(value, list) or not all(isinstance(h, str) and _HEX64.fullmatch(h) for h in value):
        raise Malformed(f"{where}: expected a list of 64 lower-case hex strings, got {value!r:.80}")
    return [bytes.fromhex(h) for h in value]


def _selection(value: Any) -> Selection:
    _fields(value, "selection", "bundle.json selection")
    lists: list[list[str] | None] = []
    for field in ("event_types", "sources", "params"):
        item = value.get(field)
        if item is not None and (not isinstance(item, list) or not item
                                 or not all(isinstance(s, str) for s in item)):
            raise Malformed(f"bundle.json selection {field}: expected null or a non-empty list of strings, "
                            f"got {item!r:.80}")
        lists.append(item)
    start_ns, end_ns = _int(value, "start_ns", "selection"), _int(value, "end_ns", "selection")
    if start_ns >= end_ns:
        raise Malformed(f"bundle.json selection: start_ns {start_ns} is not before end_ns {end_ns}")
    return Selection(start_ns, end_ns, *lists)


def _stream(value: Any, i: int) -> StreamEntry:
    where = f"bundle.json streams[{i}]"
    _fields(value, "stream", where)
    origin = _str(value, "origin", where)
    parsed = parse_origin(origin)
    if parsed is None:
        raise Malformed(f"{where} origin: {origin[:80]!r} is not ledgerline/<trader>/<stream>")
    lines = _str(value, "lines", where)
    if lines != f"streams/{parsed[0]}.{parsed[1]}.lines":
        raise Malformed(f"{where} lines: expected 'streams/{parsed[0]}.{parsed[1]}.lines', got {lines[:80]!r}")
    # A range that is not 0 <= first < end <= N is range_proof_invalid (checked against the checkpoint).
    first, end = _int(value, "first", where), _int(value, "end", where)
    raw_redacted = value.get("redacted")
    if not isinstance(raw_redacted, dict):
        raise Malformed(f"{where} redacted: expected an object, got {raw_redacted!r:.80}")
    redacted = {}
    for key, leaf in raw_redacted.items():
        if not _DECIMAL.fullmatch(key) or not isinstance(leaf, str) or not _HEX64.fullmatch(leaf):
            raise Malformed(f"{where} redacted: expected decimal position -> 64 hex, got {key[:40]!r}: {leaf!r:.80}")
        redacted[int(key)] = bytes.fromhex(leaf)
    witness = None
    raw_witness = value.get("witness")
    if raw_witness is not None:
        _fields(raw_witness, "witness", f"{where} witness")
        witness = Witness(_str(raw_witness, "note", f"{where} witness"),
                          _hashes(raw_witness.get("consistency_proof"), f"{where} witness consistency_proof"))
    return StreamEntry(origin, _str(value, "checkpoint", where), first, end, lines, redacted,
                       _hashes(value.get("range_proof"), f"{where} range_proof"), witness)
