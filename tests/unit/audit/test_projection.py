"""Cold projection: the converter's one-step record and fast decimals give exactly what the plain rules give.

The cold format is frozen (projection 4): ``without_int_values`` takes a current record's integers
out of the cold ``record`` in one step, and ``derivation`` parses short decimals as 64-bit, for
speed; these tests hold both to
the rules they replace (``STRIP_SQL`` and then ``strip_int_sql`` of each of ``INT_FIELDS``; a plain
cast to ``DECIMAL(38,18)``) on real records of every event type and on lines crafted to miss the
fast path's layout.
"""

from __future__ import annotations

import duckdb
import pytest
from test_converter import write_trail

from audit_core.cold.projection import ONE_STEP_SQL, derivation, structure, without_int_values, working_rows
from audit_core.trust.record import INT_FIELDS, STRIP_SQL, compute_checksum, strip_int_sql

H1, H2 = "a" * 64, "b" * 64


def line_of(body: str) -> str:
    """A record line (no newline) of ``body``: its checksum field spliced in as the writer does."""
    return body[:-1] + f',"checksum":"{compute_checksum(body.encode())}"}}'


#: Lines whose layout the one-step record must not take for granted; each still a JSON object.
CRAFTED = [
    # format 1 and 2 records: no ts_recorded (a user field of that name later on, in the second)
    '{"ts_event":5,"event_type":"x","source":"s","trader_id":"t","sequence":1,"correlation_id":null,'
    f'"prev_hash":"{H1}","a":1}}',
    '{"ts_event":5,"event_type":"x","source":"s","trader_id":"t","sequence":1,"correlation_id":null,'
    f'"prev_hash":"{H1}","format":2,"ts_recorded":7}}',
    # a null prev_hash
    '{"ts_event":5,"event_type":"x","source":"s","trader_id":"t","sequence":0,"correlation_id":null,'
    '"prev_hash":null,"format":3,"ts_recorded":6,"a":1}',
    # ts_recorded the last field, then the checksum
    '{"ts_event":5,"event_type":"x","source":"s","trader_id":"t","sequence":1,"correlation_id":null,'
    f'"prev_hash":"{H1}","format":3,"ts_recorded":6}}',
    # a repeated ts_event key (JSON readers differ on which one counts)
    '{"ts_event":5,"event_type":"x","source":"s","trader_id":"t","sequence":1,"correlation_id":null,'
    f'"prev_hash":"{H1}","format":3,"ts_recorded":6,"ts_event":9}}',
    # fields in another order: sequence after prev_hash, ts_recorded before it
    '{"ts_event":5,"event_type":"x","prev_hash":"' + H1 + '","source":"s","sequence":1,"ts_recorded":6,"b":2}',
    '{"ts_recorded":6,"ts_event":5,"event_type":"x","sequence":1,"prev_hash":"' + H1 + '","c":3}',
    # keys inside string values before the real ones, non-ASCII text, escapes
    '{"ts_event":5,"event_type":"x \\"sequence\\":3","source":"s\u00e9\u20ac","trader_id":"t","sequence":1,'
    f'"correlation_id":"\\u00e9","prev_hash":"{H1}","format":3,"ts_recorded":6,"note":"\\"ts_recorded\\":1"}}',
    # non-ASCII before and after the hashes (positions count characters, not bytes)
    '{"ts_event":5,"event_type":"\u00e9\u00e9","source":"\U0001f600","trader_id":"t","sequence":12,'
    f'"correlation_id":null,"prev_hash":"{H2}","format":3,"ts_recorded":6,"x":"\u00fc\U0001f600"}}',
    # a negative ts_event, a prev_hash of another length
    '{"ts_event":-5,"event_type":"x","source":"s","trader_id":"t","sequence":1,"correlation_id":null,'
    f'"prev_hash":"{H1}","format":3,"ts_recorded":6,"a":1}}',
    '{"ts_event":5,"event_type":"x","source":"s","trader_id":"t","sequence":1,"correlation_id":null,'
    '"prev_hash":"abc","format":3,"ts_recorded":6,"a":1,"b":"' + "z" * 80 + '"}',
    # a value spelled so that it is not its column's text (leading zero: no JSON number, no match)
    '{"ts_event":5,"event_type":"x","source":"s","trader_id":"t","sequence":1,"correlation_id":null,'
    f'"prev_hash":"{H1}","format":3,"ts_recorded":6.0,"a":1}}',
]


