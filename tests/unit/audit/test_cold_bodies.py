"""``_bodies.rebuild_bodies`` is ``record.rebuild_line``'s rule, column-wise: the same body for every row.

The column-wise path takes only rows in the current layout; everything else goes to
``rebuild_line`` row by row. The cases mix both, including rows made to look like the layout but
not quite (a key repeated early, a value not left out, a quote in the prev_hash, NULL values), so a
row the column-wise path takes wrongly would show as a different body.
"""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from audit_core.cold._bodies import rebuild_bodies
from audit_core.trust.record import INT_FIELDS, SUFFIX_LEN, rebuild_line

CURRENT = ('{"ts_event":,"event_type":"trade.fill","source":"s","trader_id":"T","sequence":,"correlation_id":null,'
           '"prev_hash":,"format":3,"ts_recorded":,"price":"1.5"}')
HASH = "ab" * 32


def _reference(record: bytes, prev_hash: str | None, ints: tuple[int | None, ...]) -> bytes:
    line = rebuild_line(record, prev_hash, "0" * 64, **dict(zip(INT_FIELDS, ints, strict=True)))
    return line[:-SUFFIX_LEN] + b"}"


def _bulk(rows: list[tuple[bytes, str | None, tuple[int | None, ...]]]) -> list[bytes]:
    columns = list(zip(*[(record, prev, *ints) for record, prev, ints in rows], strict=True))
    return rebuild_bodies(pa.array(columns[0], pa.binary()), pa.array(columns[1], pa.string()),
                          *(pa.array(column, pa.int64()) for column in columns[2:])).to_pylist()


class TestRebuildBodies:
    def test_a_current_record_gets_its_values_back_in_place(self) -> None:
        body = _bulk([(CURRENT.encode(), HASH, (5, 7, 9))])[0]
        expected = CURRENT.replace('"ts_event":,', '"ts_event":5,').replace('"sequence":,', '"sequence":7,')
        expected = expected.replace('"prev_hash":,', f'"prev_hash":"{HASH}",')
        expected = expected.replace('"ts_recorded":,', '"ts_recorded":9,')
        assert body == expected.encode()

    def test_rows_outside_the_layout_are_rebuilt_as_rebuild_line_does(self) -> None:
        rows = [
            (CURRENT.encode(), HASH, (1, 2, 3)),
            (CURRENT.replace('"prev_hash":,', f'"prev_hash":"{HASH}",').encode(), HASH, (1, 2, 3)),  # kept prev_hash
            (CURRENT.encode(), None, (1, 2, 3)),  # no row before it
            (CURRENT.encode(), 'a"b', (1, 2, 3)),  # a quote in the prev_hash
            (CURRENT.encode(), HASH, (1, None, 3)),  # a NULL column
            (CURRENT.replace('"source":"s"', '"source":"\\"ts_recorded\\":"').encode(), HASH, (1, 2, 3)),
            (CURRENT.replace('"source":"s"', '"source":"x\\"prev_hash\\":,"').encode(), HASH, (1, 2, 3)),
            (CURRENT.replace('"ts_recorded":,', '"ts_recorded":4,').encode(), HASH, (1, 2, 3)),  # value kept
            (CURRENT.replace('"sequence":,', "").encode(), HASH, (1, 2, 3)),  # no sequence key
            (b'{"sequence":,"ts_event":,"prev_hash":,"ts_recorded":}', HASH, (1, 2, 3)),  # another order
            (b"", HASH, (1, 2, 3)),
        ]
        assert _bulk(rows) == [_reference(*row) for row in rows]

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(
        st.lists(st.sampled_from(['"ts_event":', '"sequence":', '"prev_hash":', '"ts_recorded":', ",", "}", '"',
                                  "{", "1", "x", "é", CURRENT[:40], CURRENT[40:]]), max_size=12),
        st.one_of(st.none(), st.just(HASH), st.text(alphabet='ab"', max_size=3)),
        st.tuples(*[st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1))] * 3),
        st.booleans()), min_size=1, max_size=8))
    def test_any_rows_give_rebuild_lines_bodies(self, rows: list) -> None:
        cases = [((CURRENT if current else "".join(parts)).encode(), prev, ints)
                 for parts, prev, ints, current in rows]
        assert _bulk(cases) == [_reference(*case) for case in cases]
