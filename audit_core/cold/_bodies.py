"""The checksummed bodies of cold rows of projection 4 on, rebuilt column-wise: ``record.rebuild_line`` in bulk.

``rebuild_line`` is the rule (the Python twin of ``projection.chained_rows``): a ``record`` that
leaves its prev_hash value out takes ``prev_hash`` back, then each of ``INT_FIELDS`` its column's
value, each at the first occurrence of its key. Row by row in Python that costs about 4 us a row,
the same in DuckDB's string functions about 12; ``rebuild_bodies`` does the rows in the layout of
every current record with Arrow kernels and leaves any other row to ``rebuild_line`` itself.
``tests/unit/audit/test_cold_bodies.py`` holds the two equal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit_core.trust.record import INT_FIELDS, SUFFIX_LEN, rebuild_line

if TYPE_CHECKING:
    import pyarrow as pa

_KEYS = tuple(f'"{name}":'.encode() for name in ("ts_event", "sequence", "prev_hash", "ts_recorded"))


def rebuild_bodies(records: pa.Array, prev_hashes: pa.Array, ts_event: pa.Array, sequence: pa.Array,
                   ts_recorded: pa.Array) -> pa.Array:
    """``rebuild_line(record, prev_hash, checksum, ts_event=, sequence=, ts_recorded=)`` of each row, without
    its checksum field: the body its checksum covers.

    Args:
        records: The ``record`` column (binary).
        prev_hashes: Each row's prev_hash to put back where ``record`` leaves it out (string; NULL: none).
        ts_event: The ``ts_event`` column (int64); ``sequence`` and ``ts_recorded`` likewise.

    Returns:
        The bodies (binary, no NULL), in row order.

    The layout done column-wise: ``{"ts_event":`` first with its value left out, then the first
    ``"sequence":``, the first ``"prev_hash":`` and the first ``"ts_recorded":`` of the record in that
    order, each with its value left out (followed by ``,`` or ``}``), and no NULL to put back. There
    ``rebuild_line``'s steps find each key where it is in ``record`` (what a step puts in front of a
    later key is digits, or ``prev_hash`` in quotes, which holds no quote here: checked), so the
    record split at those keys and joined with the values is its result.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    count = len(records)
    ts_key, sequence_key, prev_key, recorded_key = _KEYS
    values = [pc.cast(column, pa.string()).cast(pa.binary()) for column in (ts_event, sequence, ts_recorded)]
    prior = prev_hashes.cast(pa.binary())
    known = pc.and_(pc.and_(pc.is_valid(prior), pc.invert(pc.match_substring(prior, '"'))),
                    pc.and_(pc.and_(pc.is_valid(values[0]), pc.is_valid(values[1])), pc.is_valid(values[2])))
    layout = pc.and_(pc.starts_with(records, (b"{" + ts_key + b",").decode()), pc.fill_null(known, False))
    # record = {"ts_event": rest1; rest1 = head1 "sequence": rest2; rest2 = head2 "prev_hash": rest3; ...
    rest1 = pc.binary_slice(records, len(ts_key) + 1, 2**31 - 1)
    head1, rest2, found = _split(rest1, sequence_key)
    head2, rest3, found_prev = _split(rest2, prev_key)
    head3, rest4, found_recorded = _split(rest3, recorded_key)
    # Each key's first occurrence in the record is the one split at: none in front of it (keys cannot
    # overlap one another: each starts with a quote, which no other holds but at its ends).
    first = pc.invert(pc.or_(pc.or_(pc.match_substring(head1, prev_key.decode()),
                                    pc.match_substring(head1, recorded_key.decode())),
                             pc.match_substring(head2, recorded_key.decode())))
    left_out = pc.and_(pc.and_(_value_left_out(rest2), _value_left_out(rest3)), _value_left_out(rest4))
    fast = pc.and_(pc.and_(pc.and_(layout, found), pc.and_(found_prev, found_recorded)), pc.and_(first, left_out))
    quote = pa.scalar(b'"', pa.binary())
    joined = pc.binary_join_element_wise(
        pa.scalar(b"{" + ts_key, pa.binary()), values[0], head1, pa.scalar(sequence_key, pa.binary()), values[1],
        head2, pa.scalar(prev_key, pa.binary()), quote, prior, quote, head3, pa.scalar(recorded_key, pa.binary()),
        values[2], rest4, pa.scalar(b"", pa.binary()))
    fast = pc.fill_null(fast, False)
    slow = pc.indices_nonzero(pc.invert(fast))
    if len(slow) == 0:
        return joined
    bodies: list[bytes | None] = [None] * count
    rows = zip(*(column.take(slow).to_pylist() for column in (records, prev_hashes, ts_event, sequence, ts_recorded)),
               strict=True)
    for index, (record, prev_hash, *ints) in zip(slow.to_pylist(), rows, strict=True):
        line = rebuild_line(record, prev_hash, "0" * 64, **dict(zip(INT_FIELDS, ints, strict=True)))
        bodies[index] = line[:-SUFFIX_LEN] + b"}"
    return pc.if_else(fast, joined, pa.array(bodies, pa.binary()))


def _split(values: pa.Array, key: bytes) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Each value cut at its first ``key``: what is before it, what is after it, and whether it holds
    one (where it does not, both parts are empty)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = pc.split_pattern(values, key.decode(), max_splits=1)
    found = pc.equal(pc.list_value_length(parts), 2)
    if not pc.all(found).as_py():  # a value without the key is one part: split the key itself there instead
        found = pc.fill_null(found, False)
        parts = pc.split_pattern(pc.if_else(found, values, pa.scalar(key, pa.binary())), key.decode(), max_splits=1)
    flat = parts.flatten()  # two parts each: before, after, before, after, ...
    return flat.take(np.arange(0, len(flat), 2)), flat.take(np.arange(1, len(flat), 2)), found


def _value_left_out(rest: pa.Array) -> pa.Array:
    """Whether what follows a key is the next field or the record's end: its value was left out."""
    import pyarrow.compute as pc

    return pc.or_(pc.starts_with(rest, ","), pc.starts_with(rest, "}"))
