"""The record line format: building a line, slicing its chain fields back out, and its cold layout.

A record line is the event's canonical JSON (``events.AuditEvent.canonical_bytes``: compact, keys
in the order the models declare them, starting with ``COMMON_FIELDS``) with
``,"checksum":"<64 hex>"`` spliced in before its closing brace, and a ``\\n``. ``checksum`` covers
the bytes without it (``compute_checksum``). Every other reader of the layout (the pyarrow regex
``CANONICAL_LINE``, the DuckDB expressions ``STRIP_SQL``/``BODY_SQL``/``LINE_SQL``) is generated
here from the same constants, so the layout is written down once. ``docs/format.md`` is its
specification, with test vectors.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import deque
from collections.abc import Callable
from itertools import repeat
from operator import add, getitem, itemgetter
from typing import Any, NamedTuple, cast

from audit_core.trust import documents

#: ``prev_hash`` of the first record of a stream.
GENESIS_HASH = "0" * 64
#: The record format this version writes. Format 2 records carry ``"format":2`` right after
#: ``prev_hash``; a record without the field is format 1 (written before it existed) and reads the
#: same way. Format 3 records carry ``"format":3,"ts_recorded":<ns>`` there: the time the emitter
#: recorded them (its clock, clamped non-decreasing per stream), which the chain rule checks never
#: goes backwards. Records of formats 1 and 2 stay valid with their bytes. A reader refuses a
#: format newer than this one rather than guess at its meaning.
RECORD_FORMAT = 3
#: The fields every record begins with, in this order (the chain fields are sliced by position);
#: ``format`` follows them from format 2 on, and ``ts_recorded`` follows ``format`` from format 3 on.
COMMON_FIELDS = ("ts_event", "event_type", "source", "trader_id", "sequence", "correlation_id", "prev_hash")
FORMAT_FIELD = "format"
TS_RECORDED_FIELD = "ts_recorded"
#: The first format whose records carry ``ts_recorded`` (and must).
TS_RECORDED_SINCE = 3
#: Every record ends with ``,"checksum":"<64 hex>"}``; a verifier slices it off without parsing.
CHECKSUM_SUFFIX_PREFIX = b',"checksum":"'
_HASH_HEX = 64
#: Length of ``,"checksum":"<64 hex>"}``.
SUFFIX_LEN = len(CHECKSUM_SUFFIX_PREFIX) + _HASH_HEX + 2
_SEQUENCE_KEY = b'"sequence":'
_PREV_KEY = b'"prev_hash":'
_FORMAT_KEY = f',"{FORMAT_FIELD}":'.encode()
_TS_RECORDED_KEY = f',"{TS_RECORDED_FIELD}":'.encode()
#: A prev_hash value in a line: its hex digits in quotes.
QUOTED_HASH_LEN = _HASH_HEX + 2
#: Bytes every key-lifecycle record line (``sys.key_*`` event types, ``trust.key_history``) holds:
#: only lines holding them are parsed for the key history, and only files holding them read
#: (``verify`` notes those as it checks them: ``key_record_files``).
KEY_RECORD_MARKER = b'"event_type":"sys.key_'


#: ``compute_checksum(body, hmac_key=None)``: SHA-256 hex of ``body``, or HMAC-SHA256 hex when
#: ``hmac_key`` is given. The documents' rule itself, not a wrapper around it: the emitter calls it
#: for every record.
compute_checksum = documents.keyed_digest
_LINE_END = b'"}\n'


def build_line(body: bytes, checksum: str) -> bytes:
    """The record line (``\\n``-terminated) of canonical ``body`` bytes and their ``checksum``."""
    return b"".join((body[:-1], CHECKSUM_SUFFIX_PREFIX, checksum.encode(), _LINE_END))


class RecordFields(NamedTuple):
    """The chain fields of one record line, sliced from its bytes (``ts_recorded``: None before format 3)."""

    body: bytes
    checksum: str
    sequence: int
    prev_hash: str | None
    ts_recorded: int | None = None


def split_record(line: bytes) -> RecordFields:
    """Slice checksum, sequence and prev_hash out of a record line (with or without ``\\n``).

    Raises:
        ValueError: the line does not have the record layout.
    """
    if line.endswith(b"\n"):
        line = line[:-1]
    if len(line) < SUFFIX_LEN + 2 or not line.endswith(b'"}'):
        raise ValueError("line does not end with the checksum field")
    cut = len(line) - SUFFIX_LEN
    if line[cut : cut + len(CHECKSUM_SUFFIX_PREFIX)] != CHECKSUM_SUFFIX_PREFIX:
        raise ValueError("checksum is not the last field")
    checksum = line[cut + len(CHECKSUM_SUFFIX_PREFIX) : -2].decode("ascii", "replace")
    body = line[:cut] + b"}"
    # The first occurrence is the top-level key: fields before it cannot hold a bare quote.
    at = body.find(_SEQUENCE_KEY)
    if at < 0:
        raise ValueError("no sequence field")
    end = body.find(b",", at)
    sequence = int(body[at + len(_SEQUENCE_KEY) : end])
    at = body.find(_PREV_KEY)
    if at < 0:
        raise ValueError("no prev_hash field")
    start = at + len(_PREV_KEY)
    if body[start : start + 4] == b"null":
        prev_hash, end = None, start + 4
    elif body[start : start + 1] == b'"' and body[start + QUOTED_HASH_LEN - 1 : start + QUOTED_HASH_LEN] == b'"':
        end = start + QUOTED_HASH_LEN
        prev_hash = body[start + 1 : end - 1].decode("ascii", "replace")
    else:
        raise ValueError("prev_hash is neither null nor a 64-character string")
    return RecordFields(body, checksum, sequence, prev_hash, _ts_recorded(body, end))


def _ts_recorded(body: bytes, end: int) -> int | None:
    """``ts_recorded`` of a record whose ``prev_hash`` value ends at ``end`` (the regex ``CANONICAL_LINE``
    reads it the same way: ``format`` directly follows ``prev_hash``, then ``ts_recorded``).

    Raises:
        ValueError: a format 3+ record without a well-formed ``ts_recorded`` there, or an older one with it.
    """
    if not body.startswith(_FORMAT_KEY, end):
        return None
    at = digits = end + len(_FORMAT_KEY)
    while body[digits : digits + 1].isdigit():
        digits += 1
    if digits == at or body[digits : digits + 1] not in (b",", b"}"):
        return None  # not a format number: the record's model refuses it when it is parsed
    record_format = int(body[at:digits])
    value = None
    if body.startswith(_TS_RECORDED_KEY, digits):
        at = end = digits + len(_TS_RECORDED_KEY)
        while body[end : end + 1].isdigit():
            end += 1
        leading_zero = body[at : at + 1] == b"0" and end > at + 1
        if end > at and not leading_zero and body[end : end + 1] in (b",", b"}"):
            value = int(body[at:end])
    if record_format >= TS_RECORDED_SINCE and value is None:
        raise ValueError(f"a format {record_format} record needs {TS_RECORDED_FIELD} (a non-negative integer) "
                         "right after format")
    if record_format < TS_RECORDED_SINCE and value is not None:
        raise ValueError(f"a format {record_format} record has {TS_RECORDED_FIELD} (added in format 3)")
    if value is not None and value >= 2**63:
        raise ValueError(f"{TS_RECORDED_FIELD} {value} is beyond int64")
    return value


#: What directly follows a quoted ``prev_hash`` value in a record of the current format (``_ts_recorded``'s layout).
_CURRENT_TAIL = f'",{_FORMAT_KEY.decode()[1:]}{RECORD_FORMAT}{_TS_RECORDED_KEY.decode()}'
#: A whole line (newline in) less its ``,"checksum":"<64 hex>"}\n``: ``record_bodies`` appends the ``}``.
_BODY = slice(None, -SUFFIX_LEN - 1)
_slice = cast("Callable[[bytes, slice], bytes]", getitem)  # bytes[a:b]; getitem's own type is overloaded
_SUFFIX_TEXT = CHECKSUM_SUFFIX_PREFIX.decode()
_END = itemgetter(slice(-SUFFIX_LEN - 1, None))  # a whole line's checksum field and newline
_SEQUENCE_TEXT = _SEQUENCE_KEY.decode()
_PREV_TEXT = _PREV_KEY.decode() + '"'


def _recorded_texts(lines: list[bytes], at: list[int]) -> list[bytes]:
    """The text from each ``at[i]`` up to the next comma in ``lines[i]`` (all of it if there is none).

    Usually every text is as long as the first (a clock's readings keep their number of digits for
    centuries): then each is sliced at that width with its comma, and one join shows whether all end
    there, which costs less than a search per line. Otherwise each line is searched for its comma.
    """
    count = len(lines)
    width = lines[0].find(b",", at[0]) + 1 - at[0]  # the first text and its comma
    if width > 1:
        window = b"".join(map(_slice, lines, map(slice, at, map(add, at, repeat(width)))))
        if len(window) == width * count and window[width - 1 :: width] == b"," * count:
            texts = window.split(b",")
            texts.pop()  # (the empty text after the last comma)
            if len(texts) == count:  # no line's text is shorter, cut at a comma of its own before the width
                return texts
    return list(map(_slice, lines, map(slice, at, map(bytes.find, lines, repeat(b","), at))))


def record_bodies(lines: list[bytes]) -> list[bytes]:
    """What the checksum of each line covers (``split_record``'s ``body``), for whole lines (newlines in)."""
    return list(map(add, map(_slice, lines, repeat(_BODY)), repeat(b"}")))


def read_run(lines: list[bytes], first_sequence: int, prev_hashes: list[str], checksums: list[str]) -> list[int] | None:
    """Each line's ``ts_recorded``, if every line is a current-format record with exactly these chain fields.

    ``lines`` are whole lines, each ending with its newline (``seals.read_chunks``). A line qualifies if
    ``split_record`` reads from it the checksum ``checksums[i]``, the sequence
    ``first_sequence + i`` and the prev_hash ``prev_hashes[i]``, written the way this version writes
    them (decimal digits, a quoted hash followed by ``"format":3`` and a canonical ``ts_recorded``).
    Otherwise this returns None, and ``split_record`` reads the lines one by one (an older format, a
    null prev_hash, a torn line, any other value). The fields are found where ``split_record`` finds
    them (the first ``"sequence":`` and ``"prev_hash":`` of a line), so the values read are the ones
    it would read. The texts each line must hold are built for all lines with one ``join``.
    """
    count = len(lines)
    if count == 0 or count != len(prev_hashes) or count != len(checksums):
        return None
    if set(map(len, prev_hashes)) | set(map(len, checksums)) != {_HASH_HEX} or not (
            "".join(prev_hashes).isascii() and "".join(checksums).isascii()):
        return None  # split_record reads 64 bytes, each one character, where a line holds a hash
    # Each line ends with its checksum field and a newline: the ends of all lines, joined, are these.
    ends = (_SUFFIX_TEXT + ('"}\n' + _SUFFIX_TEXT).join(checksums) + '"}\n').encode()
    if b"".join(map(_END, lines)) != ends:
        return None
    # Both keys are the first in their line, and hold these texts; a line shorter than split_record
    # accepts cannot hold them in front of its checksum field.
    numbers = (_SEQUENCE_TEXT + (",\n" + _SEQUENCE_TEXT).join(map(str, range(first_sequence, first_sequence + count)))
               + ",").encode().split(b"\n")
    if not all(map(bytes.startswith, lines, numbers, map(bytes.find, lines, repeat(_SEQUENCE_KEY)))):
        return None
    values = (_PREV_TEXT + (_CURRENT_TAIL + "\n" + _PREV_TEXT).join(prev_hashes) + _CURRENT_TAIL).encode().split(b"\n")
    at = list(map(bytes.find, lines, repeat(_PREV_KEY)))
    if len(values) != count or not all(map(bytes.startswith, lines, values, at)):
        return None
    at = list(map(add, at, repeat(len(values[0]))))  # where ts_recorded's digits start, up to the next comma
    texts = _recorded_texts(lines, at)
    # Canonical decimals only: digits, no leading zero (split_record refuses one; "0" itself is left to it).
    if b"" in texts or not b"".join(texts).isdigit() or b" 0" in b" " + b" ".join(texts):
        return None
    recorded = list(map(int, texts))
    return recorded if max(recorded) < 2**63 else None


def compute_checksums(bodies: list[bytes], hmac_key: bytes | None = None) -> list[str]:
    """``compute_checksum`` of each of ``bodies`` (``documents.keyed_digest``'s rule, in bulk)."""
    if hmac_key is None:
        return list(map(_HEXDIGEST, map(hashlib.sha256, bodies)))
    # Copies of one keyed HMAC: hmac.digest sets the key up again for every record (OpenSSL 3.0:
    # about 2.1 us a record against 1.6 us for a copy, and 0.65 us for a plain SHA-256).
    macs = list(map(hmac.HMAC.copy, repeat(hmac.new(hmac_key, digestmod=hashlib.sha256), len(bodies))))
    deque(map(hmac.HMAC.update, macs, bodies), maxlen=0)
    return list(map(hmac.HMAC.hexdigest, macs))


_HEXDIGEST = type(hashlib.sha256()).hexdigest


def parse_object(body: bytes) -> dict[str, Any] | None:
    """A record's JSON object, or None if it is not one (or repeats a key, which JSON parsers resolve differently)."""
    try:
        parsed = json.loads(body, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("repeated key")
    return result


# --- the same layout for pyarrow and DuckDB ---------------------------------------------------------

_STRING = r'"(?:[^"\\]|\\.)*"'
_FIELD_PATTERNS = {
    "ts_event": r"(?P<ts>\d+)",
    "event_type": _STRING,
    "source": _STRING,
    "trader_id": _STRING,
    "sequence": r"(?P<seq>\d+)",
    "correlation_id": rf"(?:null|{_STRING})",
    "prev_hash": rf'(?:null|"(?P<prev>[0-9a-f]{{{_HASH_HEX}}})")',
}
#: The canonical start of a record line (RE2/Python regex). A line that matches it has exactly the
#: fields ``split_record`` slices: the first ``"sequence":`` and ``"prev_hash":`` are the top-level
#: keys, because the fields before them cannot hold an unescaped quote.
CANONICAL_LINE = (
    r"^\{" + ",".join(f'"{name}":{_FIELD_PATTERNS[name]}' for name in COMMON_FIELDS)
    + f'(?:,"{FORMAT_FIELD}":(?P<format>\\d+)(?:,"{TS_RECORDED_FIELD}":(?P<rec>0|[1-9]\\d*))?)?[,}}]'
)

_PREV_KEY_SQL = _PREV_KEY.decode()
_SUFFIX_SQL = CHECKSUM_SUFFIX_PREFIX.decode()
# DuckDB's left() costs 3-4x substr(text, 1, n) per row (measured on 1M 500-character lines), and
# left(text, -n) equals substr(text, 1, length(text) - n) for every text: the SQL below uses substr.
_BUT_LAST_SUFFIX = f"substr(line, 1, length(line) - {SUFFIX_LEN})"
#: ``strip_line`` in DuckDB SQL, for a canonical ``line`` whose parsed JSON is ``j`` (positions are
#: in characters, and ``"prev_hash":"`` first occurs at the top-level key in a canonical line).
STRIP_SQL = f"""CASE WHEN j.prev_hash IS NULL THEN {_BUT_LAST_SUFFIX} || '}}'
    ELSE substr(line, 1, instr(line, '{_PREV_KEY_SQL}"') + {len(_PREV_KEY) - 1})
         || substr({_BUT_LAST_SUFFIX}, instr(line, '{_PREV_KEY_SQL}"') + {len(_PREV_KEY) + QUOTED_HASH_LEN})
         || '}}' END"""
#: The line without its checksum field, in DuckDB SQL (``strip_line`` of a line whose prev_hash is kept).
UNSTRIPPED_SQL = f"({_BUT_LAST_SUFFIX} || '}}')"
#: Where the value of a cold ``record``'s top-level prev_hash starts (or would, when it is left out).
_PREV_AT_SQL = f"(instr(record, '{_PREV_KEY_SQL}') + {len(_PREV_KEY)})"
#: Whether a cold ``record`` leaves its prev_hash value out (``strip_line``): ``"prev_hash":`` is
#: directly followed by the next field or the end, where a kept value has a quote or ``null``.
STRIPPED_SQL = f"(substr(record, {_PREV_AT_SQL}, 1) IN (',', '}}'))"
#: The prev_hash value a cold ``record`` keeps (NULL when it is ``null`` or left out).
KEPT_PREV_SQL = (f"""(CASE WHEN substr(record, {_PREV_AT_SQL}, 1) = '"' """
                 f"THEN substr(record, {_PREV_AT_SQL} + 1, {_HASH_HEX}) END)")


def body_sql(prev_hash: str, *, quoted: bool = True) -> str:
    """The checksummed body of a record line in DuckDB SQL, from the cold column ``record`` and the SQL
    ``prev_hash`` of its prev_hash value: ``record`` with the value put back (the line without its
    checksum field); ``record`` itself where ``prev_hash`` is NULL. ``quoted=False``: ``prev_hash``
    is JSON already (quotes or ``null``), never NULL."""
    value = f"""'"' || {prev_hash} || '"'""" if quoted else prev_hash
    return f"""(CASE WHEN {prev_hash} IS NULL THEN record
    ELSE substr(record, 1, {_PREV_AT_SQL} - 1) || {value} || substr(record, {_PREV_AT_SQL}) END)"""


#: ``body_sql`` of the cold column ``prev_hash`` (projections 1 to 3 store it).
BODY_SQL = body_sql("prev_hash")
#: Top-level integer fields whose values a cold ``record`` (projection 4 on) leaves out, each kept
#: in the typed column of the same name: ``strip_int_sql`` takes a value out, ``insert_int_sql``
#: puts it back. The first occurrence of ``"<name>":`` in a record is the top-level key (as for
#: ``prev_hash``), and the value is taken out only where it is exactly the column's decimal text.
INT_FIELDS = ("ts_event", "sequence", TS_RECORDED_FIELD)


def _value_at_sql(text: str, name: str) -> str:
    return f"""(instr({text}, '"{name}":') + {len(name) + 3})"""


def strip_int_sql(text: str, name: str) -> str:
    """SQL: ``text`` (a record) without the value of its first ``"<name>":`` when that value is the text
    of the column ``name`` (then followed by ``,`` or ``}``); else ``text`` as it is."""
    at, value = _value_at_sql(text, name), f"CAST({name} AS VARCHAR)"
    return f"""(CASE WHEN instr({text}, '"{name}":') > 0 AND {value} IS NOT NULL
                       AND substr({text}, {at}, length({value}) + 1) IN ({value} || ',', {value} || '}}')
                  THEN substr({text}, 1, {at} - 1) || substr({text}, {at} + length({value})) ELSE {text} END)"""


def insert_int_sql(text: str, name: str) -> str:
    """SQL: ``text`` (a record or body) with the column ``name``'s value put back where ``strip_int_sql``
    took it out (its first ``"<name>":`` directly followed by ``,`` or ``}``). A NULL column: NULL."""
    at = _value_at_sql(text, name)
    return f"""(CASE WHEN instr({text}, '"{name}":') > 0 AND substr({text}, {at}, 1) IN (',', '}}')
                  THEN substr({text}, 1, {at} - 1) || CAST({name} AS VARCHAR) || substr({text}, {at})
                  ELSE {text} END)"""
#: ``rebuild_line`` in DuckDB SQL: the whole line (without its newline) from a column ``body``
#: (``BODY_SQL``) and ``checksum``; NULL on a torn line's row, whose checksum is NULL.
LINE_SQL = f"""(substr(body, 1, length(body) - 1) || '{_SUFFIX_SQL}' || checksum || '"}}')"""


# --- the cold record layout -------------------------------------------------------------------------


def strip_line(line: bytes, prev_hash: str | None) -> bytes:
    """The cold ``record`` of a record line (without its newline): no checksum, no prev_hash value.

    The two 64-character hashes are in their own cold columns (zstd cannot compress them);
    ``rebuild_line`` puts them back byte for byte.
    """
    body = line[:-SUFFIX_LEN] + b"}"
    if prev_hash is None:
        return body
    at = body.find(_PREV_KEY) + len(_PREV_KEY)
    return body[:at] + body[at + QUOTED_HASH_LEN :]


def is_stripped(record: bytes) -> bool:
    """Whether a cold ``record`` leaves its top-level prev_hash value out (``STRIPPED_SQL`` in Python)."""
    at = record.find(_PREV_KEY) + len(_PREV_KEY)
    return record[at : at + 1] in (b",", b"}")


def rebuild_line(record: bytes, prev_hash: str | None, checksum: str, **ints: int | None) -> bytes:
    """The original record line (without its newline) from a cold ``record`` and its hash columns.

    ``prev_hash`` is put back only into a ``record`` that leaves it out (``is_stripped``); so is
    each value of ``INT_FIELDS`` given as a keyword (``ts_event=``, ``sequence=``, ``ts_recorded=``:
    the row's columns, which projection 4 on leaves out of ``record``; ``insert_int_sql`` in Python).
    """
    if prev_hash is not None and is_stripped(record):
        at = record.find(_PREV_KEY) + len(_PREV_KEY)
        record = record[:at] + b'"' + prev_hash.encode() + b'"' + record[at:]
    for name, value in ints.items():
        if name not in INT_FIELDS:
            raise TypeError(f"rebuild_line() got an unexpected keyword argument {name!r}")
        key = f'"{name}":'.encode()
        found = record.find(key)
        at = found + len(key)
        if value is not None and found >= 0 and record[at : at + 1] in (b",", b"}"):
            record = record[:at] + str(value).encode() + record[at:]
    return build_line(record, checksum)[:-1]