def cold_records(lines: list[str]) -> list[tuple[str, str, bool, bool]]:
    """(record by the plain rules, record by ``working_rows`` + ``without_int_values``, in one step, cut from
    the line as it is read: ``_FAST_RECORD``)."""
    con = duckdb.connect()
    con.execute("CREATE TABLE hot AS SELECT unnest($lines) AS line, generate_subscripts($lines, 1) AS source_line",
                {"lines": lines})
    source = f"""(SELECT *, NULL::VARCHAR AS record, NULL::BLOB AS torn_bytes, NULL::BIGINT AS torn_ts,
                         json_transform(line, '{structure()}') AS j FROM hot)"""
    plain = f"(SELECT source_line, j.ts_event, j.sequence, j.ts_recorded, {STRIP_SQL} AS record FROM {source})"
    for name in INT_FIELDS:
        plain = f"(SELECT * REPLACE ({strip_int_sql('record', name)} AS record) FROM {plain})"
    working = f"({working_rows(source)})".replace("$stream", "'s'")
    one_step = f"""(SELECT source_line, NOT ints_left OR coalesce({ONE_STEP_SQL}, false) AS one_step,
                           NOT ints_left AS cut FROM {working})"""
    rows = con.execute(
        f"""SELECT p.record, w.record, o.one_step, o.cut
            FROM {plain} AS p JOIN {without_int_values(working)} AS w USING (source_line)
                 JOIN {one_step} AS o USING (source_line) ORDER BY source_line""").fetchall()
    con.close()
    return [(plain_record, record, one_step, cut) for plain_record, record, one_step, cut in rows]


class TestOneStepRecord:
    def test_every_event_type_of_the_real_writer_takes_one_step_to_the_same_record(self, tmp_path):
        lines = [line.decode() for line in write_trail(tmp_path)]
        records = cold_records(lines)
        assert len(records) == len(lines) > 40
        assert [plain for plain, *_ in records] == [record for _, record, *_ in records]
        assert all(cut for *_, cut in records)  # the fast path is the one these tests check
        assert all('"ts_event":,' in record and '"sequence":,' in record and '"ts_recorded":,' in record
                   for _, record, *_ in records)

    @pytest.mark.parametrize("body", CRAFTED)
    def test_a_line_off_the_current_layout_gets_the_plain_rules_record(self, body):
        ((plain, record, _, _),) = cold_records([line_of(body)])
        assert record == plain

    def test_lines_off_the_layout_are_left_to_the_plain_rules(self):
        records = cold_records([line_of(body) for body in CRAFTED])
        taken = [one_step for _, _, one_step, _ in records]
        cut = [cut for *_, cut in records]
        # no ts_recorded, ts_recorded the last field, ts_event not first
        assert [taken[i] for i in (0, 3, 6)] == [False] * 3
        assert taken[2] is taken[8] is True  # a null prev_hash or non-ASCII text does not stop the one step
        # the cut as the line is read: non-ASCII text does not stop it; a null prev_hash, a prev_hash
        # of another length or a value that is not its column's text leave the record to the plain rules
        assert cut[7] is cut[8] is cut[9] is True
        assert [cut[i] for i in (0, 1, 2, 3, 5, 6, 10, 11)] == [False] * 8


DECIMALS = ["0", "-0", "1.5", "100000", "1.100120000000000001", "-12.345678901234567890", "123456789.123456789",
            "1234567890.1", "0.1234567890123456789", "99999999999999999999.000000000000000001", "1e5", "5e-10",
            " 1.5", "+1.5", "1.", ".5", "007.50", "-999999999.999999999", None]


class TestDecimals:
    @pytest.mark.parametrize("text", DECIMALS)
    def test_the_fast_decimal_is_the_plain_cast(self, text):
        con = duckdb.connect()
        line = '{"size":' + ("null" if text is None else f'"{text}"') + "}"
        fast, plain = con.execute(
            f"""SELECT {derivation("size", "DECIMAL(38,18)", "decimal")}, CAST(j.size AS DECIMAL(38,18))
                FROM (SELECT json_transform($line, '{structure()}') AS j)""", {"line": line}).fetchone()
        assert fast == plain

    @pytest.mark.parametrize("text", ["abc", "1.2.3", "0x10", "1" * 40])
    def test_a_decimal_that_is_none_fails_as_the_plain_cast_does(self, text):
        con = duckdb.connect()
        source = f"""(SELECT json_transform('{{"size":"{text}"}}', '{structure()}') AS j)"""
        with pytest.raises(duckdb.ConversionException):
            con.execute(f"SELECT CAST(j.size AS DECIMAL(38,18)) FROM {source}").fetchall()
        with pytest.raises(duckdb.ConversionException, match="DECIMAL"):
            con.execute(f"SELECT {derivation('size', 'DECIMAL(38,18)', 'decimal')} FROM {source}").fetchall()
