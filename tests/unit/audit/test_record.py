"""The record line format is written once: every reader of the layout agrees with ``trust/record.py``.

Python slicing (``split_record``, ``strip_line``, ``rebuild_line``), the pyarrow regex
``CANONICAL_LINE`` and the DuckDB expressions ``STRIP_SQL``/``BODY_SQL``/``LINE_SQL`` are all
derived from the same constants; these tests run each of them on real emitted lines and compare.
"""

from __future__ import annotations

import json
import re

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit_core import AuditEvent, ParameterChangeEvent
from audit_core.trust.record import (
    BODY_SQL,
    CANONICAL_LINE,
    COMMON_FIELDS,
    GENESIS_HASH,
    LINE_SQL,
    STRIP_SQL,
    build_line,
    compute_checksum,
    rebuild_line,
    split_record,
    strip_line,
)

_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30)


def _line(
    source: str, reason: str, sequence: int, prev_hash: str | None, correlation_id: str | None,
    stamp: tuple[int | None, int | None] = (None, None),
) -> bytes:
    """A record line; ``stamp`` is (format, ts_recorded): none (format 1), format 2, or format 3 with a time."""
    event = ParameterChangeEvent(
        ts_event=1_767_225_600_000_000_000 + sequence, source=source, param_name="max_position",
        old_value=1, new_value={"nested": [reason, 2.5], "ts_recorded": 7}, trigger_reason=reason, trader_id="T-001",
        sequence=sequence, prev_hash=prev_hash, correlation_id=correlation_id, format=stamp[0], ts_recorded=stamp[1],
    )
    body = event.canonical_bytes()
    return build_line(body, compute_checksum(body))


_LINES = st.builds(
    _line, _TEXT, _TEXT, st.integers(0, 2**40),
    st.one_of(st.none(), st.just(GENESIS_HASH), st.text("0123456789abcdef", min_size=64, max_size=64)),
    st.one_of(st.none(), _TEXT),
    st.one_of(st.just((None, None)), st.just((2, None)), st.tuples(st.just(3), st.integers(0, 2**63 - 1))),
)


def test_every_event_model_begins_with_the_common_fields_in_order():
    assert tuple(AuditEvent.model_fields)[: len(COMMON_FIELDS)] == COMMON_FIELDS
    assert tuple(ParameterChangeEvent.model_fields)[: len(COMMON_FIELDS)] == COMMON_FIELDS


@settings(max_examples=150, deadline=None)
@given(_LINES)
def test_python_slicing_and_the_regex_agree_on_emitted_lines(line):
    fields = split_record(line)
    assert build_line(fields.body, fields.checksum) == line
    assert compute_checksum(fields.body) == fields.checksum
    match = re.match(CANONICAL_LINE, line.decode())
    assert match is not None
    assert int(match["seq"]) == fields.sequence
    assert match["prev"] == fields.prev_hash
    assert (None if match["rec"] is None else int(match["rec"])) == fields.ts_recorded
    assert json.loads(line).get("ts_recorded") == fields.ts_recorded
    stripped = strip_line(line[:-1], fields.prev_hash)
    assert rebuild_line(stripped, fields.prev_hash, fields.checksum) == line[:-1]


@pytest.fixture(scope="module")
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


@settings(max_examples=60, deadline=None)
@given(st.lists(_LINES, min_size=1, max_size=5))
def test_the_duckdb_expressions_agree_with_python(con, lines):
    """STRIP_SQL makes the cold record; BODY_SQL and LINE_SQL give back the checksummed body and the line."""
    texts = [line[:-1].decode() for line in lines]
    rows = con.execute(
        f"""SELECT record, body, {LINE_SQL} AS rebuilt FROM (
              SELECT *, {BODY_SQL} AS body FROM (
                SELECT line, prev_hash, checksum, {STRIP_SQL} AS record FROM (
                  SELECT line, j, j.prev_hash AS prev_hash, j.checksum AS checksum FROM (
                    SELECT line, json_transform(line, '{{"prev_hash": "VARCHAR", "checksum": "VARCHAR"}}') AS j
                    FROM unnest($lines) AS t(line)))))""",
        {"lines": texts},
    ).fetchall()
    for line, (record, body, rebuilt) in zip(lines, rows, strict=True):
        fields = split_record(line)
        assert record.encode() == strip_line(line[:-1], fields.prev_hash)
        assert body.encode() == fields.body
        assert rebuilt.encode() == line[:-1]


def test_a_line_whose_checksum_is_not_last_is_refused():
    line = _line("sizer", "why", 0, GENESIS_HASH, None)
    moved = line.replace(b',"checksum":"', b',"checksum_":"')
    with pytest.raises(ValueError, match="checksum"):
        split_record(moved)


@pytest.mark.parametrize(("stamp", "problem"), [
    (b'"format":3,', "needs ts_recorded"),
    (b'"format":3,"ts_recorded":-1,', "needs ts_recorded"),
    (b'"format":3,"ts_recorded":01,', "needs ts_recorded"),
    (b'"format":2,"ts_recorded":5,', "has ts_recorded"),
    (b'"format":3,"ts_recorded":9223372036854775808,', "beyond int64"),
])
def test_a_record_whose_ts_recorded_does_not_fit_its_format_is_refused_by_every_reader(stamp, problem):
    """split_record raises; the regex's (format, rec) pair shows the same mismatch to the bulk path."""
    line = _line("sizer", "why", 0, GENESIS_HASH, None)
    line = line.replace(b'"prev_hash":"' + GENESIS_HASH.encode() + b'",',
                        b'"prev_hash":"' + GENESIS_HASH.encode() + b'",' + stamp)
    with pytest.raises(ValueError, match=problem):
        split_record(line)
    match = re.match(CANONICAL_LINE, line.decode())
    assert match is not None
    record_format = int(match["format"])
    rec = None if match["rec"] is None else int(match["rec"])
    assert (record_format >= 3) != (rec is not None) or rec >= 2**63


def test_a_payload_key_named_ts_recorded_is_not_the_records_own():
    line = _line("sizer", "why", 0, GENESIS_HASH, None, (2, None))
    assert b'"ts_recorded":7' in line
    assert split_record(line).ts_recorded is None
    assert re.match(CANONICAL_LINE, line.decode())["rec"] is None
